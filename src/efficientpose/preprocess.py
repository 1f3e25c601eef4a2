"""Image -> network input: aspect-preserving letterbox to R x R and per-channel normalisation.

Coordinates follow the package convention: continuous, image top-left corner at (0, 0), so the centre of
pixel (column i, row j) is (i + 0.5, j + 0.5). :class:`Letterbox` maps such coordinates between the original
image and the R x R network input exactly (per-axis scales, so rounding of the resized size is accounted for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Normalization", "TORCH_MODE", "TF_MODE", "Letterbox", "letterbox", "to_input", "to_tensor"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel (RGB) normalisation ``(x / 255 - mean) / std`` of a uint8 image."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def scale_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias) with ``normalised = x_uint8 * scale + bias``, float64, one value per channel."""
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return 1.0 / (255.0 * std), -mean / std


#: Keras 'torch' mode (ImageNet mean/std), used by the non-Lite models (architecture.md §6.1).
TORCH_MODE = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
#: Keras 'tf' mode, x / 127.5 - 1, used by the Lite models.
TF_MODE = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``width`` x ``height`` sits inside the ``size`` x ``size`` network input.

    The image was resized to ``new_width`` x ``new_height`` and pasted at (``pad_x``, ``pad_y``); the
    maps are ``x_input = pad_x + x_original * scale_x`` (likewise y), exact in the continuous convention.
    """

    size: int
    width: int
    height: int
    new_width: int
    new_height: int
    pad_x: int
    pad_y: int

    @property
    def scale_x(self) -> float:
        """Input pixels per original pixel along x."""
        return self.new_width / self.width

    @property
    def scale_y(self) -> float:
        """Input pixels per original pixel along y."""
        return self.new_height / self.height

    @property
    def scale(self) -> float:
        """The nominal scale ``size / max(width, height)`` (exact along the longer side)."""
        return self.size / max(self.width, self.height)

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map input-space coordinates (..., 2+) to the original image; columns after x, y are kept."""
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale_y
        return out

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Map original-image coordinates (..., 2+) into the network input; inverse of :meth:`to_original`."""
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * self.scale_x + self.pad_x
        out[..., 1] = out[..., 1] * self.scale_y + self.pad_y
        return out


def fit_letterbox(width: int, height: int, size: int) -> Letterbox:
    """The geometry of :func:`letterbox` without touching pixels: longer side -> ``size``, centred padding."""
    if width < 1 or height < 1 or size < 1:
        raise ValueError(f"image size {width}x{height} and input size {size} must be positive")
    scale = size / max(width, height)
    new_w = size if width >= height else min(size, max(1, int(np.floor(width * scale + 0.5))))
    new_h = size if height >= width else min(size, max(1, int(np.floor(height * scale + 0.5))))
    # Odd leftover pixel goes right/bottom, like the authors' ``pad``.
    return Letterbox(size, width, height, new_w, new_h, (size - new_w) // 2, (size - new_h) // 2)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize an RGB uint8 image (H, W, 3) so its longer side is ``size`` and zero-pad it to size x size.

    One OpenCV resize (INTER_AREA when shrinking, INTER_LINEAR when enlarging; none if already fitting).
    An input that is already size x size is returned as is (not copied).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    box = fit_letterbox(width, height, size)
    if (box.new_width, box.new_height) != (width, height):
        shrinking = box.new_width < width or box.new_height < height
        image = cv2.resize(image, (box.new_width, box.new_height),
                           interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if box.new_width == size and box.new_height == size:
        return np.ascontiguousarray(image), box
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[box.pad_y:box.pad_y + box.new_height, box.pad_x:box.pad_x + box.new_width] = image
    return canvas, box


def to_input(batch: np.ndarray, normalization: Normalization) -> np.ndarray:
    """uint8 images (N, R, R, 3) or (R, R, 3) -> normalised float32 array (N, 3, R, R), contiguous: the input
    every backend takes (numpy, so the ONNX Runtime and OpenVINO paths never load torch)."""
    if batch.dtype != np.uint8 or batch.shape[-1] != 3 or batch.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images (N, R, R, 3), got {batch.dtype} {batch.shape}")
    if batch.ndim == 3:
        batch = batch[None]
    scale, bias = normalization.scale_bias()
    out = np.empty((batch.shape[0], 3, *batch.shape[1:3]), dtype=np.float32)
    for c in range(3):  # per channel: one strided read, float32 multiply and add in place
        np.multiply(batch[..., c], np.float32(scale[c]), out=out[:, c], dtype=np.float32)
        out[:, c] += np.float32(bias[c])
    return out


def to_tensor(batch: np.ndarray, normalization: Normalization) -> torch.Tensor:
    """:func:`to_input` as a torch tensor (shares memory), for the PyTorch model."""
    import torch

    return torch.from_numpy(to_input(batch, normalization))
