"""Repetition counting: constructed signals with known repetitions, then the real squats clip."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from efficientpose.analysis import compute, count_repetitions
from efficientpose.analysis.reps import rep_signal
from efficientpose.skeleton import KEYPOINTS

# ---------------------------------------------------------------------------------------------------------------
# The real clip. squats_front.mp4 (5 fps, 65 frames): counted by eye from a contact sheet of all 65 frames, the
# woman squats THREE times. Deepest points near frames 10, 34 and 59; she stands between them (frames ~20-27
# and ~43-51); the clip ends (frame 64) while she is rising out of the third squat, so that one is cut off.
# ---------------------------------------------------------------------------------------------------------------
SQUATS_BY_EYE = 3
SQUAT_BOTTOMS_BY_EYE = (10, 34, 59)

# BlazePose landmark indices (33-landmark topology).
_BP = {
    "nose": 0, "left_ear": 7, "right_ear": 8, "mouth_left": 9, "mouth_right": 10,
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14, "left_wrist": 15,
    "right_wrist": 16, "left_hip": 23, "right_hip": 24, "left_knee": 25, "right_knee": 26,
    "left_ankle": 27, "right_ankle": 28,
}


def blazepose_to_predictions(path: Path, fps: float = 5.0, width: int = 720, height: int = 1280) -> dict:
    """Convert BlazePose output (frames x 33 x [x, y, z] in pixels) into the predict command's per-video JSON.

    Shoulders, elbows, wrists, hips, knees and ankles map directly (BlazePose names are person-centric too).
    The rest are approximations good enough for angles, not MPII ground truth:
      pelvis     = midpoint of the hips
      thorax     = midpoint of the shoulders
      upper_neck = mouth midpoint moved 35% of the way toward the thorax (about the chin / top of the neck)
      head_top   = ear midpoint moved 1.5 x (ear midpoint - mouth midpoint) further up the head
    The file has no visibility scores, so every score is 1.0.
    """
    lm = np.asarray(json.loads(path.read_text()), dtype=np.float64)[..., :2]  # (T, 33, 2)
    p = {name: lm[:, i] for name, i in _BP.items()}
    mouth = (p["mouth_left"] + p["mouth_right"]) / 2
    ears = (p["left_ear"] + p["right_ear"]) / 2
    p["pelvis"] = (p["left_hip"] + p["right_hip"]) / 2
    p["thorax"] = (p["left_shoulder"] + p["right_shoulder"]) / 2
    p["upper_neck"] = mouth + 0.35 * (p["thorax"] - mouth)
    p["head_top"] = ears + 1.5 * (ears - mouth)
    frames = [
        {
            "frame": t,
            "time": t / fps,
            "keypoints": {k: {"x": float(p[k][t, 0]), "y": float(p[k][t, 1]), "score": 1.0} for k in KEYPOINTS},
        }
        for t in range(lm.shape[0])
    ]
    return {"file": "squats_front.mp4", "width": width, "height": height, "fps": fps, "model": "blazepose-full",
            "frames": frames}


@pytest.fixture(scope="module", params=["blazepose"])
def squats_predictions(request: pytest.FixtureRequest, data_dir: Path) -> dict:
    """Predictions for squats_front.mp4 in the predict JSON format; one param per prediction source."""
    if request.param == "blazepose":
        return blazepose_to_predictions(data_dir / "video" / "squats_front.blazepose-full-2d.json")
    raise AssertionError(request.param)


def test_squats_counted_as_seen_by_eye(squats_predictions: dict) -> None:
    analysis = compute(squats_predictions)
    reps = analysis.repetitions
    assert len(reps) == SQUATS_BY_EYE
    assert analysis.summary["repetitions"]["count"] == SQUATS_BY_EYE
    for rep, by_eye in zip(reps, SQUAT_BOTTOMS_BY_EYE, strict=True):
        assert abs(rep["peak_frame"] - by_eye) <= 2
        assert rep["start_frame"] < rep["peak_frame"] < rep["end_frame"] or not rep["complete"]
        assert 1.0 < rep["duration"] < 6.0
    assert [r["complete"] for r in reps] == [True, True, False]  # the clip ends mid-rise


def test_knees_bend_much_more_at_the_bottom_than_standing(squats_predictions: dict) -> None:
    analysis = compute(squats_predictions)
    standing_frames = list(range(0, 3)) + list(range(21, 27)) + list(range(44, 51))  # upright by eye
    index = {int(f): i for i, f in enumerate(analysis.frames)}
    for side in ("left", "right"):
        knee = analysis.angles[f"{side}_knee_flexion"]
        standing = np.median(knee[[index[f] for f in standing_frames]])
        assert standing < 20
        for rep in analysis.repetitions:
            assert knee[index[rep["peak_frame"]]] > standing + 50
    for rep in analysis.repetitions[:2]:
        assert rep["range"] > 60


def test_low_scores_become_gaps_and_do_not_change_the_count(squats_predictions: dict) -> None:
    data = json.loads(json.dumps(squats_predictions))  # deep copy
    for frame in data["frames"][30:36]:  # hide the left knee around the second bottom
        frame["keypoints"]["left_knee"]["score"] = 0.05
    data["frames"][12]["keypoints"]["right_ankle"] = {"x": None, "y": None, "score": None}  # absent: a gap too
    analysis = compute(data, score_threshold=0.3)
    left = analysis.angles["left_knee_flexion"]
    assert np.isnan(left[30:36]).all() and (analysis.flags["left_knee_flexion"][30:36] == 1).all()
    # One frame (0.2 s at 5 fps) is the shortest gap ever filled; the six-frame gap stays a gap.
    assert np.isfinite(analysis.angles["right_knee_flexion"][12])
    assert analysis.filled[12, KEYPOINTS.index("right_ankle")]
    missing = analysis.summary["missing"]["angles"]
    assert missing["left_knee_flexion"]["gap"] == 6
    assert missing["right_knee_flexion"]["gap"] == 0
    assert analysis.summary["missing"]["keypoints_filled"]["right_ankle"] >= 1 / 65
    assert missing["left_hip_flexion"]["gap"] == 6  # the hip angle reads the knee too
    assert len(analysis.repetitions) == SQUATS_BY_EYE
    # Reported values are measured ones: the summary's max never falls on a gap frame.
    assert analysis.summary["angles"]["left_knee_flexion"]["max_frame"] not in range(30, 36)


# ---------------------------------------------------------------------------------------------------------------
# Constructed signals.
# ---------------------------------------------------------------------------------------------------------------


def squat_signal(n_reps: int, fps: float = 10.0, period_s: float = 3.0, depth: float = 90.0, rest_s: float = 1.0,
                 noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standing (0 deg) for rest_s, then n_reps raised-cosine dips to ``depth``, each followed by rest_s standing."""
    rng = np.random.default_rng(seed)
    one = np.concatenate([np.zeros(int(rest_s * fps)),
                          depth * 0.5 * (1 - np.cos(np.linspace(0, 2 * np.pi, int(period_s * fps) + 1)))])
    signal = np.concatenate([*[one] * n_reps, np.zeros(int(rest_s * fps))])
    signal = signal + noise * rng.standard_normal(signal.size)
    return signal, np.arange(signal.size) / fps


