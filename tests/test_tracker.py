"""PersonTracker's per-frame policy with a scripted estimator (no network, no ../shared): where it crops, when it
searches, how the search backs off, and what reset forgets."""

from __future__ import annotations

import numpy as np

from efficientpose.inference.tracking import MAX_SEARCH_INTERVAL, SEARCH_INTERVAL, PersonTracker
from efficientpose.pose import Pose

FRAME = np.zeros((480, 640, 3), np.uint8)


def _pose(score: float, cx: float = 320.0, cy: float = 240.0) -> Pose:
    """16 keypoints spread over a 60 x 120 px person around (cx, cy), all with ``score``."""
    rng = np.random.default_rng(0)
    xy = np.column_stack([cx + rng.uniform(-30, 30, 16), cy + rng.uniform(-60, 60, 16)])
    return Pose(np.column_stack([xy, np.full(16, score)]), image_size=(640, 480))


class Scripted:
    """Answers every frame with an unsure pose, or a confident one once ``confident`` is set; records the crops."""

    def __init__(self) -> None:
        self.rois: list[object] = []
        self.confident = False

    def predict_batch(self, images, rois=None, flip=None):  # noqa: ANN001, ANN201
        self.rois.extend(rois if rois is not None else [None] * len(images))
        return [_pose(0.8 if self.confident else 0.1) for _ in images]


class Recording(PersonTracker):
    """The tracker with its ``find`` step (the seam a person detector fills) scripted and counted."""

    def __init__(self, estimator: Scripted, finds: bool) -> None:
        super().__init__(estimator, smooth=None)
        self.finds, self.searches = finds, []

    def find(self, image: np.ndarray, pose: Pose) -> Pose:
        self.searches.append(len(self.estimator.rois))
        return _pose(0.8, 100.0, 150.0) if self.finds else pose


def test_searches_back_off_while_no_one_is_found() -> None:
    tracker = Recording(Scripted(), finds=False)
    times = np.arange(0, 12, 0.25)
    for t in times:
        tracker(FRAME, float(t))
    searched_at = [float(times[i - 1]) for i in tracker.searches]
    assert searched_at == [0.0, 1.0, 3.0, 7.0, 11.0]  # each failed search doubles the wait: 1, 2, 4, 4 s
    assert tracker.interval == MAX_SEARCH_INTERVAL and tracker.box is None


def test_a_found_person_is_cropped_next_and_reset_forgets_it() -> None:
    estimator = Scripted()
    tracker = Recording(estimator, finds=True)
    first = tracker(FRAME, 0.0)
    assert first.mean_score > 0.5 and tracker.box is not None and tracker.interval == SEARCH_INTERVAL
    cx = (tracker.box[0] + tracker.box[2]) / 2
    assert abs(cx - 100.0) < 31  # around the person the search found
    estimator.confident = True
    tracker(FRAME, 0.04)
    assert estimator.rois[-1] is not None  # the next frame is cropped around the person
    tracker.reset()
    assert tracker.box is None and tracker.searched is None and tracker.interval == SEARCH_INTERVAL
    tracker(FRAME, 0.08)
    assert estimator.rois[-1] is None  # the whole frame again after a reset


def test_a_batch_is_run_again_where_the_person_was_found() -> None:
    estimator = Scripted()
    tracker = Recording(estimator, finds=True)
    poses = tracker.update([FRAME] * 4, [0.0, 0.04, 0.08, 0.12])
    assert len(poses) == 4 and len(tracker.searches) == 1
    assert estimator.rois[:4] == [None] * 4 and all(r is not None for r in estimator.rois[4:7])
