"""The re-implemented authors' pipeline: resize, preprocessing, coordinate extraction, TFLite inference."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from efficientpose.codec.geometry import fit_letterbox
from efficientpose.codec.heatmap import decode_argmax
from efficientpose.errors import UsageError, WeightsError
from efficientpose.reference.authors import (
    TFLiteModel,
    authors_extract_coordinates,
    authors_predict,
    authors_preprocess,
    authors_rescale,
)
from efficientpose.skeleton import KEYPOINTS


def _load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def rt_model(weights_dir) -> TFLiteModel:
    path = weights_dir / "tflite" / "EfficientPoseRT.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    pytest.importorskip("ai_edge_litert")
    return TFLiteModel(path, num_threads=2)


def _reference_rescale(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """skimage-0.17 semantics from scipy primitives: uint8 anti-aliasing blur, then half-pixel bilinear."""
    h, w = image.shape[:2]
    fy, fx = h / out_h, w / out_w
    sigma = (max(0.0, (fy - 1) / 2), max(0.0, (fx - 1) / 2), 0.0)
    filtered = ndimage.gaussian_filter(image, sigma, mode="mirror")
    rows, cols = np.meshgrid(fy * (np.arange(out_h) + 0.5) - 0.5, fx * (np.arange(out_w) + 0.5) - 0.5,
                             indexing="ij")
    return np.stack([ndimage.map_coordinates(filtered[..., c] / 255.0, [rows, cols], order=1, mode="mirror")
                     for c in range(3)], axis=-1)


@pytest.mark.parametrize(("name", "scale", "shape"), [
    ("lsp/images/im0001.jpg", 1.6, (256, 112)),  # 70 x 160 enlarged
    ("lsp/images/im0014.jpg", 64 / 147, (35, 64)),  # 147 x 80 shrunk, rounding 34.8 -> 35
    ("MPII-sample.jpg", 0.25, (256, 256)),
])
def test_rescale_matches_scipy_reference(data_dir, name, scale, shape):
    image = _load(data_dir / name)
    out = authors_rescale(image, scale)
    assert out.shape == (*shape, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, _reference_rescale(image, *shape), atol=1e-12)


@pytest.mark.parametrize(("name", "scale"), [
    ("lsp/images/im0001.jpg", 1.6), ("lsp/images/im0014.jpg", 64 / 147), ("MPII-sample.jpg", 224 / 1024)])
def test_rescale_matches_scikit_image(data_dir, name, scale):
    """The real library: enlarging is identical; shrinking differs only by newer releases blurring the float image
    where 0.17 (the authors' pin) blurred the uint8 one (whose integer output loses about one grey level), i.e. by
    at most a couple of grey levels."""
    pytest.importorskip("skimage")
    from efficientpose.reference.authors import skimage_rescale

    image = _load(data_dir / name)
    ours, theirs = authors_rescale(image, scale), skimage_rescale()(image, scale)
    assert ours.shape == theirs.shape
    if scale > 1:
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
    else:
        assert np.abs(ours - theirs).max() <= 2.5 / 255
        assert np.abs(ours - theirs).mean() < 1.5 / 255


def test_rescale_agrees_with_opencv_away_from_borders(data_dir):
    cv2 = pytest.importorskip("cv2")
    small = _load(data_dir / "lsp/images/im0001.jpg")  # enlarging: both are half-pixel bilinear
    ours = authors_rescale(small, 1.6)
    theirs = cv2.resize(small, (112, 256), interpolation=cv2.INTER_LINEAR) / 255.0
    assert np.abs(ours - theirs)[2:-2, 2:-2].max() < 1.0 / 255
    big = _load(data_dir / "MPII-sample.jpg")  # shrinking: Gaussian anti-aliasing vs area averaging
    ours = authors_rescale(big, 224 / 1024)
    theirs = cv2.resize(big, (224, 224), interpolation=cv2.INTER_AREA) / 255.0
    assert np.abs(ours - theirs)[4:-4, 4:-4].mean() < 2.0 / 255


def test_preprocess_shape_range_and_padding(data_dir):
    square = authors_preprocess(_load(data_dir / "MPII-sample.jpg"), 224, "torch")
    assert square.shape == (224, 224, 3) and square.dtype == np.float32
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    assert (square >= (0 - mean) / std - 1e-6).all() and (square <= (1 - mean) / std + 1e-6).all()

    image = _load(data_dir / "lsp/images/im0001.jpg")  # 70 x 160 -> 112 x 256, pads 72 left / 72 right
    x = authors_preprocess(image, 256, "tf")
    assert x.shape == (256, 256, 3)
    np.testing.assert_array_equal(x[:, :72], -1.0)
    np.testing.assert_array_equal(x[:, 184:], -1.0)
    levels = (x + 1.0) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # uint8 grey levels underneath
    exact = 255 * _reference_rescale(image, 256, 112)
    content = np.round(levels[:, 72:184])
    # Truncation, not rounding (a last-bit difference can flip a value sitting exactly on a level).
    assert np.mean(content == np.floor(exact)) > 0.99 and np.abs(content - np.floor(exact)).max() <= 1
    assert np.mean(content == np.round(exact)) < 0.8
    torch_mode = authors_preprocess(image, 256, "torch")
    np.testing.assert_allclose(torch_mode[:, 0], np.broadcast_to(-mean / std, (256, 3)), atol=1e-6)
    with pytest.raises(UsageError):
        authors_preprocess(image, 256, "caffe")


def _extract_reference(heatmaps: np.ndarray, frame_h: int, frame_w: int, real_time: bool) -> np.ndarray:
    """Channel-by-channel transcription of the authors' documented rules (architecture.md §6.3)."""
    out_h, out_w, k = heatmaps.shape
    coords = []
    for i in range(k):
        conf = heatmaps[..., i] if real_time else ndimage.gaussian_filter(heatmaps[..., i], sigma=1.0)
        row, col = np.unravel_index(np.argmax(conf), conf.shape)
        if real_time and conf[row, col] < 0.3:
            x, y = -0.5, -0.5
        else:
            x, y = col + 0.5, row + 0.5
        x, y = x / out_w, y / out_h
        if frame_w > frame_h:
            pad = (frame_w - frame_h) / (2 * frame_w)
            y = (y - pad) / (1 - 2 * pad)
            y = -0.5 / out_h if y < 0 else min(y, 1.0)
        elif frame_w < frame_h:
            pad = (frame_h - frame_w) / (2 * frame_h)
            x = (x - pad) / (1 - 2 * pad)
            x = -0.5 / out_w if x < 0 else min(x, 1.0)
        coords.append((x, y))
    return np.array(coords)


@pytest.mark.parametrize(("frame_h", "frame_w"), [(100, 100), (100, 200), (300, 120)])
@pytest.mark.parametrize("real_time", [False, True])
def test_extract_coordinates_on_synthetic_maps(frame_h, frame_w, real_time):
    rng = np.random.default_rng(frame_h + frame_w)
    size, k = 64, 16
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    peaks = rng.uniform(0, size, size=(k, 2))
    amplitude = rng.uniform(0.1, 0.8, size=k)  # some below the real-time threshold
    maps = np.stack([a * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / 8.0) for (x, y), a in
                     zip(peaks, amplitude, strict=True)], axis=-1).astype(np.float32)
    maps += rng.normal(0, 0.01, size=maps.shape).astype(np.float32)
    out = authors_extract_coordinates(maps, frame_h, frame_w, real_time=real_time)
    assert out.shape == (k, 2)
    np.testing.assert_allclose(out, _extract_reference(maps, frame_h, frame_w, real_time), atol=1e-12)


