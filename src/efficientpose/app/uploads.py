"""Checking an upload before it becomes a session: its name, its type (from its content, never its name) and
whether it decodes. Every refusal is one :class:`UploadError` line naming the file and the problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from efficientpose.errors import InputError
from efficientpose.io.images import read_image

#: (offset, magic bytes, kind, suffix the stored copy gets). Suffixes matter: predict picks readers by them.
_MAGIC: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"\xff\xd8\xff", "image", ".jpg"),
    (0, b"\x89PNG\r\n\x1a\n", "image", ".png"),
    (0, b"GIF87a", "image", ".gif"),
    (0, b"GIF89a", "image", ".gif"),
    (0, b"BM", "image", ".bmp"),
    (0, b"II*\x00", "image", ".tif"),
    (0, b"MM\x00*", "image", ".tif"),
    (4, b"ftyp", "video", ".mp4"),
    (4, b"moov", "video", ".mov"),
    (4, b"mdat", "video", ".mov"),
    (4, b"wide", "video", ".mov"),
    (0, b"\x1a\x45\xdf\xa3", "video", ".mkv"),
)

_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


class UploadError(Exception):
    """An upload refused, with the one-line reason shown to the user; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Probed(NamedTuple):
    """What an accepted upload is: ``kind`` ("video"/"image"), the suffix to store it under, and its frames."""

    kind: str
    suffix: str
    frames: int


def check_name(name: str) -> str:
    """The uploaded file's name for display, refused if it holds a path (``/``, ``\\``, ``..``) or control
    characters: it is never used to build a path, but a name like that is a sign of a crafted request."""
    if not name or not name.strip():
        raise UploadError("the upload has no file name")
    if _BAD_NAME.search(name) or name.strip() in (".", ".."):
        raise UploadError(f"{name!r}: a file name must not contain a folder path ('/', '\\', '..') "
                          "or control characters")
    if len(name) > 255:
        raise UploadError(f"{name[:40]}...: the file name is longer than 255 characters")
    return name


def sniff(head: bytes) -> tuple[str, str] | None:
    """(kind, suffix) from a file's first bytes, or None if it is none of the accepted formats."""
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI "):
        return ("image", ".webp") if head[8:12] == b"WEBP" else ("video", ".avi")
    for offset, magic, kind, suffix in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return kind, suffix
    return None


def probe(path: Path, name: str) -> Probed:
    """Check that ``path`` (an upload called ``name``) is a photo or a whole video; how many frames it has."""
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"{name}: the file is empty")
    with open(path, "rb") as f:
        found = sniff(f.read(16))
    if found is None:
        raise UploadError(f"{name}: not a photo or video this app reads (by its content: not JPEG, PNG, GIF, BMP, "
                          "TIFF, WebP, MP4/MOV, MKV/WebM or AVI)")
    kind, suffix = found
    if kind == "image":
        try:
            read_image(path)
        except InputError as exc:
            raise UploadError(f"{name}: {str(exc).removeprefix(f'{path}: ')}") from None
        return Probed(kind, suffix, 1)
    return Probed(kind, suffix, _video_frames(path, name))


def _video_frames(path: Path, name: str) -> int:
    """Demux the whole video (no decoding but the first frame): a truncated or damaged file is refused here,
    not minutes later in the job."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UploadError(f"{name}: the file has no video stream")
            stream = container.streams.video[0]
            declared, count, decoded = stream.frames, 0, False
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if not decoded:
                    decoded = bool(packet.decode())
                count += 1
    except UploadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UploadError(f"{name}: not a readable video ({reason})") from None
    if count == 0 or not decoded:
        raise UploadError(f"{name}: the video has no decodable frame")
    if declared and count < declared:
        raise UploadError(f"{name}: the video is truncated ({count} of its {declared} frames are present)")
    return count
