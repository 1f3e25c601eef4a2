"""Any exercise: the driving angle, the presets, per-repetition left/right numbers, symmetry only where both move."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_analysis_angles import STANDING, predictions

from efficientpose.analysis import ACTIVITIES, compute
from efficientpose.cli import ANALYZE_ACTIVITIES
from efficientpose.skeleton import KEYPOINTS


def _at(origin: tuple[float, float], length: float, degrees_from_down: float) -> tuple[float, float]:
    a = math.radians(degrees_from_down)
    return origin[0] + length * math.sin(a), origin[1] + length * math.cos(a)


def _frame(shoulder_angle: float, knee_bend: float = 0.0, drop: float = 0.0, hip_wiggle: float = 0.0,
           right_scale: float = 1.0) -> np.ndarray:
    """A front-view pose: both arms raised sideways by ``shoulder_angle`` (the right by ``right_scale`` x as much),
    knees bent by ``knee_bend`` with the body lowered by ``drop`` pixels, thighs turned by ``hip_wiggle``."""
    p = {k: (x, y + drop) for k, (x, y) in STANDING.items()}
    for side, sign, scale in (("left", 1, 1.0), ("right", -1, right_scale)):
        elbow = _at(p[f"{side}_shoulder"], 50, sign * shoulder_angle * scale)
        p[f"{side}_elbow"], p[f"{side}_wrist"] = elbow, _at(elbow, 50, sign * shoulder_angle * scale)
        knee = _at(p[f"{side}_hip"], 70, sign * hip_wiggle)
        p[f"{side}_knee"] = knee
        p[f"{side}_ankle"] = _at(knee, 70, sign * (hip_wiggle - knee_bend))
    return np.array([[*p[n], 1.0] for n in KEYPOINTS])


def _series(n_reps: int, fps: float = 30.0, period_s: float = 2.5) -> np.ndarray:
    """0 -> 1 -> 0 raised-cosine cycles with a rest between them."""
    one = np.concatenate([np.zeros(int(0.5 * fps)), 0.5 * (1 - np.cos(np.linspace(0, 2 * np.pi, int(period_s * fps))))])
    return np.concatenate([*[one] * n_reps, np.zeros(int(0.5 * fps))])


def test_lateral_raises_are_counted_on_shoulder_elevation_by_default() -> None:
    """Front view, four raises swinging shoulder elevation 10 -> 100 deg; the hips wiggle 6 deg."""
    s = _series(4)
    rng = np.random.default_rng(0)
    poses = [_frame(10 + 90 * v, hip_wiggle=6 * v) + np.r_[rng.normal(0, 0.5, (16, 2)).T, [np.zeros(16)]].T
             for v in s]
    analysis = compute(predictions(poses, fps=30.0))
    assert analysis.summary["activity"]["signal"] == "shoulder_elevation"
    reps = analysis.repetitions
    assert len(reps) == 4 and all(r["complete"] for r in reps)
    for r in reps:
        assert r["peak_value"] == pytest.approx(100, abs=3)
        assert 75 < r["range"] <= 92  # start and end at 10 % of the excursion
        assert r["left_right_ratio"] == pytest.approx(1.0, abs=0.05)
    sym = analysis.summary["symmetry"]
    assert sym["shoulder_elevation"]["symmetry_index"] == pytest.approx(0, abs=3)
    assert sym["hip_flexion"]["symmetry_index"] is None and "not both sides move" in sym["hip_flexion"]["note"]


def test_the_legs_drive_a_squat_even_when_the_arms_swing_more() -> None:
    """Arms swing 120 deg while the knees bend 90 deg and the body drops: the knees or hips drive it."""
    s = _series(3)
    poses = [_frame(120 * v, knee_bend=90 * v, drop=60 * v) for v in s]
    analysis = compute(predictions(poses, fps=30.0))
    assert analysis.summary["activity"]["signal"] in ("knee_flexion", "hip_flexion")
    assert len(analysis.repetitions) == 3
    squat = compute(predictions(poses, fps=30.0), activity="squat")
    assert squat.summary["activity"]["signal"] == "knee_flexion" and len(squat.repetitions) == 3


def test_a_one_arm_exercise_is_counted_on_that_arm_and_ratios_say_why_not() -> None:
    s = _series(3)
    poses = [_frame(10 + 80 * v, right_scale=0.05) for v in s]  # the right arm barely moves
    analysis = compute(predictions(poses, fps=30.0))
    assert analysis.summary["activity"]["signal"] == "left_shoulder_elevation"
    assert len(analysis.repetitions) == 3
    both = compute(predictions(poses, fps=30.0), activity="lateral-raise")
    assert both.repetitions and all(r["left_right_ratio"] is None and "less than" in r["left_right_note"]
                                    for r in both.repetitions)


def test_sit_to_stand_counts_each_stand_up() -> None:
    """Seated (knees 90 deg) between stand-ups: a repetition is a trough of knee flexion."""
    s = 1 - _series(3)
    poses = [_frame(0, knee_bend=90 * v, drop=50 * v) for v in s]
    analysis = compute(predictions(poses, fps=30.0), activity="sit-to-stand")
    assert len(analysis.repetitions) == 3
    assert all(r["peak_value"] == pytest.approx(0, abs=3) for r in analysis.repetitions)


def test_the_cli_offers_every_activity() -> None:
    assert ANALYZE_ACTIVITIES == ACTIVITIES
    with pytest.raises(ValueError, match="unknown activity"):
        compute(predictions([_frame(0)] * 3), activity="yoga")


def test_periodicity_scores_repetitions_high_and_noise_or_one_offs_low() -> None:
    from efficientpose.analysis.activity import periodicity

    t = np.arange(300) / 30.0
    assert periodicity(np.sin(2 * np.pi * t / 2.5), t) > 0.9
    assert periodicity(np.random.default_rng(0).normal(size=300), t) < 0.3
    one_off = np.exp(-((t - 5) ** 2))  # a single movement is not a repetition
    assert periodicity(one_off, t) < 0.3
    short = np.arange(50) / 30.0  # too short for two periods of 0.8 s or more
    assert periodicity(np.sin(2 * np.pi * short), short) == 0.0
