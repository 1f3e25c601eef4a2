"""Input geometry, the one place that decides what part of an image the network sees and how pixels get there:
the letterbox, the person-crop policy, affine warps (training augmentation) and the way back to the original
image's pixels.

Coordinates follow the package convention: continuous, image top-left corner at (0, 0), so the centre of
pixel (column i, row j) is (i + 0.5, j + 0.5). Every map here is exact in that convention (per-axis scales, so
rounding of a resized size is accounted for). One resampling rule serves training and inference
(:func:`warp`): area-averaging when shrinking, bilinear otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from efficientpose.pose import Box


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``width`` x ``height`` sits inside the ``size`` x ``size`` network input.

    The image was resized to ``new_width`` x ``new_height`` and pasted at (``pad_x``, ``pad_y``); the
    maps are ``x_input = pad_x + (x_original - crop_x) * scale_x`` (likewise y), exact in the continuous
    convention. (``crop_x``, ``crop_y``) is where the letterboxed region starts in the original image (0, 0
    for the whole image; see :func:`letterbox_crop`).
    """

    size: int
    width: int
    height: int
    new_width: int
    new_height: int
    pad_x: int
    pad_y: int
    crop_x: int = 0
    crop_y: int = 0

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

    @property
    def matrix(self) -> np.ndarray:
        """(2, 3) affine from original-image to input coordinates (for :func:`warp`)."""
        return np.array([[self.scale_x, 0.0, self.pad_x - self.crop_x * self.scale_x],
                         [0.0, self.scale_y, self.pad_y - self.crop_y * self.scale_y]])

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Map input-space coordinates (..., 2+) to the original image; columns after x, y are kept."""
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale_y
        if self.crop_x or self.crop_y:
            out[..., 0] += self.crop_x
            out[..., 1] += self.crop_y
        return out

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Map original-image coordinates (..., 2+) into the network input; inverse of :meth:`to_original`."""
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (out[..., 0] - self.crop_x) * self.scale_x + self.pad_x
        out[..., 1] = (out[..., 1] - self.crop_y) * self.scale_y + self.pad_y
        return out


def fit_letterbox(width: int, height: int, size: int, crop: tuple[int, int] = (0, 0)) -> Letterbox:
    """The geometry of :func:`letterbox` without touching pixels: longer side -> ``size``, centred padding."""
    if width < 1 or height < 1 or size < 1:
        raise ValueError(f"image size {width}x{height} and input size {size} must be positive")
    scale = size / max(width, height)
    new_w = size if width >= height else min(size, max(1, int(np.floor(width * scale + 0.5))))
    new_h = size if height >= width else min(size, max(1, int(np.floor(height * scale + 0.5))))
    # Odd leftover pixel goes right/bottom, like the authors' ``pad``.
    return Letterbox(size, width, height, new_w, new_h, (size - new_w) // 2, (size - new_h) // 2, *crop)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize an RGB uint8 image (H, W, 3) so its longer side is ``size`` and zero-pad it to size x size.

    One OpenCV resize (INTER_AREA when shrinking, INTER_LINEAR when enlarging; none if already fitting), as
    :func:`warp` resamples. An input that is already size x size is returned as is (not copied).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    box = fit_letterbox(width, height, size)
    return warp(image, box.matrix, size), box


def letterbox_crop(image: np.ndarray, size: int, box: Box | None = None) -> tuple[np.ndarray, Letterbox]:
    """:func:`letterbox` of the part of ``image`` inside ``box`` (:func:`crop`; None: the whole image); the
    returned geometry maps back to the whole image's pixels."""
    part, offset = crop(image, box)
    boxed, geometry = letterbox(part, size)
    return boxed, geometry if offset == (0, 0) else fit_letterbox(geometry.width, geometry.height, size, offset)


# --------------------------------------------------------------------------------------------- person crops

#: Margin around a person's extent (box, MPII scale or joints) before cropping: the standard 1.25.
CROP_MARGIN = 1.25
#: MPII's person scale is the box height divided by this many pixels.
SCALE_UNIT = 200.0
#: Smallest crop side in source pixels (a person with one annotated joint).
MIN_SIDE = 16.0


def person_square(image_size: tuple[int, int], *, box: Sequence[float] | np.ndarray | None = None,
                  center: Sequence[float] | np.ndarray | None = None, scale: float | None = None,
                  joints: np.ndarray | None = None, annotated: np.ndarray | None = None,
                  margin: float = CROP_MARGIN, min_side: float = MIN_SIDE) -> tuple[np.ndarray, float] | None:
    """The one person-crop policy: centre and side (source pixels) of the square crop around a person.

    The first of these that is given defines the person: a ``box`` (x0, y0, x1, y1: a COCO box or a detector's),
    a ``center`` with MPII ``scale`` (side ``SCALE_UNIT * scale``), a ``center`` alone or nothing with the
    annotated ``joints`` (their bounding box). The side is ``margin`` times the person's longer extent, at
    least ``min_side`` (a centre alone, with no scale and no joints, takes the image's longer side of
    ``image_size`` = (width, height)). None when nothing locates a person: the caller then uses the whole image
    (:func:`whole_image_square`), as evaluation does for LSP's person-centred images.
    """
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(margin * max(x1 - x0, y1 - y0), min_side)
    pts = np.zeros((0, 2))
    if joints is not None:
        ok = np.ones(len(joints), bool) if annotated is None else np.asarray(annotated, dtype=bool)
        pts = np.asarray(joints, dtype=np.float64).reshape(-1, 2)[ok]
        pts = pts[np.isfinite(pts).all(axis=1)]
    if center is None and len(pts) == 0:
        return None
    c = (pts.min(axis=0) + pts.max(axis=0)) / 2.0 if center is None else np.asarray(center, np.float64).reshape(2)
    if scale is not None:
        side = SCALE_UNIT * float(scale) * margin
    elif len(pts):
        side = margin * float((pts.max(axis=0) - pts.min(axis=0)).max())
    else:
        side = float(max(image_size))
    return c, max(side, min_side)


def person_box(joints: np.ndarray, annotated: np.ndarray | None = None, image_size: tuple[int, int] | None = None,
               margin: float = CROP_MARGIN) -> Box | None:
    """The box around a person as outputs report it: the extent of the (annotated or confident) ``joints``, grown
    about its centre to ``margin`` x that extent along each axis, clipped to the image of ``image_size`` = (width,
    height) if given; None when no joint is given."""
    ok = np.ones(len(joints), bool) if annotated is None else np.asarray(annotated, dtype=bool)
    pts = np.asarray(joints, dtype=np.float64).reshape(-1, 2)[ok]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        return None
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) * margin / 2
    x0, y0, x1, y1 = (*(centre - half), *(centre + half))
    if image_size is not None:
        w, h = image_size
        x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
        y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    return float(x0), float(y0), float(x1), float(y1)


