"""Where the person is in a frame stream: region-of-interest boxes from a pose, a window search for a person too
small for the whole-frame pass, and :func:`track`, which runs the estimator over frames with both and One-Euro
smoothing. Used by the predict job (videos, and photos with ``--search``) and the webcam loop."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from efficientpose.errors import UsageError
from efficientpose.inference.estimator import Box, PoseEstimator
from efficientpose.inference.smoothing import OneEuroFilter
from efficientpose.io.video import Frame, batched
from efficientpose.pose import Pose


@dataclass(frozen=True)
class SmoothingParams:
    """One-Euro filter parameters (Casiez et al. 2012) for video keypoints, in pixels and seconds."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive number of Hz, got {value}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise UsageError(f"--beta must be a number >= 0, got {self.beta}")


DEFAULT_SMOOTHING = SmoothingParams()


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


def roi_from_pose(pose: Pose, width: int, height: int, threshold: float = 0.3, margin: float = 0.35) -> Box | None:
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


#: While no person is tracked, a frame is searched (:func:`find_person`) at most this often, in stream seconds;
#: each search that finds no one to track doubles the wait, up to the maximum (a large but unsure person, say).
SEARCH_INTERVAL = 0.5
MAX_SEARCH_INTERVAL = 4.0
#: Sides of the search windows, as fractions of the frame's shorter side; neighbouring windows overlap by half.
SEARCH_SCALES = (1.0, 0.6)
#: At most this many search windows per scale (a 16:9 frame needs 3 and 15; a very elongated one would need one
#: per few pixels of its length, so there the windows spread out and overlap less), run this many per batch.
MAX_SEARCH_WINDOWS = 32
SEARCH_BATCH = 8


def search_windows(width: int, height: int, scales: tuple[float, ...] = SEARCH_SCALES,
                   limit: int = MAX_SEARCH_WINDOWS) -> list[Box]:
    """Overlapping square windows covering the frame at each scale (a fraction of its shorter side), at most
    ``limit`` per scale."""
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


def find_person(estimator: PoseEstimator, image: np.ndarray, pose: Pose) -> Pose:
    """Search one frame for a person too small for the whole-frame pass to be sure of: run the network on the
    :func:`search_windows` crops (in batches of ``SEARCH_BATCH``), take the most confident pose, look again around
    its likelier keypoints (:func:`search_box`), and return the best of these and ``pose`` by mean score."""
    height, width = image.shape[:2]
    windows = search_windows(width, height)
    candidates = [pose]
    for start in range(0, len(windows), SEARCH_BATCH):  # bounded batches: memory does not grow with the frame
        part = windows[start : start + SEARCH_BATCH]
        candidates += estimator.predict_batch([image] * len(part), part)
    best = max(candidates, key=lambda p: p.scores.mean())
    if (box := search_box(best, width, height)) is not None:
        closer = estimator.predict(image, box)
        if closer.scores.mean() > best.scores.mean():
            best = closer
    return best


def track(frames: Iterable[Frame], estimator: PoseEstimator, *, batch_size: int = 8, roi: bool = True,
          smooth: SmoothingParams | None = DEFAULT_SMOOTHING, threshold: float = 0.3) -> Iterator[tuple[Frame, Pose]]:
    """Poses for a frame stream: batched inference, region-of-interest tracking, One-Euro smoothing.

    With ``roi``, each batch is cropped around the last confident pose of the previous batch (with a margin).
    When there is none, the whole frame is used, and the last frame of the batch is also searched for a smaller
    person (:func:`find_person`, at most every ``SEARCH_INTERVAL`` seconds, backing off while searches find no
    one to track); where one is found, the batch's other frames are run again around it. This is how tracking
    starts on a person too small for the whole-frame pass. Scores are never smoothed.
    """
    filt = OneEuroFilter(smooth.min_cutoff, smooth.beta, smooth.d_cutoff, min_score=threshold) if smooth else None
    box: Box | None = None
    searched: float | None = None  # stream time of the last search
    interval = SEARCH_INTERVAL
    for chunk in batched(frames, batch_size):
        images = [f.image for f in chunk]
        poses = estimator.predict_batch(images, [box] * len(chunk) if roi else None)
        last = chunk[-1]
        h, w = last.image.shape[:2]
        if (roi and box is None and roi_from_pose(poses[-1], w, h, threshold) is None
                and (searched is None or last.time - searched >= interval)):
            poses[-1] = find_person(estimator, last.image, poses[-1])
            searched = last.time
            found = roi_from_pose(poses[-1], w, h, threshold)
            interval = SEARCH_INTERVAL if found is not None else min(2 * interval, MAX_SEARCH_INTERVAL)
            if found is not None and len(chunk) > 1:  # the rest of the batch: look where the person was found
                again = estimator.predict_batch(images[:-1], [found] * (len(chunk) - 1))
                poses[:-1] = [b if b.scores.mean() > a.scores.mean() else a
                              for a, b in zip(poses[:-1], again, strict=True)]
        for frame, pose in zip(chunk, poses, strict=True):
            raw = pose
            if filt is not None:
                xy = filt(pose.xy, frame.time, pose.scores)
                xy = np.where(np.isfinite(xy), xy, pose.xy)
                pose = Pose(np.column_stack([xy, pose.scores]), pose.names)
            yield frame, pose
        box = roi_from_pose(raw, w, h, threshold) if roi else None
