"""Left/right swap repair: injected swaps found (side view, legs crossing), no repairs on clean clips."""

from __future__ import annotations

import numpy as np
import pytest
from gait_synthetic import walker
from test_analysis_reps import blazepose_to_predictions

from efficientpose.analysis import compute
from efficientpose.analysis.angles import keypoint_validity
from efficientpose.analysis.core import load_predictions, mpii_keypoints, trunk_length
from efficientpose.analysis.swaps import repair_swaps
from efficientpose.skeleton import KEYPOINTS

LEG = {"hip": ("left_hip", "right_hip"), "knee": ("left_knee", "right_knee"), "ankle": ("left_ankle", "right_ankle")}


def _walker_keypoints(seed: int = 0, passes: tuple = ((4.4, 1), (4.4, -1))) -> np.ndarray:
    predictions, _ = walker(passes)
    kp = mpii_keypoints(load_predictions(predictions))
    kp[..., :2] += np.random.default_rng(seed).normal(0, 1.0, kp[..., :2].shape)  # 1 px of detector noise
    return kp


def _inject(kp: np.ndarray, joints: tuple[str, ...], rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Swap the left/right labels of ``joints`` in runs of 1-3 frames covering about ``rate`` of the clip."""
    rng = np.random.default_rng(seed)
    out, swapped = kp.copy(), np.zeros(len(kp), dtype=bool)
    t = 5
    while t < len(kp) - 5:
        if rng.random() < rate / 2:
            n = int(rng.integers(1, 4))
            swapped[t:t + n] = True
            t += n + 3
        else:
            t += 1
    for joint in joints:
        i, j = (KEYPOINTS.index(n) for n in LEG[joint])
        out[np.ix_(swapped, [i, j])] = kp[np.ix_(swapped, [j, i])]
    return out, swapped


@pytest.mark.parametrize("joints", [("hip", "knee", "ankle"), ("knee", "ankle"), ("ankle",)])
def test_injected_swaps_in_a_side_view_walk_are_found_and_undone(joints: tuple[str, ...]) -> None:
    clean = _walker_keypoints()
    valid = keypoint_validity(clean, 0.3)
    scale = trunk_length(clean, valid)
    found_total = injected_total = false_total = 0
    for seed in range(3):
        kp, injected = _inject(clean, joints, 0.1, seed)
        a, b = (KEYPOINTS.index(n) for n in LEG[joints[-1]])
        # A swap where both points coincide (the feet crossing) changes nothing: it cannot and need not be found.
        effective = injected & (np.hypot(*(clean[:, a, :2] - clean[:, b, :2]).T) > 0.05 * scale)
        repaired, _, swapped = repair_swaps(kp, valid, scale)
        flagged = swapped[joints[-1]]
        found_total += int((flagged & effective).sum())
        injected_total += int(effective.sum())
        false_total += int((flagged & ~injected).sum())
        fixed = effective & flagged
        np.testing.assert_allclose(repaired[fixed][:, [a, b]], clean[fixed][:, [a, b]])
    assert found_total >= 0.95 * injected_total, (found_total, injected_total)
    assert false_total <= 0.01 * len(clean) * 3


def test_no_repairs_on_clean_clips() -> None:
    clean = _walker_keypoints(1, ((6.0, -1),))
    valid = keypoint_validity(clean, 0.3)
    _, _, swapped = repair_swaps(clean, valid, trunk_length(clean, valid))
    assert not any(s.any() for s in swapped.values())


def test_no_repairs_on_the_real_squats(data_dir) -> None:  # noqa: ANN001 - fixture
    predictions = blazepose_to_predictions(data_dir / "video" / "squats_front.blazepose-full-2d.json")
    analysis = compute(predictions)
    assert all(not frames for frames in analysis.summary["swaps"]["frames"].values())


def test_swapped_frames_are_flagged_in_the_summary() -> None:
    predictions, _ = walker(((4.4, 1),))
    frames = predictions["frames"]
    for f in frames[40:42]:
        k = f["keypoints"]
        k["left_ankle"], k["right_ankle"] = k["right_ankle"], k["left_ankle"]
    summary = compute(predictions).summary
    assert summary["swaps"]["frames"]["ankle"] == [40, 41]


@pytest.mark.parametrize("joints", [("hip", "knee", "ankle"), ("ankle",)])
def test_injected_swaps_in_the_real_squats_are_found(data_dir, joints: tuple[str, ...]) -> None:  # noqa: ANN001
    """The real squats clip (front view, 5 fps) with swaps injected: found and undone, nothing else touched."""
    predictions = blazepose_to_predictions(data_dir / "video" / "squats_front.blazepose-full-2d.json")
    clean = mpii_keypoints(load_predictions(predictions))
    valid = keypoint_validity(clean, 0.3)
    scale = trunk_length(clean, valid)
    kp, injected = _inject(clean, joints, 0.3, seed=3)
    _, _, swapped = repair_swaps(kp, valid, scale)
    flagged = swapped[joints[-1]]
    assert (flagged & injected).sum() >= 0.95 * injected.sum() and injected.sum() >= 8
    assert not (flagged & ~injected).any()
