"""PCK/PCKh/AUC: hand-computed cases, properties, and known displacements of the real MPII validation set."""

from __future__ import annotations

from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from efficientpose.data.mpii import read_mpii
from efficientpose.evaluation.metrics import (
    ALPHA_GRID,
    auc,
    group_table,
    mcnemar_p,
    normalized_distances,
    paired_pck,
    pck,
    pck_curves,
    pck_from_distances,
)


def test_hand_computed_pck_with_threshold_ties_missing_joints_and_missing_predictions() -> None:
    gt = np.zeros((2, 3, 2))
    pred = np.array([
        [[3.0, 4.0], [6.0, 8.0], [500.0, 500.0]],  # norm 10: d = 0.5 (exactly alpha), 1.0, (not annotated)
        [[0.0, 0.0], [6.0, 8.0], [np.nan, np.nan]],  # norm 20: d = 0, 0.5 (exactly alpha), no prediction
    ])
    annotated = np.array([[True, True, False], [True, True, True]])
    norm = np.array([10.0, 20.0])
    result = pck(pred, gt, annotated, norm, alpha=0.5)
    np.testing.assert_array_equal(result.counts, [2, 2, 1])
    np.testing.assert_array_equal(result.correct, [2, 1, 0])  # dist <= threshold counts, as evaluatePCKh.m
    np.testing.assert_allclose(result.per_joint, [100.0, 50.0, 0.0])
    assert result.mean == pytest.approx(60.0)  # pooled 3 of 5 joints, not the mean of per-joint values (50)
    assert result.mean_over(np.array([True, True, False])) == pytest.approx(75.0)
    below = pck(pred, gt, annotated, norm, alpha=0.49)
    np.testing.assert_allclose(below.per_joint, [50.0, 0.0, 0.0])
    dist = normalized_distances(pred, gt, annotated, norm)
    assert np.isnan(dist[0, 2]) and dist[1, 2] == np.inf


def test_never_annotated_joint_is_nan_not_zero() -> None:
    gt = np.zeros((1, 2, 2))
    result = pck(gt, gt, np.array([[True, False]]), np.array([1.0]), 0.5)
    assert result.per_joint[0] == 100.0 and np.isnan(result.per_joint[1])
    assert np.isnan(result.mean_over(np.array([False, True])))


@pytest.mark.parametrize("norm", [0.0, -3.0, np.nan, np.inf])
def test_non_positive_or_non_finite_normaliser_is_rejected(norm: float) -> None:
    gt = np.zeros((2, 1, 2))
    with pytest.raises(ValueError, match="normaliser"):
        pck(gt, gt, np.ones((2, 1), dtype=bool), np.array([5.0, norm]), 0.5)


def test_shape_errors_and_nan_ground_truth_are_rejected() -> None:
    gt = np.zeros((2, 3, 2))
    with pytest.raises(ValueError):
        pck(gt[:, :2], gt, np.ones((2, 3), dtype=bool), np.ones(2), 0.5)
    with pytest.raises(ValueError):
        pck(gt, gt, np.ones((2, 2), dtype=bool), np.ones(2), 0.5)
    bad = gt.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        pck(gt, bad, np.ones((2, 3), dtype=bool), np.ones(2), 0.5)


def test_auc_of_known_step_curves() -> None:
    """Every joint at d: the curve is 0 below d and 100 from the first grid alpha >= d (grid step 0.01)."""
    assert len(ALPHA_GRID) == 51 and ALPHA_GRID[0] == 0.0 and ALPHA_GRID[-1] == 0.5
    gt = np.zeros((4, 2, 2))
    annotated = np.ones((4, 2), dtype=bool)
    for d, expected in [(0.245, (100 * 0.25 + 0.5 * 100 * 0.01) / 0.5), (0.0, 100.0), (0.7, 0.0)]:
        pred = gt + np.array([d * 10, 0.0])
        dist = normalized_distances(pred, gt, annotated, np.full(4, 10.0))
        hits, counts = pck_curves(dist)
        curve = 100.0 * hits.sum(axis=1) / counts.sum(axis=1)
        assert auc(ALPHA_GRID, curve) == pytest.approx(expected)
    assert auc(np.array([0.0, 0.5]), np.array([0.0, 100.0])) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        auc(np.array([0.5, 0.0]), np.array([1.0, 2.0]))


