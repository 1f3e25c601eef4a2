"""Gait: events on synthetic trajectories with known events, then the walking person in a real clip, counted by eye."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gait_synthetic import STRIDE_S, walker

from efficientpose.analysis import compute
from efficientpose.analysis.gait import walking_passes


def _found(gait: dict, kind: str, side: str) -> np.ndarray:
    return np.array([e["time"] for e in gait["events"] if e["kind"] == kind and e["side"] == side])


def test_synthetic_events_are_found_within_one_frame_and_the_turn_is_left_out() -> None:
    predictions, truth = walker(((4.4, 1), (4.4, -1)))
    analysis = compute(predictions, activity="gait")
    gait = analysis.summary["gait"]
    assert [p["direction"] for p in gait["passes"]] == ["right", "left"]
    turn_start, turn_end = truth["turning"]
    for p in gait["passes"]:  # no pass reaches into the turn
        assert p["end_frame"] / 30 < turn_start or p["start_frame"] / 30 > turn_end
    assert gait["turning_frames"] >= 1.5 * 30
    for side in ("left", "right"):
        for kind, key in (("heel_strike", "hs"), ("toe_off", "to")):
            found = _found(gait, kind, side)
            for t in truth[f"{side}_{key}"]:  # every true event, on the right side, within one frame
                assert np.min(np.abs(found - t)) <= 1 / 30 + 1e-9, (side, kind, t)
    assert gait["cadence_steps_per_min"] == pytest.approx(60 / (STRIDE_S / 2), rel=0.01)
    for side in ("left", "right"):
        assert gait[side]["stride_time"]["mean"] == pytest.approx(STRIDE_S, abs=1 / 30)
        assert gait[side]["step_time"]["mean"] == pytest.approx(STRIDE_S / 2, abs=1 / 30)
        frame = 100 / 33  # one frame in % of the 33-frame stride; each interval is two events, each within a frame
        assert gait[side]["stance_percent"]["mean"] == pytest.approx(60, abs=2 * frame)
        assert gait[side]["swing_percent"]["mean"] == pytest.approx(40, abs=2 * frame)
        assert gait[side]["double_support_percent"]["mean"] == pytest.approx(20, abs=4 * frame)
    curves = gait["curves"]
    assert len(curves["percent"]) == 101 and curves["knee_flexion"]["left"]["cycles"] >= 4
    assert {"cadence_steps_per_min", "steps", "passes"} <= set(gait)


def test_auto_sees_walking_and_exercises_are_not_walking() -> None:
    predictions, _ = walker(((4.4, 1),))
    assert compute(predictions).summary["activity"]["signal"] == "gait"
    assert compute(predictions).summary["gait"]["steps"] >= 7


def test_passes_split_at_reversals_and_stops() -> None:
    t = np.arange(300) / 30.0
    x = np.concatenate([100 + 150 * t[:100], np.full(50, 100 + 150 * t[99]), 100 + 150 * t[99] - 150 * t[:150]])
    passes, turning = walking_passes(x, t)
    assert [(d) for _, _, d in passes] == [1, -1]
    assert turning[100:150].all() and not turning[10:90].any()


# ---------------------------------------------------------------------------------------------------------------
# The real clip: two_people_jumping_walking.mp4 (1768x994, 30 fps). A woman walks from right to left, seen from
# her left side, from behind the tree (frame ~40) out of the picture's left edge (frame ~195). Heel strikes
# marked by eye, frame by frame, on 2x zoomed crops of her feet: the first frame where the leading heel is
# down and stops moving forward (3x zoom). Seven are visible: 60, 78, 99, 117, 135, 154, 172. (One before 60 happens
# behind the tree; one at ~189 is cut off by the picture's edge.) Cadence by the definition:
# 60 x (7 - 1) / ((172 - 60) / 30 s) = 96.4 steps/min.
# ---------------------------------------------------------------------------------------------------------------
HEEL_STRIKES_BY_EYE = (60, 78, 99, 117, 135, 154, 172)
CADENCE_BY_EYE = 60 * (len(HEEL_STRIKES_BY_EYE) - 1) / ((HEEL_STRIKES_BY_EYE[-1] - HEEL_STRIKES_BY_EYE[0]) / 30)


def hand_box(frame: int) -> tuple[float, float, float, float]:
    """A box drawn by hand around the walking woman (she moves ~10 px per frame to the left)."""
    cx = 1480 - 10 * (frame - 50)
    return cx - 307, 380, cx + 307, 994


@pytest.fixture(scope="module")
def walking_predictions(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RT predictions for the walking woman (frames 42-200): the estimator on predict's region-of-interest
    tracking, started (and restarted whenever the track strays from her) from the hand-drawn box. Unsmoothed."""
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.inference.tracking import roi_from_pose
    from efficientpose.io.video import VideoReader
    from efficientpose.outputs import VideoPredictionsWriter

    estimator = PoseEstimator("rt", backend="onnxruntime")
    path = tmp_path_factory.mktemp("walk") / "walk.json"
    with VideoReader(data_dir / "video" / "two_people_jumping_walking.mp4") as reader:
        writer = VideoPredictionsWriter(path, file="two_people_jumping_walking.mp4", width=reader.width,
                                        height=reader.height, fps=reader.fps, model="rt", smoothing="none")
        box = None
        for frame in reader:
            if not 42 <= frame.index <= 200:
                continue
            hand = hand_box(frame.index)
            pose = estimator.predict(frame.image, roi=box or hand)
            writer.add(frame.index, frame.time, pose)
            box = roi_from_pose(pose, reader.width, reader.height, 0.3)
            if box is not None and abs((box[0] + box[2]) / 2 - (hand[0] + hand[2]) / 2) > 200:
                box = None
        writer.close()
    return path


def test_walking_person_heel_strikes_and_cadence_match_the_eye(walking_predictions: Path) -> None:
    analysis = compute(walking_predictions)  # auto: she walks
    gait = analysis.summary["gait"]
    assert analysis.summary["activity"]["signal"] == "gait"
    assert len(gait["passes"]) == 1 and gait["passes"][0]["direction"] == "left"
    ours = [e["frame"] for e in gait["events"] if e["kind"] == "heel_strike"]
    for by_eye in HEEL_STRIKES_BY_EYE:
        assert min(abs(f - by_eye) for f in ours) <= 2, (by_eye, ours)
    # no invented steps: at most the two the eye cannot check (behind the tree, at the picture's edge)
    assert len(ours) <= len(HEEL_STRIKES_BY_EYE) + 2
    assert gait["cadence_steps_per_min"] == pytest.approx(CADENCE_BY_EYE, rel=0.05)
    sides = [e["side"] for e in gait["events"] if e["kind"] == "heel_strike"]
    assert all(a != b for a, b in zip(sides, sides[1:], strict=False))  # feet alternate
    json.dumps(analysis.summary, allow_nan=False)


def test_gait_report_has_the_tables_curves_and_heel_strike_frames(tmp_path: Path) -> None:
    from efficientpose.analysis import analyze

    predictions, _ = walker(((4.4, 1),))
    analysis = analyze(predictions, tmp_path, activity="gait")
    assert (tmp_path / "gait_knee_flexion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "gait_hip_flexion.png").is_file()
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Gait</h2>" in page and "heel strike" in page and "double support" in page
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["gait"]["steps"] == analysis.summary["gait"]["steps"] and summary["repetitions"]["count"] == 0
