"""The people in a photo: from a person detector's boxes (any :class:`efficientpose.detection.Detector`) and the
pose model's own confidence to a ranked list of poses, each with its ``box`` and ``person_score``. The one place
that turns (image, estimator, detector) into people; video tracking calls it to (re-)detect.

Crops follow the one crop convention (:func:`efficientpose.codec.geometry.person_square`). Measurements behind
the constants are in ``docs/detection.md``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from efficientpose.codec.geometry import box_iou, person_box, person_square, search_windows, square_box
from efficientpose.pose import DEFAULT_THRESHOLD, Box, Pose

#: Crop side / the longer side of a detection's person box.
MARGIN = 1.0
#: Detection passes, coarse to fine: the whole image, then overlapping square windows of these sides
#: (fractions of the image's shorter side). The detector misses people under about half its input.
STAGES: tuple[tuple[float, ...], ...] = ((), (1.0,), (0.6,))
#: Detections from different windows overlapping more than this are one person (MediaPipe's NMS threshold).
MERGE_IOU = 0.3
#: How many of the best detections of each pass the pose model confirms.
CONFIRM = 2
#: A pass whose surest pose has at least this mean keypoint score ends :func:`find_people`'s search.
SURE = 0.4
#: The whole-image pose is kept without detection when it is a person (:func:`is_person`), its mean keypoint score
#: is at least ``FILLS_SCORE`` and its confident keypoints span at least ``FILLS`` of the image's longer side: a
#: crop could not show such a person larger (plain LSP: 92 % of photos stop here).
FILLS = 0.4
FILLS_SCORE = 0.3
#: A whole-image detection whose box spans at least ``BIG`` of the image's longer side is a person filling the
#: photo: then only windows of the shorter side are searched, and only while no pose is a person, and a crop's pose
#: replaces the whole-image pose only when its mean keypoint score is higher by ``BIG_MARGIN``.
BIG = 0.6
BIG_MARGIN = 0.1
#: What each other detection pass that found a person in the same place adds to a crop pose's mean log score.
VOTE = 0.2
#: Two people whose boxes overlap more than this are one.
SAME_PERSON_IOU = 0.5
#: A person found in a crop gets the pose of that crop flip-averaged (test-time augmentation: the network also runs on
#: the mirrored crop); the whole-image pose is kept as it is. Small-person set, RT: 77.01 -> 77.50; plain LSP 81.71.
FLIP_CROPS = True

Detector = Callable[[np.ndarray], Sequence[Any]]  #: ``efficientpose.detection.Detector``: image -> detections


class Estimator(Protocol):
    """What this module needs of a :class:`~efficientpose.inference.estimator.PoseEstimator`."""

    def predict_batch(self, images: Sequence[np.ndarray], rois: Sequence[Box | None] | None = None, *,
                      flip: bool | None = None) -> list: ...


def crop_from_detection(detection: Any, margin: float = MARGIN) -> Box:
    """The square the pose model is given for a detection: centred on its person box, ``margin`` x its longer
    side, in original-image pixels (may reach past the image; the estimator clips it)."""
    center, side = person_square((0, 0), box=detection.person_box(), margin=margin, min_side=0.0)
    return square_box(center, side)


def crop_from_pose(pose: Pose, threshold: float = DEFAULT_THRESHOLD, margin: float | None = None) -> Box | None:
    """The training crop around a pose: its confident keypoints' extent x the crop margin (1.25), square; None when
    no keypoint is confident."""
    kw = {} if margin is None else {"margin": margin}
    found = person_square((0, 0), joints=pose.xy, annotated=pose.scores >= threshold, **kw)
    return None if found is None else square_box(*found)


def is_person(pose: Pose, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether a pose is a person: at least half its keypoints score ``threshold`` (the issue's "found": 12 of 16
    is stricter; half is what tracking starts from)."""
    return int((pose.scores >= threshold).sum()) >= max(6, len(pose.scores) // 2)


def detect_in_windows(detector: Detector, image: np.ndarray, scales: Sequence[float]) -> list:
    """Detections in overlapping square windows of ``scales`` x the shorter side (:func:`search_windows`), in
    the image's pixels, best first; of detections overlapping by more than :data:`MERGE_IOU` the best is kept."""
    height, width = image.shape[:2]
    corners = [tuple(int(round(v)) for v in w) for w in search_windows(width, height, tuple(scales))]
    many = getattr(detector, "many", None)  # a detector that runs several images in one batch
    if many is not None:  # views, which it letterboxes one at a time (a 100-megapixel photo's windows are large)
        each = many([image[r0:r1, c0:c1] for c0, r0, c1, r1 in corners])
    else:
        each = [detector(np.ascontiguousarray(image[r0:r1, c0:c1])) for c0, r0, c1, r1 in corners]
    return distinct_detections([d.shifted(c0, r0) for (c0, r0, _, _), found in zip(corners, each, strict=True)
                                for d in found])


def distinct_detections(detections: Sequence[Any]) -> list:
    """Detections best first, dropping any that overlaps a better one by more than :data:`MERGE_IOU`."""
    kept: list = []
    for d in sorted(detections, key=lambda d: -d.score):
        if not kept or (box_iou(d.box, [k.box for k in kept]) <= MERGE_IOU).all():
            kept.append(d)
    return kept


def _mean_score(pose: Any) -> float:
    return float(np.mean(pose.scores))


def confirm_by_pose(estimator: Estimator, image: np.ndarray, detections: Sequence[Any],
                    count: int = CONFIRM) -> list[tuple[Any, Any]]:
    """The ``count`` best detections with the pose on each one's crop, surest pose (mean keypoint score) first:
    the pose's mean score tracks its accuracy (correlation 0.92 with per-image PCK on the small-person set)."""
    chosen = list(detections[:count])
    if not chosen:
        return []
    poses = estimator.predict_batch([image] * len(chosen), [crop_from_detection(d) for d in chosen])
    return sorted(zip(chosen, poses, strict=True), key=lambda pair: -_mean_score(pair[1]))


def find_people(detector: Detector, estimator: Estimator, image: np.ndarray,
                stages: Sequence[Sequence[float]] = STAGES, sure: float = SURE) -> list[tuple[Any, Any]]:
    """Detections confirmed by the pose: detect on the whole image, confirm the best :data:`CONFIRM` detections
    by the pose on their crops, and while no pose is :data:`SURE`, repeat on finer windows (:data:`STAGES`).
    Returns every confirmed (detection, pose), surest first; empty if nobody was detected at all."""
    found: list[tuple[Any, Any]] = []
    for scales in stages:
        detections = detect_in_windows(detector, image, scales) if scales else list(detector(image))
        found = sorted(found + confirm_by_pose(estimator, image, detections), key=lambda pair: -_mean_score(pair[1]))
        if found and _mean_score(found[0][1]) >= sure:
            break
    return found


def as_person(pose: Pose, threshold: float = DEFAULT_THRESHOLD) -> Pose:
    """``pose`` as a found person: ``box`` around its keypoints scoring ``threshold`` or more (all of them when
    fewer than two do), their extent x 1.25 clipped to the image (:func:`person_box`), and ``person_score``, the
    pose's mean keypoint score."""
    sure = pose.scores >= threshold
    box = person_box(pose.xy, sure if sure.sum() >= 2 else None, pose.image_size)
    return replace(pose, box=box, person_score=float(np.clip(pose.mean_score, 0.0, 1.0)))


def _distinct(people: list[Pose]) -> list[Pose]:
    """Surest first, dropping anyone whose box overlaps a surer person's by more than SAME_PERSON_IOU."""
    kept: list[Pose] = []
    for p in sorted(people, key=lambda p: -p.mean_score):
        if p.box is None or not kept or all(k.box is None for k in kept) or (
                box_iou(np.asarray(p.box), np.asarray([k.box for k in kept if k.box is not None]))
                <= SAME_PERSON_IOU).all():
            kept.append(p)
    return kept


def _log_score(pose: Any) -> float:
    """The mean log keypoint score: ranks crop poses better than the plain mean (a few sure joints do not
    outweigh many unsure ones)."""
    return float(np.log(np.clip(np.asarray(pose.scores, dtype=np.float64), 1e-3, 1.0)).mean())


def _span(pose: Pose, threshold: float) -> float:
    xy = pose.xy[pose.scores >= threshold]
    xy = xy[np.isfinite(xy).all(axis=1)]
    return float(np.ptp(xy, axis=0).max()) if len(xy) else 0.0


def fills_image(pose: Pose, width: int, height: int, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """Whether a whole-image pose is a sure person filling the photo (:data:`FILLS`): nothing to detect."""
    return (is_person(pose, threshold) and pose.mean_score >= FILLS_SCORE
            and _span(pose, threshold) >= FILLS * max(width, height))


Found = tuple[int, Box, Pose]  #: (detection pass, the detection's crop, a pose of that person)


def _candidates(detector: Detector, estimator: Estimator, image: np.ndarray, whole: Pose,
                threshold: float) -> tuple[list[Found], bool]:
    """Poses of the detected people, pass by pass (:data:`STAGES`): for each confirmed detection the pose on its crop
    and the pose on the training crop around that pose (:func:`crop_from_pose`); and whether the best whole-image
    detection is a person filling the photo (:data:`BIG`), in which case only the first window pass runs, and only
    while no pose is a person."""
    height, width = image.shape[:2]
    found: list[Found] = []
    big = False
    for n, scales in enumerate(STAGES):
        if n and big and (n > 1 or is_person(whole, threshold) or any(is_person(p, threshold) for *_, p in found)):
            break
        detections = detect_in_windows(detector, image, scales) if scales else list(detector(image))
        if n == 0 and detections:
            x0, y0, x1, y1 = detections[0].person_box()
            big = max(x1 - x0, y1 - y0) >= BIG * max(width, height)
        confirmed = confirm_by_pose(estimator, image, detections)
        crops = [crop_from_detection(d) for d, _ in confirmed]
        found += [(n, box, pose) for box, (_, pose) in zip(crops, confirmed, strict=True)]
        again = [(box, crop_from_pose(pose, threshold)) for box, (_, pose) in zip(crops, confirmed, strict=True)]
        again = [(box, roi) for box, roi in again if roi is not None]
        if again:
            poses = estimator.predict_batch([image] * len(again), [roi for _, roi in again])
            found += [(n, box, pose) for (box, _), pose in zip(again, poses, strict=True)]
    return found, big


def _surest(found: list[Found]) -> Pose:
    """The pose to keep: the highest mean log keypoint score plus :data:`VOTE` for every other pass that detected a
    person in the same place (crops overlapping by more than :data:`MERGE_IOU`): a person is found at several
    scales, a pattern in the background mostly at one."""
    def support(n: int, box: Box) -> int:
        others = {b for m, b, _ in found if m != n}
        return int((box_iou(np.asarray(box), np.asarray(list(others))) > MERGE_IOU).sum()) if others else 0

    return max(found, key=lambda item: _log_score(item[2]) + VOTE * support(item[0], item[1]))[2]


def flip_crops(estimator: Estimator, image: np.ndarray, poses: Sequence[Pose],
               threshold: float = DEFAULT_THRESHOLD) -> list[Pose]:
    """``poses`` as found people (:func:`as_person`), surest first, those found in a crop (their ``roi``) re-run on
    that crop flip-averaged (:data:`FLIP_CROPS`)."""
    poses = list(poses)
    cropped = [i for i, p in enumerate(poses) if p.roi is not None] if FLIP_CROPS else []
    if cropped:
        again = estimator.predict_batch([image] * len(cropped), [poses[i].roi for i in cropped], flip=True)
        for i, pose in zip(cropped, again, strict=True):
            poses[i] = pose
    return sorted((as_person(p, threshold) for p in poses), key=lambda p: -(p.person_score or 0.0))


def people_in_photo(image: np.ndarray, estimator: Estimator, detector: Detector | None, *, limit: int = 1,
                    whole: Pose | None = None, fallback: Callable[[np.ndarray, Pose], Pose] | None = None,
                    threshold: float = DEFAULT_THRESHOLD) -> list[Pose]:
    """The people in one RGB photo, surest first, at most ``limit``, each with ``box`` and ``person_score``; empty
    when nobody is found (the caller keeps the whole-image pose, ``box`` None).

    ``whole`` is the whole-image pose if already computed. One person wanted: a whole-image pose that fills the
    photo (:func:`fills_image`) is the person; otherwise the poses of the detector's people pass by pass
    (:func:`_candidates`), the surest of them (:func:`_surest`) replacing the whole-image pose if its mean score is
    higher (by :data:`BIG_MARGIN` when the person fills the photo). With no detector, or nobody detected,
    ``fallback(image, whole)`` (the window search) is tried. Several people: every confirmed person
    (:func:`is_person`), distinct by box. People found in a crop get its pose flip-averaged (:func:`flip_crops`).
    Measurements: ``docs/detection.md``."""
    height, width = image.shape[:2]
    if whole is None:
        whole = estimator.predict_batch([image])[0]
    if limit == 1 and fills_image(whole, width, height, threshold):
        return [as_person(whole, threshold)]
    found, big = _candidates(detector, estimator, image, whole, threshold) if detector is not None else ([], False)
    if not found and fallback is not None:
        searched = fallback(image, whole)
        found = [(0, searched.roi or (0.0, 0.0, float(image.shape[1]), float(image.shape[0])), searched)]
        if not is_person(searched, threshold) and not is_person(whole, threshold):
            return []
    if not found:
        return [as_person(whole, threshold)] if is_person(whole, threshold) else []
    best = _surest(found)
    if limit > 1:
        people = [as_person(p, threshold) for p in [best, *(p for *_, p in found), whole] if is_person(p, threshold)]
        return flip_crops(estimator, image, _distinct(people)[:limit] or [best], threshold)
    return flip_crops(estimator, image, [best if best.mean_score > whole.mean_score + (BIG_MARGIN if big else 0.0)
                                         else whole], threshold)
