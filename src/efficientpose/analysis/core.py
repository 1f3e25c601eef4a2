"""The analysis of one clip: read predictions, clean the trajectories, measure angles, count repetitions.

Predictions are read only through :func:`efficientpose.io.predictions.read_video_predictions` (JSON or CSV) and
matched to the angles' keypoints by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from efficientpose.analysis.activity import ACTIVITIES, PRESETS, Preset, body_moves, choose_signal
from efficientpose.analysis.angles import (
    ANGLE_NAMES,
    ANGLES,
    PAIRS,
    Flag,
    angular_velocity,
    compute_angles,
    keypoint_validity,
)
from efficientpose.analysis.filters import DEFAULT_FILTERS, FilterParams, clean, sampling
from efficientpose.analysis.gait import analyse_gait
from efficientpose.analysis.report import Drawer, write_outputs
from efficientpose.analysis.reps import count_repetitions, rep_signal
from efficientpose.analysis.summary import build_summary, plane_check
from efficientpose.analysis.swaps import repair_swaps
from efficientpose.analysis.units import displacement, scale_from_calibration, scale_from_height
from efficientpose.errors import InputError
from efficientpose.io.predictions import (
    VideoPredictions,
    check_times,
    read_video_predictions,
    video_predictions_from_json,
)
from efficientpose.skeleton import KEYPOINTS

#: Default keypoint score below which a keypoint is a gap.
SCORE_THRESHOLD = 0.3

#: A Hampel outlier strays at least this fraction of the trunk length from its neighbours' median.
OUTLIER_MIN_TRUNK = 0.05

#: Keypoints the angles need that other skeletons may lack, and the midpoints that stand in for them.
_DERIVED = {"pelvis": ("left_hip", "right_hip"), "thorax": ("left_shoulder", "right_shoulder")}


@dataclass
class Analysis:
    """The analysis of one clip: per-frame arrays (T,), per-angle dicts, repetitions and the summary dict.

    ``keypoints`` and ``angles`` are the cleaned (filtered) values; ``raw_keypoints`` and ``raw_angles`` are
    the model's, before any cleaning.
    """

    frames: np.ndarray  #: (T,) frame numbers
    times: np.ndarray  #: (T,) seconds
    keypoints: np.ndarray  #: (T, 16, 3) cleaned x, y and the model's score, :data:`KEYPOINTS` order (NaN = gap)
    valid: np.ndarray  #: (T, 16) cleaned keypoint available (measured, or filled across a short gap)
    angles: dict[str, np.ndarray]  #: degrees from cleaned keypoints, NaN exactly where the flag is not OK
    flags: dict[str, np.ndarray]  #: :class:`Flag` codes per frame
    velocities: dict[str, np.ndarray]  #: degrees per second, NaN where not computable
    signal: np.ndarray  #: the signal repetitions were counted on
    repetitions: list[dict]
    summary: dict
    raw_keypoints: np.ndarray | None = None  #: (T, 16, 3) as predicted
    raw_angles: dict[str, np.ndarray] = field(default_factory=dict)  #: degrees from the raw keypoints
    filled: np.ndarray | None = None  #: (T, 16) keypoint interpolated across a short gap
    swapped: dict[str, np.ndarray] = field(default_factory=dict)  #: pair ("knee", ...) -> (T,) labels repaired
    outliers: np.ndarray | None = None  #: (T, 16) keypoint rejected by the Hampel filter
    outputs: dict[str, Path] = field(default_factory=dict)

    def table(self) -> dict[str, np.ndarray]:
        """Per-frame columns (the rows of angles.csv): frame, time, then each angle, its velocity and flag."""
        columns: dict[str, np.ndarray] = {"frame": self.frames, "time": self.times}
        for name in ANGLE_NAMES:
            columns[name] = self.angles[name]
            columns[f"{name}_velocity"] = self.velocities[name]
            columns[f"{name}_flag"] = np.array([Flag(f).name.lower() for f in self.flags[name]], dtype=object)
        return columns

    def to_dataframe(self):  # noqa: ANN201 - pandas is optional, so no annotation that needs it
        """The per-frame table as a pandas DataFrame indexed by frame (needs the optional pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "Analysis.to_dataframe() needs pandas: pip install 'efficientpose[pandas]'"
            ) from exc
        return pd.DataFrame(self.table()).set_index("frame")


