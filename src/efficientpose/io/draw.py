"""Drawing a pose on an image (anti-aliased, sized to the image) and saving annotated copies atomically."""

from __future__ import annotations

import colorsys
import contextlib
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from efficientpose.errors import UsageError
from efficientpose.io import PathLike
from efficientpose.io.atomic import atomic_path
from efficientpose.io.images import to_rgb_array
from efficientpose.pose import DEFAULT_THRESHOLD, Pose
from efficientpose.skeleton import MPII_LIMBS, Skeleton

_SHIFT = 4  # OpenCV fixed-point bits: coordinates are drawn to 1/16 pixel
_LIMIT = 1 << 20  # clamp far-away coordinates so the fixed-point values cannot overflow

#: Hue ranges per side: the person's right in warm colours, left in cool ones, centre in green.
_HUES = {"right": (0.0, 0.13), "left": (0.50, 0.66), "centre": (0.25, 0.36)}

#: Pillow formats that store 8-bit RGB faithfully; annotated copies of other formats are written as PNG.
RGB_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP"})


def side(name: str) -> str:
    """'left', 'right' or 'centre' from a keypoint name (person-centric)."""
    return "left" if name.startswith("left_") else "right" if name.startswith("right_") else "centre"


def limb_side(a: str, b: str) -> str:
    """A limb is on a side if one end is and the other is not on the opposite side (thorax-left_shoulder: left)."""
    sides = {side(a), side(b)} - {"centre"}
    return sides.pop() if len(sides) == 1 else "centre"


def _colour(hue: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


def limb_colours(names: Sequence[str], limbs: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """One RGB colour per limb: hues spread within the limb's side range, so every limb is distinguishable."""
    groups: dict[str, list[int]] = {"left": [], "right": [], "centre": []}
    for i, (a, b) in enumerate(limbs):
        groups[limb_side(names[a], names[b])].append(i)
    colours: list[tuple[int, int, int]] = [(0, 0, 0)] * len(limbs)
    for key, members in groups.items():
        lo, hi = _HUES[key]
        for k, i in enumerate(members):
            colours[i] = _colour(lo + (hi - lo) * k / max(len(members) - 1, 1))
    return colours


def line_thickness(height: int, width: int) -> int:
    """Limb thickness in pixels: grows with the image (sqrt of its area / 200), at least 1."""
    return max(1, round(math.sqrt(height * width) / 200))


def _fixed(x: float, y: float) -> tuple[int, int]:
    """Continuous coordinates (pixel centres at +0.5) to OpenCV fixed point (pixel centres at integers)."""
    fx = min(max(x - 0.5, -_LIMIT), _LIMIT)
    fy = min(max(y - 0.5, -_LIMIT), _LIMIT)
    return round(fx * (1 << _SHIFT)), round(fy * (1 << _SHIFT))


def draw_pose(
    image_rgb: np.ndarray, pose: Pose, *, threshold: float = DEFAULT_THRESHOLD,
    skeleton: Skeleton | Sequence[tuple[int, int]] = MPII_LIMBS, in_place: bool = False,
) -> np.ndarray:
    """A copy of the image with the pose drawn: limbs coloured by side, then keypoint markers on top
    (``in_place``: drawn on ``image_rgb`` itself, an (H, W, 3) uint8 array, which saves a copy of a large frame).

    Keypoints scoring below ``threshold`` (or not finite), and the limbs touching them, are left out.
    """
    canvas = image_rgb if in_place else to_rgb_array(image_rgb).copy()
    limbs = tuple(skeleton.limbs if isinstance(skeleton, Skeleton) else skeleton)
    kp = np.asarray(pose.keypoints, dtype=np.float64)
    names = tuple(pose.names)
    if any(max(a, b) >= len(names) for a, b in limbs):
        raise ValueError(f"skeleton refers to keypoint indices beyond the pose's {len(names)} keypoints")
    shown = np.isfinite(kp).all(axis=1) & (kp[:, 2] >= threshold)
    height, width = canvas.shape[:2]
    thickness = line_thickness(height, width)
    radius = max(2, round(1.5 * thickness))
    outline = max(1, thickness // 3)
    for (a, b), colour in zip(limbs, limb_colours(names, limbs), strict=True):
        if shown[a] and shown[b]:
            cv2.line(canvas, _fixed(*kp[a, :2]), _fixed(*kp[b, :2]), colour, thickness, cv2.LINE_AA, _SHIFT)
    for i in np.flatnonzero(shown):
        centre = _fixed(*kp[i, :2])
        colour = _colour(sum(_HUES[side(names[i])]) / 2)
        cv2.circle(canvas, centre, radius << _SHIFT, colour, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas, centre, radius << _SHIFT, (0, 0, 0), outline, cv2.LINE_AA, _SHIFT)
    return canvas


def image_format(path: PathLike) -> str | None:
    """Pillow's format name for a file suffix ('JPEG' for .jpg), None if unknown."""
    return Image.registered_extensions().get(Path(path).suffix.lower())


def annotated_path(out_dir: PathLike, input_path: PathLike) -> Path:
    """Where the annotated copy of an input image goes: same name in ``out_dir``; .png for formats that
    cannot hold 8-bit RGB well (GIF, PGM, ...)."""
    name = Path(input_path).name
    if image_format(name) not in RGB_FORMATS:
        name = Path(name).with_suffix(".png").name
    return Path(out_dir) / name


def _rgb_icc_profile(path: PathLike) -> bytes | None:
    """The input's ICC profile if it is an RGB one (pixels stay in the input's colour space), else None."""
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the input was read already; its decoder's warnings were dealt with then
        with Image.open(path) as img:
            icc = img.info.get("icc_profile")
        if isinstance(icc, bytes) and icc[16:20] == b"RGB ":
            return icc
    return None


def save_image(path: PathLike, image_rgb: np.ndarray, *, like: PathLike | None = None) -> Path:
    """Save an RGB image atomically, in the format of ``path``'s suffix (else that of ``like``).

    ``like`` is the input image: its RGB colour profile is kept. JPEG and WebP are written at quality 95
    (JPEG without chroma subsampling, so thin coloured lines stay sharp).
    """
    fmt = image_format(path) or (image_format(like) if like is not None else None)
    if fmt is None:
        raise UsageError(f"{path}: unknown image format for this suffix")
    params: dict[str, object] = {}
    if fmt == "JPEG":
        params = {"quality": 95, "subsampling": 0}
    elif fmt == "WEBP":
        params = {"quality": 95}
    icc = _rgb_icc_profile(like) if like is not None else None
    if icc is not None and fmt in RGB_FORMATS:
        params["icc_profile"] = icc
    img = Image.fromarray(to_rgb_array(image_rgb), "RGB")
    with atomic_path(path) as temp:
        img.save(temp, format=fmt, **params)
    return Path(path)
