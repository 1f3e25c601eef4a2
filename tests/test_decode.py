"""Decoders on synthetic heatmaps with known sub-pixel peaks, edge cases, and flip merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from efficientpose.codec.heatmap import decode_argmax, decode_refined, flip_merge, gaussian_blur
from efficientpose.skeleton import KEYPOINTS, SKELETONS


def gaussian_map(x: float, y: float, size: tuple[int, int] = (96, 96), sigma: float = 2.0,
                 amplitude: float = 1.0) -> np.ndarray:
    """A Gaussian centred at continuous (x, y), sampled at pixel centres (i + 0.5, j + 0.5)."""
    h, w = size
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    return (amplitude * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))).astype(np.float32)


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_refined_recovers_subpixel_peak(sigma):
    heat = gaussian_map(37.3, 51.8, sigma=sigma)[None]
    refined = decode_refined(heat)
    assert refined.shape == (1, 3)
    assert np.abs(refined[0, :2] - (37.3, 51.8)).max() < 0.1
    argmax = decode_argmax(heat)
    np.testing.assert_allclose(argmax[0, :2], (37.5, 51.5))  # the pixel containing the peak, at its centre
    assert np.abs(argmax[0, :2] - (37.3, 51.8)).max() <= 0.5


def test_refined_without_blur_is_exact_for_gaussians():
    heat = gaussian_map(20.9, 70.05, sigma=2.5)[None]
    np.testing.assert_allclose(decode_refined(heat, blur=0.0)[0, :2], (20.9, 70.05), atol=1e-4)


def test_batch_is_vectorised_and_matches_single_maps():
    rng = np.random.default_rng(1)
    centres = rng.uniform(4, 92, size=(3, 16, 2))
    maps = np.stack([[gaussian_map(x, y, amplitude=0.6) for x, y in person] for person in centres])
    out = decode_refined(maps)
    assert out.shape == (3, 16, 3)
    assert np.abs(out[..., :2] - centres).max() < 0.1
    for n in range(3):
        np.testing.assert_array_equal(decode_refined(maps[n]), out[n])  # (K, H, W) -> (K, 3)
    np.testing.assert_allclose(decode_refined(torch.from_numpy(maps)), out)
    assert np.abs(decode_argmax(maps)[..., :2] - centres).max() <= 0.5


def test_scores_are_clipped_raw_peaks():
    maps = np.stack([gaussian_map(30.5, 40.5, amplitude=a) for a in (0.62, 1.7, -0.2)])
    for decoder in (decode_argmax, decode_refined):
        np.testing.assert_allclose(decoder(maps)[:, 2], [0.62, 1.0, 0.0], atol=1e-6)


def test_argmax_blur_is_the_authors_scipy_blur():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(2, 16, 40, 56)).astype(np.float32)
    np.testing.assert_allclose(gaussian_blur(maps, 1.0), ndimage.gaussian_filter(maps, (0, 0, 1, 1)), atol=1e-5)
    smooth = ndimage.gaussian_filter(maps, (0, 0, 1, 1))
    flat = smooth.reshape(32, -1).argmax(axis=1)
    expected = np.stack([flat % 56 + 0.5, flat // 56 + 0.5], axis=1).reshape(2, 16, 2)
    out = decode_argmax(maps, blur=1.0)
    np.testing.assert_array_equal(out[..., :2], expected)
    raw_at_peak = maps.reshape(32, -1)[np.arange(32), flat].reshape(2, 16)
    np.testing.assert_allclose(out[..., 2], np.clip(raw_at_peak, 0, 1))


def test_argmax_takes_the_row_major_first_maximum():
    heat = np.zeros((1, 10, 12), dtype=np.float32)
    heat[0, 7, 2] = heat[0, 3, 9] = heat[0, 3, 10] = 0.8
    np.testing.assert_allclose(decode_argmax(heat)[0], (9.5, 3.5, 0.8), atol=1e-7)


@pytest.mark.parametrize(("x", "y"), [(0.2, 30.3), (95.9, 30.3), (30.3, 0.4), (30.3, 95.7), (0.3, 0.3), (95.6, 95.9)])
def test_border_peaks_fall_back_per_axis(x, y):
    out = decode_refined(gaussian_map(x, y, sigma=1.5)[None])[0]
    assert np.isfinite(out).all()
    argmax = decode_argmax(gaussian_map(x, y, sigma=1.5)[None], blur=1.0)[0]
    for axis, value in ((0, x), (1, y)):
        if value < 1 or value > 95:  # peak in the outermost pixel: no refinement along this axis
            assert out[axis] == argmax[axis]
        else:
            assert abs(out[axis] - value) < 0.1


def test_flat_zero_negative_and_noisy_maps_never_give_nan():
    rng = np.random.default_rng(3)
    maps = np.stack([
        np.zeros((32, 32)), -np.ones((32, 32)), np.full((32, 32), 0.4),
        -np.abs(rng.normal(size=(32, 32))), rng.normal(size=(32, 32)), np.full((32, 32), 1e-12),
    ]).astype(np.float32)
    for decoder in (decode_argmax, decode_refined):
        out = decoder(maps)
        assert np.isfinite(out).all()
        assert (out[:, :2] >= 0).all() and (out[:, :2] <= 32).all()
        assert ((out[:, 2] >= 0) & (out[:, 2] <= 1)).all()
    refined = decode_refined(maps)
    np.testing.assert_allclose(refined[:3, :2], 0.5)  # flat maps: first pixel, no refinement
    np.testing.assert_allclose(refined[:3, 2], [0.0, 0.0, 0.4], atol=1e-7)


def test_stride_decodes_low_resolution_maps_in_input_pixels():
    # A keypoint at input (100.4, 60.2) seen by a 1/8-resolution heatmap (32 x 32 for a 256 input).
    heat = gaussian_map(100.4 / 8, 60.2 / 8, size=(32, 32), sigma=1.0)[None]
    np.testing.assert_allclose(decode_refined(heat, stride=8)[0, :2], (100.4, 60.2), atol=0.05)
    assert np.abs(decode_argmax(heat, stride=8)[0, :2] - (100.4, 60.2)).max() <= 4.0


def _person_maps(points: dict[str, tuple[float, float]], size: tuple[int, int]) -> np.ndarray:
    maps = np.zeros((len(KEYPOINTS), *size), dtype=np.float32)
    for name, (x, y) in points.items():
        maps[KEYPOINTS.index(name)] = gaussian_map(x, y, size=size, sigma=2.0, amplitude=0.7)
    return maps


def test_flip_merge_is_exact_in_the_pixel_convention():
    h, w = 64, 80
    person = {"left_wrist": (21.37, 40.6), "right_wrist": (55.81, 12.2), "head_top": (40.25, 5.9)}
    original = _person_maps(person, (h, w))
    # In the mirrored image every point moves to x -> W - x and the network names it with the other side.
    mirrored = {name.replace("left", "tmp").replace("right", "left").replace("tmp", "right"): (w - x, y)
                for name, (x, y) in person.items()}
    flipped = _person_maps(mirrored, (h, w))
    flip_index = SKELETONS["mpii16"].flip_index
    merged = flip_merge(original[None], flipped[None], flip_index)
    np.testing.assert_allclose(merged[0], original, atol=1e-7)
    merged_t = flip_merge(torch.from_numpy(original[None]), torch.from_numpy(flipped[None]), flip_index)
    assert isinstance(merged_t, torch.Tensor)
    np.testing.assert_allclose(merged_t.numpy(), merged, atol=1e-7)
    out = decode_refined(merged)[0]
    for name, xy in person.items():
        assert np.abs(out[KEYPOINTS.index(name), :2] - xy).max() < 0.1


def test_flip_merge_averages_with_an_image_flip():
    # Heatmaps that follow the image exactly (an equivariant "network") are unchanged by the merge.
    rng = np.random.default_rng(4)
    image_like = rng.random((2, 3, 20, 30)).astype(np.float32)
    identity = np.arange(3)
    np.testing.assert_allclose(flip_merge(image_like, image_like[..., ::-1], identity), image_like, atol=1e-7)
    other = rng.random((2, 3, 20, 30)).astype(np.float32)
    np.testing.assert_allclose(flip_merge(image_like, other, identity), (image_like + other[..., ::-1]) / 2)
