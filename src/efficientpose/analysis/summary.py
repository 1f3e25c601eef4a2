"""Per-angle range of motion, left/right symmetry, missing-data counts and the summary dict (summary.json)."""

from __future__ import annotations

import numpy as np

from efficientpose.analysis.angles import ANGLE_NAMES, PAIRS, Flag


def _num(x: float) -> float | None:
    """A JSON-safe number: None for NaN or infinity."""
    return float(x) if np.isfinite(x) else None


def range_of_motion(
    values: np.ndarray, times: np.ndarray, frames: np.ndarray, velocity: np.ndarray | None = None
) -> dict:
    """min/max (with the first frame and time where each occurs), mean and range of the measured values."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    out: dict = {"valid_frames": int(ok.sum())}
    if not ok.any():
        return out | dict.fromkeys(("min", "min_frame", "min_time", "max", "max_frame", "max_time", "mean", "range"))
    filled = np.where(ok, values, np.nan)
    i_min = int(np.nanargmin(filled))
    i_max = int(np.nanargmax(filled))
    out |= {
        "min": float(values[i_min]), "min_frame": int(frames[i_min]), "min_time": float(times[i_min]),
        "max": float(values[i_max]), "max_frame": int(frames[i_max]), "max_time": float(times[i_max]),
        "mean": float(values[ok].mean()), "range": float(values[i_max] - values[i_min]),
    }
    if velocity is not None:
        speed = np.abs(np.asarray(velocity, dtype=np.float64))
        has = np.isfinite(speed)
        if has.any():
            i = int(np.nanargmax(np.where(has, speed, np.nan)))
            out |= {"max_speed": float(speed[i]), "max_speed_frame": int(frames[i])}
    return out


#: Both sides must move at least this much (degrees) for a symmetry index or a left/right ratio to mean anything.
SYMMETRY_MIN_RANGE = 15.0


def symmetry(left: np.ndarray, right: np.ndarray, min_range: float = SYMMETRY_MIN_RANGE) -> dict:
    """Left/right comparison of one joint: ranges, symmetry index and mean absolute difference.

    Symmetry index (Robinson et al. 1987) on the ranges of motion: 100 x (L - R) / ((L + R) / 2) percent;
    0 = symmetric, positive = the left side moves more. None, with the reason in ``note``, when a side has
    no data or moves less than ``min_range`` degrees (the index of two tiny ranges is noise).
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)

    def rng(a: np.ndarray) -> float | None:
        finite = a[np.isfinite(a)]
        return float(finite.max() - finite.min()) if finite.size else None

    lr, rr = rng(left), rng(right)
    both = np.isfinite(left) & np.isfinite(right)
    index, note = None, None
    if lr is None or rr is None:
        note = "a side is not measured"
    elif min(lr, rr) < min_range:
        note = f"not both sides move (left {lr:.1f} deg, right {rr:.1f} deg; needs {min_range:g} deg each)"
    else:
        index = 100.0 * (lr - rr) / ((lr + rr) / 2)
    return {
        "left_range": lr,
        "right_range": rr,
        "symmetry_index": index,
        "note": note,
        "mean_abs_difference": float(np.abs(left[both] - right[both]).mean()) if both.any() else None,
        "frames_compared": int(both.sum()),
    }


def missing_report(flags: dict[str, np.ndarray], valid: np.ndarray, keypoint_names: tuple[str, ...]) -> dict:
    """How much was missing: per keypoint (fraction below the threshold), per angle (gap/undefined counts)."""
    frames = int(valid.shape[0])
    stack = np.stack([flags[n] for n in ANGLE_NAMES]) if flags else np.zeros((0, frames), dtype=np.uint8)
    any_gap = (stack != Flag.OK).any(axis=0) if stack.size else np.zeros(frames, dtype=bool)
    return {
        "frames": frames,
        "frames_with_missing_angles": int(any_gap.sum()),
        "fraction_frames_with_missing_angles": float(any_gap.mean()) if frames else 0.0,
        "keypoints_below_threshold": {
            name: float(1.0 - valid[:, i].mean()) if frames else 0.0 for i, name in enumerate(keypoint_names)
        },
        "angles": {
            name: {
                "gap": int((flags[name] == Flag.GAP).sum()),
                "undefined": int((flags[name] == Flag.UNDEFINED).sum()),
                "fraction_missing": float((flags[name] != Flag.OK).mean()) if frames else 0.0,
            }
            for name in ANGLE_NAMES
        },
    }