def load_predictions(predictions: dict | str | os.PathLike | VideoPredictions) -> VideoPredictions:
    """A video's predictions from a JSON or CSV file, the JSON's dict, or as read already; InputError naming the
    file (or the recorded video) when there is not a single frame to analyse."""
    if isinstance(predictions, VideoPredictions):
        data, source = predictions, predictions.file or "predictions"
    elif isinstance(predictions, dict):
        source = str(predictions.get("file") or "predictions")
        data = video_predictions_from_json(predictions, source)
    else:
        data, source = read_video_predictions(predictions), str(predictions)
    if data.keypoints.shape[0] == 0:
        raise InputError(f"{source}: no frames (expected the predict command's per-video predictions)")
    return data


def mpii_keypoints(predictions: VideoPredictions, source: str | None = None) -> np.ndarray:
    """(T, 16, 3) keypoints in :data:`KEYPOINTS` order, matched by name; pelvis and thorax become the hip and
    shoulder midpoints when the model has none. InputError naming the keypoints that are missing otherwise."""
    source = source or predictions.file or "predictions"
    index = {name: i for i, name in enumerate(predictions.names)}
    kp = predictions.keypoints
    out = np.full((kp.shape[0], len(KEYPOINTS), 3), np.nan)
    missing = []
    for k, name in enumerate(KEYPOINTS):
        if name in index:
            out[:, k] = kp[:, index[name]]
        elif name in _DERIVED and all(p in index for p in _DERIVED[name]):
            a, b = (kp[:, index[p]] for p in _DERIVED[name])
            out[:, k, :2] = (a[:, :2] + b[:, :2]) / 2
            out[:, k, 2] = np.minimum(a[:, 2], b[:, 2])
        else:
            missing.append(name)
    if missing:
        raise InputError(f"{source}: the analysis needs keypoints this model does not have: {', '.join(missing)} "
                         f"(it has {', '.join(predictions.names)})")
    return out


def input_smoothing(predictions: VideoPredictions) -> str:
    """What the file says about smoothing before the analysis: its ``smoothing`` field or 'not recorded'."""
    return predictions.smoothing or "not recorded"


def clean_keypoints(
    keypoints: np.ndarray, valid: np.ndarray, times: np.ndarray, params: FilterParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cleaned keypoints, available, filled, outliers) for (T, K, 3) keypoints: each keypoint's (x, y)
    trajectory cleaned by :func:`filters.clean`; the score column is kept as predicted. A Hampel outlier must
    stray at least :data:`OUTLIER_MIN_TRUNK` of the median trunk length (pelvis to thorax)."""
    out = np.array(keypoints, dtype=np.float64)
    floor = OUTLIER_MIN_TRUNK * trunk_length(out, valid)
    filled = np.zeros(valid.shape, dtype=bool)
    outliers = np.zeros(valid.shape, dtype=bool)
    for k in range(out.shape[1]):
        xy = np.where(valid[:, k, None], out[:, k, :2], np.nan)
        result = clean(xy, times, params, floor)
        out[:, k, :2] = result.values
        filled[:, k], outliers[:, k] = result.filled, result.outliers
    available = np.isfinite(out[..., :2]).all(axis=-1)
    return out, available, filled, outliers


def _angles_of(keypoints: np.ndarray, available: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Angles of cleaned keypoints: availability, not the score, decides what is a gap."""
    kp = np.concatenate([keypoints[..., :2], available[..., None].astype(np.float64)], axis=-1)
    return compute_angles(kp, 0.5)


