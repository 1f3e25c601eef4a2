"""The ``predict`` job: images, folders and videos in; predictions (JSON/CSV) and annotated copies out.

A bad file is reported and skipped; the run goes on. Videos stream with bounded memory: a reader thread
decodes ahead while the model runs, frames go through in batches, and outputs are written frame by frame.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from efficientpose.draw import annotated_path, draw_pose, save_image
from efficientpose.errors import EfficientPoseError, InputError
from efficientpose.estimator import Box, PoseEstimator, Prepared
from efficientpose.io import check_not_input, expand_inputs, read_image
from efficientpose.outputs import ImagePredictionsWriter, VideoPredictionsWriter, video_output_paths
from efficientpose.pose import Pose
from efficientpose.smoothing import OneEuroFilter
from efficientpose.video import Frame, VideoReader, VideoWriter, batched

T = TypeVar("T")


@dataclass(frozen=True)
class SmoothingParams:
    """One-Euro filter parameters (Casiez et al. 2012) for video keypoints, in pixels and seconds."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0


DEFAULT_SMOOTHING = SmoothingParams()


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
    threshold: float = 0.3
    progress: bool | None = None  #: None: show a bar only when stderr is a terminal


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


def prefetch(items: Iterable[T], depth: int = 16) -> Iterator[T]:
    """Iterate ``items`` produced by a background thread (decode overlaps inference); errors re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
        q.put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


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


def search_windows(width: int, height: int, scales: tuple[float, ...] = SEARCH_SCALES) -> list[Box]:
    """Overlapping square windows covering the frame at each scale (a fraction of its shorter side)."""
    boxes: list[Box] = []
    for scale in scales:
        side = scale * min(width, height)
        xs = np.linspace(0, width - side, max(1, int(np.ceil((width - side) / (side / 2))) + 1))
        ys = np.linspace(0, height - side, max(1, int(np.ceil((height - side) / (side / 2))) + 1))
        boxes += [(float(x), float(y), float(x + side), float(y + side)) for y in ys for x in xs]
    return boxes


def find_person(estimator: PoseEstimator, image: np.ndarray, pose: Pose) -> Pose:
    """Search one frame for a person too small for the whole-frame pass to be sure of: run the network on the
    :func:`search_windows` crops in one batch, take the most confident pose, look again around its likelier
    keypoints (:func:`search_box`), and return the best of these and ``pose`` by mean score."""
    height, width = image.shape[:2]
    windows = search_windows(width, height)
    candidates = [pose, *estimator.predict_batch([image] * len(windows), windows)]
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


def drawn_video_path(out_dir: Path, video: Path, stem: str | None = None) -> Path:
    """Where the annotated copy of a video goes: ``out_dir/<stem>_pose.mp4``."""
    return Path(out_dir) / f"{stem or Path(video).stem}_pose.mp4"


def unique_name(name: str, used: set[str]) -> str:
    """``name`` or, if this run already wrote it, ``<stem>-2<suffix>``, ``-3`` ...: same-named inputs from
    different folders never overwrite each other's outputs."""
    stem, dot, suffix = name.rpartition(".") if "." in name else (name, "", "")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    used.add(candidate)
    return candidate


