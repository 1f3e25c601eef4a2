"""Targets: heatmap peaks decode back to the joints, Gaussian widths, PAF directions and widths, masks, flips."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efficientpose.codec.geometry import affine_matrix, transform_points
from efficientpose.codec.heatmap import gaussian_heatmaps
from efficientpose.data.targets import (
    SigmaSchedule,
    flip_heatmaps,
    flip_pafs,
    keypoint_mask,
    limb_mask,
    paf_flip_index,
    paf_targets,
    sigma_at,
)
from efficientpose.data.transforms import AugmentConfig, person_frame
from efficientpose.skeleton import KEYPOINTS, MPII_DATASET_ORDER, PAF_LIMBS, SKELETONS, remap

MPII = SKELETONS["mpii16"]
R = 256
LOW = R // 8


def decode(heatmaps: np.ndarray, stride: float) -> np.ndarray:
    """Arg-max of each channel, + 0.5, x stride: the package's decode convention."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1).argmax(axis=1)
    return (np.stack([flat % w, flat // w], axis=1) + 0.5) * stride


@pytest.fixture(scope="module")
def mpii_poses(data_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Real MPII validation poses in KEYPOINTS order, mapped into a 256 x 256 centred person crop."""
    with h5py.File(data_dir / "mpii" / "annot" / "valid.h5", "r") as f:
        parts, centres, scales = f["part"][:40], f["center"][:40], f["scale"][:40]
    poses = []
    for part, centre, scale in zip(parts, centres, scales, strict=True):
        annotated = remap((part != 0).any(axis=1), MPII_DATASET_ORDER, KEYPOINTS, fill=0).astype(bool)
        joints = remap(part - 0.5, MPII_DATASET_ORDER, KEYPOINTS)
        c, side = person_frame(joints, annotated, (1280, 720), AugmentConfig(train=False), centre, float(scale))
        poses.append((transform_points(joints, affine_matrix(c, side, R)), annotated))
    return poses


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, R - 1e-6), st.floats(0, R - 1e-6)), min_size=1, max_size=6),
       st.sampled_from([1, 8]), st.floats(0.5, 4.0))
def test_heatmap_arg_max_decodes_to_the_joint(points: list[tuple[float, float]], stride: int, sigma: float) -> None:
    joints = np.array(points)
    maps = gaussian_heatmaps(joints, np.ones(len(joints), bool), R // stride, stride, sigma)
    assert maps.shape == (len(joints), R // stride, R // stride) and maps.dtype == np.float32
    assert (np.abs(decode(maps, stride) - joints) <= stride / 2 + 1e-9).all()
    # The sampled maximum is the continuous peak (1) seen from at most half a pixel away on each axis.
    assert (maps.max(axis=(1, 2)) >= np.exp(-0.25 / sigma**2) - 1e-6).all() and maps.max() <= 1.0


def test_heatmaps_of_real_poses_decode_within_half_a_pixel(mpii_poses: list) -> None:
    checked = 0
    for joints, annotated in mpii_poses:
        inside = annotated & (joints >= 0).all(axis=1) & (joints < R).all(axis=1)
        full = gaussian_heatmaps(joints, inside, R, 1, 3.0)
        low = gaussian_heatmaps(joints, inside, LOW, 8, 1.0)
        assert (np.abs(decode(full, 1)[inside] - joints[inside]) <= 0.5).all()
        assert (np.abs(decode(low, 8)[inside] - joints[inside]) <= 4.0).all()
        assert not full[~inside].any() and not low[~inside].any()
        checked += inside.sum()
    assert checked > 400


@pytest.mark.parametrize("stride, sigma", [(1, 2.0), (1, 5.0), (8, 1.0), (8, 1.5)])
def test_peak_is_one_and_width_is_sigma(stride: int, sigma: float) -> None:
    # A joint on the centre of output pixel (10, 12): peak exactly 1, exp(-1/2) one sigma away on either axis.
    joint = np.array([[10.5 * stride, 12.5 * stride]])
    maps = gaussian_heatmaps(joint, np.ones(1, bool), (R // stride, R // stride + 3), stride, sigma)
    assert maps.shape == (1, R // stride, R // stride + 3)
    assert maps[0, 12, 10] == 1.0 and maps.max() == 1.0
    rows, cols = np.mgrid[: maps.shape[1], : maps.shape[2]]
    d2 = (cols - 10) ** 2 + (rows - 12) ** 2
    np.testing.assert_allclose(maps[0], np.exp(-d2 / (2 * sigma**2)), rtol=1e-6, atol=1e-30)
    if float(sigma).is_integer():
        s = int(sigma)
        assert maps[0, 12, 10 + s] == pytest.approx(np.exp(-0.5), rel=1e-6)
        assert maps[0, 12 - s, 10] == pytest.approx(np.exp(-0.5), rel=1e-6)


def test_unannotated_and_nan_joints_give_empty_channels() -> None:
    joints = np.array([[40.0, 40.0], [np.nan, np.nan], [100.0, 20.0]])
    maps = gaussian_heatmaps(joints, np.array([True, True, False]), 32, 8, 1.0)
    assert np.isfinite(maps).all() and maps[0].max() > 0.5 and not maps[1].any() and not maps[2].any()
    pafs = paf_targets(joints, np.array([True, True, True]), ((0, 1), (0, 2)), 32, 8, 1.0)
    assert np.isfinite(pafs).all() and not pafs[:2].any() and pafs[2:].any()


def segment_distance(px: float, py: float, a: np.ndarray, b: np.ndarray) -> float:
    """Distance of a point to segment ab (plain Python, the reference for the vectorised encoder)."""
    d = b - a
    t = min(max(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / (d @ d), 0.0), 1.0)
    return float(np.hypot(px - a[0] - t * d[0], py - a[1] - t * d[1]))


@pytest.mark.parametrize("width", [1.0, 2.5])
def test_paf_is_the_unit_vector_on_a_band_of_the_given_width(width: float) -> None:
    # Two limbs on a 40 x 40 map at stride 8: one diagonal, one vertical; joints in input pixels.
    joints = np.array([[40.0, 60.0], [250.0, 200.0], [100.0, 300.0]])
    limbs = ((0, 1), (0, 2))
    pafs = paf_targets(joints, np.ones(3, bool), limbs, 40, 8, width)
    assert pafs.shape == (4, 40, 40) and pafs.dtype == np.float32
    for i, (a, b) in enumerate(limbs):
        pa, pb = joints[a] / 8, joints[b] / 8
        unit = (pb - pa) / np.linalg.norm(pb - pa)
        for row in range(40):
            for col in range(40):
                on = segment_distance(col + 0.5, row + 0.5, pa, pb) <= width
                expected = unit if on else np.zeros(2)
                np.testing.assert_allclose(pafs[2 * i : 2 * i + 2, row, col], expected, atol=1e-6)
        band = np.hypot(pafs[2 * i], pafs[2 * i + 1])
        np.testing.assert_allclose(band[band > 0], 1.0, atol=1e-6)
        # Covered area ~ the capsule's: 2 w length + pi w^2 (in output pixels).
        area = 2 * width * np.linalg.norm(pb - pa) + np.pi * width**2
        assert abs((band > 0).sum() - area) < 0.25 * area


def test_paf_channels_for_mpii16_and_other_skeletons(mpii_poses: list) -> None:
    joints, annotated = mpii_poses[0]
    assert len(PAF_LIMBS) == 14
    pafs = paf_targets(joints, annotated, PAF_LIMBS, LOW, 8, 1.0)
    assert pafs.shape == (28, LOW, LOW)
    for i, (a, b) in enumerate(PAF_LIMBS):
        if annotated[a] and annotated[b]:
            unit = (joints[b] - joints[a]) / np.linalg.norm(joints[b] - joints[a])
            on = np.hypot(pafs[2 * i], pafs[2 * i + 1]) > 0
            np.testing.assert_allclose(pafs[2 * i][on], unit[0], atol=1e-6)
            np.testing.assert_allclose(pafs[2 * i + 1][on], unit[1], atol=1e-6)
    coco = SKELETONS["coco17"]
    assert paf_targets(np.zeros((17, 2)), np.zeros(17, bool), coco.limbs, LOW, 8, 1.0).shape == (32, LOW, LOW)


def test_masks() -> None:
    annotated = np.ones(16, bool)
    annotated[[KEYPOINTS.index("left_wrist"), KEYPOINTS.index("pelvis")]] = False
    kp = keypoint_mask(annotated)
    assert kp.dtype == np.float32 and kp.tolist() == annotated.astype(float).tolist()
    limbs = limb_mask(annotated, PAF_LIMBS)
    assert limbs.shape == (14,) and limbs.dtype == np.float32
    names = [(KEYPOINTS[a], KEYPOINTS[b]) for a, b in PAF_LIMBS]
    zero = {names[i] for i in np.flatnonzero(limbs == 0)}
    assert zero == {("left_elbow", "left_wrist"), ("thorax", "pelvis"), ("pelvis", "right_hip"),
                    ("pelvis", "left_hip")}


@pytest.mark.parametrize("skeleton", ["mpii16", "coco17", "lsp14"])
def test_flipping_targets_equals_targets_of_flipped_joints(mpii_poses: list, skeleton: str) -> None:
    sk = SKELETONS[skeleton]
    limbs = PAF_LIMBS if skeleton == "mpii16" else sk.limbs
    rng = np.random.default_rng(0)
    for joints, annotated in mpii_poses[:10]:
        if skeleton != "mpii16":  # same real geometry, relabelled: shuffle the points into the other skeleton
            pick = rng.choice(16, size=len(sk), replace=len(sk) > 16)
            joints, annotated = joints[pick], annotated[pick]
        mirrored = np.column_stack([R - joints[:, 0], joints[:, 1]])[sk.flip_index]
        flipped_ann = annotated[sk.flip_index]
        for size, stride, sigma in ((R, 1, 3.0), (LOW, 8, 1.0)):
            np.testing.assert_allclose(
                flip_heatmaps(gaussian_heatmaps(joints, annotated, size, stride, sigma), sk.flip_index),
                gaussian_heatmaps(mirrored, flipped_ann, size, stride, sigma), atol=1e-6)
        np.testing.assert_allclose(
            flip_pafs(paf_targets(joints, annotated, limbs, LOW, 8, 1.0), limbs, sk.flip_index),
            paf_targets(mirrored, flipped_ann, limbs, LOW, 8, 1.0), atol=1e-6)
        np.testing.assert_array_equal(limb_mask(annotated, limbs)[paf_flip_index(limbs, sk.flip_index)[0]],
                                      limb_mask(flipped_ann, limbs))


def test_paf_flip_index_needs_a_mirror_closed_limb_list() -> None:
    source, sign = paf_flip_index(SKELETONS["coco17"].limbs, SKELETONS["coco17"].flip_index)
    shoulders = SKELETONS["coco17"].limbs.index((5, 6))
    assert source[shoulders] == shoulders and sign[shoulders] == -1  # left-right shoulder line runs backwards
    with pytest.raises(ValueError, match="no mirror"):
        paf_flip_index(((KEYPOINTS.index("thorax"), KEYPOINTS.index("left_shoulder")),), MPII.flip_index)


def test_sigma_schedule_decreases_linearly() -> None:
    assert sigma_at(0.0, 8.0, 3.0) == 8.0 and sigma_at(1.0, 8.0, 3.0) == 3.0
    assert sigma_at(0.5, 8.0, 3.0) == pytest.approx(5.5)
    assert sigma_at(-1.0, 8.0, 3.0) == 8.0 and sigma_at(2.0, 8.0, 3.0) == 3.0
    schedule = SigmaSchedule()
    values = [schedule.at(p) for p in np.linspace(0, 1, 11)]
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in zip(values, values[1:], strict=False))
    assert values[0] == (schedule.full_start, schedule.low_start) and values[-1] == (schedule.full_end,
                                                                                      schedule.low_end)