def test_extract_coordinates_padding_quirks():
    maps = np.zeros((64, 64, 3), dtype=np.float32)
    maps[32, 10, 0] = 1.0  # inside the content of a 200 x 100 (landscape) frame
    maps[5, 20, 1] = 1.0  # in the top padding band
    maps[60, 30, 2] = 0.2  # in the bottom padding band, and below the real-time threshold
    out = authors_extract_coordinates(maps, 100, 200, real_time=False)
    # Padding fraction (200 - 100) / (2 * 200) = 0.25 of the height on each side.
    np.testing.assert_allclose(out[0], (10.5 / 64, (32.5 / 64 - 0.25) / 0.5))
    np.testing.assert_allclose(out[1], (20.5 / 64, -0.5 / 64))  # clamped below 0
    np.testing.assert_allclose(out[2], (30.5 / 64, 1.0))  # clamped above 1
    live = authors_extract_coordinates(maps, 100, 200, real_time=True)
    np.testing.assert_allclose(live[2], (-0.5 / 64, -0.5 / 64))  # missing


# Reference peaks for variant I on the sample at 256 x 256 (architecture.md §6.4), in KEYPOINTS order.
VARIANT_I_PEAKS_256 = np.array([
    (102, 12), (117, 46), (101, 52), (102, 85), (101, 117), (119, 53), (134, 55), (133, 92), (122, 119),
    (131, 112), (119, 114), (120, 159), (110, 201), (140, 109), (150, 166), (154, 214)], dtype=np.float64)


