"""PeopleTracker's policy with a scripted world (no network, no ../shared): people are points that move; the
"estimator" returns a confident pose for whoever is inside the crop, the "finder" returns everyone visible.
Stable ids through a crossing, a lost person found again under the same id, backward retries only where frames
are held, subject selection and ``--person`` parsing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from efficientpose.errors import UsageError
from efficientpose.inference.people import as_person
from efficientpose.inference.subject import PersonPoint, choose_subject
from efficientpose.inference.tracking import PersonTracker
from efficientpose.inference.tracks import (
    KEEP_LOST,
    PeopleTracker,
    Person,
    Track,
    assign,
    keypoint_distance,
    pairwise_iou,
    track_people,
)
from efficientpose.io.video import Frame
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS

W, H = 640, 360
OFFSETS = np.random.default_rng(0).uniform([-15, -40], [15, 40], (16, 2))  # a 30 x 80 px "person"


def body(cx: float, cy: float, score: float = 0.9) -> Pose:
    return Pose(np.column_stack([OFFSETS + [cx, cy], np.full(16, score)]), image_size=(W, H))


class World:
    """People's centres per frame index (None: not visible), encoded in the frame's first pixel row."""

    names = KEYPOINTS

    def __init__(self, paths: dict[str, list[tuple[float, float] | None]]) -> None:
        self.paths = paths
        self.calls = 0

    def frames(self, fps: float = 10.0) -> list[Frame]:
        n = len(next(iter(self.paths.values())))
        out = []
        for i in range(n):
            image = np.zeros((H, W, 3), np.uint8)
            image[0, 0, 0] = i  # the frame index, for the scripted estimator
            out.append(Frame(i, i / fps, image))
        return out

    def visible(self, image: np.ndarray) -> list[tuple[float, float]]:
        i = int(image[0, 0, 0])
        return [p[i] for p in self.paths.values() if p[i] is not None]

    def predict_batch(self, images, rois=None, flip=None):  # noqa: ANN001, ANN201 - the estimator's interface
        self.calls += len(images)
        out = []
        for k, image in enumerate(images):
            roi = None if rois is None else rois[k]
            inside = [c for c in self.visible(image) if roi is None or (roi[0] <= c[0] <= roi[2]
                                                                        and roi[1] <= c[1] <= roi[3])]
            if roi is not None:  # the person nearest the crop's centre
                centre = ((roi[0] + roi[2]) / 2, (roi[1] + roi[3]) / 2)
                inside.sort(key=lambda c: np.hypot(c[0] - centre[0], c[1] - centre[1]))
            out.append(body(*inside[0]) if inside else body(W / 2, H / 2, 0.05))
        return out

    def find(self, image: np.ndarray, followed=()) -> list[Pose]:  # noqa: ANN001
        return [body(*c) for c in self.visible(image)]


def line(x0: float, x1: float, y: float, n: int) -> list[tuple[float, float] | None]:
    return [(float(x), y) for x in np.linspace(x0, x1, n)]


def ids_by_person(tracker: PeopleTracker, world: World, frames: list[Frame]) -> dict[str, set[int]]:
    """For each scripted person, the ids given to the poses at their position."""
    out: dict[str, set[int]] = {name: set() for name in world.paths}
    for f in frames:
        for p in tracker.people(f.index):
            for name, path in world.paths.items():
                c = path[f.index]
                if c is not None and np.hypot(*(p.pose.xy.mean(0) - OFFSETS.mean(0) - c)) < 1:
                    out[name].add(p.id)
    return out


def test_two_people_crossing_keep_their_ids() -> None:
    world = World({"a": line(100, 540, 180, 40), "b": line(540, 100, 200, 40)})
    tracker = PeopleTracker(world, world.find)
    frames = world.frames()
    track_people(frames, tracker, batch_size=4)
    assert ids_by_person(tracker, world, frames) == {"a": {0}, "b": {1}}
    assert all(len(tracker.people(f.index)) == 2 for f in frames)


def test_a_lost_person_found_again_keeps_the_id_and_the_gap_is_retried_backwards() -> None:
    path = line(100, 500, 180, 40)
    hidden = path[:12] + [None] * 6 + path[18:]  # out of sight for frames 12-17
    world = World({"a": hidden})
    frames = world.frames()
    tracker = PeopleTracker(world, world.find)
    track_people(frames, tracker, batch_size=4)
    assert {p.id for f in frames for p in tracker.people(f.index)} == {0}
    found = [f.index for f in frames if tracker.people(f.index)]
    assert found == [i for i in range(40) if not 12 <= i < 18]  # every visible frame, none of the hidden ones


def test_backward_retry_needs_held_frames() -> None:
    """The person is in view from frame 0, but only found at the first detection (the finder misses frames
    0-5; it runs at frames 3 and, backing off 0.5 s, 11): offline, frames 0-10 are retried backwards; live
    (nothing held), the person starts at frame 11."""
    world = World({"a": line(100, 500, 180, 24)})
    misses = World(world.paths)
    misses.find = lambda image, followed: [] if image[0, 0, 0] < 6 else world.find(image)  # type: ignore[method-assign]
    for backtrack, first in ((3.0, 0), (0.0, 11)):
        tracker = PeopleTracker(world, misses.find, backtrack=backtrack)
        frames = world.frames()
        track_people(frames, tracker, batch_size=4)
        assert min(f.index for f in frames if tracker.people(f.index)) == first


class WideWorld(World):
    """A person the network needs more context for than the tracking crop gives: confident only in crops of at least
    ``NEED`` pixels (the person is 80 px high; the tracking crop, 1.25 x the keypoints' extent, is 100); the finder's
    poses come from 150 px crops, as a detection's crop is wider than the pose (side-view walkers whose legs are
    unsure, ``docs/tracking.md``)."""

    NEED = 120

    def predict_batch(self, images, rois=None, flip=None):  # noqa: ANN001, ANN201
        poses = super().predict_batch(images, rois, flip)
        out = []
        for k, pose in enumerate(poses):
            roi = None if rois is None else rois[k]
            if roi is not None and roi[2] - roi[0] < self.NEED:
                pose = body(W / 2, H / 2, 0.05)
            out.append(replace(pose, roi=roi))
        return out

    def find(self, image: np.ndarray, followed=()) -> list[Pose]:  # noqa: ANN001
        return [replace(body(*c), roi=(c[0] - 75, c[1] - 75, c[0] + 75, c[1] + 75)) for c in self.visible(image)]


def test_a_person_lost_on_the_tracking_crop_is_looked_for_again_where_their_pose_came_from() -> None:
    """The tracking crop fails every frame here; the second look (the crop the last pose came from, moved on) keeps
    the person followed in every frame, with one id, and the finder runs only on its own schedule."""
    world = WideWorld({"a": line(100, 500, 180, 40)})
    frames = world.frames()
    tracker = PeopleTracker(world, world.find)
    track_people(frames, tracker, batch_size=4)
    assert [f.index for f in frames if tracker.people(f.index)] == list(range(40))
    assert {p.id for f in frames for p in tracker.people(f.index)} == {0}
    assert tracker.detections <= 5  # every REDETECT_INTERVAL (1 s at 10 fps) over 4 s, not at every loss


def test_a_much_weaker_second_look_is_not_taken() -> None:
    """When the second look finds the person far less surely than usual (0.5 against 0.9), they count as lost and
    are found again by the finder, rather than followed on from the weak pose."""

    class WeakWorld(WideWorld):
        def predict_batch(self, images, rois=None, flip=None):  # noqa: ANN001, ANN201
            poses = super().predict_batch(images, rois, flip)
            return [replace(p, keypoints=np.column_stack([p.xy, np.full(16, 0.5)])) if p.mean_score > 0.5 else p
                    for p in poses]

    world = WeakWorld({"a": line(100, 500, 180, 40)})
    frames = world.frames()
    tracker = PeopleTracker(world, world.find)
    track_people(frames, tracker, batch_size=4)
    people = [p for f in frames for p in tracker.people(f.index)]
    assert people and all(p.pose.mean_score == pytest.approx(0.9) for p in people)  # only the finder's poses


def test_assignment_prefers_overlap_and_close_keypoints() -> None:
    a, b = (as_person(body(x, 180)) for x in (100, 400))
    moved_b, moved_a, far = (as_person(body(x, y)) for x, y in ((405, 182), (104, 178), (250, 60)))
    known = [[(a.box, a)], [(b.box, b)]]
    assert sorted(assign(known, [(moved_b.box, moved_b), (moved_a.box, moved_a)])) == [(0, 1), (1, 0)]
    assert assign(known, [(far.box, far)]) == []
    assert keypoint_distance(a, a) == 0.0 and keypoint_distance(a, body(0, 0, 0.1)) == float("inf")
    np.testing.assert_allclose(pairwise_iou([(0, 0, 2, 2)], [(1, 0, 3, 2), (5, 5, 6, 6)]), [[1 / 3, 0.0]])


def _track(id_: int, frames: range, height: float, x: float) -> Track:
    track = Track(id_)
    for i in frames:
        pose = replace(body(x, 180.0), box=(x - 10, 180 - height / 2, x + 10, 180 + height / 2), person_score=0.9)
        track.add(i, i / 10, Person(id_, pose))
    return track


def test_the_subject_is_tracked_longest_and_largest_or_at_the_point() -> None:
    long_small = _track(0, range(0, 40), 100, 100.0)
    short_large = _track(1, range(0, 10), 300, 400.0)
    later = _track(2, range(30, 40), 150, 250.0)
    tracks = [long_small, short_large, later]
    assert choose_subject(tracks).id == 0  # 40 x 100 > 10 x 300
    assert choose_subject(tracks, PersonPoint(400, 180)).id == 1  # the first frame anyone is there
    assert choose_subject(tracks, PersonPoint(250, 180, 3.5)).id == 2
    assert choose_subject(tracks, PersonPoint(250, 180, 0.5)) is None  # nobody there then
    assert choose_subject([]) is None


@pytest.mark.parametrize("text, point", [("10,20", PersonPoint(10, 20)), ("10.5, 20@3", PersonPoint(10.5, 20, 3)),
                                         (" 0,0@0 ", PersonPoint(0, 0, 0))])
def test_person_points_parse(text: str, point: PersonPoint) -> None:
    assert PersonPoint.parse(text) == point


@pytest.mark.parametrize("text", ["", "10", "10,", "a,b", "10,20@", "-1,5", "1,2@-3", "nan,1", "inf,2", "1,2,3",
                                  "1,2@3@4"])
def test_bad_person_points_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--person"):
        PersonPoint.parse(text)


def test_the_live_tracker_follows_the_subject_and_is_empty_when_nobody_is_there() -> None:
    path = line(100, 500, 180, 30)
    world = World({"a": path[:20] + [None] * 10, "b": [None] * 5 + line(300, 320, 300, 25)})
    tracker = PersonTracker(world, smooth=None, finder=world.find)
    frames = world.frames()
    poses = [tracker(f.image, f.time) for f in frames]
    subjects = [None if np.isnan(p.xy).all() else p for p in poses]
    assert all(s is not None for s in subjects)  # someone is always in view
    assert tracker.people is not None and max(len(t.people) for t in tracker.people.tracks) <= 10  # no history
    assert np.allclose(subjects[0].xy.mean(0) - OFFSETS.mean(0), path[0])
    lone = World({"a": [None] * 3})
    empty = PersonTracker(lone, smooth=None, finder=lone.find)(lone.frames()[0].image, 0.0)
    assert np.isnan(empty.xy).all() and (empty.scores == 0).all()
    assert KEEP_LOST > 0
