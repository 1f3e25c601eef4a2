"""Repetition counting for cyclic movements (squats, raises) from one angle's signal.

A repetition is a prominent peak of the signal (greatest knee flexion = the bottom of a squat) with the
onset of the movement before it and its return after it. Gaps are interpolated only to find peaks;
every reported value comes from measured frames.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from efficientpose.analysis.angles import ANGLE_NAMES, PAIRS

#: Fraction of the excursion (signal minimum to peak) that marks a repetition's start and end.
ONSET_FRACTION = 0.1
#: A repetition is complete when it starts and ends within this fraction of its excursion of the same level.
COMPLETE_FRACTION = 0.25


def rep_signal(angles: dict[str, np.ndarray], name: str = "knee_flexion") -> tuple[np.ndarray, str]:
    """The signal to count repetitions on, and its name.

    ``name`` is an angle (``"left_knee_flexion"``), a joint of :data:`PAIRS` (``"knee_flexion"``: the mean
    of left and right, or the one side measured where the other is missing), or ``"auto"`` (the angle,
    or pair, with the largest 5th-95th percentile range).
    """
    if name == "auto":
        candidates = {n: rep_signal(angles, n)[0] for n in (*PAIRS, *ANGLE_NAMES)}
        name = max(candidates, key=lambda n: robust_range(candidates[n]))
    if name in PAIRS:
        left, right = (np.asarray(angles[n], dtype=np.float64) for n in PAIRS[name])
        both = np.isfinite(left) & np.isfinite(right)
        mean = np.where(both, (np.where(both, left, 0.0) + np.where(both, right, 0.0)) / 2, np.nan)
        return np.where(both, mean, np.where(np.isfinite(left), left, right)), name
    if name in angles:
        return np.asarray(angles[name], dtype=np.float64), name
    raise ValueError(f"unknown repetition signal {name!r}: use 'auto', one of {sorted(PAIRS)} or an angle name")


def robust_range(signal: np.ndarray) -> float:
    """The 5th-95th percentile range of the finite values (0 with fewer than two)."""
    finite = signal[np.isfinite(signal)]
    if finite.size < 2:
        return 0.0
    lo, hi = np.percentile(finite, [5, 95])
    return float(hi - lo)


def _fill_gaps(signal: np.ndarray) -> np.ndarray:
    """Linear interpolation across NaN (edges hold the nearest value): for peak finding only."""
    ok = np.isfinite(signal)
    idx = np.arange(signal.size)
    return np.interp(idx, idx[ok], signal[ok])


def _smooth(signal: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return signal
    padded = np.pad(signal, window // 2, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")[: signal.size]


def count_repetitions(
    signal: np.ndarray,
    times: np.ndarray,
    frames: np.ndarray | None = None,
    *,
    min_prominence: float = 0.25,
    min_amplitude: float = 15.0,
    min_distance_s: float = 1.0,
    smooth_s: float = 0.25,
    direction: str = "peak",
) -> list[dict]:
    """Repetitions in an angle signal (degrees, NaN = gap) sampled at ``times`` (seconds).

    A repetition's peak must stand out by ``min_prominence`` x the signal's 5th-95th percentile range and by at
    least ``min_amplitude`` degrees, at least ``min_distance_s`` after the previous one. ``direction="trough"``
    counts minima instead. Each repetition is a dict: start/peak/end frame and time, peak value, range (of the
    measured values between start and end), duration, and whether it is complete (not cut off by the clip).
    """
    if direction not in ("peak", "trough"):
        raise ValueError(f"direction must be 'peak' or 'trough', got {direction!r}")
    raw = np.asarray(signal, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    frames = np.arange(raw.size) if frames is None else np.asarray(frames)
    ok = np.isfinite(raw)
    if ok.sum() < 3:
        return []
    sign = 1.0 if direction == "peak" else -1.0
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    dt = dt if dt > 0 else 1.0
    window = int(round(smooth_s / dt)) | 1
    s = sign * _smooth(_fill_gaps(raw), window)
    prominence = max(min_prominence * robust_range(raw), min_amplitude)
    # The clip's ends count as the signal's low level, so a repetition cut off by the start or end still
    # stands out by its real excursion (and is then reported incomplete).
    low = float(np.percentile(s, 5))
    peaks, _ = find_peaks(np.concatenate([[low], s, [low]]), prominence=prominence,
                          distance=max(1, int(round(min_distance_s / dt))))
    peaks = peaks - 1

    reps = []
    for k, p in enumerate(peaks):
        lo = peaks[k - 1] if k > 0 else 0
        hi = peaks[k + 1] if k + 1 < len(peaks) else s.size - 1
        base_start = lo + int(np.argmin(s[lo : p + 1]))
        base_end = p + int(np.argmin(s[p : hi + 1]))
        level_start, level_end, top = s[base_start], s[base_end], s[p]
        start_cut = level_start + ONSET_FRACTION * (top - level_start)
        end_cut = level_end + ONSET_FRACTION * (top - level_end)
        start = base_start + int(np.nonzero(s[base_start : p + 1] <= start_cut)[0][-1])
        end = p + int(np.nonzero(s[p : base_end + 1] <= end_cut)[0][0])
        base = min(level_start, level_end)
        complete = bool(max(level_start, level_end) - base <= COMPLETE_FRACTION * (top - base))
        # Report the measured extreme of the repetition, never an interpolated value.
        span = np.arange(start, end + 1)
        span = span[ok[span]]
        peak = int(span[np.argmax(sign * raw[span])]) if span.size else int(p)
        measured = raw[span]
        reps.append({
            "index": k + 1,
            "start_frame": int(frames[start]),
            "peak_frame": int(frames[peak]),
            "end_frame": int(frames[end]),
            "start_time": float(t[start]),
            "peak_time": float(t[peak]),
            "end_time": float(t[end]),
            "peak_value": float(raw[peak]) if span.size else None,
            "range": float(measured.max() - measured.min()) if measured.size else None,
            "duration": float(t[end] - t[start]),
            "complete": complete,
        })
    return reps