def predict_video(path: Path, estimator: PoseEstimator, options: PredictOptions,
                  report: PredictReport | None = None, stem: str | None = None) -> list[Path]:
    """Stream one video through the model; writes ``<stem>.json``/``.csv`` and, with ``draw``, ``<stem>_pose.mp4``
    (``stem`` defaults to the video's own)."""
    reader = VideoReader(path)
    json_path, csv_path = video_output_paths(options.output, path.with_name(f"{stem}.mp4") if stem else path)
    json_path = json_path if "json" in options.formats else None  # --format applies to videos too
    csv_path = csv_path if "csv" in options.formats else None
    for p in (json_path, csv_path):
        if p is not None:
            check_not_input(p, [path])
    writer = VideoPredictionsWriter(json_path, csv_path, file=str(path), width=reader.width, height=reader.height,
                                    fps=reader.fps, model=estimator.variant.name, names=estimator.names)
    drawn = VideoWriter(drawn_video_path(options.output, path, stem), reader.fps) if options.draw else None
    bar = _bar(reader.frame_count, path.name, options.progress)
    try:
        for frame, pose in track(prefetch(reader), estimator, batch_size=options.batch_size, roi=options.roi,
                                 smooth=options.smoothing if options.smooth else None, threshold=options.threshold):
            writer.add(frame.index, frame.time, pose)
            if drawn is not None:
                drawn.write(draw_pose(frame.image, pose, threshold=options.threshold))
            bar.update(1)
    except BaseException:
        writer.abort()
        if drawn is not None:
            drawn.abort()
        raise
    finally:
        bar.close()
    written = writer.close()
    if drawn is not None and (p := drawn.close()) is not None:
        written.append(p)
    if report is not None:  # frames of a video that failed part-way are not counted
        report.frames += writer.count
    return written


def image_poses(paths: list[Path], estimator: PoseEstimator, batch_size: int = 8,
                errors: list[EfficientPoseError] | None = None, search: bool = False,
                threshold: float = 0.3) -> Iterator[tuple[Path, np.ndarray, Pose]]:
    """(path, RGB image, pose) for every readable image, in order. A reader thread decodes and letterboxes ahead
    while the model runs; unreadable files are appended to ``errors`` (raised if it is None). With ``search``,
    an image whose whole-image pose is too unsure to crop around (:func:`roi_from_pose`) is searched for a
    smaller person (:func:`find_person`)."""

    def read() -> Iterator[tuple[Path, np.ndarray, Prepared]]:
        for p in paths:
            try:
                image = read_image(p)
            except InputError as exc:
                if errors is None:
                    raise
                errors.append(exc)
                continue
            yield p, image, estimator.prepare(image)

    for chunk in batched(prefetch(read(), depth=2 * batch_size), batch_size):
        poses = estimator.predict_prepared([prepared for _, _, prepared in chunk])
        for (p, image, _), pose in zip(chunk, poses, strict=True):
            if search and roi_from_pose(pose, image.shape[1], image.shape[0], threshold) is None:
                pose = find_person(estimator, image, pose)
            yield p, image, pose


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
    used: set[str] = {"predictions.json", "predictions.csv"}
    drawn_names = {p: unique_name(annotated_path(options.output, p).name, used) for p in images} if options.draw else {}
    stems = [Path(unique_name(f"{v.stem}.json", used)).stem for v in videos]
    if options.draw:  # an annotated copy must never replace an input (e.g. a.mp4 -> a_pose.mp4 given too)
        for video, stem in zip(videos, stems, strict=True):
            check_not_input(drawn_video_path(options.output, video, stem), images + videos)
    options.output.mkdir(parents=True, exist_ok=True)
    if images:
        json_path = options.output / "predictions.json" if "json" in options.formats else None
        csv_path = options.output / "predictions.csv" if "csv" in options.formats else None
        for p in (json_path, csv_path):
            if p is not None:
                check_not_input(p, images)
        writer = ImagePredictionsWriter(json_path, csv_path, model=estimator.variant.name, names=estimator.names)
        bar = _bar(len(images), "images", options.progress)
        try:
            for p, img, pose in image_poses(images, estimator, options.batch_size, report.errors,
                                            options.search, options.threshold):
                writer.add(str(p), img.shape[1], img.shape[0], pose)
                report.images += 1
                if options.draw:
                    target = options.output / drawn_names[p]
                    check_not_input(target, images)
                    report.outputs.append(save_image(target, draw_pose(img, pose, threshold=options.threshold),
                                                     like=p))
                bar.update(1)
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        if report.images:
            report.outputs.extend(writer.close())
        else:
            writer.abort()
    for video, stem in zip(videos, stems, strict=True):
        try:
            report.outputs.extend(predict_video(video, estimator, options, report, stem))
            report.videos += 1
        except InputError as exc:
            report.errors.append(exc)
    return report
