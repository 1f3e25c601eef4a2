"""Letterbox geometry, pixel placement on real images, and normalisation to tensors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from efficientpose.codec.geometry import Letterbox, fit_letterbox, letterbox
from efficientpose.codec.normalize import TF_MODE, TORCH_MODE, to_input


def _load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_normalization_matches_keras_modes():
    x = np.arange(256, dtype=np.float64)
    for mode, expected in (
        (TF_MODE, np.stack([x / 127.5 - 1.0] * 3, axis=1)),
        (TORCH_MODE, np.stack([(x / 255.0 - m) / s for m, s in
                               zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True)], axis=1)),
    ):
        scale, bias = mode.scale_bias()
        np.testing.assert_allclose(x[:, None] * scale + bias, expected, atol=1e-12)


def test_to_input_layout_and_values():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(2, 24, 24, 3), dtype=np.uint8)
    out = to_input(batch, TORCH_MODE)
    assert out.dtype == np.float32 and out.shape == (2, 3, 24, 24) and out.flags.c_contiguous
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = ((batch / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, expected, atol=2e-6)
    single = to_input(batch[1], TF_MODE)
    assert single.shape == (1, 3, 24, 24)
    np.testing.assert_allclose(single[0], batch[1].transpose(2, 0, 1) / 127.5 - 1.0, atol=2e-6)
    with pytest.raises(ValueError):
        to_input(batch.astype(np.float64), TF_MODE)


@given(st.integers(1, 3000), st.integers(1, 3000), st.sampled_from([224, 256, 368, 480, 600, 33]),
       st.floats(-50, 50), st.floats(-50, 50))
def test_letterbox_maps_round_trip(width, height, size, fx, fy):
    box = fit_letterbox(width, height, size)
    assert max(box.new_width, box.new_height) == size
    assert 1 <= min(box.new_width, box.new_height) <= size
    # The image rectangle lands exactly on the resized region.
    corners = np.array([[0.0, 0.0], [width, height]])
    np.testing.assert_allclose(box.to_input(corners),
                               [[box.pad_x, box.pad_y], [box.pad_x + box.new_width, box.pad_y + box.new_height]],
                               atol=1e-9)
    point = np.array([width * 0.5 + fx, height * 0.5 + fy, 0.7])  # extra columns (scores) ride along
    there = box.to_input(point)
    assert there[2] == 0.7
    np.testing.assert_allclose(box.to_original(there), point, atol=1e-9)
    np.testing.assert_allclose(box.to_input(box.to_original(there)), there, atol=1e-9)


@pytest.mark.parametrize(("width", "height", "size"), [(100, 55, 64), (55, 100, 64), (10, 4, 8), (3, 10, 7)])
def test_odd_leftover_goes_right_and_bottom(width, height, size):
    image = np.full((height, width, 3), 200, dtype=np.uint8)
    out, box = letterbox(image, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    content = out[..., 0] > 0
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    before_y, after_y = rows[0], size - 1 - rows[-1]
    before_x, after_x = cols[0], size - 1 - cols[-1]
    assert (before_x, before_y) == (box.pad_x, box.pad_y)
    assert after_x - before_x in (0, 1) and after_y - before_y in (0, 1)
    short = min(width, height) * size / max(width, height)
    assert (size - int(short + 0.5)) % 2 == 1  # each case leaves an odd number of padding pixels
    assert (after_x - before_x) + (after_y - before_y) == 1  # ... and the odd one is on the right/bottom


def _dot_centroid(image: np.ndarray, x0: int, y0: int, side: int, size: int) -> tuple[np.ndarray, Letterbox]:
    """Paint a side x side block red and blue; the centroid of the letterboxed difference locates it."""
    red, blue = image.copy(), image.copy()
    red[y0:y0 + side, x0:x0 + side] = (255, 0, 0)
    blue[y0:y0 + side, x0:x0 + side] = (0, 0, 255)
    out_red, box = letterbox(red, size)
    out_blue, _ = letterbox(blue, size)
    weight = out_red[..., 0].astype(np.float64) - out_blue[..., 0].astype(np.float64)
    rows, cols = np.mgrid[0:size, 0:size] + 0.5  # pixel centres in the continuous convention
    return np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum(), box


@pytest.mark.parametrize(("name", "size"), [
    ("MPII-sample.jpg", 224),  # square, shrinking x 0.22 (INTER_AREA)
    ("lsp/images/im0001.jpg", 256),  # portrait 70 x 160, enlarging (INTER_LINEAR)
    ("lsp/images/im0014.jpg", 64),  # landscape 147 x 80, shrinking
    ("lsp/images/im0007.jpg", 368),  # nearly square 147 x 149, enlarging
])
def test_painted_dot_lands_where_predicted(data_dir, name, size):
    image = _load(data_dir / name)
    h, w = image.shape[:2]
    side = max(4, int(np.ceil(6 * max(h, w) / size)))  # at least ~6 input pixels wide
    for fx, fy in ((0.3, 0.6), (0.71, 0.25)):
        x0, y0 = int(fx * w), int(fy * h)
        found, box = _dot_centroid(image, x0, y0, side, size)
        expected = box.to_input(np.array([x0 + side / 2, y0 + side / 2]))
        np.testing.assert_allclose(found, expected, atol=0.1)


def test_letterbox_of_fitting_image_copies_pixels(data_dir):
    image = _load(data_dir / "lsp/images/im0001.jpg")  # 70 x 160
    tall = np.ascontiguousarray(image[:, :, :])
    out, box = letterbox(tall, 160)
    assert (box.new_width, box.new_height) == (70, 160)
    np.testing.assert_array_equal(out[:, box.pad_x:box.pad_x + 70], tall)
    assert not out[:, :box.pad_x].any() and not out[:, box.pad_x + 70:].any()


def test_letterbox_rejects_non_rgb_uint8():
    with pytest.raises(ValueError):
        letterbox(np.zeros((10, 10), dtype=np.uint8), 8)
    with pytest.raises(ValueError):
        letterbox(np.zeros((10, 10, 3), dtype=np.float32), 8)
