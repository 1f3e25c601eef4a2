"""Several people through a frame stream, each with a stable id: :class:`PeopleTracker` follows every person
with the pose's own region (no detector while they stay confident; a pose that fails there gets a second look on
the crop it last came from), asks a finder (a person detector with pose confirmation) for people while nobody is
tracked, periodically and when someone is lost, matches what it finds to the known people (:func:`assign`: box
overlap and keypoint distance, Hungarian), and, where frames of the stream are still held, retries the frames before
a person was found or found again backwards from there (:meth:`PeopleTracker.backtrack`), so a track has no gap the
pose could have filled.

The finder is injected (``find(image, followed) -> poses, surest first``) so that this module needs no detector: the
application layer (``predict.py``, ``camera.py``) builds it from ``efficientpose.detection``."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from efficientpose.codec.geometry import box_iou, roi_square
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.inference.people import as_person, is_person
from efficientpose.io.video import Frame, batched, held_bytes
from efficientpose.pose import DEFAULT_THRESHOLD, Box, Pose

#: A finder: every person it can confirm in one RGB frame, as poses in the frame's pixels, surest first. It is
#: also given the boxes of the people followed surely in that frame; it may leave them out (they need no pose).
Finder = Callable[[np.ndarray, Sequence[Box]], Sequence[Pose]]

#: While people are tracked, the finder still runs this often (stream seconds) to catch people coming in.
REDETECT_INTERVAL = 1.0
#: While someone is lost (or nobody is tracked), the finder runs at once, then backs off while it finds no one
#: new: the wait doubles from :data:`RETRY_INTERVAL` up to :data:`REDETECT_INTERVAL`.
RETRY_INTERVAL = 0.25
#: A lost person keeps their id this long (stream seconds): found again within it, they are the same person.
KEEP_LOST = 3.0
#: The only person lost, found again within :data:`KEEP_LOST` at most this many of their heights per second
#: (a brisk walk) from where they were lost, keeps their id (they left the tracker's sight, e.g. jumping down).
REACH = 1.5
#: A lost person is looked for where their velocity takes them, for at most this many seconds.
PREDICT_AHEAD = 1.0
#: Frames held for backward retries (offline files only): at most this many seconds and bytes of pixels.
BACKTRACK_SECONDS = 3.0
BACKTRACK_BYTES = 256 * 2**20
#: Keypoints a newly found person must show (scoring at least the threshold) before they are followed: a
#: detector's or the window search's false person rarely does.
START_KEYPOINTS = 12
#: ... or a person whose mean keypoint score is at least this (a small walker's crop: 10 keypoints, mean 0.32; the
#: false person the window search found in a landscape: 8 keypoints, mean 0.27).
START_SCORE = 0.3
#: A followed person cut off by the frame's edge (a keypoint within EDGE x the frame's longer side of it) is
#: still followed while this many keypoints are in view (half the body leaving the frame).
EDGE = 0.05
EDGE_KEYPOINTS = 5
#: Most people tracked at once.
MAX_PEOPLE = 8
#: Two poses whose matched keypoints lie closer than this fraction of their size, or whose boxes overlap by
#: more than :data:`SAME_BOX`, are one person.
SAME_PERSON = 0.25
SAME_BOX = 0.6
#: A found person matches a known one when the box overlap is above this, or the keypoints are closer than
#: :data:`MATCH_DISTANCE` x their size.
MATCH_IOU = 0.2
MATCH_DISTANCE = 0.6
#: The tracking crop: the confident keypoints' square plus this fraction of their extent on each side, 1.25 x the
#: extent, as the training crop (``codec/geometry.py``, ``CROP_MARGIN``); and at least MIN_CROP x the person's
#: largest box (itself 1.25 x their extent) of their last SIZE_FRAMES frames. Looser crops lose small people: on
#: four made side-view clips (``benchmarks/video_people.py``) the frames found went 96 -> 186 of 300 from the
#: single-person tracker's 1.7 x (margin 0.35, at least 1.2 x the box) to this.
TRACK_MARGIN = 0.125
MIN_CROP = 1.0
SIZE_FRAMES = 10
#: The second look (:meth:`PeopleTracker._retry`) keeps its pose only if its mean keypoint score is at least this
#: fraction of the person's usual (their last SIZE_FRAMES frames): a much weaker pose is a worse start for the next
#: frames than losing them and finding them again (a clip of a photo sliding 25 px a frame: 0.31 against 0.58).
RETRY_SCORE = 0.8


def sure(pose: Pose, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether a found pose is sure enough to start following someone new: :data:`START_KEYPOINTS` keypoints
    scoring ``threshold`` (the issue's "found"), or a person (:func:`is_person`) whose mean keypoint score is at
    least :data:`START_SCORE`; following on needs only :func:`is_person`."""
    seen = int((pose.scores >= threshold).sum())
    return seen >= min(START_KEYPOINTS, len(pose.scores)) or (is_person(pose, threshold)
                                                                and pose.mean_score >= START_SCORE)


