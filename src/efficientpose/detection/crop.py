"""From detections to the crop the pose model is given: look in overlapping windows too (the detector misses
people smaller than about half its input), keep the candidates the pose is surest of, crop each as a square.
:func:`find_people` is the recommended policy.

Measured on the small-person benchmark (``benchmarks/small_person.py``): the person box of a BlazePose
detection is about 1.3 x the person's joint extent, which is close to the training crop (1.25 x the extent,
``data/transforms.py``), so the crop is the box itself (:data:`MARGIN` 1.0); a larger crop loses accuracy fast
(RT, 200 images: 69.1 at 1.0, 63.5 at 1.2, 52.7 at 1.4, 64.0 at 0.8)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from efficientpose.detection.anchors import iou
from efficientpose.detection.types import Box, Detection, Detector
from efficientpose.inference.tracking import search_windows

#: Crop side / the longer side of a detection's person box.
MARGIN = 1.0
#: Detection passes, coarse to fine: the whole image, then overlapping square windows of these sides
#: (fractions of the image's shorter side). The detector misses people under about half its input.
STAGES: tuple[tuple[float, ...], ...] = ((), (1.0,), (0.6,))
#: Detections from different windows overlapping more than this are one person (MediaPipe's NMS threshold).
MERGE_IOU = 0.3
#: How many of the best detections of each pass the pose model confirms.
CONFIRM = 2
#: A pass whose surest pose has at least this mean keypoint score ends the search.
SURE = 0.4


def square(cx: float, cy: float, side: float) -> Box:
    """The square of side ``side`` centred on (cx, cy), in pixels."""
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def crop_from_detection(detection: Detection, margin: float = MARGIN) -> Box:
    """The square the pose model is given for a detection: its person box's centre, ``margin`` x its longer
    side, in original-image pixels (may reach past the image; the estimator clips it)."""
    x0, y0, x1, y1 = detection.person_box()
    return square((x0 + x1) / 2, (y0 + y1) / 2, margin * max(x1 - x0, y1 - y0))


def detect_in_windows(detector: Detector, image: np.ndarray, scales: Sequence[float]) -> list[Detection]:
    """Detections in overlapping square windows of ``scales`` x the shorter side (:func:`search_windows`), in
    the image's pixels, best first; of detections overlapping by more than :data:`MERGE_IOU` the best is kept."""
    height, width = image.shape[:2]
    found = []
    for x0, y0, x1, y1 in search_windows(width, height, tuple(scales)):
        c0, r0, c1, r1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        found += [d.shifted(c0, r0) for d in detector(np.ascontiguousarray(image[r0:r1, c0:c1]))]
    found.sort(key=lambda d: -d.score)
    kept: list[Detection] = []
    for d in found:
        if not kept or (iou(np.asarray(d.box), np.asarray([k.box for k in kept])) <= MERGE_IOU).all():
            kept.append(d)
    return kept


class _Estimator(Protocol):
    def predict_batch(self, images: Sequence[np.ndarray], rois: Sequence[Box | None] | None = None) -> list: ...


def _mean_score(pose: Any) -> float:
    return float(np.mean(pose.scores))


def confirm_by_pose(estimator: _Estimator, image: np.ndarray, detections: Sequence[Detection],
                    count: int = CONFIRM) -> list[tuple[Detection, Any]]:
    """The ``count`` best detections with the pose on each one's crop, surest pose (mean keypoint score) first:
    the pose's mean score tracks its accuracy (correlation 0.92 with per-image PCK on the small-person set)."""
    chosen = list(detections[:count])
    if not chosen:
        return []
    poses = estimator.predict_batch([image] * len(chosen), [crop_from_detection(d) for d in chosen])
    return sorted(zip(chosen, poses, strict=True), key=lambda pair: -_mean_score(pair[1]))


def find_people(detector: Detector, estimator: _Estimator, image: np.ndarray,
                stages: Sequence[Sequence[float]] = STAGES, sure: float = SURE) -> list[tuple[Detection, Any]]:
    """The recommended way from detections to poses: detect on the whole image, confirm the best
    :data:`CONFIRM` detections by the pose on their crops, and while no pose is :data:`SURE`, repeat on finer
    windows (:data:`STAGES`). Returns every confirmed (detection, pose), surest first; empty if nobody was
    detected at all (then fall back to the whole image or the window search). For photos, call it only when the
    whole-image pose is not already sure: people who fill the frame lose accuracy in these crops
    (``docs/detection.md``)."""
    found: list[tuple[Detection, Any]] = []
    for scales in stages:
        detections = detect_in_windows(detector, image, scales) if scales else list(detector(image))
        found = sorted(found + confirm_by_pose(estimator, image, detections), key=lambda pair: -_mean_score(pair[1]))
        if found and _mean_score(found[0][1]) >= sure:
            break
    return found
