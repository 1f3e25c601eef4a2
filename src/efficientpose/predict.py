"""The ``predict`` job: images, folders and videos in; predictions (JSON/CSV) and annotated copies out.

A bad file is reported and skipped; the run goes on. Videos stream with bounded memory: a reader thread
decodes ahead while the model runs, frames go through in batches, and outputs are written frame by frame.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from efficientpose.errors import EfficientPoseError, UsageError, input_error
from efficientpose.inference.estimator import PoseEstimator, Prepared
from efficientpose.inference.people import (
    confirm_by_pose,
    detect_in_windows,
    distinct_detections,
    is_person,
    people_in_photo,
)
from efficientpose.inference.smoothing import DEFAULT_SMOOTHING, OneEuroFilter, SmoothingParams
from efficientpose.inference.subject import PersonPoint, choose_subject
from efficientpose.inference.tracking import empty_pose, find_person, roi_from_pose, track
from efficientpose.inference.tracks import MAX_PEOPLE, Finder, PeopleTracker
from efficientpose.io.atomic import check_not_input, check_writable_folder
from efficientpose.io.draw import annotated_path, draw_pose, save_image
from efficientpose.io.images import read_image
from efficientpose.io.inputs import expand_inputs
from efficientpose.io.predictions import IMAGE_CSV_NAME, IMAGE_JSON_NAME, ImagePredictionsWriter, VideoPredictionsWriter
from efficientpose.io.video import VideoReader, VideoWriter, batched, held_bytes
from efficientpose.pose import DEFAULT_THRESHOLD, Box, Pose

T = TypeVar("T")


@dataclass
class PredictOptions:
    """Everything the predict job needs besides the inputs and the estimator."""

    output: Path = Path("efficientpose-output")
    formats: tuple[str, ...] = ("json",)
    draw: bool = False
    smooth: bool = True
    smoothing: SmoothingParams = DEFAULT_SMOOTHING
    batch_size: int = 8
    roi: bool = True
    search: bool = False  #: photos: search for a small person where the whole-image pose is unsure
    #: photos: the person detector: "auto" (resolved like the pose weights; the window search if there is none),
    #: a .tflite file, a :class:`~efficientpose.detection.Detector`, or "none"/None (the whole image, as before)
    detector: object = "auto"
    #: photos: None for the best person, else "all" or N: one record per person, best first, ranked
    people: int | str | None = None
    threshold: float = DEFAULT_THRESHOLD  #: keypoints scoring below are not drawn, nor tracked from
    progress: bool | None = None  #: None: show a bar only when stderr is a terminal
    on_frame: Callable[[int], None] | None = None  #: called after each video frame with the frames done so far
    #: videos: whose track is written: None for the person tracked longest and largest, else a point
    #: (``--person X,Y[@SECONDS]``, parsed from text) the subject stands at
    person: PersonPoint | str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:  # NaN fails too
            raise UsageError(f"--threshold must be a score in [0, 1], got {self.threshold}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        self.people = people_limit(self.people)
        if isinstance(self.person, str):
            self.person = PersonPoint.parse(self.person)

    @property
    def detection(self) -> bool:
        """Whether photos are searched for people and videos track everyone (records then carry ``box`` and
        ``person_score``)."""
        return not _no_detector(self.detector) or self.people is not None or self.person is not None

    def output_paths(self, stem: str) -> tuple[Path | None, Path | None]:
        """(JSON, CSV) paths ``output/<stem>.json`` and ``.csv``, each None unless ``formats`` asks for it."""
        return (self.output / f"{stem}.json" if "json" in self.formats else None,
                self.output / f"{stem}.csv" if "csv" in self.formats else None)


@dataclass
class PredictReport:
    """What a run did: counts, files written and every error (the CLI exits 1 when there are any)."""

    images: int = 0
    videos: int = 0
    frames: int = 0
    outputs: list[Path] = field(default_factory=list)
    errors: list[EfficientPoseError] = field(default_factory=list)


def _bar(total: int | None, desc: str, enabled: bool | None) -> tqdm:
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, desc=desc, unit="it", disable=not show, leave=False, dynamic_ncols=True)


#: Frames or images decoded ahead of the model hold at most this many bytes of pixels (besides the one being
#: decoded): a stream of giant frames is read one ahead, not ``depth`` ahead.
READ_AHEAD_BYTES = 128 * 2**20


def prefetch(items: Iterable[T], depth: int = 16, max_bytes: int = READ_AHEAD_BYTES) -> Iterator[T]:
    """Iterate ``items`` produced by a background thread (decode overlaps inference); errors re-raise here.
    At most ``depth`` items wait, and the next is produced only while those waiting hold < ``max_bytes``."""
    cond = threading.Condition()
    waiting: collections.deque = collections.deque()
    held = [0, 0]  # bytes in ``waiting``; bytes of the last item produced
    asked = threading.Event()  # the consumer waits for an item (it is done with the one before)
    stopped = threading.Event()
    done = object()

    def room() -> bool:  # a large item is decoded only once the consumer is done with the one before
        return stopped.is_set() or (len(waiting) < depth and held[0] < max_bytes
                                    and (held[1] < max_bytes or asked.is_set()))

    def put(item: object, size: int = 0) -> None:
        with cond:
            waiting.append((item, size))
            held[0] += size
            cond.notify_all()

    def work() -> None:
        try:
            iterator = iter(items)
            while True:
                with cond:  # room first, then decode: a giant frame is never decoded while another is held
                    cond.wait_for(room)
                if stopped.is_set():
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                held[1] = held_bytes(item)
                put(item, held[1])
                del item
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)
        put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            with cond:
                asked.set()
                cond.notify_all()
                cond.wait_for(lambda: bool(waiting))
                asked.clear()
                item, size = waiting.popleft()
                held[0] -= size
                cond.notify_all()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            del item  # not held while the next one is awaited
    finally:
        with cond:
            stopped.set()
            waiting.clear()
            cond.notify_all()
        thread.join()


def drawn_video_path(out_dir: Path, video: Path, stem: str | None = None) -> Path:
    """Where the annotated copy of a video goes: ``out_dir/<stem>_pose.mp4``."""
    return Path(out_dir) / f"{stem or Path(video).stem}_pose.mp4"


#: The longest file name (in bytes) the common file systems allow; output names are shortened to fit it.
NAME_MAX = 255


def _fit(stem: str, rest: str, max_bytes: int) -> str:
    """``stem + rest`` with ``stem`` shortened (whole characters) until the name fits in ``max_bytes``."""
    while stem and len((stem + rest).encode("utf-8", "surrogateescape")) > max_bytes:
        stem = stem[:-1]
    return stem + rest


def unique_name(name: str, used: set[str], max_bytes: int = NAME_MAX) -> str:
    """``name`` or, if this run already wrote it, ``<stem>-2<suffix>``, ``-3`` ...: same-named inputs from
    different folders never overwrite each other's outputs. A name longer than ``max_bytes`` is shortened."""
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    candidate, n = _fit(stem, f"{dot}{suffix}", max_bytes), 1
    while candidate in used:
        n += 1
        candidate = _fit(stem, f"-{n}{dot}{suffix}", max_bytes)
    used.add(candidate)
    return candidate


