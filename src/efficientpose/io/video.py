"""Streaming video input (files and cameras) and atomic video output, with OpenCV, in RGB.

Frames are decoded one at a time, so memory stays bounded whatever the clip length. Reading policy: a file
that cannot be opened or has no decodable frame raises InputError when the reader is created; if decoding
stops well before the frame count the container declares (a truncated or corrupt file), iteration raises
InputError naming the first frame that could not be decoded.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Self, TypeVar

import cv2
import numpy as np

from efficientpose.errors import InputError, UsageError, input_error
from efficientpose.io import PathLike
from efficientpose.io.atomic import CloseOrAbort, forget_temp, replace_atomically, temp_sibling
from efficientpose.io.images import DEFAULT_MAX_PIXELS, check_image_size, check_readable_file

# OpenCV's and FFmpeg's own log lines (a corrupt packet, a backend that declined a file) never reach the user's
# terminal: every problem they describe surfaces as our one-line InputError. FFmpeg reads its level when OpenCV
# first opens a file with it (-8: AV_LOG_QUIET); files are opened with FFmpeg only, whose fallbacks print.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

T = TypeVar("T")

#: fps assumed when a container does not declare a usable one (times then come from timestamps if any).
FALLBACK_FPS = 30.0

#: Output suffix -> OpenCV fourcc of the writer.
WRITER_FOURCC: dict[str, str] = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class Frame(NamedTuple):
    """One decoded frame: its index from 0, its time in seconds from the start, and (H, W, 3) uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


def _bgr_to_rgb_in_place(bgr: np.ndarray) -> np.ndarray:
    """Swap a decoded frame's channels in its own memory, a band of rows at a time (a whole-frame cvtColor would
    hold a second copy of a large frame)."""
    for y in range(0, bgr.shape[0], 512):
        band = bgr[y : y + 512]
        cv2.cvtColor(band, cv2.COLOR_BGR2RGB, dst=band)
    return bgr


class _CaptureReader:
    """Shared machinery of file and camera readers around one ``cv2.VideoCapture``."""

    name: str
    fps: float
    width: int
    height: int
    frame_count: int | None

    def _open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _start(self) -> None:
        """Open the capture and decode the first frame (proving the source is readable, giving the size)."""
        if getattr(self, "_capture", None) is not None:
            self._capture.release()
        self._capture = self._open_capture()
        if not self._capture.isOpened():
            self._capture.release()
            raise self._open_error()
        try:  # the declared size first, so that a giant frame is refused before it is decoded
            declared = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                        int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            if min(declared) > 0:
                check_image_size(self.name, *declared, DEFAULT_MAX_PIXELS, what="video frame")
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                raise input_error(self.name, "no frame could be decoded (empty, corrupt or unsupported video)")
            check_image_size(self.name, bgr.shape[1], bgr.shape[0], DEFAULT_MAX_PIXELS, what="video frame")
        except BaseException:
            self._capture.release()
            raise
        self._first = (bgr, self._capture.get(cv2.CAP_PROP_POS_MSEC))
        self.height, self.width = int(bgr.shape[0]), int(bgr.shape[1])
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0.0 < fps <= 10_000.0 else FALLBACK_FPS

    def _open_error(self) -> InputError:
        return input_error(self.name, "cannot be opened as a video (unsupported format, or corrupt or truncated)")

    def _read_failed(self, index: int) -> None:
        """Called when no frame ``index`` came; raise to report it, return to end iteration normally."""

    def _timestamp(self, msec: float, index: int, previous: float | None) -> float:
        """The frame's time: the container's timestamp when it increases, else one frame after the last."""
        t = msec / 1000.0
        if math.isfinite(t) and t >= 0.0 and (previous is None or t > previous):
            return t
        return index / self.fps if previous is None else previous + 1.0 / self.fps

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:  # a second pass: start again from the beginning
            self._start()
        assert self._first is not None
        bgr, msec = self._first
        self._first = None
        index, previous = 0, None
        while True:
            t = self._timestamp(msec, index, previous)
            rgb = _bgr_to_rgb_in_place(bgr)
            del bgr
            yield Frame(index, t, rgb)
            del rgb  # the consumer holds the frame; the next one is decoded without it
            previous, index = t, index + 1
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                self._read_failed(index)
                return
            msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)

    def close(self) -> None:
        """Release the capture (also done by the context manager)."""
        self._capture.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoReader(_CaptureReader):
    """A video file as a stream of :class:`Frame` (index, time in seconds, RGB image).

    ``fps``, ``width``, ``height`` (of the decoded, orientation-corrected frames) and ``frame_count`` (as the
    container declares it; an estimate for some formats, None when unknown) are known on opening.
    Iterating again restarts from the first frame.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.name = str(path)
        check_readable_file(self.path)
        self._start()
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and 0 < count < 2**31 else None

    def _open_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(os.fspath(self.path), cv2.CAP_FFMPEG)

    def _read_failed(self, index: int) -> None:
        # Declared counts can be off by a frame or two (edit lists, estimated durations): allow a little slack.
        if self.frame_count is not None and index < self.frame_count - (2 + self.frame_count // 100):
            raise input_error(
                self.name, f"frame {index} could not be decoded although the video declares {self.frame_count} "
                f"frames (truncated or corrupt file)"
            )


class CameraReader(_CaptureReader):
    """A live camera as a stream of :class:`Frame`; times are seconds since opening, ``frame_count`` is None."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.name = f"camera {index}"
        self.frame_count = None
        self._t0 = time.monotonic()
        self._start()

    def _open_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(self.index)

    def _open_error(self) -> InputError:
        return input_error(self.name, "cannot be opened (no camera with this index, or it is in use)")

    def _timestamp(self, msec: float, index: int, previous: float | None) -> float:
        t = time.monotonic() - self._t0
        return t if previous is None or t > previous else previous + 1e-6

    def _read_failed(self, index: int) -> None:
        raise input_error(self.name, f"stopped delivering frames at frame {index} (disconnected?)")