def test_group_table_averages_left_and_right_like_the_official_table() -> None:
    per_joint = {"head_top": 90.0, "upper_neck": 100.0, "right_shoulder": 80.0, "left_shoulder": 70.0,
                 "right_wrist": np.nan, "left_wrist": 40.0}
    table = group_table(per_joint)
    assert list(table)[:4] == ["Head", "Shoulder", "Elbow", "Wrist"]
    assert table["Head"] == 95.0 and table["Shoulder"] == 75.0 and table["Wrist"] == 40.0
    assert np.isnan(table["Elbow"]) and np.isnan(table["Ankle"])


# ---------------------------------------------------------------- properties

@st.composite
def poses(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    coords = st.floats(-1e4, 1e4, allow_nan=False)
    gt = draw(hnp.arrays(np.float64, (n, k, 2), elements=coords))
    annotated = draw(hnp.arrays(np.bool_, (n, k)))
    annotated[0, 0] = True
    norm = draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.5, 500.0)))
    return gt, annotated, norm


@settings(max_examples=60, deadline=None)
@given(poses(), st.floats(0.0, 1.0))
def test_perfect_predictions_score_100(data: tuple, alpha: float) -> None:
    gt, annotated, norm = data
    result = pck(gt, gt, annotated, norm, alpha)
    assert result.mean == 100.0
    np.testing.assert_array_equal(result.per_joint[result.counts > 0], 100.0)


@settings(max_examples=60, deadline=None)
@given(poses(), st.floats(0.0, 1.0), st.floats(0.0, 2 * np.pi), st.floats(1.01, 5.0))
def test_every_joint_beyond_the_threshold_scores_0(data: tuple, alpha: float, angle: float, factor: float) -> None:
    gt, annotated, norm = data
    radius = (alpha + 0.01) * factor * norm[:, None, None]
    pred = gt + radius * np.array([np.cos(angle), np.sin(angle)])
    result = pck(pred, gt, annotated, norm, alpha)
    assert result.mean == 0.0
    assert (result.correct == 0).all()


# ---------------------------------------------------------------- real MPII validation annotations

