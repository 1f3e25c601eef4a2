"""The ``predict`` job: images, folders and videos in; predictions (JSON/CSV) and annotated copies out.

A bad file is reported and skipped; the run goes on. Videos stream with bounded memory: a reader thread
decodes ahead while the model runs, frames go through in batches, and outputs are written frame by frame.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from efficientpose.errors import EfficientPoseError, InputError
from efficientpose.inference.estimator import PoseEstimator, Prepared
from efficientpose.inference.smoothing import DEFAULT_SMOOTHING, SmoothingParams
from efficientpose.inference.tracking import find_person, roi_from_pose, track
from efficientpose.io.atomic import check_not_input
from efficientpose.io.draw import annotated_path, draw_pose, save_image
from efficientpose.io.images import read_image
from efficientpose.io.inputs import expand_inputs
from efficientpose.io.predictions import IMAGE_CSV_NAME, IMAGE_JSON_NAME, ImagePredictionsWriter, VideoPredictionsWriter
from efficientpose.io.video import VideoReader, VideoWriter, batched
from efficientpose.pose import DEFAULT_THRESHOLD, Pose

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
    threshold: float = DEFAULT_THRESHOLD  #: keypoints scoring below are not drawn, nor tracked from
    progress: bool | None = None  #: None: show a bar only when stderr is a terminal

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
    json_path, csv_path = options.output_paths(stem or path.stem)  # --format applies to videos too
    for p in (json_path, csv_path):
        if p is not None:
            check_not_input(p, [path])
    writer = VideoPredictionsWriter(json_path, csv_path, file=str(path), width=reader.width, height=reader.height,
                                    fps=reader.fps, model=estimator.variant.name, names=estimator.names)
    drawn = VideoWriter(drawn_video_path(options.output, path, stem), reader.fps) if options.draw else None
    bar = _bar(reader.frame_count, path.name, options.progress)
    with bar, writer, drawn if drawn is not None else contextlib.nullcontext():  # committed whole, or not at all
        for frame, pose in track(prefetch(reader), estimator, batch_size=options.batch_size, roi=options.roi,
                                 smooth=options.smoothing if options.smooth else None, threshold=options.threshold):
            writer.add(frame.index, frame.time, pose)
            if drawn is not None:
                drawn.write(draw_pose(frame.image, pose, threshold=options.threshold))
            bar.update(1)
    written = list(writer.committed)
    if drawn is not None and drawn.committed is not None:
        written.append(drawn.committed)
    if report is not None:  # frames of a video that failed part-way are not counted
        report.frames += writer.count
    return written


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
    used: set[str] = {IMAGE_JSON_NAME, IMAGE_CSV_NAME}
    drawn_names = {p: unique_name(annotated_path(options.output, p).name, used) for p in images} if options.draw else {}
    stems = [Path(unique_name(f"{v.stem}.json", used)).stem for v in videos]
    if options.draw:  # an annotated copy must never replace an input (e.g. a.mp4 -> a_pose.mp4 given too)
        for video, stem in zip(videos, stems, strict=True):
            check_not_input(drawn_video_path(options.output, video, stem), images + videos)
    options.output.mkdir(parents=True, exist_ok=True)
    if images:
        json_path, csv_path = options.output_paths(Path(IMAGE_JSON_NAME).stem)
        for p in (json_path, csv_path):
            if p is not None:
                check_not_input(p, images)
        writer = ImagePredictionsWriter(json_path, csv_path, model=estimator.variant.name, names=estimator.names)
        with _bar(len(images), "images", options.progress) as bar, writer:  # committed whole, or not at all
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
            if not report.images:  # every image failed: no prediction file at all
                writer.abort()
        report.outputs.extend(writer.committed)
    for video, stem in zip(videos, stems, strict=True):
        try:
            report.outputs.extend(predict_video(video, estimator, options, report, stem))
            report.videos += 1
        except InputError as exc:
            report.errors.append(exc)
    return report