def open_camera(index: int = 0) -> CameraReader:
    """Open camera ``index`` (0: the default one) as a frame stream; InputError if there is none."""
    return CameraReader(index)


#: A batch of frames (or images) holds at most this many bytes of pixels, whatever the batch size: large frames
#: go through a few at a time (always at least one).
MAX_BATCH_BYTES = 128 * 2**20


def held_bytes(item: object) -> int:
    """Bytes of the numpy arrays in ``item`` (an array, or tuples and lists of them, e.g. a Frame)."""
    if isinstance(item, np.ndarray):
        return item.nbytes
    if isinstance(item, tuple | list):
        return sum(held_bytes(x) for x in item)
    return 0


def batched(frames: Iterable[T], n: int, max_bytes: int | None = MAX_BATCH_BYTES) -> Iterator[list[T]]:
    """Group a frame stream into lists of ``n`` (the last may be shorter), e.g. for batched inference; a list is
    also closed once its arrays hold ``max_bytes`` (None: no limit)."""
    if n < 1:
        raise ValueError(f"batch size must be at least 1, got {n}")
    batch: list[T] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += held_bytes(frame) if max_bytes is not None else 0
        if len(batch) == n or (max_bytes is not None and size >= max_bytes):
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


#: Largest frame (in pixels) a written video may have: 8K UHD, 7680 x 4320. The MPEG-4 encoder buffers several
#: frames (about 0.5 GB at this size) and cannot encode sides beyond 8190 pixels at all.
MAX_WRITTEN_PIXELS = 7680 * 4320


class VideoWriter(CloseOrAbort):
    """Write RGB frames to a video file atomically: a hidden temporary file renamed on :meth:`close`.

    The codec follows the suffix (:data:`WRITER_FOURCC`: mp4v for .mp4, MJPG for .avi). The frame size is
    ``size`` (width, height) or that of the first frame; every frame must have it. MPEG-4 needs even sizes,
    so an odd width or height loses its last column or row (pixel coordinates are unchanged). An exception
    inside the ``with`` block, or :meth:`abort`, leaves no file behind; closing with no frame writes nothing.
    """

    def __init__(self, path: PathLike, fps: float, size: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        fourcc = WRITER_FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise UsageError(f"{path}: cannot write video with this suffix; use one of {', '.join(WRITER_FOURCC)}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"{path}: fps must be positive, got {fps}")
        self.fourcc, self.fps = fourcc, float(fps)
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._temp: Path | None = None
        self._closed = False
        if size is not None:
            self._open(size)

    def _open(self, size: tuple[int, int]) -> None:
        width, height = int(size[0]), int(size[1])
        self.frame_size = (width, height)
        self.size = (width - width % 2, height - height % 2)
        if self.size[0] < 2 or self.size[1] < 2:
            raise ValueError(f"{self.path}: frame size {width}x{height} is too small for a video")
        if width * height > MAX_WRITTEN_PIXELS:
            raise ValueError(f"frames of {width}x{height} are more than the {MAX_WRITTEN_PIXELS} pixels (8K) of a "
                             f"video we write")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = temp_sibling(self.path)
        writer = cv2.VideoWriter(os.fspath(self._temp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
        if not writer.isOpened():
            writer.release()
            self._remove_temp()
            raise OSError(f"{self.path}: OpenCV cannot open a video writer (fourcc {self.fourcc})")
        self._writer = writer

    def write(self, frame_rgb: np.ndarray, *, consume: bool = False) -> None:
        """Append one (H, W, 3) uint8 RGB frame (``consume``: the frame is not needed afterwards, so it is
        turned into BGR in its own memory rather than copied)."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        frame = np.asarray(frame_rgb)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{self.path}: frames must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        if self._writer is None:
            self._open((frame.shape[1], frame.shape[0]))
        assert self._writer is not None and self.size is not None
        if (frame.shape[1], frame.shape[0]) != self.frame_size:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, "
                f"expected {self.frame_size[0]}x{self.frame_size[1]}"
            )
        rgb = frame[: self.size[1], : self.size[0]]
        bgr = _bgr_to_rgb_in_place(rgb) if consume else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # the same swap
        self._writer.write(bgr)
        self.frames_written += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None if no frame was written)."""
        if self._closed:
            return self.path if self.frames_written else None
        if self._writer is None or self.frames_written == 0:
            self.abort()
            return None
        self._closed = True
        self._writer.release()
        assert self._temp is not None
        try:
            self._check_complete()
            replace_atomically(self._temp, self.path)
        finally:
            self._remove_temp()
        return self.path

    def _check_complete(self) -> None:
        """Raise OSError naming the output unless the file holds every frame: OpenCV's writer does not report
        failed writes, so a full disk would otherwise leave a truncated video in place of the whole one."""
        assert self._temp is not None
        capture = cv2.VideoCapture(os.fspath(self._temp), cv2.CAP_FFMPEG)
        try:
            count = capture.get(cv2.CAP_PROP_FRAME_COUNT) if capture.isOpened() else 0.0
        finally:
            capture.release()
        if not count >= self.frames_written:
            full = shutil.disk_usage(self._temp.parent).free < 2**20
            code = errno.ENOSPC if full else errno.EIO
            raise OSError(code, f"{os.strerror(code)} (the video was not written completely)", os.fspath(self.path))

    def abort(self) -> None:
        """Stop and delete the partial file; the final path is left untouched."""
        self._closed = True
        if self._writer is not None:
            self._writer.release()
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()
            forget_temp(self._temp)