#: Output errors that no other input would escape (a full disk, a read-only or foreign folder): they end the
#: run with one line naming the output path, keeping what was finished.
_FATAL_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def _per_file_error(path: Path, exc: Exception) -> EfficientPoseError:
    """The error of one input that failed (its outputs not written), or raise ``exc`` if the run cannot go on."""
    if isinstance(exc, EfficientPoseError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in _FATAL_OUTPUT_ERRNOS:
            raise exc
        where = f"{exc.filename}: " if exc.filename else ""
        return input_error(path, f"its outputs could not be written ({where}{exc.strerror or exc})")
    return input_error(path, f"could not be processed ({type(exc).__name__}: {exc})")


def predict_video(path: Path, estimator: PoseEstimator, options: PredictOptions,
                  report: PredictReport | None = None, stem: str | None = None) -> list[Path]:
    """Stream one video through the model; writes ``<stem>.json``/``.csv`` and, with ``draw``, ``<stem>_pose.mp4``
    (``stem`` defaults to the video's own). With the person detector (the default), everyone is tracked and the
    output is the subject's track (:func:`video_people`); with ``--detector none``, today's single-person tracking."""
    reader = VideoReader(path)
    json_path, csv_path = options.output_paths(stem or path.stem)  # --format applies to videos too
    for p in (json_path, csv_path):
        if p is not None:
            check_not_input(p, [path])
    drawn = None
    if options.draw:  # opened at the frame size now: a frame too large for a written video fails before the run
        try:
            drawn = VideoWriter(drawn_video_path(options.output, path, stem), reader.fps,
                                size=(reader.width, reader.height))
        except BaseException as exc:
            reader.close()
            if isinstance(exc, ValueError):
                raise input_error(path, f"no annotated copy can be written ({exc}); run it without --draw") from exc
            raise

    def writer(**people: object) -> VideoPredictionsWriter:
        return VideoPredictionsWriter(json_path, csv_path, file=str(path), width=reader.width, height=reader.height,
                                      fps=reader.fps, model=estimator.variant.name, names=estimator.names,
                                      smoothing=None if options.smooth else "none", weights=estimator.weights,
                                      **people)

    bar = _bar(reader.frame_count, path.name, options.progress)
    if options.detection:
        try:
            written, count = video_people(path, reader, estimator, options, writer, drawn, bar)
        except BaseException:
            if drawn is not None:
                drawn.abort()
            raise
    else:
        out = writer()
        # committed whole or not at all; the predictions first, so a failed annotated copy never costs them
        with bar, drawn if drawn is not None else contextlib.nullcontext(), out:
            for frame, pose in track(prefetch(reader), estimator, batch_size=options.batch_size, roi=options.roi,
                                     smooth=options.smoothing if options.smooth else None,
                                     threshold=options.threshold):
                out.add(frame.index, frame.time, pose)
                if drawn is not None:  # the frame is done with: drawn on and converted in its own memory
                    drawn.write(draw_pose(frame.image, pose, threshold=options.threshold, in_place=True), consume=True)
                bar.update(1)
                if options.on_frame is not None:
                    options.on_frame(out.count)
        written, count = list(out.committed), out.count
    if drawn is not None and drawn.committed is not None:
        written.append(drawn.committed)
    if report is not None:  # frames of a video that failed part-way are not counted
        report.frames += count
    return written


#: Video (re-)detection: the detector on the whole frame and on overlapping windows of the frame's shorter side
#: (it misses people under about half its input: a walker a third of a 720p frame high is found in windows); the
#: finer windows only while the pose confirms nobody new; the pose confirms at most this many detections a pass.
VIDEO_WINDOWS = ((1.0,), (0.6,))
VIDEO_CONFIRM = 4


def video_finder(estimator: PoseEstimator, detector: object | None, threshold: float = DEFAULT_THRESHOLD,
                 limit: int = MAX_PEOPLE) -> Finder:
    """The finder video tracking (re-)detects people with. Unlike a photo's (:func:`people_in_photo`), it looks
    for everyone, not the surest person: detections on the whole frame and in windows (:data:`VIDEO_WINDOWS`, the
    finer only while nobody is followed and nobody new is confirmed), merged, the best :data:`VIDEO_CONFIRM` of
    those not centred in a followed person's box confirmed by the pose.
    Where it detects nobody (or there is no detector) and nobody is followed, :func:`people_in_photo`'s way (the
    whole-frame pose, then the window search)."""

    def search(image: np.ndarray, whole: Pose) -> Pose:
        return find_person(estimator, image, whole)

    def find(image: np.ndarray, followed: Sequence[Box] = ()) -> list[Pose]:
        if detector is not None:
            found: list = list(detector(image))  # type: ignore[operator]
            tried: list = []
            people: list[Pose] = []
            for n, scales in enumerate(VIDEO_WINDOWS):  # finer windows while the pose confirms nobody new
                if n and followed:  # people followed: the periodic look for newcomers stays coarse
                    break
                found = distinct_detections(found + detect_in_windows(detector, image, scales))
                new = [d for d in found if all(d is not t for t in tried)
                       and not any(_inside(d.box, box) for box in followed)]
                pairs = confirm_by_pose(estimator, image, new, count=min(limit, VIDEO_CONFIRM))
                tried += [d for d, _ in pairs]
                people += [pose for _, pose in pairs if is_person(pose, threshold)]
                if people:
                    break
            if found:  # the detector saw people: the new ones the pose confirms
                return people
        if followed:  # the costly window search only while nobody is followed
            return []
        # the detector has seen this frame in every window: the whole-frame pose, then the window search
        return people_in_photo(image, estimator, None, limit=limit, fallback=search, threshold=threshold)

    return find


def _inside(box: Box, outer: Box) -> bool:
    """Whether the centre of ``box`` lies inside ``outer``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def video_people(path: Path, reader: VideoReader, estimator: PoseEstimator, options: PredictOptions,
                 writer: Callable[..., VideoPredictionsWriter], drawn: VideoWriter | None,
                 bar: tqdm) -> tuple[list[Path], int]:
    """Track everyone through the video (:class:`PeopleTracker`, backward retries included), choose the subject
    (:func:`choose_subject`: longest and largest, or ``options.person``), then write the subject's track, smoothed,
    with ``box`` and ``person_score`` (and everyone with ``--people``); with ``draw``, a second decoding pass draws
    it. Returns the files written and the frame count."""
    detector = open_detector(options.detector, backend=estimator.backend)
    limit = min(options.people or MAX_PEOPLE, MAX_PEOPLE)
    tracker = PeopleTracker(estimator, video_finder(estimator, detector, options.threshold, limit),
                            threshold=options.threshold, max_people=limit)
    seen: list[tuple[int, float]] = []
    with bar:
        for chunk in batched(prefetch(reader), options.batch_size):
            tracker.update(chunk)
            seen += [(f.index, f.time) for f in chunk]
            bar.update(len(chunk))
            if options.on_frame is not None:
                options.on_frame(len(seen))
            del chunk
    subject = choose_subject(tracker.tracks, options.person)
    if subject is None and options.person is not None:
        raise input_error(path, f"--person {options.person}: nobody was found there")
    listed = options.people is not None
    smooth = options.smoothing if options.smooth else None
    filters: dict[int, OneEuroFilter] = {}
    size = (reader.width, reader.height)
    empty = empty_pose(estimator.names, size)
    shown: dict[int, list[Pose]] = {}  # what --draw draws: the subject, or everyone with --people
    with writer(detection=True, people=listed, subject=None if subject is None else subject.id) as out:
        for index, time in seen:
            everyone = {p.id: p.pose for p in tracker.people(index)}
            if not listed:  # only the subject is written (and smoothed)
                everyone = {i: q for i, q in everyone.items() if subject is not None and i == subject.id}
            if smooth is not None:
                everyone = {i: smoothed(q, time, filters, i, smooth, options.threshold) for i, q in everyone.items()}
            pose = everyone.get(subject.id, empty) if subject is not None else empty
            out.add(index, time, pose, sorted(everyone.items()))
            if drawn is not None:
                shown[index] = list(everyone.values()) if listed else [pose]
    written = list(out.committed)
    if drawn is not None:
        with drawn:
            for frame in reader:  # a second pass: the subject was known only at the end
                image = frame.image
                for pose in shown.get(frame.index, []):
                    image = draw_pose(image, pose, threshold=options.threshold, in_place=True)
                drawn.write(image, consume=True)
    return written, out.count


def smoothed(pose: Pose, time: float, filters: dict[int, OneEuroFilter], key: int, params: SmoothingParams,
             threshold: float) -> Pose:
    """``pose`` through the One-Euro filter of ``key`` (made on first use); scores, box and person score unchanged."""
    if key not in filters:
        filters[key] = OneEuroFilter(params.min_cutoff, params.beta, params.d_cutoff, min_score=threshold)
    xy = filters[key](pose.xy, time, pose.scores)
    xy = np.where(np.isfinite(xy), xy, pose.xy)
    return replace(pose, keypoints=np.column_stack([xy, pose.scores]))


def people_limit(value: int | str | None) -> int | None:
    """``--people``: None (the best person, unranked), "all" (as a very large number) or N >= 1."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "all":
        return sys.maxsize
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise UsageError(f"--people must be 'all' or a whole number of at least 1, got {value!r}")
    return int(text)


def _no_detector(detector: object) -> bool:
    return detector is None or (isinstance(detector, str) and detector.lower() == "none")


def open_detector(detector: object, *, backend: str = "auto", threads: int | None = None) -> object | None:
    """The person detector an option names: "none"/None -> None; "auto" -> MediaPipe's BlazePose detector, resolved
    like the pose weights, or None with one warning when there is none anywhere and no network; a path -> that
    file (a missing or corrupt file raises one line naming it); any other object is the detector itself. The
    detector runs on ``backend`` (the pose model's) when it can."""
    if _no_detector(detector):
        return None
    if not isinstance(detector, str | Path):
        return detector
    from efficientpose.detection import BlazePoseDetector
    from efficientpose.detection.weights import DetectorUnavailable

    auto = isinstance(detector, str) and detector.lower() == "auto"
    try:
        from efficientpose.detection.blazepose import BACKENDS

        return BlazePoseDetector(None if auto else detector, backend=backend if backend in BACKENDS else "auto",
                                 threads=threads)
    except DetectorUnavailable as exc:
        if not auto:
            raise
        warnings.warn(f"{exc}: photos are searched for people with the window search instead", stacklevel=2)
        return None


def image_people(paths: list[Path], estimator: PoseEstimator, detector: object | None, *, limit: int = 1,
                 batch_size: int = 8, errors: list[EfficientPoseError] | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> Iterator[tuple[Path, np.ndarray, list[Pose]]]:
    """(path, RGB image, people) for every readable image, in order: at most ``limit`` people, surest first, each
    with ``box`` and ``person_score`` (:func:`people_in_photo`; the window search where the detector finds nobody
    or there is none); nobody found: the whole-image pose alone, ``box`` None."""

    def search(image: np.ndarray, whole: Pose) -> Pose:
        return find_person(estimator, image, whole)

    for p, image, whole in image_poses(paths, estimator, batch_size, errors, threshold=threshold):
        people = people_in_photo(image, estimator, detector, limit=limit, whole=whole, fallback=search,
                                 threshold=threshold)
        yield p, image, people or [whole]


def image_poses(paths: list[Path], estimator: PoseEstimator, batch_size: int = 8,
                errors: list[EfficientPoseError] | None = None, search: bool = False,
                threshold: float = DEFAULT_THRESHOLD) -> Iterator[tuple[Path, np.ndarray, Pose]]:
    """(path, RGB image, pose) for every readable image, in order. A reader thread decodes and letterboxes ahead
    while the model runs; unreadable files are appended to ``errors`` (raised if it is None). With ``search``,
    an image whose whole-image pose is too unsure to crop around (:func:`roi_from_pose`) is searched for a
    smaller person (:func:`find_person`)."""

    def read() -> Iterator[tuple[Path, np.ndarray, Prepared]]:
        for p in paths:
            try:
                image = read_image(p)
                prepared = estimator.prepare(image)
            except Exception as exc:  # one bad file never stops the batch
                if errors is None:
                    raise
                errors.append(_per_file_error(p, exc))
                continue
            yield p, image, prepared

    for chunk in batched(prefetch(read(), depth=2 * batch_size), batch_size):
        poses = estimator.predict_prepared([prepared for _, _, prepared in chunk])
        for (p, image, _), pose in zip(chunk, poses, strict=True):
            if search and roi_from_pose(pose, image.shape[1], image.shape[0], threshold) is None:
                pose = find_person(estimator, image, pose)
            yield p, image, pose
        del chunk, image  # a large image is not held while the next one is decoded


def predict_files(inputs: Iterable[str | Path], estimator: PoseEstimator, options: PredictOptions) -> PredictReport:
    """Run the model on every image and video under ``inputs``; never stops at a bad file."""
    report = PredictReport()
    expanded = expand_inputs(inputs)
    report.errors.extend(expanded.errors)
    out = options.output.resolve()
    # An output folder inside an input folder holds earlier runs' outputs, not inputs (unless named explicitly).
    inputs = [Path(p) for p in inputs]
    named = {p.resolve() for p in inputs}
    items = [i for i in expanded.items
             if out in named or i.path.resolve() in named or out not in i.path.resolve().parents]
    images = [i.path for i in items if i.kind == "image"]
    videos = [i.path for i in items if i.kind == "video"]
    used: set[str] = {IMAGE_JSON_NAME, IMAGE_CSV_NAME}
    drawn_names = {p: unique_name(annotated_path(options.output, p).name, used) for p in images} if options.draw else {}
    # a stem leaves room for its longest output name, <stem>_pose.mp4
    stems = [Path(unique_name(f"{v.stem}.json", used, NAME_MAX - len("_pose.mp4") + len(".json"))).stem
             for v in videos]
    if options.draw:  # an annotated copy must never replace an input (e.g. a.mp4 -> a_pose.mp4 given too)
        for video, stem in zip(videos, stems, strict=True):
            check_not_input(drawn_video_path(options.output, video, stem), images + videos)
    options.output.mkdir(parents=True, exist_ok=True)
    check_writable_folder(options.output)  # a read-only output folder: one line now, not one per input
    if images:
        json_path, csv_path = options.output_paths(Path(IMAGE_JSON_NAME).stem)
        for p in (json_path, csv_path):
            if p is not None:
                check_not_input(p, images)
        ranked = options.people is not None
        writer = ImagePredictionsWriter(json_path, csv_path, model=estimator.variant.name, names=estimator.names,
                                        detection=options.detection, ranked=ranked, weights=estimator.weights)
        if options.detection:
            detector = open_detector(options.detector, backend=estimator.backend)
            results = image_people(images, estimator, detector, limit=options.people or 1,
                                   batch_size=options.batch_size, errors=report.errors, threshold=options.threshold)
        else:
            results = ((p, img, [pose]) for p, img, pose in image_poses(
                images, estimator, options.batch_size, report.errors, options.search, options.threshold))
        with _bar(len(images), "images", options.progress) as bar, writer:  # committed whole, or not at all
            for p, img, people in results:
                for rank, person in enumerate(people):
                    writer.add(str(p), img.shape[1], img.shape[0], person, person=rank if ranked else None)
                report.images += 1
                if options.draw:
                    target = options.output / drawn_names[p]
                    check_not_input(target, images)
                    drawn = img
                    for person in people:
                        drawn = draw_pose(drawn, person, threshold=options.threshold)
                    try:
                        report.outputs.append(save_image(target, drawn, like=p))
                    except (OSError, ValueError) as exc:  # its record stands; the copy is reported missing
                        report.errors.append(_per_file_error(p, exc))
                del img  # a large image is not held while the next one is decoded
                bar.update(1)
            if not report.images:  # every image failed: no prediction file at all
                writer.abort()
        report.outputs.extend(writer.committed)
    for video, stem in zip(videos, stems, strict=True):
        try:
            report.outputs.extend(predict_video(video, estimator, options, report, stem))
            report.videos += 1
        except Exception as exc:  # one bad file never stops the batch (a full disk does, keeping finished files)
            report.errors.append(_per_file_error(video, exc))
    return report