def whole_image_square(image_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The square that letterboxes the whole image: centred, side = the longer side."""
    w, h = image_size
    return np.array([w / 2.0, h / 2.0]), float(max(w, h))


def square_box(center: np.ndarray, side: float) -> Box:
    """(x0, y0, x1, y1) of the square of ``side`` around ``center``."""
    cx, cy = (float(v) for v in np.asarray(center).reshape(2))
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with boxes (N, 4), all x0, y0, x1, y1; 0 where either is empty."""
    box, boxes = np.asarray(box, dtype=np.float64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def roi_square(xy: np.ndarray, width: int, height: int, margin: float) -> Box | None:
    """The tracking region around points: a square of their extent plus ``margin`` of it on each side (at least
    15 % of the frame's longer side), or None when it would be as large as the frame anyway."""
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side = max(side, 0.15 * max(width, height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if not np.isfinite(side) or side >= max(width, height):
        return None
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


#: Sides of the search windows, as fractions of the frame's shorter side; neighbouring windows overlap by half.
SEARCH_SCALES = (1.0, 0.6)
#: At most this many search windows per scale (a 16:9 frame needs 3 and 15; a very elongated one would need one
#: per few pixels of its length, so there the windows spread out and overlap less).
MAX_SEARCH_WINDOWS = 32


def search_windows(width: int, height: int, scales: tuple[float, ...] = SEARCH_SCALES,
                   limit: int = MAX_SEARCH_WINDOWS) -> list[Box]:
    """Overlapping square windows covering the frame at each scale (a fraction of its shorter side), at most
    ``limit`` per scale: where to look for a person too small for a whole-frame pass."""
    boxes: list[Box] = []
    for scale in scales:
        side = scale * min(width, height)
        nx = max(1, int(np.ceil((width - side) / (side / 2))) + 1)
        ny = max(1, int(np.ceil((height - side) / (side / 2))) + 1)
        if nx * ny > limit:  # fewer positions along the longer axis (its count is the large one)
            if nx >= ny:
                ny = min(ny, limit)
                nx = max(1, limit // ny)
            else:
                nx = min(nx, limit)
                ny = max(1, limit // nx)
        xs, ys = np.linspace(0, width - side, nx), np.linspace(0, height - side, ny)
        boxes += [(float(x), float(y), float(x + side), float(y + side)) for y in ys for x in xs]
    return boxes


def crop(image: np.ndarray, box: Box | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of ``image`` inside ``box`` (clipped to the image; the whole image if that leaves < 8 px) and its
    top-left offset in the image."""
    if box is None:
        return image, (0, 0)
    h, w = image.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return image, (0, 0)
    return image[y0:y1, x0:x1], (x0, y0)


# --------------------------------------------------------------------------------------------- affine warps


@dataclass(frozen=True)
class Geometry:
    """Geometric parameters of one crop on top of the person square (identity: the plain centred crop)."""

    scale: float = 1.0
    rotation: float = 0.0  #: degrees, counter-clockwise on screen
    shift: tuple[float, float] = (0.0, 0.0)  #: fraction of the crop side (= of R after the warp)
    flip: bool = False


def affine_matrix(center: np.ndarray, side: float, size: int, geometry: Geometry = Geometry()) -> np.ndarray:
    """(2, 3) matrix taking continuous source coordinates into the continuous R x R input.

    Order: centre the crop, mirror x (flip), rotate, scale the (augmented) side to R, shift, move to R/2.
    """
    cx, cy = np.asarray(center, dtype=np.float64).reshape(2)
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    mirror = np.diag([-1.0 if geometry.flip else 1.0, 1.0, 1.0])
    t = np.deg2rad(geometry.rotation)
    rotate = np.array([[np.cos(t), np.sin(t), 0.0], [-np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    k = size / (side * geometry.scale)
    zoom = np.diag([k, k, 1.0])
    to_frame = np.array([[1.0, 0.0, size * (0.5 + geometry.shift[0])],
                         [0.0, 1.0, size * (0.5 + geometry.shift[1])], [0.0, 0.0, 1.0]])
    return (to_frame @ zoom @ rotate @ mirror @ to_origin)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) continuous coordinates."""
    p = np.asarray(points, dtype=np.float64)
    return p @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def invert_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The way back: (N, 2+) input coordinates through the inverse of ``matrix`` to the source (extra columns kept)."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., :2] = transform_points(out[..., :2].reshape(-1, 2), np.linalg.inv(full)[:2]).reshape(out[..., :2].shape)
    return out


def inside_mask(matrix: np.ndarray, source_size: tuple[int, int], size: int) -> np.ndarray:
    """(R, R) bool: output pixels whose centre comes from inside the source image (not the zero border)."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]
    c = np.arange(size, dtype=np.float64) + 0.5
    x = inv[0, 0] * c[None, :] + inv[0, 1] * c[:, None] + inv[0, 2]
    y = inv[1, 0] * c[None, :] + inv[1, 1] * c[:, None] + inv[1, 2]
    w, h = source_size
    return (x >= 0) & (x < w) & (y >= 0) & (y < h)


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample ``image`` into the R x R input through a continuous (2, 3) affine, zero outside the image: the one
    resampling rule of training and inference.

    Shrinking is area-averaged (OpenCV ``INTER_AREA`` to the target scale first, so nothing aliases), enlarging
    and what remains of a rotation are bilinear. An axis-aligned map whose remaining offset is whole pixels is a
    resize and a paste (so a letterbox is exactly :func:`letterbox`).
    """
    a = np.asarray(matrix, dtype=np.float64)
    h, w = image.shape[:2]
    sx, sy = float(np.hypot(a[0, 0], a[1, 0])), float(np.hypot(a[0, 1], a[1, 1]))
    tw, th = max(1, int(np.floor(w * sx + 0.5))), max(1, int(np.floor(h * sy + 0.5)))
    shrinking = tw < w or th < h
    resized = a @ np.diag([w / tw, h / th, 1.0])  # source pixels of the resized image -> input
    pasteable = (np.allclose(resized[:, :2], np.eye(2), atol=1e-9)
                 and np.allclose(resized[:, 2], np.round(resized[:, 2]), atol=1e-9))
    if shrinking or (pasteable and (tw, th) != (w, h)):
        image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        a = resized
    if pasteable:
        return _paste(image, int(round(a[0, 2])), int(round(a[1, 2])), size)
    m = a.copy()  # OpenCV puts pixel centres at integer coordinates, we at +0.5: M_cv = T(-0.5) . A . T(+0.5)
    m[:, 2] = a[:, 2] + a[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _paste(image: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """``image`` placed with its top-left corner at (x, y) on a zero size x size canvas (clipped)."""
    h, w = image.shape[:2]
    if (x, y, w, h) == (0, 0, size, size):
        return np.ascontiguousarray(image)
    canvas = np.zeros((size, size, *image.shape[2:]), dtype=image.dtype)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = image[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas
