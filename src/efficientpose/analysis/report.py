"""Everything the analysis writes: angles.csv, summary.json, PNG plots, key frames and one self-contained report.html.

All files are written atomically (efficientpose.io.atomic_write_bytes). The HTML embeds its images as base64
data URIs and references nothing outside itself.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from efficientpose.analysis.angles import ANGLE_NAMES, PAIRS, Flag
from efficientpose.analysis.cycles import normalised_cycles, percent_axis
from efficientpose.io.atomic import atomic_write_bytes
from efficientpose.io.draw import draw_pose
from efficientpose.io.video import VideoReader
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS

if TYPE_CHECKING:
    from efficientpose.analysis import Analysis

#: Draws a skeleton: (RGB image, (K, 3) keypoints, (K,) valid mask) -> RGB image.
Drawer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

#: One plot per joint (left and right on one axis) and one for the two inclinations.
PLOTS: dict[str, tuple[str, ...]] = {**PAIRS, "inclination": ("trunk_inclination", "neck_inclination")}
_COLOURS = {"left": "tab:blue", "right": "tab:orange", "trunk": "tab:green", "neck": "tab:purple"}


def csv_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """One row per frame; empty cells for NaN; floats with 6 significant digits."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values(), strict=True):
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue().encode("utf-8")


def _cell(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.6g}" if np.isfinite(v) else ""
    return str(v)


def json_bytes(data: dict) -> bytes:
    """Strict JSON (no NaN): the summary already holds None wherever a value is undefined."""
    return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")


def plot_png(
    title: str,
    times: np.ndarray,
    series: dict[str, np.ndarray],
    flags: dict[str, np.ndarray],
    repetitions: Iterable[dict] = (),
    raw: dict[str, np.ndarray] | None = None,
) -> bytes:
    """One angle-over-time plot as PNG bytes: the given (filtered) series on one axis, each with its ``raw``
    values as a thin line, gaps as breaks with a rug, repetitions shaded."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend and figures alone

    fig = Figure(figsize=(8, 3.2), dpi=100)
    ax = fig.add_subplot()
    for name, values in series.items():
        colour = _COLOURS.get(name.split("_")[0])
        ax.plot(times, values, label=name.replace("_", " "), color=colour, linewidth=1.8)
        if raw is not None and name in raw:
            ax.plot(times, raw[name], color=colour, linewidth=0.8, alpha=0.6, linestyle=":", marker=".",
                    markersize=2, label=f"{name.replace('_', ' ')} (raw)")
    for i, rep in enumerate(repetitions):
        ax.axvspan(rep["start_time"], rep["end_time"], color="0.85", zorder=0, label="repetition" if i == 0 else None)
        ax.axvline(rep["peak_time"], color="0.4", linestyle="--", linewidth=0.8)
        ax.annotate(str(rep["index"]), (rep["peak_time"], 1.0), xycoords=("data", "axes fraction"),
                    ha="center", va="bottom", fontsize=8)
    missing = np.zeros(len(times), dtype=bool)
    for name in series:
        missing |= flags[name] != Flag.OK
    if missing.any():
        ax.plot(times[missing], np.zeros(int(missing.sum())), "|", color="red", markersize=10,
                transform=ax.get_xaxis_transform(), label="missing (gap/undefined)")
    ax.set_title(title, fontsize=10, pad=12)
    return _finish_png(fig, ax, "time (s)", "angle (deg)")


def cycle_plot_png(title: str, percent: list[float], curves: dict[str, dict], ylabel: str = "angle (deg)") -> bytes:
    """Cycle-normalised curves as PNG bytes: each side's mean as a line with a mean +- SD band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.add_subplot()
    x = np.asarray(percent, dtype=np.float64)
    for side, curve in curves.items():
        if curve.get("mean") is None:
            continue
        mean, sd = np.asarray(curve["mean"]), np.asarray(curve["sd"])
        colour = _COLOURS.get(side)
        ax.plot(x, mean, color=colour, linewidth=1.8, label=f"{side} (n={curve.get('cycles', '?')})")
        ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.2, linewidth=0)
    ax.set_title(title, fontsize=10)
    return _finish_png(fig, ax, "% of cycle", ylabel)


