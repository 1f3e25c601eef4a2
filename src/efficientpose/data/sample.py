"""The one sample type every dataset reader yields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One annotated person in one image.

    Coordinates use the package's pixel convention: continuous image coordinates with the image's
    top-left corner at (0, 0), so the centre of pixel (column i, row j) is (i + 0.5, j + 0.5).
    """

    image: Path  #: the image file
    keypoints: tuple[str, ...]  #: names of the K joints, in the order of ``joints``
    joints: np.ndarray  #: (K, 2) float64 x, y; meaningless where ``annotated`` is False
    annotated: np.ndarray  #: (K,) bool: the joint has a valid annotation and counts in metrics/training
    visible: np.ndarray  #: (K,) bool: annotated and not marked occluded (where the data says)
    norm_size: float  #: the metric's normaliser in pixels: PCKh head size, or torso size for PCK
    center: np.ndarray | None = None  #: (2,) person centre in pixels, where the data has one
    scale: float | None = None  #: person scale (MPII: box height / 200 px), where the data has one
    box: np.ndarray | None = None  #: (4,) x0, y0, x1, y1 person box in pixels, where the data has one
    id: str = ""  #: a stable identifier (e.g. file name plus person index)
