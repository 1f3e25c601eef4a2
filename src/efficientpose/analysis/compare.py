"""Two analyze output folders side by side (before / after): one self-contained compare.html."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from efficientpose.analysis.angles import ANGLE_NAMES
from efficientpose.analysis.report import _CSS, _data_uri, _fmt, _section
from efficientpose.errors import InputError
from efficientpose.io.atomic import atomic_write_bytes


def _summary(folder: Path) -> dict:
    path = folder / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder}: not an analyze output folder (no summary.json)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from exc


def _row(label: str, a: float | None, b: float | None, digits: int = 1) -> str:
    delta = "–" if a is None or b is None else f"{b - a:+.{digits}f}"
    return (f"<tr><td>{html.escape(label)}</td><td>{_fmt(a, digits)}</td><td>{_fmt(b, digits)}</td>"
            f"<td>{delta}</td></tr>")


def _get(d: dict | None, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def _mean(items: list[dict], key: str) -> float | None:
    values = [r[key] for r in items if isinstance(r.get(key), (int, float))]
    return sum(values) / len(values) if values else None


def compare_html(a_dir: Path, b_dir: Path) -> str:
    """The comparison page: key numbers of A and B with B - A, then every plot both folders have, side by side."""
    e = html.escape
    a, b = _summary(a_dir), _summary(b_dir)
    head = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">',
            f"<title>Comparison: {e(str(a.get('file')))} / {e(str(b.get('file')))}</title><style>{_CSS}</style>"
            "</head><body>"]
    overview = [f"<h1>Comparison</h1><p><b>A</b> (before): {e(str(a.get('file') or a_dir))} &middot; "
                f"<b>B</b> (after): {e(str(b.get('file') or b_dir))}</p>",
                "<table><tr><th></th><th>A</th><th>B</th><th>B &minus; A</th></tr>",
                _row("duration (s)", _get(a, "duration"), _get(b, "duration")),
                _row("frames per second", _get(a, "fps"), _get(b, "fps")),
                _row("repetitions", _get(a, "repetitions", "count"), _get(b, "repetitions", "count"), 0),
                _row("complete repetitions", _get(a, "repetitions", "complete"), _get(b, "repetitions", "complete"),
                     0)]
    ga, gb = a.get("gait"), b.get("gait")
    if ga or gb:
        overview += [_row("cadence (steps/min)", _get(ga, "cadence_steps_per_min"), _get(gb, "cadence_steps_per_min")),
                     _row("heel strikes", _get(ga, "steps"), _get(gb, "steps"), 0)]
        for side in ("left", "right"):
            overview.append(_row(f"{side} step time (s)", _get(ga, side, "step_time", "mean"),
                                 _get(gb, side, "step_time", "mean"), 2))
            overview.append(_row(f"{side} stance (%)", _get(ga, side, "stance_percent", "mean"),
                                 _get(gb, side, "stance_percent", "mean")))
    ra, rb = (x.get("repetitions", {}).get("items") or [] for x in (a, b))
    if ra or rb:
        overview.append(_row("mean repetition range (deg)", _mean(ra, "range"), _mean(rb, "range")))
        overview.append(_row("mean repetition duration (s)", _mean(ra, "duration"), _mean(rb, "duration"), 2))
    overview.append("</table>")
    rom = ["<table><tr><th>angle: range (deg)</th><th>A</th><th>B</th><th>B &minus; A</th></tr>"]
    rom += [_row(n.replace("_", " "), _get(a, "angles", n, "range"), _get(b, "angles", n, "range"))
            for n in ANGLE_NAMES]
    rom.append("</table><table><tr><th>symmetry index (%)</th><th>A</th><th>B</th><th>B &minus; A</th></tr>")
    rom += [_row(j.replace("_", " "), _get(a, "symmetry", j, "symmetry_index"), _get(b, "symmetry", j,
                                                                                      "symmetry_index"))
            for j in (a.get("symmetry") or {})]
    rom.append("</table>")
    plots = []
    names = sorted({p.name for p in a_dir.glob("*.png")} & {p.name for p in b_dir.glob("*.png")})
    for name in names:
        pair = "".join(
            f'<div><b>{label}</b><img src="{_data_uri("image/png", (folder / name).read_bytes())}" '
            f'alt="{e(name)} ({label})"></div>' for label, folder in (("A", a_dir), ("B", b_dir)))
        plots.append(f'<h3>{e(name.removesuffix(".png").replace("_", " "))}</h3><div class="side">{pair}</div>')
    sections = [_section(None, "".join(overview)), _section("Range of motion and symmetry", "".join(rom)),
                _section("Plots, A beside B", "".join(plots))]
    return "\n".join(head + [s for s in sections if s] + ["</body></html>"])


def write_compare(a_dir: str | os.PathLike, b_dir: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """Write ``output_dir/compare.html`` comparing two analyze output folders; returns its path."""
    page = compare_html(Path(a_dir), Path(b_dir))
    return atomic_write_bytes(Path(output_dir) / "compare.html", page.encode("utf-8"))
