"""Input geometry: aspect-preserving letterbox to R x R and the exact maps between the original image and the
network input.

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
    pass


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
