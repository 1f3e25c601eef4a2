"""The authors' own inference pipeline, re-implemented for comparisons and benchmarks (not the product path).

Mirrors ``utils/helpers.py`` and ``track.py`` of ``daniegr/EfficientPose`` (architecture.md §6): scikit-image
0.17 ``rescale`` (their pinned version; re-done here with scipy/numpy since skimage is not a dependency),
centred zero padding, ``uint8(255 * v)`` truncation, Keras 'torch'/'tf' normalisation, the TFLite model's
last output, and ``extract_coordinates`` with its normalisation and clamping quirks. Coordinates agree with
theirs to float rounding; a uint8 truncation can rarely differ by one grey level (their resize estimates its
affine transform by least squares, whose last-bit noise is not reproduced).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from efficientpose.errors import UsageError, WeightsError

__all__ = ["authors_rescale", "skimage_rescale", "authors_preprocess", "authors_extract_coordinates", "TFLiteModel",
           "authors_predict"]

_MODES = ("torch", "tf")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
#: The authors' real-time confidence threshold on the raw heatmap peak.
REAL_TIME_CONFIDENCE = 0.3


def _linear_axis(n_in: int, n_out: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lo, hi) and weight of hi for half-pixel linear resampling with mirror borders."""
    coord = factor * np.arange(n_out, dtype=np.float64) + (0.5 * factor - 0.5)  # skimage's affine form
    lo = np.floor(coord)
    frac = coord - lo
    lo = lo.astype(np.int64)
    hi = np.ceil(coord).astype(np.int64)

    def mirror(i: np.ndarray) -> np.ndarray:  # numpy 'reflect' (no edge repeat) == skimage mode 'reflect'
        if n_in == 1:
            return np.zeros_like(i)
        period = 2 * (n_in - 1)
        i = np.abs(i) % period
        return np.where(i >= n_in, period - i, i)

    return mirror(lo), mirror(hi), frac


def authors_rescale(image: np.ndarray, scale: float) -> np.ndarray:
    """skimage 0.17 ``rescale(image, scale, multichannel=True)`` of a uint8 (H, W, C) image -> float64 [0, 1].

    Output size ``round(scale * size)``; anti-aliasing Gaussian (sigma = max(0, (in/out - 1) / 2) per axis,
    mirror borders) applied to the uint8 image as 0.17 did; then bilinear half-pixel resampling with
    mirror borders, evaluated separably in the same operation order as skimage's ``_warp_fast``.
    """
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected a uint8 (H, W, C) image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    out_h, out_w = (max(1, int(v)) for v in np.round(scale * np.array([h, w], dtype=np.float64)))
    factors = np.array([h / out_h, w / out_w, 1.0])
    sigma = np.maximum(0.0, (factors - 1.0) / 2.0)
    filtered = ndimage.gaussian_filter(image, sigma, mode="mirror", cval=0) if np.any(sigma > 0) else image
    src = filtered * (1.0 / 255.0)  # skimage img_as_float of uint8
    r0, r1, fr = _linear_axis(h, out_h, factors[0])
    c0, c1, fc = _linear_axis(w, out_w, factors[1])
    fc = fc[None, :, None]
    fr = fr[:, None, None]
    top = (1.0 - fc) * src[r0][:, c0] + fc * src[r0][:, c1]
    bottom = (1.0 - fc) * src[r1][:, c0] + fc * src[r1][:, c1]
    out = (1.0 - fr) * top + fr * bottom
    return np.clip(out, src.min(), src.max())


def skimage_rescale() -> Callable[[np.ndarray, float], np.ndarray] | None:
    """scikit-image's ``rescale`` (multichannel) if it is installed, else None. Newer releases than the authors'
    0.17 blur before, not after, the uint8 conversion when shrinking (outputs differ by <= 2 grey levels)."""
    try:
        from skimage.transform import rescale
    except ImportError:
        return None
    return lambda image, scale: rescale(image, scale, channel_axis=-1)


def authors_preprocess(image: np.ndarray, resolution: int, mode: str,
                       rescale: Callable[[np.ndarray, float], np.ndarray] = authors_rescale) -> np.ndarray:
    """``helpers.preprocess`` for one RGB uint8 image -> (R, R, 3) float32 network input (NHWC without N).

    ``mode`` is Keras' normalisation: 'torch' (non-Lite models) or 'tf' (Lite models). ``rescale`` may be
    scikit-image's own (``skimage_rescale``), which the benchmark times as the authors ran it.
    """
    if mode not in _MODES:
        raise UsageError(f"normalisation mode must be one of {_MODES}, got {mode!r}")
    h, w = image.shape[:2]
    scale = resolution / w if 1.0 > h / w else resolution / h  # their ``resize``: fit R x R
    resized = rescale(image, scale)
    rh, rw = resized.shape[:2]
    top, left = int((resolution - rh) / 2), int((resolution - rw) / 2)
    padded = np.zeros((resolution, resolution, resized.shape[2]), dtype=np.float64)
    padded[top:top + rh, left:left + rw] = resized
    x = np.uint8(255 * padded).astype(np.float32)  # truncation, then Keras casts to floatx
    if mode == "tf":
        x /= np.float32(127.5)
        x -= np.float32(1.0)
        return x
    x /= np.float32(255.0)
    x -= np.asarray(_MEAN, dtype=np.float32)
    x /= np.asarray(_STD, dtype=np.float32)
    return x