def build_summary(
    *,
    meta: dict,
    times: np.ndarray,
    frames: np.ndarray,
    angles: dict[str, np.ndarray],
    velocities: dict[str, np.ndarray],
    flags: dict[str, np.ndarray],
    valid: np.ndarray,
    keypoint_names: tuple[str, ...],
    score_threshold: float,
    rep_signal: str,
    repetitions: list[dict],
) -> dict:
    """The whole summary as JSON-ready plain types (None where a value is undefined)."""
    duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "file": meta.get("file"),
        "model": meta.get("model"),
        "width": meta.get("width"),
        "height": meta.get("height"),
        "fps": meta.get("fps"),
        "frames": int(len(frames)),
        "duration": duration,
        "score_threshold": float(score_threshold),
        "units": {"angle": "deg", "velocity": "deg/s", "time": "s"},
        "missing": missing_report(flags, valid, keypoint_names),
        "angles": {n: range_of_motion(angles[n], times, frames, velocities.get(n)) for n in ANGLE_NAMES},
        "symmetry": {joint: symmetry(angles[left], angles[right]) for joint, (left, right) in PAIRS.items()},
        "repetitions": {
            "signal": rep_signal,
            "count": len(repetitions),
            "complete": sum(1 for r in repetitions if r["complete"]),
            "items": repetitions,
        },
    }


#: Segments whose length in the picture should stay constant if the movement stays in the image plane.
SEGMENTS: dict[str, tuple[str, str]] = {
    f"{side}_{name}": (f"{side}_{a}", f"{side}_{b}")
    for side in ("left", "right")
    for name, (a, b) in {"upper_arm": ("shoulder", "elbow"), "forearm": ("elbow", "wrist"),
                         "thigh": ("hip", "knee"), "shank": ("knee", "ankle")}.items()
} | {"trunk": ("thorax", "pelvis")}
#: A segment whose 5th-95th percentile length range exceeds this share of its median length leaves the plane.
OUT_OF_PLANE = 0.25


def plane_check(keypoints: np.ndarray, available: np.ndarray, keypoint_names: tuple[str, ...]) -> dict:
    """How much each segment's length in the picture changes over the clip; a warning when one changes by more
    than :data:`OUT_OF_PLANE` of its length (the movement leaves the image plane: 2D angles are foreshortened)."""
    index = {n: i for i, n in enumerate(keypoint_names)}
    variation = {}
    for name, (a, b) in SEGMENTS.items():
        ok = available[:, index[a]] & available[:, index[b]]
        if ok.sum() < 3:
            continue
        length = np.hypot(*(keypoints[ok, index[a], :2] - keypoints[ok, index[b], :2]).T)
        median = float(np.median(length))
        if median > 0:
            lo, hi = np.percentile(length, [5, 95])
            variation[name] = float((hi - lo) / median)
    leaving = sorted((n for n, v in variation.items() if v > OUT_OF_PLANE), key=lambda n: -variation[n])
    warning = None
    if leaving:
        worst = ", ".join(f"{n.replace('_', ' ')} {100 * variation[n]:.0f} %" for n in leaving[:4])
        warning = (f"the movement is not in the image plane: segment lengths change by up to {worst} over the clip, "
                   "so 2D angles there are foreshortened (film square-on to the plane of movement)")
    return {"segment_length_variation": variation, "out_of_plane_segments": leaving, "warning": warning}
