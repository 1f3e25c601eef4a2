"""From a detection to the square crop the pose model is given, and from a first pose to a refined crop.

The pose network was trained on square crops of side :data:`MARGIN` x the person's extent (the joints' box),
centred on that box (``data/transforms.py``, ``AugmentConfig.margin``); the crops here follow the same
convention, so the margin is written once, there."""

from __future__ import annotations

import numpy as np

from efficientpose.data.transforms import AugmentConfig
from efficientpose.detection.types import Box, Detection

#: Crop side / person extent, as in training.
MARGIN = AugmentConfig.margin
#: Keypoints at least this sure define the person's extent for a refined crop.
REFINE_THRESHOLD = 0.3


def square(cx: float, cy: float, side: float) -> Box:
    """The square of side ``side`` centred on (cx, cy), in pixels."""
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def crop_from_detection(detection: Detection, width: int, height: int, margin: float = MARGIN) -> Box:
    """A square crop around a detection's person box: its centre, side ``margin`` x its longer side."""
    x0, y0, x1, y1 = detection.person_box()
    return square((x0 + x1) / 2, (y0 + y1) / 2, margin * max(x1 - x0, y1 - y0))


def candidate_crops(detection: Detection, width: int, height: int,
                    scales: tuple[float, ...] = (0.6, 0.8, 1.0, 1.25)) -> list[Box]:
    """Square crops around a detection's centre at several sizes (``scales`` x :func:`crop_from_detection`'s),
    for a first pose pass that picks the one the pose is surest of."""
    x0, y0, x1, y1 = detection.person_box()
    side = MARGIN * max(x1 - x0, y1 - y0)
    return [square((x0 + x1) / 2, (y0 + y1) / 2, s * side) for s in scales]


def crop_from_pose(keypoints: np.ndarray, width: int, height: int, margin: float = MARGIN,
                   threshold: float = REFINE_THRESHOLD) -> Box | None:
    """The training crop around a first pose's keypoints (K, 3): centre of the sure keypoints' box, side
    ``margin`` x its longer side; None when fewer than half the keypoints are sure."""
    sure = keypoints[:, 2] >= threshold
    if sure.sum() < len(keypoints) // 2:
        return None
    x0, y0 = keypoints[sure, :2].min(0)
    x1, y1 = keypoints[sure, :2].max(0)
    return square((x0 + x1) / 2, (y0 + y1) / 2, margin * max(x1 - x0, y1 - y0))