def compute(
    predictions: dict | str | os.PathLike | VideoPredictions,
    *,
    score_threshold: float = SCORE_THRESHOLD,
    filters: FilterParams = DEFAULT_FILTERS,
    activity: str = "auto",
    rep_signal_name: str | None = None,
    repair: bool = True,
    height_m: float | None = None,
    calibration: tuple[tuple[float, float, float, float], float] | None = None,
    slowmo: float = 1.0,
    **rep_options: float | str,
) -> Analysis:
    """Analyse predictions (file, dict or :class:`VideoPredictions`) without writing anything.

    ``activity`` picks the repetition signal and thresholds (:data:`PRESETS`; ``auto``: the largest clearly
    periodic angle, or gait when the person walks); ``rep_signal_name`` and ``rep_options`` (of
    :func:`count_repetitions`) override them. ``repair`` undoes left/right swaps (:mod:`swaps`). ``height_m``
    (the subject's height) or ``calibration`` ((x1, y1, x2, y2) pixels, metres apart) give lengths in metres.
    ``slowmo`` is the slow-motion factor of the footage (8: filmed at 240 fps, played at 30): every time is
    divided by it, so durations, speeds, cadence and filter frequencies are real-world.
    """
    if activity not in ACTIVITIES:
        raise ValueError(f"unknown activity {activity!r}: use one of {', '.join(ACTIVITIES)}")
    data = load_predictions(predictions)
    source = str(predictions) if isinstance(predictions, (str, os.PathLike)) else data.file or "predictions"
    times, frames = data.times, data.frames
    check_times(frames, times, source)  # the reader's own rule, for predictions built in Python too
    if not slowmo > 0:
        raise ValueError(f"slowmo must be a positive factor, got {slowmo}")
    times = times / slowmo
    raw = mpii_keypoints(data, source)
    raw_valid = keypoint_validity(raw, score_threshold)
    scale = trunk_length(raw, raw_valid)
    unswapped, unswapped_valid, swapped = repair_swaps(raw, raw_valid, scale) if repair else (
        raw, raw_valid, {})
    kps, available, filled, outliers = clean_keypoints(unswapped, unswapped_valid, times, filters)
    angles, flags = _angles_of(kps, available)
    raw_angles, _ = compute_angles(raw, score_threshold)
    velocities = {a.name: angular_velocity(angles[a.name], times, periodic=a.signed) for a in ANGLES}

    scale = (scale_from_calibration(*calibration) if calibration is not None else
             scale_from_height(kps, available, height_m) if height_m is not None else None)
    walking = activity == "gait"
    gait = analyse_gait(kps, available, times, frames, angles, filters,
                        metres_per_pixel=scale.metres_per_pixel if scale else None,
                        raw_ankles=(unswapped, unswapped_valid)) \
        if activity in ("gait", "auto") else None
    if gait is not None and activity == "auto" and rep_signal_name is None:
        walking = _looks_like_walking(gait, times)
    if walking and rep_signal_name is None:  # steps are not repetitions: they are in the gait object
        preset, choice = Preset("knee_flexion"), {}
        signal, signal_name, reps = rep_signal(angles, "knee_flexion")[0], "gait", []
    else:
        preset, choice = _preset(activity, angles, times, rep_signal_name, _whole_body(kps, available, times))
        signal, signal_name = rep_signal(angles, preset.signal)
        reps = count_repetitions(signal, times, frames, **(preset.rep_options() | rep_options))
        _add_side_ratios(reps, signal_name, angles, frames, preset.direction)
    summary = build_summary(
        meta={"file": data.file, "model": data.model, "width": data.width, "height": data.height, "fps": data.fps},
        times=times, frames=frames, angles=angles, velocities=velocities, flags=flags,
        valid=raw_valid, keypoint_names=KEYPOINTS, score_threshold=score_threshold, rep_signal=signal_name,
        repetitions=reps,
    )
    summary["activity"] = {"requested": activity, "signal": signal_name, "direction": preset.direction,
                           "min_amplitude": preset.min_amplitude, "candidates": choice}
    summary["filters"] = {**filters.to_dict(), **sampling(times, filters), "input_smoothing": input_smoothing(data)}
    summary["missing"]["keypoints_filled"] = {n: float(filled[:, k].mean()) for k, n in enumerate(KEYPOINTS)}
    summary["missing"]["keypoints_outliers"] = {n: float(outliers[:, k].mean()) for k, n in enumerate(KEYPOINTS)}
    summary["swaps"] = {"repaired": repair,
                        "frames": {pair: [int(f) for f in frames[mask]] for pair, mask in swapped.items()},
                        "method": "Viterbi over each left/right pair: acceleration and segment-length consistency"}
    summary["gait"] = gait if walking else None
    summary["slowmo_factor"] = float(slowmo)
    summary["units"]["length"] = "m" if scale else "px"
    summary["scale"] = scale.to_dict() if scale else {
        "metres_per_pixel": None, "note": "no --height or --calibrate: lengths are in pixels"}
    summary["displacement"] = displacement(kps, available, times, scale)
    summary["quality"] = {"fps": data.fps, "variable_frame_rate": summary["filters"]["variable_frame_rate"],
                          "swapped_frames": {pair: int(mask.sum()) for pair, mask in swapped.items()},
                          **plane_check(kps, available, KEYPOINTS)}
    if walking and not reps:
        summary["repetitions"]["note"] = "walking: steps and strides are in 'gait', not counted as repetitions"
    return Analysis(frames, times, kps, available, angles, flags, velocities, signal, reps, summary,
                    raw_keypoints=raw, raw_angles=raw_angles, filled=filled, outliers=outliers, swapped=swapped)