def _finish_png(fig: Any, ax: Any, xlabel: str, ylabel: str) -> bytes:  # noqa: ANN401 - matplotlib objects
    """Axis labels, grid and legend, then the figure as PNG bytes (no timestamp: same data, same bytes)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def read_frames(video: str | os.PathLike, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """RGB frames of ``video`` at the given 0-based indices, decoded in order by the package's VideoReader."""
    wanted = set(int(i) for i in indices)
    frames: dict[int, np.ndarray] = {}
    if not wanted:
        return frames
    last = max(wanted)
    with VideoReader(video) as reader:
        for frame in reader:
            if frame.index in wanted:
                frames[frame.index] = frame.image
            if frame.index >= last:
                break
    return frames


def draw_skeleton(image_rgb: np.ndarray, keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The package's pose drawing (:func:`efficientpose.draw.draw_pose`) of the available keypoints."""
    kp = np.where(np.asarray(valid)[:, None], np.asarray(keypoints, dtype=np.float64), np.nan)
    kp[:, 2] = np.where(valid, 1.0, np.nan)
    return draw_pose(image_rgb, Pose(kp), threshold=0.5)


def _px(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def keyframe_jpeg(
    image: np.ndarray | None,
    size: tuple[int, int],
    keypoints: np.ndarray,
    valid: np.ndarray,
    labels: dict[str, str],
    drawer: Drawer = draw_skeleton,
    max_height: int = 480,
) -> bytes:
    """An annotated key frame as JPEG: skeleton plus angle labels beside their joints, on the RGB video frame or
    white."""
    canvas = image if image is not None else np.full((size[1], size[0], 3), 255, dtype=np.uint8)  # RGB
    out = drawer(canvas, keypoints, valid)
    f = min(1.0, max_height / out.shape[0])
    if f < 1.0:
        out = cv2.resize(out, (max(1, round(out.shape[1] * f)), max_height), interpolation=cv2.INTER_AREA)
    xy = np.asarray(keypoints, dtype=np.float64)[:, :2] * f
    font, size_, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    for name, text in labels.items():  # drawn after resizing (crisp), outward: away from the other side's joint
        i = KEYPOINTS.index(name)
        if not valid[i]:
            continue
        mate = KEYPOINTS.index(name.replace("left_", "right_") if "left_" in name else name.replace("right_", "left_"))
        (w, h), base = cv2.getTextSize(text, font, size_, thick)
        x, y = _px(xy[i])
        x = x - 8 - w if valid[mate] and mate != i and xy[i, 0] < xy[mate, 0] else x + 8
        cv2.rectangle(out, (x - 2, y - h - 2), (x + w + 2, y + base), (255, 255, 255), -1)
        cv2.putText(out, text, (x, y), font, size_, (0, 0, 0), thick, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding of a key frame failed")
    return buf.tobytes()


def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto}figure{display:inline-block;margin:.5em;vertical-align:top}
figcaption{font-size:.85em;max-width:360px}.plots img{display:block;margin:1em 0}.note{color:#555;font-size:.9em}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.4em .8em}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}.side img{display:block;margin:.5em 0}
@media print{body{max-width:none;margin:0;font-size:10pt}section{break-after:page;page-break-after:always}
section:last-of-type{break-after:auto;page-break-after:auto}img,table,figure{break-inside:avoid}}
"""


def _section(title: str | None, body: str) -> str:
    """One printed page of the report."""
    return f"<section>{f'<h2>{html.escape(title)}</h2>' if title else ''}{body}</section>" if body else ""


def _images(plots: dict[str, bytes], alt: str) -> str:
    return "".join(f'<img src="{_data_uri("image/png", png)}" alt="{html.escape(title)} {alt}">'
                   for title, png in plots.items())


def html_report(summary: dict, plots: dict[str, bytes], keyframes: list[tuple[str, bytes]],
                curves: dict[str, bytes] | None = None) -> str:
    """The report page, one section per printed page: summary, data quality, tables, cycle-normalised curves,
    plots and key frames, all inline."""
    e = html.escape
    s = summary
    miss = s["missing"]
    reps = s["repetitions"]
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">',
        f"<title>Movement analysis: {e(str(s.get('file') or ''))}</title><style>{_CSS}</style></head><body>",
    ]
    overview = [
        f"<h1>Movement analysis</h1><p><b>{e(str(s.get('file') or 'unnamed clip'))}</b>: {s['frames']} frames, "
        f"{_fmt(s['duration'])} s at {_fmt(s.get('fps'))} fps, model {e(str(s.get('model') or '?'))}"
        + (f"; slow motion &times;{s['slowmo_factor']:g}: times, speeds and cadence are real-world"
           if s.get("slowmo_factor", 1.0) != 1.0 else "") + ".</p>",
        f"<p><b>Repetitions</b>: {e(reps['note'])}.</p>" if reps.get("note") else
        f"<p><b>Repetitions</b> ({e(reps['signal'].replace('_', ' '))}): {reps['count']} "
        f"({reps['complete']} complete).</p>",
        _activity_html(s), _units_html(s), _filters_html(s),
        f"<p><b>Missing data</b>: keypoints scored below {s['score_threshold']:g} are gaps; only gaps up to "
        f"{s.get('filters', {}).get('max_gap_s') or 0:g} s are filled. "
        f"{miss['frames_with_missing_angles']} of {miss['frames']} frames "
        f"({100 * miss['fraction_frames_with_missing_angles']:.1f}%) miss at least one angle.</p>",
    ]
    rom = ["<table><tr><th>angle</th><th>min (frame)</th><th>max (frame)</th><th>mean</th>"
           "<th>range</th><th>max speed (deg/s)</th><th>gap</th><th>undefined</th></tr>"]
    for name in ANGLE_NAMES:
        a, m = s["angles"][name], miss["angles"][name]
        mn = f"{_fmt(a.get('min'))} ({a.get('min_frame', '–')})" if a.get("min") is not None else "–"
        mx = f"{_fmt(a.get('max'))} ({a.get('max_frame', '–')})" if a.get("max") is not None else "–"
        rom.append(
            f"<tr><td>{e(name.replace('_', ' '))}</td><td>{mn}</td><td>{mx}</td><td>{_fmt(a.get('mean'))}</td>"
            f"<td>{_fmt(a.get('range'))}</td><td>{_fmt(a.get('max_speed'), 0)}</td><td>{m['gap']}</td>"
            f"<td>{m['undefined']}</td></tr>"
        )
    rom.append("</table><h2>Left/right symmetry</h2><table><tr><th>joint</th><th>left range</th>"
               "<th>right range</th><th>symmetry index (%)</th><th>mean |L&minus;R|</th><th>note</th></tr>")
    for joint, sym in s["symmetry"].items():
        rom.append(
            f"<tr><td>{e(joint.replace('_', ' '))}</td><td>{_fmt(sym['left_range'])}</td>"
            f"<td>{_fmt(sym['right_range'])}</td><td>{_fmt(sym['symmetry_index'])}</td>"
            f"<td>{_fmt(sym['mean_abs_difference'])}</td><td>{e(sym.get('note') or '')}</td></tr>"
        )
    rom.append('</table><p class="note">Symmetry index = 100 &times; (L &minus; R) / mean(L, R) on the ranges; '
               "positive = left moves more.</p>")
    table = []
    if reps["items"]:
        table.append("<table><tr><th>#</th><th>start frame</th><th>peak frame</th>"
                     "<th>end frame</th><th>peak (deg)</th><th>range (deg)</th><th>duration (s)</th>"
                     "<th>left range</th><th>right range</th><th>L/R ratio</th><th>complete</th></tr>")
        for r in reps["items"]:
            ratio = _fmt(r.get("left_right_ratio"), 2) if r.get("left_right_ratio") is not None else \
                e(r.get("left_right_note") or "–")
            table.append(
                f"<tr><td>{r['index']}</td><td>{r['start_frame']}</td><td>{r['peak_frame']}</td>"
                f"<td>{r['end_frame']}</td><td>{_fmt(r['peak_value'])}</td><td>{_fmt(r['range'])}</td>"
                f"<td>{_fmt(r['duration'], 2)}</td><td>{_fmt(r.get('left_range'))}</td>"
                f"<td>{_fmt(r.get('right_range'))}</td><td>{ratio}</td>"
                f"<td>{'yes' if r['complete'] else 'no (cut off)'}</td></tr>"
            )
        table.append("</table>")
    frames_html = "".join(f'<figure><img src="{_data_uri("image/jpeg", jpg)}" alt="{e(caption)}">'
                          f"<figcaption>{e(caption)}</figcaption></figure>" for caption, jpg in keyframes)
    sections = [
        _section(None, "".join(overview)),
        _section("Data quality", _quality_html(s)),
        _section("Range of motion", "".join(rom)),
        _section("Repetitions", "".join(table)),
        _gait_html(s) and _section(None, _gait_html(s)),
        _section("Cycle-normalised curves", _images(curves or {}, "curves") + (
            '<p class="note">Each repetition (start to end) or stride (heel strike to heel strike) resampled to '
            "0&ndash;100 %; line = mean, band = &plusmn; 1 SD.</p>" if curves else "")),
        _section("Angles over time", f'<div class="plots">{_images(plots, "over time")}</div>'),
        _section("Key frames", f"<div>{frames_html}</div>" if keyframes else ""),
    ]
    foot = ['<p class="note">Angles in degrees from 2D image keypoints. Flexion and elevation angles are 0 '
            "when the limb is straight or hanging along the trunk; inclinations are signed, positive = "
            "leaning toward the image's right. See docs/analysis.md.</p></body></html>"]
    return "\n".join(head + [x for x in sections if x] + foot)


def _quality_html(s: dict) -> str:
    """Data-quality panel: rate, swaps, out-of-plane warning, missing / filled / outlier share per keypoint."""
    e = html.escape
    q, miss = s.get("quality") or {}, s["missing"]
    parts = []
    if q.get("warning"):
        parts.append(f'<p class="warn"><b>Warning</b>: {e(q["warning"])}.</p>')
    rate = "variable (resampled for filtering)" if q.get("variable_frame_rate") else "constant"
    swaps = ", ".join(f"{pair} {n}" for pair, n in (q.get("swapped_frames") or {}).items() if n) or "none"
    parts.append(f"<p>Frame rate {_fmt(q.get('fps'))} fps, {rate}. Left/right swaps repaired (frames per pair): "
                 f"{e(swaps)}.</p>")
    parts.append("<table><tr><th>keypoint</th><th>missing (%)</th><th>filled (%)</th><th>outliers (%)</th></tr>")
    below = miss["keypoints_below_threshold"]
    filled, outliers = miss.get("keypoints_filled", {}), miss.get("keypoints_outliers", {})
    for name, share in below.items():
        parts.append(f"<tr><td>{e(name.replace('_', ' '))}</td><td>{100 * share:.1f}</td>"
                     f"<td>{100 * filled.get(name, 0):.1f}</td><td>{100 * outliers.get(name, 0):.1f}</td></tr>")
    parts.append('</table><p class="note">Missing: below the score threshold or absent. Filled: interpolated '
                 "across a short gap. Outliers: rejected by the Hampel filter (then filled or left as gaps).</p>")
    return "".join(parts)


def _activity_html(s: dict) -> str:
    """How the repetition signal was chosen."""
    act = s.get("activity")
    if not act:
        return ""
    how = ("chosen automatically: the largest clearly periodic range" if act["requested"] == "auto"
           else f"the {act['requested']} preset")
    return (f"<p><b>Activity</b>: {html.escape(act['requested'])}; repetitions counted on "
            f"{html.escape(act['signal'].replace('_', ' '))} ({how}; {act['direction']}s of at least "
            f"{act['min_amplitude']:g} deg).</p>")


def _units_html(s: dict) -> str:
    """The scale and the pelvis's displacement."""
    sc, d = s.get("scale"), s.get("displacement")
    if not sc:
        return ""
    if sc.get("metres_per_pixel") is None:
        how = "Lengths are in <b>pixels</b> (give --height or --calibrate for metres)."
    elif sc["source"] == "height":
        how = (f"Lengths in metres from the subject's height {sc['height_m']:g} m = {sc['height_px']:.0f} px "
               f"({1000 * sc['metres_per_pixel']:.2f} mm/px).")
    else:
        how = (f"Lengths in metres from a known length of {sc['length_m']:g} m = {sc['length_px']:.0f} px "
               f"({1000 * sc['metres_per_pixel']:.2f} mm/px).")
    moved = "" if not d or d.get("distance") is None else (
        f" The pelvis moved {d['distance']:.2f} {d['unit']} (x {d['dx']:+.2f}, y {d['dy']:+.2f}; path "
        f"{d['path']:.2f} {d['unit']}).")
    return f"<p><b>Units</b>: {how}{moved}</p>"


def _filters_html(s: dict) -> str:
    """The cleaning applied, with every parameter."""
    f = s.get("filters")
    if not f:
        return ""
    hampel = (f"Hampel outlier rejection (window {f['hampel_window_s']:g} s = &plusmn;{f['hampel_half_window_frames']}"
              f" frames, {f['hampel_sigmas']:g} robust SD)" if f.get("hampel_window_s") else "no outlier rejection")
    low = (f"zero-lag Butterworth low-pass, order {f['order']}, {f['cutoff_hz_used']:g} Hz"
           + (f" (asked {f['cutoff_hz']:g} Hz, capped at {f['max_cutoff_fraction']:g} &times; Nyquist)"
              if f["cutoff_hz_used"] < f["cutoff_hz"] else "") if f.get("cutoff_hz") else "no low-pass")
    gaps = (f"gaps up to {f['max_gap_s']:g} s ({f['max_gap_frames']} frame(s)) filled linearly, longer gaps kept"
            if f.get("max_gap_s") is not None else "no gap filling")
    rate = (f"variable frame rate, resampled to a uniform {f['sampling_rate_hz']:.2f} Hz grid for filtering"
            if f["variable_frame_rate"] else f"constant frame rate {f['sampling_rate_hz']:.2f} Hz")
    return (f"<p><b>Signal cleaning</b> (every keypoint's x and y, in order): {hampel}; {gaps}; {rate}; "
            f"{low}. Smoothing before the analysis: {html.escape(str(f['input_smoothing']))}. Plots show raw "
            "(dotted) and filtered (solid) angles.</p>")


def _pm(stat: dict, digits: int = 2) -> str:
    return "–" if stat.get("mean") is None else f"{stat['mean']:.{digits}f} &plusmn; {stat['sd']:.{digits}f}"


def _gait_html(s: dict) -> str:
    """Cadence, passes, per-side temporal parameters and the stride table."""
    g = s.get("gait")
    if not g:
        return ""
    e = html.escape
    cad = _fmt(g["cadence_steps_per_min"])
    parts = [f"<h2>Gait</h2><p><b>Cadence</b> {cad} steps/min from {g['steps']} heel strikes in "
             f"{len(g['passes'])} straight pass(es); {g['turning_frames']} frames turning, standing or unseen are "
             f"left out. {e(g['method'])}.</p>",
             "<table><tr><th>pass</th><th>frames</th><th>direction</th><th>duration (s)</th><th>heel strikes</th>"
             "<th>cadence (steps/min)</th></tr>"]
    for p in g["passes"]:
        parts.append(f"<tr><td>{p['index'] + 1}</td><td>{p['start_frame']}&ndash;{p['end_frame']}</td>"
                     f"<td>{e(p['direction'])}</td><td>{_fmt(p['duration'], 2)}</td><td>{p['heel_strikes']}</td>"
                     f"<td>{_fmt(p['cadence_steps_per_min'])}</td></tr>")
    parts.append("</table><table><tr><th>per side (mean &plusmn; SD)</th><th>left</th><th>right</th></tr>")
    for key, label, digits in (("step_time", "step time (s)", 2), ("stride_time", "stride time (s)", 2),
                               ("stance_percent", "stance (% of stride)", 1), ("swing_percent", "swing (%)", 1),
                               ("double_support_percent", "double support (%)", 1),
                               ("step_length", f"step length ({g['length_unit']})", 2)):
        parts.append(f"<tr><td>{label}</td><td>{_pm(g['left'][key], digits)}</td>"
                     f"<td>{_pm(g['right'][key], digits)}</td></tr>")
    speed = "–" if g.get("speed") is None else f"{g['speed']:.2f} {g['length_unit']}/s"
    parts.append(f"</table><p>Step-time symmetry index: {_fmt(g['step_time_symmetry_index'])} %. "
                 f"Gait speed: {speed}.</p>")
    parts.append("<table><tr><th>stride</th><th>side</th><th>heel strike frame</th><th>step (s)</th>"
                 "<th>stride (s)</th><th>stance (s)</th><th>swing (s)</th><th>double support (s)</th></tr>")
    for i, st in enumerate(g["strides"], 1):
        parts.append(f"<tr><td>{i}</td><td>{st['side']}</td><td>{st['start_frame']}</td>"
                     f"<td>{_fmt(st['step_time'], 2)}</td><td>{_fmt(st['stride_time'], 2)}</td>"
                     f"<td>{_fmt(st['stance_time'], 2)}</td><td>{_fmt(st['swing_time'], 2)}</td>"
                     f"<td>{_fmt(st['double_support_time'], 2)}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


#: The keypoint an angle's label is drawn beside.
_VERTEX = {
    "elbow_flexion": "elbow", "shoulder_elevation": "shoulder", "hip_flexion": "hip", "knee_flexion": "knee",
}


def _labels(analysis: Analysis, i: int, signal: str) -> dict[str, str]:
    """Angle labels for frame ``i``: the repetition signal's joint(s) (knees for gait) plus the trunk inclination."""
    joint = "knee_flexion" if signal == "gait" else signal.removeprefix("left_").removeprefix("right_")
    names = [n for n in PAIRS.get(joint, (signal,)) if n in analysis.angles] + ["trunk_inclination"]
    labels = {}
    for name in names:
        value = analysis.angles[name][i]
        if not np.isfinite(value):
            continue
        side, _, rest = name.partition("_")
        vertex = f"{side}_{_VERTEX[rest]}" if rest in _VERTEX else ("thorax" if name.startswith("trunk") else None)
        if vertex in KEYPOINTS:
            labels[vertex] = f"{value:.0f} deg"
    return labels


def select_keyframes(analysis: Analysis, limit: int = 6) -> list[tuple[int, str]]:
    """(series index, caption) of a few telling frames: least and greatest signal, then each repetition's peak."""
    signal, name = analysis.signal, analysis.summary["repetitions"]["signal"]
    ok = np.flatnonzero(np.isfinite(signal))
    if ok.size == 0:
        return []
    label = name.replace("_", " ")
    picks = [(int(ok[np.argmin(signal[ok])]), f"least {label}"), (int(ok[np.argmax(signal[ok])]), f"greatest {label}")]
    index_of = {int(f): i for i, f in enumerate(analysis.frames)}
    for rep in analysis.repetitions:
        picks.append((index_of[rep["peak_frame"]], f"repetition {rep['index']} at its peak"))
    gait = analysis.summary.get("gait")
    if gait:
        picks = [(index_of[ev["frame"]], f"{ev['side']} heel strike") for ev in gait["events"]
                 if ev["kind"] == "heel_strike"][:limit] or picks
    seen: dict[int, str] = {}
    for i, caption in picks:
        seen[i] = f"{seen[i]}; {caption}" if i in seen else caption
    chosen = list(seen.items())[:limit]
    out = []
    for i, caption in sorted(chosen):
        values = ", ".join(
            f"{n.replace('_', ' ')} {analysis.angles[n][i]:.0f}°" for n in PAIRS.get(name, (name,))
            if n in analysis.angles and np.isfinite(analysis.angles[n][i])
        )
        t = analysis.times[i]
        out.append((i, f"Frame {analysis.frames[i]} ({t:.1f} s): {caption}" + (f". {values}" if values else "")))
    return out


def repetition_curves(analysis: Analysis, signal: str) -> dict:
    """Each side of a joint pair's repetitions resampled from start to end onto 0-100 %: {"percent", "left":
    {"mean", "sd", "cycles"}, "right": ...}; {} when the signal is not a joint pair or there are no repetitions."""
    if signal not in PAIRS or not analysis.repetitions:
        return {}
    index = {int(f): i for i, f in enumerate(analysis.frames)}
    spans = [(index[r["start_frame"]], index[r["end_frame"]]) for r in analysis.repetitions]
    out = {side: normalised_cycles(analysis.angles[name], analysis.times, spans)
           for side, name in zip(("left", "right"), PAIRS[signal], strict=True)}
    return {"percent": percent_axis(), **out} if any(c["cycles"] for c in out.values()) else {}


def write_outputs(
    analysis: Analysis,
    output_dir: str | os.PathLike,
    video: str | os.PathLike | None = None,
    drawer: Drawer | None = None,
    export: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write angles.csv, summary.json, one PNG per plot, report.html and the ``export`` files (trc, mot, c3d);
    key frames come from ``video`` if given."""
    from efficientpose.analysis.exports import write_exports

    out = Path(output_dir)
    written = {
        "csv": atomic_write_bytes(out / "angles.csv", csv_bytes(analysis.table())),
        "summary": atomic_write_bytes(out / "summary.json", json_bytes(analysis.summary)),
    }
    reps = analysis.repetitions
    plots: dict[str, bytes] = {}
    for plot, names in PLOTS.items():
        series = {n: analysis.angles[n] for n in names}
        png = plot_png(plot.replace("_", " "), analysis.times, series, analysis.flags, reps, analysis.raw_angles)
        plots[plot] = png
        written[f"plot_{plot}"] = atomic_write_bytes(out / f"{plot}.png", png)
    curves: dict[str, bytes] = {}
    gait = analysis.summary.get("gait")
    if gait:
        for joint in ("hip_flexion", "knee_flexion"):
            png = cycle_plot_png(f"{joint.replace('_', ' ')} over the gait cycle (heel strike to heel strike)",
                                 gait["curves"]["percent"], gait["curves"][joint])
            curves[f"gait_{joint}"] = png
            written[f"plot_gait_{joint}"] = atomic_write_bytes(out / f"gait_{joint}.png", png)
    signal = analysis.summary["repetitions"]["signal"]
    rep_curves = repetition_curves(analysis, signal)
    if rep_curves:
        png = cycle_plot_png(f"{signal.replace('_', ' ')} over each repetition (start to end)",
                             rep_curves.pop("percent"), rep_curves)
        curves[f"repetition_{signal}"] = png
        written["plot_repetitions"] = atomic_write_bytes(out / f"repetition_{signal}.png", png)
    picks = select_keyframes(analysis)
    images = read_frames(video, [analysis.frames[i] for i, _ in picks]) if video is not None and picks else {}
    size = _canvas_size(analysis)
    keyframes = []
    signal = analysis.summary["repetitions"]["signal"]
    for i, caption in picks:
        image = images.get(int(analysis.frames[i]))
        jpg = keyframe_jpeg(image, size, analysis.keypoints[i], analysis.valid[i], _labels(analysis, i, signal),
                            drawer or draw_skeleton)
        keyframes.append((caption, jpg))
    written.update(write_exports(analysis, out, export))
    written["html"] = atomic_write_bytes(out / "report.html",
                                         html_report(analysis.summary, plots, keyframes, curves).encode("utf-8"))
    return written


def _canvas_size(analysis: Analysis) -> tuple[int, int]:
    """(width, height) for drawing without video: the clip's size, else the keypoints' extent plus a margin."""
    w, h = analysis.summary.get("width"), analysis.summary.get("height")
    if w and h:
        return int(w), int(h)
    xy = analysis.keypoints[..., :2][analysis.valid]
    if xy.size == 0:
        return 320, 240
    return int(np.ceil(xy[:, 0].max() + 20)), int(np.ceil(xy[:, 1].max() + 20))