@pytest.fixture(scope="module")
def mpii_arrays(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    samples = read_mpii(data_dir / "mpii", "valid", require_images=False)
    return (np.stack([s.joints for s in samples]), np.stack([s.annotated for s in samples]),
            np.array([s.norm_size for s in samples]))


def _displace(gt: np.ndarray, head: np.ndarray, radius: np.ndarray, seed: int) -> np.ndarray:
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi, gt.shape[:2])
    return gt + (radius * head[:, None])[..., None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def test_mpii_every_joint_moved_by_0_3_head_sizes(mpii_arrays: tuple) -> None:
    gt, annotated, head = mpii_arrays
    pred = _displace(gt, head, np.full(gt.shape[:2], 0.3), seed=0)
    assert pck(pred, gt, annotated, head, 0.5).mean == 100.0
    assert pck(pred, gt, annotated, head, 0.2).mean == 0.0
    assert pck(pred, gt, annotated, head, 0.31).mean == 100.0
    assert pck(pred, gt, annotated, head, 0.29).mean == 0.0


def test_mpii_known_mix_of_displacements(mpii_arrays: tuple) -> None:
    """A random third of the joints at 0.405 head sizes, the rest at 0.105: PCKh@0.2 is the share near."""
    gt, annotated, head = mpii_arrays
    far = np.random.default_rng(7).random(gt.shape[:2]) < 1 / 3
    pred = _displace(gt, head, np.where(far, 0.405, 0.105), seed=3)
    near = annotated & ~far
    result = pck(pred, gt, annotated, head, 0.2)
    np.testing.assert_array_equal(result.counts, annotated.sum(axis=0))
    np.testing.assert_allclose(result.per_joint, 100.0 * near.sum(axis=0) / annotated.sum(axis=0))
    assert result.mean == pytest.approx(100.0 * near.sum() / annotated.sum())
    assert 60 < result.mean < 73  # about two thirds, so the case is not degenerate
    assert pck(pred, gt, annotated, head, 0.5).mean == 100.0
    assert pck(pred, gt, annotated, head, 0.05).mean == 0.0
    # The curve is 0 up to alpha 0.10, 100 s from 0.11 to 0.40, 100 from 0.41 (s = near share); trapezoids:
    # 100 s (0.005 + 0.29 + 0.005) + 100 (0.005 + 0.09) = 30 s + 9.5 over a range of 0.5.
    hits, counts = pck_curves(normalized_distances(pred, gt, annotated, head))
    curve = 100.0 * hits.sum(axis=1) / counts.sum(axis=1)
    s = near.sum() / annotated.sum()
    assert auc(ALPHA_GRID, curve) == pytest.approx(60 * s + 19)
    assert pck_from_distances(normalized_distances(pred, gt, annotated, head), 0.2).mean == result.mean


def _exact_two_sided(k: int, n: int) -> float:
    """Independent reference: twice the smaller binomial tail at 1/2, in exact rational arithmetic."""
    tail = sum(Fraction(comb(n, i), 2**n) for i in range(min(k, n - k) + 1))
    return float(min(Fraction(1), 2 * tail))


@pytest.mark.parametrize(("only_a", "only_b"), [(46, 51), (224, 162), (0, 7), (5, 5), (689, 517), (1, 0)])
def test_mcnemar_p_matches_exact_binomial_tails(only_a: int, only_b: int) -> None:
    assert mcnemar_p(only_a, only_b) == pytest.approx(_exact_two_sided(only_a, only_a + only_b), rel=1e-9)
    assert mcnemar_p(only_a, only_b) == pytest.approx(mcnemar_p(only_b, only_a), rel=1e-12)  # symmetric


def test_mcnemar_p_without_discordant_joints_is_1() -> None:
    assert mcnemar_p(0, 0) == 1.0


def test_paired_pck_hand_computed() -> None:
    nan, inf = np.nan, np.inf
    a = np.array([[0.1, 0.3, nan, 0.2], [inf, 0.05, 0.25, 0.0]])
    b = np.array([[0.3, 0.1, nan, 0.1], [0.1, 0.5, 0.25, 0.2]])
    r = paired_pck(a, b, 0.2)  # per counted joint (a, b): (Y,N) (N,Y) - (Y,Y) / (N,Y) (Y,N) (N,N) (Y,Y)
    assert (r.only_a, r.only_b, r.both, r.neither) == (2, 2, 2, 1)
    assert r.total == 7 and r.difference == 0.0
    only_last = paired_pck(a, b, 0.2, joints=np.array([False, False, False, True]))
    assert (only_last.only_a, only_last.only_b, only_last.both, only_last.neither) == (0, 0, 2, 0)
    # the difference is the difference of the two pooled PCKs
    r = paired_pck(a, b, 0.1)
    pa, pb = pck_from_distances(a, 0.1).mean, pck_from_distances(b, 0.1).mean
    assert r.difference == pytest.approx(pa - pb)


def test_paired_pck_rejects_unpaired_inputs() -> None:
    with pytest.raises(ValueError, match="one shape"):
        paired_pck(np.zeros((2, 3)), np.zeros((3, 3)), 0.2)
    with pytest.raises(ValueError, match="same joints"):
        paired_pck(np.array([[0.1, np.nan]]), np.array([[0.1, 0.2]]), 0.2)