@pytest.mark.parametrize("n_reps", [1, 2, 5])
def test_counts_clean_repetitions_with_their_range_and_duration(n_reps: int) -> None:
    signal, times = squat_signal(n_reps)
    reps = count_repetitions(signal, times)
    assert len(reps) == n_reps
    for k, rep in enumerate(reps):
        assert rep["index"] == k + 1
        assert rep["complete"]
        assert rep["peak_value"] == pytest.approx(90.0)
        assert rep["peak_time"] == pytest.approx((10 + 15 + 41 * k) / 10)  # 41 samples per rest + dip
        assert 80 < rep["range"] <= 90.0
        assert 2.0 < rep["duration"] < 3.0  # the onset threshold trims the flat ends of the 3 s dip


def test_noise_and_standing_still_are_not_repetitions() -> None:
    rng = np.random.default_rng(1)
    times = np.arange(200) / 30.0
    assert count_repetitions(5 + 2 * rng.standard_normal(200), times) == []
    signal, times = squat_signal(3, noise=3.0)
    assert len(count_repetitions(signal, times)) == 3


def test_min_distance_merges_bounces_at_the_bottom() -> None:
    signal, times = squat_signal(2)
    bounce = signal.copy()
    for bottom in (25, 66):  # a 20 deg bounce in the middle of each bottom splits it into two close peaks
        bounce[bottom - 1 : bottom + 2] -= 20
    assert len(count_repetitions(bounce, times)) == 2
    assert len(count_repetitions(bounce, times, min_distance_s=0.1, min_prominence=0.1, min_amplitude=5)) == 4


def test_gaps_are_bridged_for_peak_finding_but_never_reported() -> None:
    signal, times = squat_signal(2)
    gappy = signal.copy()
    gappy[20:31] = np.nan  # hides the whole bottom of the first repetition
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reps = count_repetitions(gappy, times)
    assert len(reps) == 2
    first = reps[0]
    span = gappy[first["start_frame"] : first["end_frame"] + 1]
    assert np.isfinite(gappy[first["peak_frame"]])  # the reported peak is the deepest measured frame
    assert first["peak_value"] == gappy[first["peak_frame"]] == np.nanmax(span) < 90.0
    assert first["range"] == pytest.approx(np.nanmax(span) - np.nanmin(span))


def test_cut_off_repetition_is_counted_and_marked_incomplete() -> None:
    signal, times = squat_signal(2)
    cut = slice(0, 73)  # ends while rising out of the second dip (bottom at index 66), at 59 deg
    reps = count_repetitions(signal[cut], times[cut])
    assert [r["complete"] for r in reps] == [True, False]


def test_troughs_and_frame_numbers() -> None:
    signal, times = squat_signal(3)
    frames = np.arange(signal.size) + 100
    reps = count_repetitions(180 - signal, times, frames, direction="trough")
    assert len(reps) == 3
    assert reps[0]["peak_value"] == pytest.approx(90.0)
    assert reps[0]["peak_frame"] >= 100


def test_too_little_data_gives_no_repetitions() -> None:
    assert count_repetitions(np.array([np.nan, 1.0, np.nan]), np.arange(3.0)) == []
    assert count_repetitions(np.array([]), np.array([])) == []


def test_rep_signal_choices() -> None:
    left = np.array([10.0, np.nan, 30.0, np.nan])
    right = np.array([20.0, 40.0, np.nan, np.nan])
    angles = {"left_knee_flexion": left, "right_knee_flexion": right,
              "left_elbow_flexion": np.zeros(4), "right_elbow_flexion": np.zeros(4)}
    both, name = rep_signal(angles, "knee_flexion")
    assert name == "knee_flexion"
    np.testing.assert_array_equal(both, [15.0, 40.0, 30.0, np.nan])
    assert rep_signal(angles, "left_knee_flexion")[1] == "left_knee_flexion"
    with pytest.raises(ValueError, match="unknown repetition signal"):
        rep_signal(angles, "tail_wag")
