"""Where the pose detector's file comes from, in the same order as the pose weights: an explicit file, the
cache (``$EFFICIENTPOSE_HOME``), ``$EFFICIENTPOSE_WEIGHTS_DIR/mediapipe/pose_detection.tflite``, then a download
from MediaPipe's published address verified against the checksum MediaPipe's own build pins. The entry is data
(:data:`POSE_DETECTOR`); download and checksum are :mod:`efficientpose.weights.files`'."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from efficientpose.errors import WeightsError
from efficientpose.models.variants import WeightFile
from efficientpose.weights.files import download, home, verify


@dataclass(frozen=True)
class PublishedFile(WeightFile):
    """A weight file published outside the authors' repository: ``relpath`` inside a weights folder, its own
    download address and pinned SHA-256."""

    address: str = ""

    @property
    def url(self) -> str:
        return self.address


#: MediaPipe's BlazePose person detector (Apache-2.0), as in the mediapipe 0.10.21 wheel; the checksum is the one
#: in google-ai-edge/mediapipe third_party/external_files.bzl (com_google_mediapipe_pose_detection_tflite).
POSE_DETECTOR = PublishedFile(
    relpath="mediapipe/pose_detection.tflite",
    sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    address="https://storage.googleapis.com/mediapipe-assets/pose_detection.tflite?generation=1678737489600422",
)


class DetectorUnavailable(WeightsError):
    """No detector file anywhere and the download failed (no network): callers may go on without a detector."""


def cached_file(entry: PublishedFile = POSE_DETECTOR) -> Path:
    """Where a download of ``entry`` is kept: ``$EFFICIENTPOSE_HOME/downloads/<relpath>``."""
    return home() / "downloads" / entry.relpath


def resolve_detector(path: str | os.PathLike | None = None, entry: PublishedFile = POSE_DETECTOR) -> Path:
    """The detector file to use: ``path`` if given (used as is), else the cache, the weights folder or a
    download, each verified against the pinned checksum. A missing or corrupt file raises one
    :class:`WeightsError` line naming where it looked."""
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise WeightsError(f"{explicit}: detector file not found")
        return explicit
    looked = []
    folder = os.environ.get("EFFICIENTPOSE_WEIGHTS_DIR")
    for candidate in (cached_file(entry), Path(folder) / entry.relpath if folder else None):
        if candidate is None:
            looked.append("$EFFICIENTPOSE_WEIGHTS_DIR (not set)")
            continue
        looked.append(str(candidate))
        if candidate.is_file():
            verify(candidate, entry)
            return candidate
    try:
        return download(entry)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - no network, HTTP error, unwritable cache: one line either way
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DetectorUnavailable(f"person detector {Path(entry.relpath).name} not found in {', '.join(looked)}, and "
                           f"downloading {entry.url} failed ({reason})") from None