def trunk_length(keypoints: np.ndarray, available: np.ndarray) -> float:
    """The median pelvis-to-thorax distance in pixels (0 when never both seen): the body's scale."""
    p, t = KEYPOINTS.index("pelvis"), KEYPOINTS.index("thorax")
    both = available[:, p] & available[:, t]
    trunk = np.hypot(*(keypoints[both, t, :2] - keypoints[both, p, :2]).T)
    return float(np.median(trunk)) if trunk.size else 0.0


def _looks_like_walking(gait: dict, times: np.ndarray) -> bool:
    """Walking (for ``auto``): straight passes cover at least half the clip with at least four heel strikes."""
    covered = sum(p["duration"] for p in gait["passes"])
    duration = float(times[-1] - times[0]) if times.size > 1 else 0.0
    return duration > 0 and covered >= 0.5 * duration and gait["steps"] >= 4


def _whole_body(keypoints: np.ndarray, available: np.ndarray, times: np.ndarray) -> bool:
    """Whether the pelvis rises and falls with the movement (see :func:`activity.body_moves`)."""
    p = KEYPOINTS.index("pelvis")
    pelvis_y = np.where(available[:, p], keypoints[:, p, 1], np.nan)
    return body_moves(pelvis_y, trunk_length(keypoints, available), times)


def _preset(activity: str, angles: dict[str, np.ndarray], times: np.ndarray,
            rep_signal_name: str | None, whole_body: bool = False) -> tuple[Preset, dict]:
    """The preset for ``activity`` (``auto``: the driving signal with default thresholds) and, for ``auto``,
    every candidate's range and periodicity."""
    if rep_signal_name is not None:
        base = PRESETS.get(activity, Preset("knee_flexion"))
        return Preset(rep_signal_name, base.direction, base.min_amplitude, base.min_distance_s), {}
    if activity in PRESETS:
        return PRESETS[activity], {}
    candidates = {n: rep_signal(angles, n)[0] for n in (*PAIRS, *(n for pair in PAIRS.values() for n in pair))}
    name, scores = choose_signal(candidates, times, whole_body)
    return Preset(name), scores


def _add_side_ratios(reps: list[dict], signal: str, angles: dict[str, np.ndarray], frames: np.ndarray,
                     direction: str = "peak") -> None:
    """Per repetition of a joint pair's signal: each side's range and the left/right range ratio (None, with
    the reason, when a side is unmeasured or barely moves)."""
    from efficientpose.analysis.summary import SYMMETRY_MIN_RANGE

    if signal not in PAIRS:
        return
    index = {int(f): i for i, f in enumerate(frames)}
    for rep in reps:
        span = slice(index[rep["start_frame"]], index[rep["end_frame"]] + 1)
        ranges = []
        for side, name in zip(("left", "right"), PAIRS[signal], strict=True):
            values = angles[name][span]
            values = values[np.isfinite(values)]
            ranges.append(float(values.max() - values.min()) if values.size else None)
            rep[f"{side}_range"] = ranges[-1]
            extreme = (np.max if direction == "peak" else np.min)(values) if values.size else None
            rep[f"{side}_peak"] = None if extreme is None else float(extreme)
        left, right = ranges
        if left is None or right is None:
            rep["left_right_ratio"], rep["left_right_note"] = None, "a side is not measured in this repetition"
        elif min(left, right) < SYMMETRY_MIN_RANGE:
            rep["left_right_ratio"] = None
            rep["left_right_note"] = f"a side moves less than {SYMMETRY_MIN_RANGE:g} deg"
        else:
            rep["left_right_ratio"] = left / right


def analyze(
    predictions: dict | str | os.PathLike | VideoPredictions,
    output_dir: str | os.PathLike | None = None,
    *,
    video: str | os.PathLike | None = None,
    drawer: Drawer | None = None,
    export: tuple[str, ...] = (),
    **options: object,
) -> Analysis:
    """:func:`compute` (``options`` are its keyword arguments), then, given ``output_dir``, write angles.csv,
    summary.json, plots and report.html there.

    ``video`` supplies the key frames' pictures (else skeletons are drawn on white); ``drawer`` replaces the
    package's skeleton drawing (:func:`efficientpose.draw.draw_pose`); ``export`` names files for other tools
    (``"trc"``, ``"mot"``, ``"c3d"``: keypoints.trc, angles.mot, keypoints.c3d).
    """
    analysis = compute(predictions, **options)  # type: ignore[arg-type]
    if output_dir is not None:
        analysis.outputs = write_outputs(analysis, output_dir, video=video, drawer=drawer, export=export)
    return analysis
