"""Regions of a frame to run the pose on, from a pose: the square around its confident keypoints that tracking
crops the next frame to (:func:`roi_from_pose`), and where to look again around an unsure one (:func:`search_box`)."""

from __future__ import annotations

import numpy as np

from efficientpose.pose import DEFAULT_THRESHOLD, Box, Pose


def _square_box(xy: np.ndarray, width: int, height: int, margin: float) -> Box | None:
    """A square around points plus ``margin`` of their extent on each side (at least 15 % of the frame's longer
    side), or None when it would be as large as the frame anyway."""
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side = max(side, 0.15 * max(width, height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if not np.isfinite(side) or side >= max(width, height):
        return None
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def roi_from_pose(pose: Pose, width: int, height: int, threshold: float = DEFAULT_THRESHOLD,
                  margin: float = 0.35) -> Box | None:
    """A square box around the confidently seen keypoints plus a margin, or None when too few are confident."""
    kp = pose.keypoints
    good = kp[:, 2] >= threshold
    if good.sum() < max(6, len(kp) // 2):
        return None
    return _square_box(kp[good, :2], width, height, margin)


def search_box(pose: Pose, width: int, height: int, margin: float = 0.35) -> Box | None:
    """Where to look again when a whole-frame pose is too unsure to track from: a box around its better-scoring
    half of the keypoints, which still gather on a person too small for the network to be sure of."""
    kp = pose.keypoints
    best = np.argsort(-kp[:, 2], kind="stable")[:max(6, len(kp) // 2)]
    return _square_box(kp[best, :2], width, height, margin)