def follows(pose: Pose, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether a followed person is still there: :func:`is_person`, or, cut off by the frame's edge (a confident
    keypoint within :data:`EDGE` of it), at least :data:`EDGE_KEYPOINTS` keypoints in view."""
    if is_person(pose, threshold):
        return True
    seen = pose.xy[pose.scores >= threshold]
    if len(seen) < EDGE_KEYPOINTS or pose.image_size is None:
        return False
    w, h = pose.image_size
    margin = EDGE * max(w, h)
    return bool((seen.min(0) < margin).any() or seen[:, 0].max() > w - margin or seen[:, 1].max() > h - margin)


def region(pose: Pose, width: int, height: int, threshold: float = DEFAULT_THRESHOLD,
           margin: float | None = None) -> Box | None:
    """Where to crop the next frame for a person: the square around the confident keypoints plus ``margin`` of
    their extent on each side (default :data:`TRACK_MARGIN`; :func:`~efficientpose.codec.geometry.roi_square`);
    None when the person is not followed from this pose (:func:`follows`) or the square would be the
    whole frame."""
    if not follows(pose, threshold):
        return None
    margin = TRACK_MARGIN if margin is None else margin
    return roi_square(pose.xy[pose.scores >= threshold], width, height, margin)


def pairwise_iou(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``: (len(a), len(b))."""
    others = np.asarray(b).reshape(-1, 4)
    return np.array([box_iou(box, others) for box in a]).reshape(len(a), len(b))


