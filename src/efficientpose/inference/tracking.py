"""Where the person is in a frame stream: region-of-interest boxes from a pose, a window search for a person too
small for the whole-frame pass, and :class:`PersonTracker`, a stateful per-frame object that runs the estimator with
both and One-Euro smoothing. A caller with its own frame loop (the webcam, a GUI, a stream) calls the tracker once
per frame; :func:`track` is the thin generator for files. Used by the predict job (videos, and photos with
``--search``) and the webcam loop."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from efficientpose.codec.geometry import MAX_SEARCH_WINDOWS, SEARCH_SCALES, roi_square, search_windows  # noqa: F401
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.inference.smoothing import DEFAULT_SMOOTHING, OneEuroFilter, SmoothingParams
from efficientpose.inference.tracks import Finder, PeopleTracker, Person
from efficientpose.io.video import Frame, batched
from efficientpose.pose import DEFAULT_THRESHOLD, Box, Pose


def roi_from_pose(pose: Pose, width: int, height: int, threshold: float = DEFAULT_THRESHOLD,
                  margin: float = 0.35) -> Box | None:
    """A square box around the confidently seen keypoints plus a margin, or None when too few are confident."""
    kp = pose.keypoints
    good = kp[:, 2] >= threshold
    if good.sum() < max(6, len(kp) // 2):
        return None
    return roi_square(kp[good, :2], width, height, margin)


def search_box(pose: Pose, width: int, height: int, margin: float = 0.35) -> Box | None:
    """Where to look again when a whole-frame pose is too unsure to track from: a box around its better-scoring
    half of the keypoints, which still gather on a person too small for the network to be sure of."""
    kp = pose.keypoints
    best = np.argsort(-kp[:, 2], kind="stable")[:max(6, len(kp) // 2)]
    return roi_square(kp[best, :2], width, height, margin)


#: While no person is tracked, a frame is searched (:func:`find_person`) at most this often, in stream seconds;
#: each search that finds no one to track doubles the wait, up to the maximum (a large but unsure person, say).
SEARCH_INTERVAL = 0.5
MAX_SEARCH_INTERVAL = 4.0
#: Search windows (:func:`search_windows`) run this many per batch.
SEARCH_BATCH = 8


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
    best = max(candidates, key=lambda p: p.mean_score)
    if (box := search_box(best, width, height)) is not None:
        closer = estimator.predict(image, box)
        if closer.mean_score > best.mean_score:
            best = closer
    return best


class PersonTracker:
    """Poses frame after frame for one person, with state between frames: region-of-interest tracking, a search
    while no one is tracked, and One-Euro smoothing.

    With ``roi``, each frame is cropped around the last confident pose (with a margin). While there is none, the
    whole frame is used, and a frame is also searched for a smaller person (:meth:`find`, at most every
    ``SEARCH_INTERVAL`` seconds of stream time, backing off while searches find no one to track); this is how
    tracking starts on a person too small for the whole-frame pass. Scores are never smoothed.

    With a ``finder`` (a person detector with pose confirmation, see ``efficientpose.detection``), people are
    found with it instead and everyone is followed (:class:`~efficientpose.inference.tracks.PeopleTracker`,
    forward only); the pose returned is the subject's: whoever has been followed longest and largest among the
    people in the frame, kept while they stay in view (:attr:`person` is them, None when nobody is in view, and
    the pose is then empty: no coordinates, scores 0).

    Call it once per frame (``tracker(image, time)``), or hand it a batch (:meth:`update`); :meth:`reset` forgets
    the person and the smoothing state (a scene cut, a new stream).
    """

    def __init__(self, estimator: PoseEstimator, *, roi: bool = True,
                 smooth: SmoothingParams | None = DEFAULT_SMOOTHING, threshold: float = DEFAULT_THRESHOLD,
                 finder: Finder | None = None) -> None:
        self.estimator = estimator
        self.roi = roi
        self.smooth = smooth
        self.threshold = threshold
        self.finder = finder
        self.reset()

    def reset(self) -> None:
        """Forget where the person was, when the last search ran, and the smoothing state."""
        self.box: Box | None = None  #: where to crop the next frame; None: the whole frame
        self.searched: float | None = None  #: stream time of the last search
        self.interval = SEARCH_INTERVAL  #: the wait before the next search
        s = self.smooth
        self.filter = OneEuroFilter(s.min_cutoff, s.beta, s.d_cutoff, min_score=self.threshold) if s else None
        self.people = None if self.finder is None else PeopleTracker(self.estimator, self.finder,
                                                                      threshold=self.threshold, backtrack=0)
        self.person: Person | None = None  #: with a finder: the subject in the last frame, None if not in view
        self.frames = 0  #: frames seen since the last reset

    def __call__(self, image: np.ndarray, time: float) -> Pose:
        """The (smoothed) pose in one RGB frame at ``time`` seconds."""
        return self.update([image], [time])[0]

    def find(self, image: np.ndarray, pose: Pose) -> Pose:
        """Look for a person in a frame where no one is tracked and ``pose`` (the whole frame's) is unsure: today the
        window search (:func:`find_person`). This is the step a person detector replaces."""
        return find_person(self.estimator, image, pose)

    def update(self, images: Sequence[np.ndarray], times: Sequence[float]) -> list[Pose]:
        """Poses for consecutive frames in one batched forward pass, all cropped where the person was before the
        first; the last frame may be searched (and, where someone is found, the others are run again there)."""
        if self.people is not None:
            return self._subject_poses(images, times)
        estimator, threshold = self.estimator, self.threshold
        poses = estimator.predict_batch(images, [self.box] * len(images) if self.roi else None)
        h, w = images[-1].shape[:2]
        if (self.roi and self.box is None and roi_from_pose(poses[-1], w, h, threshold) is None
                and (self.searched is None or times[-1] - self.searched >= self.interval)):
            poses[-1] = self.find(images[-1], poses[-1])
            self.searched = times[-1]
            found = roi_from_pose(poses[-1], w, h, threshold)
            self.interval = SEARCH_INTERVAL if found is not None else min(2 * self.interval, MAX_SEARCH_INTERVAL)
            if found is not None and len(images) > 1:  # the rest of the batch: look where the person was found
                again = estimator.predict_batch(list(images[:-1]), [found] * (len(images) - 1))
                poses[:-1] = [b if b.mean_score > a.mean_score else a for a, b in zip(poses[:-1], again, strict=True)]
        self.box = roi_from_pose(poses[-1], w, h, threshold) if self.roi else None
        return [self._smoothed(pose, t) for pose, t in zip(poses, times, strict=True)]

    def _subject_poses(self, images: Sequence[np.ndarray], times: Sequence[float]) -> list[Pose]:
        """With a finder: follow everyone through the batch and return the subject's pose in each frame."""
        assert self.people is not None
        frames = [Frame(self.frames + i, float(t), image) for i, (image, t) in enumerate(zip(images, times,
                                                                                               strict=True))]
        self.frames += len(frames)
        self.people.update(frames)
        sizes = {t.id: t.size() for t in self.people.tracks}
        poses = []
        for frame in frames:
            present = {p.id: p for p in self.people.people(frame.index)}
            if self.person is None or self.person.id not in present:
                chosen = max(present, key=lambda i: (sizes[i], -i), default=None)
                if self.filter is not None and (self.person is None or chosen != self.person.id):
                    self.filter.reset()  # another person (or the same one back after a gap): no gliding across
                self.person = None if chosen is None else present[chosen]
            else:
                self.person = present[self.person.id]
            if self.person is None:
                h, w = frame.image.shape[:2]
                poses.append(empty_pose(self.estimator.names, (w, h)))
            else:
                poses.append(self._smoothed(self.person.pose, frame.time))
        self.people.forget(frames[-1].time)
        return poses

    def _smoothed(self, pose: Pose, time: float) -> Pose:
        if self.filter is None:
            return pose
        xy = self.filter(pose.xy, time, pose.scores)
        xy = np.where(np.isfinite(xy), xy, pose.xy)
        return replace(pose, keypoints=np.column_stack([xy, pose.scores]))


def empty_pose(names: Sequence[str], image_size: tuple[int, int]) -> Pose:
    """The pose of a frame where nobody is found: no coordinates (NaN, written as null) and scores 0."""
    k = len(names)
    return Pose(np.column_stack([np.full((k, 2), np.nan), np.zeros(k)]), tuple(names), image_size)


def track(frames: Iterable[Frame], estimator: PoseEstimator, *, batch_size: int = 8, roi: bool = True,
          smooth: SmoothingParams | None = DEFAULT_SMOOTHING,
          threshold: float = DEFAULT_THRESHOLD) -> Iterator[tuple[Frame, Pose]]:
    """Poses for a frame stream (a video file): :class:`PersonTracker` fed ``batch_size`` frames at a time."""
    tracker = PersonTracker(estimator, roi=roi, smooth=smooth, threshold=threshold)
    for chunk in batched(frames, batch_size):
        poses = tracker.update([f.image for f in chunk], [f.time for f in chunk])
        yield from zip(chunk, poses, strict=True)
