"""Which angle drives a movement, and the repetition settings for each activity preset.

``auto`` picks the angle with the largest, clearly periodic range (an autocorrelation peak at a plausible
repetition period); the presets name it outright (docs/analysis.md, "Activities").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from efficientpose.analysis.angles import PAIRS
from efficientpose.analysis.filters import runs
from efficientpose.analysis.reps import robust_range

#: Activities ``--activity`` accepts.
ACTIVITIES = ("auto", "squat", "lateral-raise", "sit-to-stand", "push-up", "gait")

#: A clearly periodic signal has a normalised autocorrelation peak at least this high.
MIN_PERIODICITY = 0.3
#: The pelvis must rise and fall by this fraction of the trunk length for the legs to count as driving.
BODY_MOVE_FRACTION = 0.15
#: Leg angles that drive whole-body movements, and the range (degrees) one of them must reach.
LEG_ANGLES = ("hip_flexion", "knee_flexion")
LEG_MIN_RANGE = 30.0
#: Repetition periods (seconds) the periodicity test looks for.
PERIOD_RANGE_S = (0.8, 8.0)
#: A single side drives the movement (one-arm exercise) when its range exceeds the pair's mean by this factor.
ONE_SIDED_FACTOR = 1.5


@dataclass(frozen=True)
class Preset:
    """The signal repetitions are counted on and how (options of :func:`count_repetitions`)."""

    signal: str
    direction: str = "peak"
    min_amplitude: float = 15.0
    min_distance_s: float = 1.0

    def rep_options(self) -> dict:
        return {"direction": self.direction, "min_amplitude": self.min_amplitude,
                "min_distance_s": self.min_distance_s}


#: The named presets. Squat: knees bend most at the bottom. Lateral raise: the arm rises from the trunk.
#: Sit-to-stand: one repetition per stand-up (knee flexion's trough). Push-up: elbows bend at the bottom.
PRESETS: dict[str, Preset] = {
    "squat": Preset("knee_flexion", "peak", 30.0),
    "lateral-raise": Preset("shoulder_elevation", "peak", 30.0),
    "sit-to-stand": Preset("knee_flexion", "trough", 40.0),
    "push-up": Preset("elbow_flexion", "peak", 30.0),
}


def periodicity(signal: np.ndarray, times: np.ndarray, period_range_s: tuple[float, float] = PERIOD_RANGE_S) -> float:
    """How periodic the signal is: the highest correlation (Pearson) between its longest measured run and the run
    shifted by a lag within ``period_range_s`` and at most half the run (so two periods fit); 0 when too short
    to tell or flat. Only lags where the correlation peaks after a dip count. 1 = perfectly periodic; a single
    movement scores 0."""
    ok = np.isfinite(signal)
    if not ok.any():
        return 0.0
    start, stop = max(runs(ok), key=lambda r: r[1] - r[0])
    x = signal[start:stop]
    dt = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    lo = max(1, int(round(period_range_s[0] / dt)))
    hi = min(x.size // 2, int(round(period_range_s[1] / dt)))
    if hi < lo:
        return 0.0
    corr = np.zeros(hi + 2)
    corr[0] = 1.0
    for lag in range(1, min(hi + 2, x.size - 1)):
        a, b = x[:-lag], x[lag:]
        sa, sb = a.std(), b.std()
        corr[lag] = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb)) if sa > 0 and sb > 0 else 0.0
    # A period is a peak of the correlation after it has dipped: a single movement only decays with the lag.
    peaks = [corr[lag] for lag in range(lo, hi + 1)
             if corr[lag] >= corr[lag + 1] and corr[lag] > corr[lag - 1] and corr[lag] - corr[1:lag].min() > 0.2]
    return float(max(0.0, max(peaks, default=0.0)))


def body_moves(pelvis_y: np.ndarray, trunk_length: float, times: np.ndarray) -> bool:
    """True when the pelvis rises and falls periodically by at least :data:`BODY_MOVE_FRACTION` of the trunk
    length: the legs carry the movement (squat, sit-to-stand), not just the arms."""
    return bool(trunk_length > 0 and robust_range(pelvis_y) >= BODY_MOVE_FRACTION * trunk_length
                and periodicity(pelvis_y, times) >= MIN_PERIODICITY)


def choose_signal(signals: dict[str, np.ndarray], times: np.ndarray,
                  whole_body: bool = False) -> tuple[str, dict[str, dict]]:
    """The driving signal among ``signals`` (joint pairs and single angles), and each candidate's range and
    periodicity.

    The largest range among the clearly periodic pairs; when the pelvis moves (``whole_body``), among the hip
    and knee angles if one of them moves :data:`LEG_MIN_RANGE` or more (the arms of a squat may swing more,
    but the legs drive it). A single side instead of its pair when it moves :data:`ONE_SIDED_FACTOR` times more
    than the pair's mean (one-arm work). The largest range when nothing is periodic.
    """
    scores = {name: {"range": robust_range(s), "periodicity": periodicity(s, times)} for name, s in signals.items()}
    periodic = [n for n in scores if scores[n]["periodicity"] >= MIN_PERIODICITY] or list(scores)
    if whole_body:
        legs = [n for n in periodic if n.endswith(LEG_ANGLES) and scores[n]["range"] >= LEG_MIN_RANGE]
        periodic = legs or periodic
    pairs = [n for n in periodic if n in PAIRS] or periodic
    best = max(pairs, key=lambda n: scores[n]["range"])
    if best in PAIRS:
        sides = [s for s in PAIRS[best] if s in periodic]
        side = max(sides, key=lambda n: scores[n]["range"], default=None)
        if side is not None and scores[side]["range"] > ONE_SIDED_FACTOR * scores[best]["range"]:
            best = side
    return best, scores