def keypoint_distance(a: Pose, b: Pose, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Mean distance between the keypoints both poses see, as a fraction of the larger person's size (the
    longer side of its keypoints' extent); inf when they see fewer than 3 keypoints in common."""
    both = (a.scores >= threshold) & (b.scores >= threshold)
    if both.sum() < 3:
        return float("inf")
    size = max(float(np.ptp(p.xy[both], axis=0).max()) for p in (a, b))
    return float(np.linalg.norm(a.xy[both] - b.xy[both], axis=1).mean() / max(size, 1.0))


def assign(known: Sequence[Sequence[tuple[Box, Pose]]], found: Sequence[tuple[Box, Pose]]) -> list[tuple[int, int]]:
    """Match found people to known ones, each known person given as one or more (box, pose) guesses (where they
    were, where their velocity takes them; the closest guess counts): cost (1 - box IoU) + keypoint distance,
    solved by ``scipy.optimize.linear_sum_assignment``; pairs that neither overlap by :data:`MATCH_IOU` nor lie
    within :data:`MATCH_DISTANCE` are never matched. Returns (known index, found index) pairs."""
    if not known or not found:
        return []
    boxes = [b for b, _ in found]
    overlap = np.array([pairwise_iou([b for b, _ in guesses], boxes).max(0) for guesses in known])
    distance = np.array([[min(keypoint_distance(p, q) for _, p in guesses) for _, q in found] for guesses in known])
    allowed = (overlap > MATCH_IOU) | (distance < MATCH_DISTANCE)
    cost = np.where(allowed, (1 - overlap) + np.minimum(distance, 10.0), 1e6)
    if min(cost.shape) == 1:  # one on either side: the cheapest pair is the assignment (no scipy import)
        r, c = np.unravel_index(int(np.argmin(cost)), cost.shape)
        return [(int(r), int(c))] if allowed[r, c] else []
    from scipy.optimize import linear_sum_assignment  # imported when needed: it takes a while

    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


def same_person(a: Person, b: Person, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether two people in neighbouring frames are one: boxes overlapping by :data:`MATCH_IOU` or keypoints
    within :data:`MATCH_DISTANCE`."""
    return bool(pairwise_iou([a.box], [b.box])[0, 0] > MATCH_IOU
                or keypoint_distance(a.pose, b.pose, threshold) < MATCH_DISTANCE)


def _moved(box: Box, step: np.ndarray) -> Box:
    dx, dy = float(step[0]), float(step[1])
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


def _reachable(lost: Track, track: Track, first: int) -> bool:
    """Whether the person of ``lost`` could be where ``track`` starts (frame ``first``), at :data:`REACH`."""
    then, here = lost.people[lost.last], track.people[first]
    dt = track.times[first] - lost.times[lost.last]
    seen = [_height(lost.people[i].box) for i in lost.recent(SIZE_FRAMES)]  # a last pose may have lost the legs
    height = max(*seen, _height(here.box), 1.0)
    return bool(np.hypot(*(_centre(here.box) - _centre(then.box))) <= height * (0.5 + REACH * dt))


def _height(box: Box) -> float:
    return float(box[3] - box[1])


def _centre(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


@dataclass(frozen=True)
class Person:
    """One person in one frame: their ``id`` (stable through the stream) and pose, which carries the person's
    ``box`` and ``person_score`` (:func:`~efficientpose.inference.people.as_person`)."""

    id: int
    pose: Pose

    @property
    def box(self) -> Box:
        assert self.pose.box is not None
        return self.pose.box

    @property
    def score(self) -> float:
        return float(self.pose.person_score or 0.0)


@dataclass
class Track:
    """One person through the stream: their poses by frame index, and where to crop them next."""

    id: int
    people: dict[int, Person] = field(default_factory=dict)
    times: dict[int, float] = field(default_factory=dict)
    lost_at: float | None = None  #: stream time the pose stopped being confident; None while followed
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  #: box centre, pixels per second
    heights: float = 0.0  #: the sum of the person's box heights over every frame recorded
    last: int = -1  #: the latest frame recorded

    def recent(self, count: int, span: int = 4) -> list[int]:
        """The latest ``count`` frames recorded, in order (looked for among the last ``span`` x ``count`` frame
        indices, so that a long track costs no more than a short one)."""
        return [i for i in range(self.last - span * count, self.last + 1) if i in self.people][-count:]

    @property
    def active(self) -> bool:
        return self.lost_at is None

    def add(self, index: int, time: float, person: Person) -> None:
        """Record the person at frame ``index`` as followed there."""
        self.put(index, time, person)
        self.lost_at = None

    def put(self, index: int, time: float, person: Person) -> None:
        """Record the person at frame ``index`` (replacing what was there)."""
        if index in self.people:
            self.heights -= _height(self.people[index].box)
        self.people[index] = person
        self.times[index] = time
        self.heights += _height(person.box)
        self.last = max(self.last, index)
        self._velocity()

    def _velocity(self, frames: int = 5, seconds: float = 0.5, threshold: float = DEFAULT_THRESHOLD) -> None:
        """The person's velocity (pixels per second): the median over its last few steps (at most ``frames``
        frames, within ``seconds`` of the last) of the median motion of the keypoints seen in both frames of a
        step (a box's centre moves when a limb is lost or found; the keypoints seen do not); zero without a step."""
        recent = self.recent(frames)
        recent = [i for i in recent if self.times[recent[-1]] - self.times[i] <= seconds]
        steps = []
        for a, b in zip(recent, recent[1:], strict=False):
            pa, pb = self.people[a].pose, self.people[b].pose
            both = (pa.scores >= threshold) & (pb.scores >= threshold)
            dt = self.times[b] - self.times[a]
            if both.sum() >= 3 and dt > 0:
                steps.append(np.median(pb.xy[both] - pa.xy[both], axis=0) / dt)
        self.velocity = np.median(steps, axis=0) if steps else np.zeros(2)

    def forget(self, keep: int = SIZE_FRAMES) -> None:
        """Drop all but the latest ``keep`` frames (a live stream keeps no history); :meth:`size` is kept."""
        for index in sorted(self.people)[:-keep]:
            del self.people[index], self.times[index]

    def crop(self, time: float, width: int, height: int, threshold: float, index: int | None = None) -> Box | None:
        """Where to look for the person at ``time``: the region around their pose in frame ``index`` (default the
        last), at least :data:`MIN_CROP` x the largest box of their last :data:`SIZE_FRAMES` frames (a pose that
        lost its legs does not shrink the crop that would find them again), moved on by the velocity."""
        index = self.last if index is None else index
        box = region(self.people[index].pose, width, height, threshold)
        if box is None:
            return None
        recent = self.recent(SIZE_FRAMES)
        least = MIN_CROP * max(max(b[2] - b[0], b[3] - b[1]) for b in (self.people[i].box for i in recent))
        side = box[2] - box[0]
        if side < least:
            if least >= max(width, height):
                return None
            grow = (least - side) / 2
            box = (box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow)
        return self.moved_on(box, time, index)

    def moved_on(self, box: Box, time: float, index: int) -> Box:
        """``box`` (where the person was in frame ``index``) moved by their velocity to ``time``, at most 0.5 s."""
        return _moved(box, self.velocity * float(np.clip(time - self.times[index], -0.5, 0.5)))

    def guesses(self, time: float) -> list[tuple[Box, Pose]]:
        """Where the person may be at ``time``: the last box and pose, and both moved on by the velocity (at most
        :data:`PREDICT_AHEAD` seconds on)."""
        last = self.people[self.last]
        step = self.velocity * min(time - self.times[self.last], PREDICT_AHEAD)
        moved = last.pose.keypoints + [step[0], step[1], 0.0]
        return [(last.box, last.pose),
                (_moved(last.box, step), Pose(moved, last.pose.names, last.pose.image_size, last.pose.roi))]

    def size(self) -> float:
        """The sum over its frames of the person's height (box height): longer and larger tracks score more."""
        return self.heights


class PeopleTracker:
    """Every person in a frame stream, with stable ids. Feed it consecutive frames (:meth:`update`); read the
    people of any frame with :meth:`people` (earlier frames can still gain people by backward retries while
    they are held: up to ``backtrack`` seconds; 0 for a live stream, forward only).

    ``find`` finds people in a frame where it must (nobody tracked, someone lost, every
    :data:`REDETECT_INTERVAL`); None finds nobody (the tracker then only follows people handed to
    :meth:`start`). ``max_people`` caps how many are followed at once."""

    def __init__(self, estimator: PoseEstimator, find: Finder | None, *, threshold: float = DEFAULT_THRESHOLD,
                 max_people: int = MAX_PEOPLE, backtrack: float = BACKTRACK_SECONDS,
                 backtrack_bytes: int = BACKTRACK_BYTES) -> None:
        self.estimator = estimator
        self.find = find
        self.threshold = threshold
        self.max_people = max_people
        self.backtrack_seconds = backtrack
        self.backtrack_bytes = backtrack_bytes
        self.tracks: list[Track] = []
        self.held: collections.deque[Frame] = collections.deque()
        self.detected: float | None = None  #: stream time of the last finder run
        self.wait = RETRY_INTERVAL
        self.detections = 0  #: how many times the finder ran
        self.next_id = 0

    # ------------------------------------------------------------------------------------------ reading

    def people(self, index: int) -> list[Person]:
        """The people found in frame ``index``, by id."""
        return sorted((t.people[index] for t in self.tracks if index in t.people), key=lambda p: p.id)

    # ------------------------------------------------------------------------------------------ updating

    def update(self, frames: Sequence[Frame]) -> None:
        """Follow everyone through consecutive frames in one batched pass (each person cropped where they were
        before the first frame, moved on by their velocity), then find people in the last frame if due."""
        if not frames:
            return
        self._hold(frames)
        active = sorted((t for t in self.tracks if t.active), key=lambda t: -len(t.people))  # the older claims first
        h, w = frames[-1].image.shape[:2]
        if active:
            images = [f.image for _ in active for f in frames]
            rois = [t.crop(f.time, w, h, self.threshold) for t in active for f in frames]
            poses = self.estimator.predict_batch(images, rois)
            for i, track in enumerate(active):
                for j, frame in enumerate(frames):
                    pose = poses[i * len(frames) + j]
                    if not follows(pose, self.threshold) or self._taken(track, frame.index, pose):
                        pose = self._retry(track, frame)
                    if pose is None:
                        track.lost_at = frame.time
                        self.wait = RETRY_INTERVAL  # look for them again at once
                        break
                    track.add(frame.index, frame.time, self._person(track.id, pose))
        last = frames[-1]
        if self.find is not None and self._due(last.time):
            self.detect(last)

    def _due(self, time: float) -> bool:
        if self.detected is None:
            return True
        searching = not any(t.active for t in self.tracks) or any(
            t.lost_at is not None and time - t.lost_at <= KEEP_LOST for t in self.tracks)
        return time - self.detected >= (self.wait if searching else REDETECT_INTERVAL)

    def detect(self, frame: Frame) -> list[Track]:
        """Run the finder on ``frame``: found people who match a known (active or recently lost) person keep
        that id, the others start new tracks; people found again or new are retried backwards. Returns the
        tracks that gained this frame."""
        assert self.find is not None
        self.detected = frame.time
        self.detections += 1
        followed = [t.people[frame.index].box for t in self.tracks  # the sure ones need no fresh look
                    if frame.index in t.people and sure(t.people[frame.index].pose, self.threshold)]
        found = [as_person(p, self.threshold) for p in self.find(frame.image, followed) if is_person(p, self.threshold)]
        found = [(p.box, p) for p in found]
        candidates = [t for t in self.tracks
                      if t.active or (t.lost_at is not None and frame.time - t.lost_at <= KEEP_LOST)]
        matches = assign([t.guesses(frame.time) for t in candidates], found)
        gained: list[Track] = []
        for k, f in matches:
            track, pose = candidates[k], found[f][1]
            current = track.people.get(frame.index)
            if current is None or pose.mean_score > current.pose.mean_score:
                revived = not track.active
                track.add(frame.index, frame.time, self._person(track.id, pose))
                gained.append(track)
                if revived:
                    self.backtrack(track, frame.index)
        matched = {f for _, f in matches}
        new = 0
        for f, (_, pose) in enumerate(found):
            if f in matched or not sure(pose, self.threshold) or self._taken(None, frame.index, pose):
                continue
            if sum(t.active for t in self.tracks) >= self.max_people:
                break
            track = self.start(frame, pose)
            joined = self._join(track, candidates)
            gained.append(joined)
            new += joined is track
        self.wait = RETRY_INTERVAL if new else min(2 * self.wait, REDETECT_INTERVAL)
        return gained

    def start(self, frame: Frame, pose: Pose) -> Track:
        """Follow the person of ``pose`` (found in ``frame``) from here on as a new track, retried backwards."""
        if not self.held or self.held[-1].index < frame.index:
            self._hold([frame])
        track = Track(id=self.next_id)
        self.next_id += 1
        self.tracks.append(track)
        track.add(frame.index, frame.time, self._person(track.id, pose))
        self.backtrack(track, frame.index)
        return track

    def backtrack(self, track: Track, index: int, batch: int = 1) -> int:
        """Retry the held frames before ``index`` backwards for ``track``, from its pose there (moved back by its
        velocity), until the pose is not confident, the frame already has this person, or no frame is held;
        returns how many frames it filled."""
        before = [i for i in track.people if i < index]
        stop = max(before) if before else -1
        earlier = [f for f in reversed(self.held) if stop < f.index < index]
        filled, anchor = 0, index
        while earlier:
            chunk, earlier = earlier[:batch], earlier[batch:]
            h, w = chunk[0].image.shape[:2]
            rois = [track.crop(f.time, w, h, self.threshold, anchor) for f in chunk]
            poses = self.estimator.predict_batch([f.image for f in chunk], rois)
            for frame, pose in zip(chunk, poses, strict=True):
                if not follows(pose, self.threshold) or self._taken(track, frame.index, pose):
                    pose = self._retry(track, frame, anchor)
                if pose is None:
                    return filled
                track.put(frame.index, frame.time, self._person(track.id, pose))
                filled, anchor = filled + 1, frame.index
        return filled

    def _join(self, track: Track, candidates: Sequence[Track]) -> Track:
        """A new track that is a lost person found again joins their track (its frames become theirs): when its
        first frame (after the backward retry) continues their last one (:func:`same_person`), or, failing that,
        when they are the only person lost (within :data:`KEEP_LOST`) who could have walked there (:data:`REACH`).
        Returns the track the frames now belong to."""
        first = min(track.people)
        lost = [o for o in candidates if not o.active and o is not track and o.people and o.last < first
                and track.times[first] - o.times[o.last] <= KEEP_LOST]
        here = track.people[first]
        chosen = next((o for o in lost if same_person(o.people[o.last], here, self.threshold)), None)
        if chosen is None:
            reachable = [o for o in lost if _reachable(o, track, first)]
            chosen = reachable[0] if len(reachable) == 1 else None
        if chosen is None:
            return track
        for index in sorted(track.people):
            chosen.put(index, track.times[index], Person(chosen.id, track.people[index].pose))
        chosen.lost_at = None
        self.tracks.remove(track)
        if track.id == self.next_id - 1:
            self.next_id -= 1  # ids stay consecutive
        return chosen

    def forget(self, time: float) -> None:
        """For a live stream: keep only each person's latest frames, and drop people lost for longer than
        :data:`KEEP_LOST` at ``time`` (memory stays bounded however long the stream runs)."""
        self.tracks = [t for t in self.tracks if t.lost_at is None or time - t.lost_at <= KEEP_LOST]
        for track in self.tracks:
            track.forget()

    # ------------------------------------------------------------------------------------------ helpers

    def _retry(self, track: Track, frame: Frame, index: int | None = None) -> Pose | None:
        """A second look at a followed person whose pose failed on the tracking crop in ``frame``: the crop their pose
        in frame ``index`` (default the last) came from, moved on by their velocity; that pose if it follows them and
        is :data:`RETRY_SCORE` as sure as they usually are, else None. A tracking crop from a pose whose legs were
        unsure is too tight (made side-view walkers: frames found 484 -> 509 of 600, ``docs/tracking.md``)."""
        index = track.last if index is None else index
        roi = track.people[index].pose.roi
        if roi is None:
            return None
        pose = self.estimator.predict_batch([frame.image], [track.moved_on(roi, frame.time, index)])[0]
        usual = float(np.mean([track.people[i].pose.mean_score for i in track.recent(SIZE_FRAMES)]))
        if pose.mean_score < RETRY_SCORE * usual or not follows(pose, self.threshold):
            return None
        return None if self._taken(track, frame.index, pose) else pose

    def _person(self, id: int, pose: Pose) -> Person:
        return Person(id, as_person(pose, self.threshold))

    def _taken(self, track: Track | None, index: int, pose: Pose) -> bool:
        """Whether another track already has this person (the same pose) in frame ``index``."""
        box = as_person(pose, self.threshold).box
        for other in self.tracks:
            if other is track or index not in other.people:
                continue
            them = other.people[index]
            if keypoint_distance(them.pose, pose, self.threshold) < SAME_PERSON or (
                    box is not None and box_iou(np.asarray(them.box), np.asarray(box))[0] > SAME_BOX):
                return True
        return False

    def _hold(self, frames: Sequence[Frame]) -> None:
        """Keep the latest frames for backward retries, within :data:`BACKTRACK_SECONDS` and the byte limit."""
        if self.backtrack_seconds <= 0:
            return
        self.held.extend(frames)
        size = sum(held_bytes(f.image) for f in self.held)
        latest = self.held[-1].time
        while self.held and (latest - self.held[0].time > self.backtrack_seconds or size > self.backtrack_bytes):
            size -= held_bytes(self.held.popleft().image)


def track_people(frames: Iterable[Frame], tracker: PeopleTracker, batch_size: int = 8) -> list[tuple[int, float]]:
    """Run ``tracker`` over a whole frame stream ``batch_size`` frames at a time; returns every frame's (index,
    time), in order (its people are ``tracker.people(index)``)."""
    seen: list[tuple[int, float]] = []
    for chunk in batched(frames, batch_size):
        tracker.update(chunk)
        seen += [(f.index, f.time) for f in chunk]
    return seen
