"""Augmentation: the warped image and the transformed joints agree, flips swap names, seeds reproduce."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from efficientpose.codec.geometry import Geometry, affine_matrix, transform_points, warp
from efficientpose.data.transforms import AugmentConfig, augment_detailed, person_frame, sample_geometry
from efficientpose.skeleton import LSP_KEYPOINTS, SKELETONS

LSP = SKELETONS["lsp14"]


def augment(*args, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, joints, annotated) of :func:`augment_detailed`."""
    result = augment_detailed(*args, **kwargs)
    return result.image, result.joints, result.annotated
R = 256
#: Geometry only: colour jitter off, so the warp is linear and painted dots can be isolated by subtraction.
GEOMETRY_ONLY = AugmentConfig(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, occlusion_prob=0.0,
                              rotation_prob=1.0)


def lsp_example(data_dir: Path, number: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB image and (14, 2) joints of LSP image ``number`` (MATLAB 1-based coordinates shifted by -0.5)."""
    image = cv2.imread(str(data_dir / "lsp" / "images" / f"im{number:04d}.jpg"))
    joints = scipy.io.loadmat(str(data_dir / "lsp" / "joints.mat"))["joints"][:2, :, number - 1].T - 0.5
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), joints.astype(np.float64)


def paint_blob(image: np.ndarray, x: float, y: float, sigma: float = 1.5, amplitude: float = 100.0) -> np.ndarray:
    """Add a Gaussian dot centred at continuous (x, y): pixel (i, j) is weighted at its centre (i + .5, j + .5)."""
    h, w = image.shape[:2]
    gx = np.exp(-((np.arange(w) + 0.5 - x) ** 2) / (2 * sigma**2))
    gy = np.exp(-((np.arange(h) + 0.5 - y) ** 2) / (2 * sigma**2))
    return image + amplitude * (gy[:, None] * gx[None, :])[..., None].astype(np.float32)


def centroid(diff: np.ndarray) -> np.ndarray:
    """Intensity centroid of a (H, W, C) difference image, in continuous pixel coordinates."""
    weight = np.clip(diff.sum(axis=2), 0.0, None).astype(np.float64)
    rows, cols = np.mgrid[: weight.shape[0], : weight.shape[1]]
    return np.array([(weight * (cols + 0.5)).sum(), (weight * (rows + 0.5)).sum()]) / weight.sum()


def test_warp_uses_the_pixel_centre_convention(data_dir: Path) -> None:
    # A pure 2x zoom of the top-left 48x48 pixels must equal OpenCV's resize, which maps pixel centres.
    image, _ = lsp_example(data_dir, 1)
    crop = image[:48, :48].astype(np.float32)
    matrix = affine_matrix(np.array([24.0, 24.0]), 48.0, 96)
    np.testing.assert_allclose(matrix, [[2, 0, 0], [0, 2, 0]], atol=1e-12)
    warped = warp(crop, matrix, 96)
    resized = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(warped[1:-1, 1:-1], resized[1:-1, 1:-1], atol=1e-3)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_painted_joints_land_on_the_transformed_joints(data_dir: Path, number: int) -> None:
    image, joints = lsp_example(data_dir, number)
    base = image.astype(np.float32) * 0.5  # headroom so painted dots never clip
    annotated = np.ones(len(joints), dtype=bool)
    h, w = image.shape[:2]
    inside_source = (joints[:, 0] > 8) & (joints[:, 0] < w - 8) & (joints[:, 1] > 8) & (joints[:, 1] < h - 8)
    checked, flips, rotations = 0, 0, 0
    for seed in range(8):
        reference = augment_detailed(base, joints, annotated, np.random.default_rng(seed), GEOMETRY_ONLY, R,
                                     LSP.flip_index)
        flips += reference.flipped
        rotations += abs(sample_geometry(np.random.default_rng(seed), GEOMETRY_ONLY).rotation) > 5
        for k in np.flatnonzero(inside_source):
            painted = paint_blob(base, *joints[k])
            out, _, _ = augment(painted, joints, annotated, np.random.default_rng(seed), GEOMETRY_ONLY, R,
                                LSP.flip_index)
            # After a flip the array is reordered: the dot of joint k sits at index flip_index[k].
            slot = LSP.flip_index[k] if reference.flipped else k
            expected = reference.joints[slot]
            if not ((expected > 12).all() and (expected < R - 12).all()):
                continue
            assert reference.annotated[slot]
            found = centroid(out - reference.image)
            np.testing.assert_allclose(found, expected, atol=0.1, err_msg=f"joint {k} seed {seed}")
            checked += 1
    assert checked >= 40 and flips >= 1 and flips < 8 and rotations >= 4


def test_flip_moves_left_wrist_to_the_right_wrist_slot(data_dir: Path) -> None:
    image, joints = lsp_example(data_dir, 1)
    base = image.astype(np.float32) * 0.5
    annotated = np.ones(len(joints), dtype=bool)
    annotated[LSP_KEYPOINTS.index("left_knee")] = False
    cfg = replace(GEOMETRY_ONLY, flip_prob=1.0, rotation=0.0, scale=0.0, shift=0.0)
    rng = np.random.default_rng(0)
    flipped = augment_detailed(base, joints, annotated, rng, cfg, R, LSP.flip_index)
    plain = augment_detailed(base, joints, annotated, None, replace(cfg, train=False), R, LSP.flip_index)
    assert flipped.flipped and not plain.flipped
    lw, rw = LSP_KEYPOINTS.index("left_wrist"), LSP_KEYPOINTS.index("right_wrist")
    painted = paint_blob(base, *joints[lw])
    out, out_joints, out_annotated = augment(painted, joints, annotated, np.random.default_rng(0), cfg, R,
                                             LSP.flip_index)
    np.testing.assert_allclose(centroid(out - flipped.image), out_joints[rw], atol=0.1)
    # The mirrored position of the original left wrist: x -> R - x about the centred crop.
    np.testing.assert_allclose(out_joints[rw], [R - plain.joints[lw, 0], plain.joints[lw, 1]], atol=1e-9)
    # The not-annotated flag travels with its joint to the mate's slot.
    assert not out_annotated[LSP_KEYPOINTS.index("right_knee")] and out_annotated[LSP_KEYPOINTS.index("left_knee")]


def test_same_seed_same_result_and_different_seeds_differ(data_dir: Path) -> None:
    image, joints = lsp_example(data_dir, 4)
    annotated = np.ones(len(joints), dtype=bool)
    cfg = AugmentConfig(occlusion_prob=0.5)
    a = augment(image, joints, annotated, np.random.default_rng(7), cfg, R, LSP.flip_index)
    b = augment(image, joints, annotated, np.random.default_rng(7), cfg, R, LSP.flip_index)
    c = augment(image, joints, annotated, np.random.default_rng(8), cfg, R, LSP.flip_index)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.allclose(a[1], c[1])


def test_eval_mode_is_a_deterministic_centred_crop(data_dir: Path) -> None:
    image, joints = lsp_example(data_dir, 5)
    annotated = np.ones(len(joints), dtype=bool)
    cfg = AugmentConfig(train=False)
    a = augment(image, joints, annotated, np.random.default_rng(1), cfg, R, LSP.flip_index)
    b = augment(image, joints, annotated, np.random.default_rng(2), cfg, R, LSP.flip_index)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    out = a[1]
    # The joints' box is centred and its longer side spans R / margin.
    np.testing.assert_allclose((out.min(axis=0) + out.max(axis=0)) / 2, [R / 2, R / 2], atol=1e-9)
    assert (out.max(axis=0) - out.min(axis=0)).max() == pytest.approx(R / cfg.margin)
    assert a[2].all()


def test_mpii_style_centre_and_scale_define_the_crop() -> None:
    cfg = AugmentConfig(train=False)
    joints = np.array([[100.0, 100.0], [140.0, 300.0]])
    center, side = person_frame(joints, np.ones(2, bool), (640, 480), cfg, center=np.array([120.0, 200.0]),
                                scale=1.0)
    assert side == pytest.approx(cfg.margin * 200.0)
    np.testing.assert_allclose(center, [120.0, 200.0])
    # Nothing annotated and no centre: the whole image, letterboxed.
    center, side = person_frame(joints, np.zeros(2, bool), (640, 480), cfg)
    np.testing.assert_allclose(center, [320.0, 240.0])
    assert side == 640.0
    out = transform_points(np.array([[0.0, 0.0], [640.0, 480.0]]), affine_matrix(center, side, 256))
    np.testing.assert_allclose(out, [[0.0, 32.0], [256.0, 224.0]])


def test_joints_leaving_the_frame_become_not_annotated(data_dir: Path) -> None:
    image, joints = lsp_example(data_dir, 1)
    annotated = np.ones(len(joints), dtype=bool)
    head = joints[LSP_KEYPOINTS.index("head_top")]
    _, out, ann = augment(image, joints, annotated, None, AugmentConfig(train=False), R, LSP.flip_index,
                          center=head, scale=0.2)
    inside = (out >= 0).all(axis=1) & (out < R).all(axis=1)
    np.testing.assert_array_equal(ann, inside)
    assert ann[LSP_KEYPOINTS.index("head_top")] and not ann[LSP_KEYPOINTS.index("right_ankle")]


def test_colour_jitter_keeps_the_zero_border_and_scales_brightness(data_dir: Path) -> None:
    image, joints = lsp_example(data_dir, 1)
    annotated = np.ones(len(joints), dtype=bool)
    only_brightness = AugmentConfig(scale=0.0, rotation=0.0, shift=0.0, flip_prob=0.0, brightness=0.3,
                                    contrast=0.0, saturation=0.0, hue=0.0)
    plain, _, _ = augment(image, joints, annotated, None, replace(only_brightness, train=False), R, LSP.flip_index)
    bright, _, _ = augment(image, joints, annotated, np.random.default_rng(3), only_brightness, R, LSP.flip_index)
    border = (plain == 0).all(axis=2)
    assert border.mean() > 0.3  # the tall LSP crop is letterboxed left and right
    assert (bright[border] == 0).all()
    lit = plain.max(axis=2) > 20
    ratio = bright[lit] / plain[lit]
    unclipped = bright[lit] < 254.5
    assert ratio[unclipped].std() < 0.01 and abs(ratio[unclipped].mean() - 1.0) > 0.01
    full = AugmentConfig(scale=0.0, rotation=0.0, shift=0.0, flip_prob=0.0)
    jittered, _, _ = augment(image, joints, annotated, np.random.default_rng(3), full, R, LSP.flip_index)
    assert (jittered[border] == 0).all() and jittered.min() >= 0 and jittered.max() <= 255
    assert np.abs(jittered - plain)[~border].mean() > 1.0


def test_occlusion_pastes_rectangles_only_when_enabled(data_dir: Path) -> None:
    image, joints = lsp_example(data_dir, 2)
    annotated = np.ones(len(joints), dtype=bool)
    off = replace(GEOMETRY_ONLY, occlusion_prob=0.0)
    on = replace(GEOMETRY_ONLY, occlusion_prob=1.0, occlusion_max=1)
    a, _, _ = augment(image, joints, annotated, np.random.default_rng(5), off, R, LSP.flip_index)
    b, jb, _ = augment(image, joints, annotated, np.random.default_rng(5), on, R, LSP.flip_index)
    changed = np.abs(a - b).max(axis=2) > 0
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    area = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    assert 0.01 * R * R <= area <= 0.09 * R * R + 2 * R  # one rectangle of side 10-30 % of R
    assert changed.sum() > 0.5 * area
    np.testing.assert_array_equal(jb, augment(image, joints, annotated, np.random.default_rng(5), off, R,
                                              LSP.flip_index)[1])


def test_geometry_draws_stay_in_their_ranges() -> None:
    cfg = AugmentConfig()
    draws = [sample_geometry(np.random.default_rng(s), cfg) for s in range(300)]
    scales = np.array([g.scale for g in draws])
    rotations = np.array([g.rotation for g in draws])
    shifts = np.array([g.shift for g in draws])
    flips = np.array([g.flip for g in draws])
    assert scales.min() >= 0.75 and scales.max() <= 1.25 and np.ptp(scales) > 0.4
    assert np.abs(rotations).max() <= 30 and 0.45 < (rotations != 0).mean() < 0.75
    assert np.abs(shifts).max() <= 0.1 and 0.35 < flips.mean() < 0.65
    assert sample_geometry(np.random.default_rng(0), AugmentConfig(train=False)) == Geometry()
