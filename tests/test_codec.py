"""The codec on synthetic data (no ../shared): the one resampling rule, the person-crop policy, the way back to the
original pixels, the numpy x8 upsampling against the network's own layers, and encode -> decode round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from efficientpose.codec.geometry import (
    Geometry,
    affine_matrix,
    fit_letterbox,
    letterbox,
    letterbox_crop,
    person_square,
    square_box,
    transform_points,
    warp,
    whole_image_square,
)
from efficientpose.codec.heatmap import HeatmapCodec, upsample_x8
from efficientpose.codec.normalize import TF_MODE, TORCH_MODE, to_input
from efficientpose.models.layers import BilinearUpsample


def _reference_letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """The letterbox as written before the codec: one resize (area when shrinking), then a centred paste."""
    h, w = image.shape[:2]
    scale = size / max(w, h)
    nw = size if w >= h else min(size, max(1, int(np.floor(w * scale + 0.5))))
    nh = size if h >= w else min(size, max(1, int(np.floor(h * scale + 0.5))))
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if nw < w or nh < h else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.uint8)
    out[(size - nh) // 2:(size - nh) // 2 + nh, (size - nw) // 2:(size - nw) // 2 + nw] = image
    return out


@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (100, 57), (30, 20), (224, 224), (223, 225), (1, 300)])
def test_letterbox_through_warp_is_exactly_the_resize_and_paste(shape: tuple[int, int]) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    boxed, geometry = letterbox(image, 224)
    np.testing.assert_array_equal(boxed, _reference_letterbox(image, 224))
    np.testing.assert_array_equal(warp(image, geometry.matrix, 224), boxed)


def _dot(shape: tuple[int, int], x: float, y: float, sigma: float) -> np.ndarray:
    """A float32 Gaussian dot centred at continuous (x, y) (pixel centres at +0.5), three channels."""
    h, w = shape
    g = np.exp(-((np.arange(w) + 0.5 - x) ** 2)[None, :] / (2 * sigma**2)
               - ((np.arange(h) + 0.5 - y) ** 2)[:, None] / (2 * sigma**2))
    return np.repeat((200 * g).astype(np.float32)[..., None], 3, axis=2)


def _centroid(image: np.ndarray) -> np.ndarray:
    weight = image[..., 0].astype(np.float64)
    rows, cols = np.mgrid[: weight.shape[0], : weight.shape[1]]
    return np.array([(weight * (cols + 0.5)).sum(), (weight * (rows + 0.5)).sum()]) / weight.sum()


@pytest.mark.parametrize("rotation, side", [(0.0, 900.0), (25.0, 900.0), (-40.0, 400.0), (10.0, 150.0)])
def test_a_dot_lands_where_the_affine_says_when_shrinking_rotating_or_enlarging(rotation: float, side: float) -> None:
    source = _dot((600, 800), 437.3, 251.8, 12.0)
    matrix = affine_matrix(np.array([420.0, 260.0]), side, 224, Geometry(rotation=rotation, flip=rotation < 0))
    expected = transform_points(np.array([[437.3, 251.8]]), matrix)[0]
    np.testing.assert_allclose(_centroid(warp(source, matrix, 224)), expected, atol=0.05)


def test_shrinking_is_area_averaged_not_aliased() -> None:
    """A one-pixel checkerboard shrunk 4x is flat grey (area), where plain bilinear sampling keeps stripes."""
    board = ((np.indices((896, 896)).sum(axis=0) % 2) * 255).astype(np.uint8)
    board = np.repeat(board[..., None], 3, axis=2)
    matrix = affine_matrix(np.array([448.0, 448.0]), 896.0, 224, Geometry(rotation=5.0))
    inner = warp(board, matrix, 224)[40:-40, 40:-40].astype(np.float64)
    assert abs(inner.mean() - 127.5) < 2 and inner.std() < 3


def test_letterbox_crop_maps_back_to_the_whole_image() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(image, (400, 300), 3, (255, 255, 255), -1)  # centre of pixel (400, 300) is (400.5, 300.5)
    boxed, geometry = letterbox_crop(image, 224, (350.0, 250.0, 470.0, 370.0))
    assert (geometry.crop_x, geometry.crop_y) == (350, 250)
    found = _centroid(boxed.astype(np.float32))
    np.testing.assert_allclose(geometry.to_original(found), [400.5, 300.5], atol=0.05)
    point = np.array([[123.25, 321.5, 0.7]])
    np.testing.assert_allclose(geometry.to_original(geometry.to_input(point)), point, atol=1e-9)
    np.testing.assert_allclose(transform_points(point[:, :2], geometry.matrix), geometry.to_input(point)[:, :2])
    whole = fit_letterbox(640, 480, 224)
    np.testing.assert_allclose(whole.to_original(np.array([[112.0, 112.0]])), [[320.0, 240.0]], atol=1e-9)


def test_person_square_policy_order() -> None:
    joints = np.array([[10.0, 20.0], [50.0, 120.0], [np.nan, 5.0]])
    annotated = np.array([True, True, True])
    centre, side = person_square((640, 480), box=(100, 100, 140, 300), joints=joints, annotated=annotated)
    np.testing.assert_allclose(centre, [120, 200])
    assert side == pytest.approx(250.0)  # the box wins, margin 1.25 on its longer side
    centre, side = person_square((640, 480), center=(5.0, 6.0), scale=2.0, joints=joints)
    assert side == pytest.approx(500.0) and centre.tolist() == [5.0, 6.0]  # MPII: 200 px x scale x 1.25
    centre, side = person_square((640, 480), joints=joints, annotated=annotated)
    np.testing.assert_allclose(centre, [30, 70])
    assert side == pytest.approx(125.0)  # non-finite joints are ignored
    assert person_square((640, 480)) is None  # nothing locates a person: the caller takes the whole image
    assert person_square((640, 480), joints=joints[:1], annotated=[True])[1] == 16.0  # the minimum side
    assert square_box(*whole_image_square((640, 480))) == (0.0, -80.0, 640.0, 560.0)


def test_upsample_x8_matches_the_networks_transposed_convolutions() -> None:
    maps = np.random.default_rng(0).random((2, 16, 28, 28), dtype=np.float32)
    layers = torch.nn.Sequential(*(BilinearUpsample(16) for _ in range(3)))
    with torch.inference_mode():
        expected = layers(torch.from_numpy(maps)).numpy()
    got = upsample_x8(maps)
    assert got.shape == (2, 16, 224, 224) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("size", [224, 256, 368])
def test_encode_then_decode_returns_the_joints(size: int) -> None:
    codec = HeatmapCodec(size)
    rng = np.random.default_rng(size)
    joints = rng.uniform(20, size - 20, (16, 2))
    low = codec.encode(joints, np.ones(16, bool), sigma=1.5)[None]
    assert low.shape == (1, 16, codec.low_size, codec.low_size)
    refined = codec.decode(low, "refined")[0]
    np.testing.assert_allclose(refined[:, :2], joints, atol=0.35)  # sub-pixel at R/8: DARK on a true Gaussian
    assert (refined[:, 2] > 0.5).all()
    argmax = codec.decode(low, "argmax")[0]
    assert np.abs(argmax[:, :2] - joints).max() <= 2.0  # the upsampled map's pixel centre
    full = codec.encode(joints, np.ones(16, bool), sigma=3.0, stride=1)[None]
    np.testing.assert_allclose(codec.decode(full, "argmax")[0, :, :2], joints, atol=0.71)  # full-size maps as is
    with pytest.raises(ValueError, match="unknown decoder"):
        codec.decode(low, "mean")


def test_float_images_normalise_like_uint8() -> None:
    batch = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    for norm in (TORCH_MODE, TF_MODE):
        np.testing.assert_array_equal(to_input(batch.astype(np.float32), norm), to_input(batch, norm))
        expected = (batch / 255.0 - np.array(norm.mean)) / np.array(norm.std)
        np.testing.assert_allclose(to_input(batch, norm), expected.transpose(0, 3, 1, 2), atol=1e-5)


def test_box_iou_takes_integer_boxes() -> None:
    from efficientpose.codec.geometry import box_iou

    iou = box_iou(np.array([0, 0, 10, 10]), np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]]))
    np.testing.assert_allclose(iou, [50 / 150, 0.0, 0.0])
