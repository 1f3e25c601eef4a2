"""Movement analysis of one video's keypoints: joint angles, velocities, range of motion, symmetry, repetitions.

``analyze(predictions, output_dir)`` reads the predict command's per-video JSON (or the same dict) and writes
angles.csv, summary.json, PNG plots and a self-contained report.html; the returned :class:`Analysis` holds
plain numpy arrays and dicts. Angle definitions and sign conventions: docs/analysis.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from efficientpose.analysis.angles import (
    ANGLE_NAMES,
    ANGLES,
    PAIRS,
    Flag,
    angular_velocity,
    compute_angles,
    keypoint_validity,
)
from efficientpose.analysis.report import Drawer, write_outputs
from efficientpose.analysis.reps import count_repetitions, rep_signal
from efficientpose.analysis.summary import build_summary
from efficientpose.errors import InputError
from efficientpose.skeleton import KEYPOINTS

__all__ = [
    "ANGLES", "ANGLE_NAMES", "PAIRS", "Analysis", "Flag", "analyze", "angular_velocity", "compute",
    "compute_angles", "count_repetitions", "load_predictions", "predictions_to_arrays",
]

#: Default keypoint score below which a keypoint is a gap.
SCORE_THRESHOLD = 0.3


@dataclass
class Analysis:
    """The analysis of one clip: per-frame arrays (T,), per-angle dicts, repetitions and the summary dict."""

    frames: np.ndarray  #: (T,) frame numbers
    times: np.ndarray  #: (T,) seconds
    keypoints: np.ndarray  #: (T, 16, 3) x, y, score in :data:`KEYPOINTS` order (NaN where absent)
    valid: np.ndarray  #: (T, 16) keypoint usable (present and score >= threshold)
    angles: dict[str, np.ndarray]  #: degrees, NaN exactly where the flag is not OK
    flags: dict[str, np.ndarray]  #: :class:`Flag` codes per frame
    velocities: dict[str, np.ndarray]  #: degrees per second, NaN where not computable
    signal: np.ndarray  #: the signal repetitions were counted on
    repetitions: list[dict]
    summary: dict
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


def load_predictions(path: str | os.PathLike) -> dict:
    """Read a predict-command video JSON through the prediction files' one reader, which validates it (values,
    time order, size, nesting); :class:`InputError` naming ``path`` if it is unreadable, malformed or empty."""
    from efficientpose.io.predictions import read_video_predictions

    path = Path(path)
    video = read_video_predictions(path)
    if not len(video.frames):
        raise InputError(f"{path}: no frames (expected the predict command's per-video JSON with a 'frames' list)")
    fields = ("x", "y", "score")
    frames = [{"frame": int(n), "time": float(t),
               "keypoints": {name: dict(zip(fields, map(_json_number, point), strict=True))
                             for name, point in zip(video.names, kp, strict=True)}}
              for n, t, kp in zip(video.frames, video.times, video.keypoints, strict=True)]
    meta = {"file": video.file or str(path), "width": video.width, "height": video.height, "fps": video.fps,
            "model": video.model}
    return {**{k: v for k, v in meta.items() if v is not None}, "frames": frames}


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def predictions_to_arrays(predictions: dict, source: str = "predictions") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints (T, 16, 3), times (T,), frame numbers (T,)) from the predict JSON; absent keypoints are NaN."""
    frames = predictions.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{source}: no frames (expected the predict command's per-video JSON with a 'frames' list)")
    fps = predictions.get("fps")
    kps = np.full((len(frames), len(KEYPOINTS), 3), np.nan)
    times = np.empty(len(frames))
    numbers = np.empty(len(frames), dtype=np.int64)
    try:
        for t, frame in enumerate(frames):
            numbers[t] = int(frame.get("frame", t))
            if frame.get("time") is not None:
                times[t] = float(frame["time"])
            elif fps:
                times[t] = numbers[t] / float(fps)
            else:
                raise InputError(f"{source}: frame {numbers[t]} has no time and the file no fps")
            for k, name in enumerate(KEYPOINTS):
                point = (frame.get("keypoints") or {}).get(name)
                if point is not None:
                    kps[t, k] = [_float(point.get("x")), _float(point.get("y")), _float(point.get("score"))]
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: malformed frame {t} ({exc})") from exc
    if np.any(np.diff(times) <= 0):
        raise InputError(f"{source}: frame times are not strictly increasing")
    return kps, times, numbers


def _float(v: object) -> float:
    return np.nan if v is None else float(v)


def compute(
    predictions: dict | str | os.PathLike,
    *,
    score_threshold: float = SCORE_THRESHOLD,
    rep_signal_name: str = "knee_flexion",
    **rep_options: float | str,
) -> Analysis:
    """Analyse predictions (dict or JSON path) without writing anything; ``rep_options`` go to count_repetitions."""
    if not isinstance(predictions, dict):
        predictions = load_predictions(predictions)
    source = str(predictions.get("file") or "predictions")
    kps, times, frames = predictions_to_arrays(predictions, source)
    valid = keypoint_validity(kps, score_threshold)
    angles, flags = compute_angles(kps, score_threshold)
    velocities = {a.name: angular_velocity(angles[a.name], times, periodic=a.signed) for a in ANGLES}
    signal, signal_name = rep_signal(angles, rep_signal_name)
    reps = count_repetitions(signal, times, frames, **rep_options)
    summary = build_summary(
        meta=predictions, times=times, frames=frames, angles=angles, velocities=velocities, flags=flags,
        valid=valid, keypoint_names=KEYPOINTS, score_threshold=score_threshold, rep_signal=signal_name,
        repetitions=reps,
    )
    return Analysis(frames, times, kps, valid, angles, flags, velocities, signal, reps, summary)


def analyze(
    predictions: dict | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    video: str | os.PathLike | None = None,
    score_threshold: float = SCORE_THRESHOLD,
    rep_signal_name: str = "knee_flexion",
    drawer: Drawer | None = None,
    **rep_options: float | str,
) -> Analysis:
    """:func:`compute`, then (if ``output_dir``) write angles.csv, summary.json, plots and report.html there.

    ``video`` supplies the key frames' pictures (else skeletons are drawn on white); ``drawer`` replaces
    the built-in skeleton drawing.
    """
    analysis = compute(predictions, score_threshold=score_threshold, rep_signal_name=rep_signal_name, **rep_options)
    if output_dir is not None:
        analysis.outputs = write_outputs(analysis, output_dir, video=video, drawer=drawer)
    return analysis