@pytest.mark.parametrize("real_time", [False, True])
def test_tflite_rt_on_the_sample_gives_a_plausible_skeleton(data_dir, rt_model, real_time):
    image = _load(data_dir / "MPII-sample.jpg")  # 1024 x 1024
    assert rt_model.resolution == 224
    coords = authors_predict(image, rt_model, "torch", real_time=real_time)
    assert coords.shape == (16, 2)
    assert (coords >= 0).all(), "every keypoint is found (confident) on the sample"
    at = {name: coords[i] for i, name in enumerate(KEYPOINTS)}
    for upper, lower in (("head_top", "upper_neck"), ("upper_neck", "pelvis"), ("pelvis", "left_knee"),
                         ("right_knee", "right_ankle"), ("left_knee", "left_ankle"), ("thorax", "pelvis")):
        assert at[upper][1] < at[lower][1]
    assert at["right_shoulder"][0] < at["left_shoulder"][0]  # frontal person: her right on the image's left
    # A different variant (I) and resize, so only a coarse agreement: within 8 px of 256 (~3 % of the image).
    np.testing.assert_allclose(coords / 4.0, VARIANT_I_PEAKS_256 + 0.5, atol=8.0)


def test_tflite_batches_match_single_images(data_dir, rt_model):
    images = [_load(data_dir / "MPII-sample.jpg"), _load(data_dir / "lsp/images/im0002.jpg")]
    batch = np.stack([authors_preprocess(im, 224, "torch") for im in images])
    together = rt_model(batch)
    assert together.shape == (2, 224, 224, 16) and together.dtype == np.float32
    for i in range(2):
        np.testing.assert_allclose(rt_model(batch[i:i + 1])[0], together[i], atol=1e-6)
    with pytest.raises(ValueError):
        rt_model(batch[:, :200])


@pytest.mark.parametrize("name", ["MPII-sample.jpg", "lsp/images/im0001.jpg", "lsp/images/im0002.jpg",
                                  "lsp/images/im0014.jpg"])
def test_our_decoding_convention_matches_theirs(data_dir, rt_model, name):
    """Same heatmaps: the authors' extraction and ours (blurred arg-max + letterbox map) agree."""
    image = _load(data_dir / name)
    h, w = image.shape[:2]
    heatmaps = rt_model(authors_preprocess(image, 224, "torch")[None])[0]
    theirs = authors_extract_coordinates(heatmaps, h, w) * (w, h)
    ours = fit_letterbox(w, h, 224).to_original(decode_argmax(heatmaps.transpose(2, 0, 1), blur=1.0))[:, :2]
    inside = ((theirs > 0) & (theirs < (w, h))).all(axis=1)  # their clamping rewrites the others
    assert inside.sum() >= 12
    # They un-pad with the continuous aspect ratio, we with the integer padding: < 0.6 input px apart.
    assert np.abs(theirs - ours)[inside].max() < 0.6 * max(w, h) / 224


def test_tflite_model_errors(tmp_path):
    with pytest.raises(WeightsError):
        TFLiteModel(tmp_path / "missing.tflite")
    pytest.importorskip("ai_edge_litert")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    with pytest.raises(WeightsError):
        TFLiteModel(broken)
