"""Training augmentation: one affine warp per sample (person crop, scale, rotation, shift, flip) plus colour.

The crop policy, the affine maps and the resampling are the codec's (:mod:`efficientpose.codec.geometry`), shared
with inference; this module draws the random parameters and adds colour and occlusion. See
``docs/training-targets.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from efficientpose.codec.geometry import (
    CROP_MARGIN,
    MIN_SIDE,
    Geometry,
    affine_matrix,
    inside_mask,
    person_square,
    transform_points,
    warp,
    whole_image_square,
)


@dataclass(frozen=True)
class AugmentConfig:
    """All augmentation ranges. ``train=False`` gives the deterministic centred crop and nothing else."""

    train: bool = True
    margin: float = CROP_MARGIN  #: crop side = margin x person extent (joints' bbox or 200 px x Sample.scale)
    min_side: float = MIN_SIDE  #: smallest crop side in source pixels (a person with one annotated joint)
    scale: float = 0.25  #: crop side multiplied by a factor in [1 - scale, 1 + scale]
    rotation: float = 30.0  #: degrees, uniform in [-rotation, rotation] ...
    rotation_prob: float = 0.6  #: ... applied with this probability
    shift: float = 0.1  #: translation, uniform in [-shift, shift] x crop side, per axis
    flip_prob: float = 0.5  #: horizontal mirror (image and left/right joint swap)
    brightness: float = 0.2  #: multiply by a factor in [1 - b, 1 + b]
    contrast: float = 0.2  #: blend with the mean grey by a factor in [1 - c, 1 + c]
    saturation: float = 0.2  #: blend with the per-pixel grey by a factor in [1 - s, 1 + s]
    hue: float = 0.02  #: hue shift in [-hue, hue] of a full turn
    occlusion_prob: float = 0.0  #: probability of pasting occluding rectangles (off by default)
    occlusion_max: int = 2  #: at most this many rectangles
    occlusion_size: tuple[float, float] = (0.1, 0.3)  #: rectangle side range, fraction of R


@dataclass(frozen=True)
class Augmented:
    """An augmented sample plus the affine that produced it (for mapping predictions back)."""

    image: np.ndarray  #: (R, R, C) float32 in the input's value range
    joints: np.ndarray  #: (K, 2) float64 input pixels, reordered by the flip index when flipped
    annotated: np.ndarray  #: (K,) bool, False for joints outside the R x R frame
    matrix: np.ndarray  #: (2, 3) continuous source -> continuous input coordinates (before reordering)
    flipped: bool


def sample_geometry(rng: np.random.Generator | None, cfg: AugmentConfig) -> Geometry:
    """Draw the geometric parameters; always the same number of draws so the stream stays aligned."""
    if not cfg.train or rng is None:
        return Geometry()
    u = rng.uniform(size=6)
    scale = 1.0 + cfg.scale * (2.0 * u[0] - 1.0)
    rotation = cfg.rotation * (2.0 * u[2] - 1.0) if u[1] < cfg.rotation_prob else 0.0
    shift = (cfg.shift * (2.0 * u[3] - 1.0), cfg.shift * (2.0 * u[4] - 1.0))
    return Geometry(float(scale), float(rotation), (float(shift[0]), float(shift[1])), bool(u[5] < cfg.flip_prob))


def person_frame(
    joints: np.ndarray,
    annotated: np.ndarray,
    image_size: tuple[int, int],
    cfg: AugmentConfig,
    center: np.ndarray | None = None,
    scale: float | None = None,
    box: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Centre and side (source pixels) of the square training crop: the codec's person-crop policy
    (:func:`~efficientpose.codec.geometry.person_square`) with ``cfg``'s margin, else the whole image."""
    found = person_square(image_size, box=box, center=center, scale=scale, joints=joints, annotated=annotated,
                          margin=cfg.margin, min_side=cfg.min_side)
    return found if found is not None else whole_image_square(image_size)


def color_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig,
                 valid: np.ndarray | None = None) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of an RGB float image in [0, 255].

    Pixels outside ``valid`` (the zero border of the warp) are left untouched, so the padding stays
    exactly zero as in inference letterboxing.
    """
    u = [float(x) for x in rng.uniform(-1.0, 1.0, size=4)]
    img = image.astype(np.float32, copy=True)
    if img.ndim != 3 or img.shape[2] != 3:
        return img
    img *= 1.0 + cfg.brightness * u[0]
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean = float(grey[valid].mean()) if valid is not None and valid.any() else float(grey.mean())
    img = (img - mean) * (1.0 + cfg.contrast * u[1]) + mean
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = (img - grey[..., None]) * (1.0 + cfg.saturation * u[2]) + grey[..., None]
    np.clip(img, 0.0, 255.0, out=img)
    if cfg.hue > 0:
        hsv = cv2.cvtColor(img * np.float32(1.0 / 255.0), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * cfg.hue * u[3], 360.0)
        img = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * np.float32(255.0), 0.0, 255.0)
    if valid is not None:
        img = np.where(valid[..., None], img, image.astype(np.float32))
    return img.astype(np.float32, copy=False)


def occlude(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Paste 1..occlusion_max rectangles of uniform noise or mid-grey, with probability occlusion_prob."""
    if rng.uniform() >= cfg.occlusion_prob:
        return image
    img = image.copy()
    size_h, size_w = img.shape[:2]
    for _ in range(int(rng.integers(1, cfg.occlusion_max + 1))):
        w = max(1, int(round(rng.uniform(*cfg.occlusion_size) * size_w)))
        h = max(1, int(round(rng.uniform(*cfg.occlusion_size) * size_h)))
        x0 = int(rng.integers(0, size_w - w + 1))
        y0 = int(rng.integers(0, size_h - h + 1))
        if rng.uniform() < 0.5:
            img[y0:y0 + h, x0:x0 + w] = rng.uniform(0.0, 255.0, size=img[y0:y0 + h, x0:x0 + w].shape)
        else:
            img[y0:y0 + h, x0:x0 + w] = 127.5
    return img


def augment_detailed(
    image: np.ndarray,
    joints: np.ndarray,
    annotated: np.ndarray,
    rng: np.random.Generator | None,
    cfg: AugmentConfig,
    size: int,
    flip_index: np.ndarray,
    center: np.ndarray | None = None,
    scale: float | None = None,
    box: np.ndarray | None = None,
) -> Augmented:
    """Crop, augment and warp one sample into the R x R input, with the affine that did it and the flip flag.

    Deterministic given ``rng``; joints that leave the frame become not annotated. Colour jitter assumes RGB.
    """
    train = cfg.train and rng is not None
    geometry = sample_geometry(rng, cfg)
    height, width = image.shape[:2]
    c, side = person_frame(joints, annotated, (width, height), cfg, center, scale, box)
    matrix = affine_matrix(c, side, size, geometry)
    out = warp(np.ascontiguousarray(image), matrix, size).astype(np.float32, copy=False)
    if train:
        out = color_jitter(out, rng, cfg, inside_mask(matrix, (width, height), size))
        out = occlude(out, rng, cfg)
    pts = transform_points(joints, matrix)
    ann = np.asarray(annotated, dtype=bool) & np.isfinite(pts).all(axis=1)
    with np.errstate(invalid="ignore"):
        ann &= (pts[:, 0] >= 0) & (pts[:, 0] < size) & (pts[:, 1] >= 0) & (pts[:, 1] < size)
    if geometry.flip:
        index = np.asarray(flip_index, dtype=np.int64)
        pts, ann = pts[index], ann[index]
    return Augmented(out, pts, ann, matrix, geometry.flip)