def authors_extract_coordinates(heatmaps: np.ndarray, frame_height: int, frame_width: int,
                                real_time: bool = False) -> np.ndarray:
    """``helpers.extract_coordinates`` on one (H, W, K) output -> (K, 2) normalised x, y (fractions of the frame).

    Non-real-time: Gaussian blur sigma 1 per channel, arg-max, +0.5, / output size, undo the centred padding
    of a non-square frame (values below 0 become -0.5 / output size, above 1 become 1). Real time: no blur;
    a raw peak below 0.3 marks the keypoint missing (-0.5 before normalisation, i.e. a negative coordinate).
    """
    maps = np.asarray(heatmaps)
    out_h, out_w, k = maps.shape
    conf = maps if real_time else ndimage.gaussian_filter(maps, (1.0, 1.0, 0.0))
    index = np.argmax(conf.reshape(out_h * out_w, k), axis=0)
    peak_y = (index // out_w).astype(np.float64)
    peak_x = (index % out_w).astype(np.float64)
    if real_time:
        missing = conf[index // out_w, index % out_w, np.arange(k)] < REAL_TIME_CONFIDENCE
        peak_x = np.where(missing, -0.5, peak_x + 0.5)
        peak_y = np.where(missing, -0.5, peak_y + 0.5)
    else:
        peak_x += 0.5
        peak_y += 0.5
    peak_x /= out_w
    peak_y /= out_h
    if frame_width > frame_height:
        pad = (frame_width - frame_height) / (2 * frame_width)
        peak_y = (peak_y - pad) / (1.0 - 2 * pad)
        peak_y = np.where(peak_y < 0.0, -0.5 / out_h, np.minimum(peak_y, 1.0))
    elif frame_width < frame_height:
        pad = (frame_height - frame_width) / (2 * frame_height)
        peak_x = (peak_x - pad) / (1.0 - 2 * pad)
        peak_x = np.where(peak_x < 0.0, -0.5 / out_w, np.minimum(peak_x, 1.0))
    return np.stack([peak_x, peak_y], axis=1)


class TFLiteModel:
    """One of the authors' ``.tflite`` files run with ai-edge-litert: NHWC float32 in, final heatmaps out."""

    def __init__(self, path: str | Path, num_threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: TFLite model not found")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise UsageError("running .tflite models needs the 'ai-edge-litert' package "
                             "(pip install ai-edge-litert)") from exc
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise WeightsError(f"{self.path}: not a usable TFLite model ({exc})") from exc
        self._input = self._interpreter.get_input_details()[0]
        outputs = self._interpreter.get_output_details()
        named = [o for o in outputs if o["name"].startswith("upscaled_confs")]
        self._output = (named or outputs)[-1]["index"]
        self._native_batch = int(self._input["shape"][0])
        self._batch = self._native_batch
        self._resizable = True

    @property
    def resolution(self) -> int:
        """Input height = width R."""
        return int(self._input["shape"][1])

    def _set_batch(self, n: int) -> bool:
        """Resize the input to batch n; False (and restored) if the graph cannot take it."""
        if n == self._batch:
            return True
        index, shape = self._input["index"], [n, *self._input["shape"][1:]]
        try:
            self._interpreter.resize_tensor_input(index, shape, strict=False)
            self._interpreter.allocate_tensors()
            self._batch = n
            return True
        except (RuntimeError, ValueError):
            # The published files hard-code batch 1 in their reshapes: go back and run frame by frame.
            self._interpreter.resize_tensor_input(index, [self._native_batch, *shape[1:]], strict=False)
            self._interpreter.allocate_tensors()
            self._batch = self._native_batch
            self._resizable = False
            return False

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, R, R, 3) float32 preprocessed images -> (N, R, R, 16) heatmaps (``upscaled_confs``)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(f"expected (N, {self.resolution}, {self.resolution}, 3), got {batch.shape}")
        n = batch.shape[0]
        if self._resizable and self._set_batch(n):
            return self._invoke(batch)
        self._set_batch(self._native_batch)
        step = self._native_batch
        return np.concatenate([self._invoke(batch[i:i + step]) for i in range(0, n, step)])


def authors_predict(image: np.ndarray, model: TFLiteModel, mode: str, real_time: bool = False,
                    rescale: Callable[[np.ndarray, float], np.ndarray] = authors_rescale) -> np.ndarray:
    """The authors' pipeline end to end on one RGB uint8 image -> (16, 2) x, y in original pixels.

    Negative values are their sentinel for a missing keypoint (real time) or a peak inside the padding.
    """
    h, w = image.shape[:2]
    batch = authors_preprocess(image, model.resolution, mode, rescale)[None]
    heatmaps = model(batch)[0]
    coords = authors_extract_coordinates(heatmaps, h, w, real_time=real_time)
    return coords * np.array([w, h], dtype=np.float64)
