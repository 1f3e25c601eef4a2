"""The export cache: ONNX exports kept under an *identity* naming the weights (variant plus a digest of the
weights file, or of the state dict for a model built in Python), so a later start reopens the export without
building the network.
"""

from __future__ import annotations

import getpass
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from efficientpose.io.atomic import atomic_write_text
from efficientpose.weights.files import home, sha256

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose


log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where exports and the ``auto`` choice are kept: ``$EFFICIENTPOSE_HOME/runtime``, or a per-user folder in
    the temporary directory when that cannot be created (a read-only or misconfigured home), said once."""
    preferred = home() / "runtime"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"efficientpose-runtime-{getpass.getuser()}"
        log.warning("cannot use %s (%s); caching exports in %s instead", preferred, exc.strerror or exc, fallback)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


@dataclass(frozen=True)
class CachedExport:
    """A cached ONNX export and what running it needs besides the file: the variant and the keypoint names."""

    onnx: Path
    variant: str
    keypoints: tuple[str, ...]


def file_identity(variant: str, weights_file: Path) -> str:
    """The cache identity of a model loaded from ``weights_file``: variant and the file's digest."""
    return f"{variant}-{sha256(Path(weights_file))[:16]}"


def model_identity(model: EfficientPose) -> str:
    """The cache identity of a model in memory: variant and a digest of its state dict."""
    import hashlib

    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return f"{model.variant.name}-{h.hexdigest()[:16]}"


def _export_paths(cache: Path, identity: str) -> tuple[Path, Path]:
    return cache / f"{identity}-low.onnx", cache / f"{identity}-low.json"


def export_for(model: EfficientPose, cache: Path, identity: str | None = None) -> CachedExport:
    """The dynamic-batch R/8 ONNX export of ``model`` in ``cache``, exported on first use; a small JSON beside
    it records what :func:`cached_runner` needs to run it without the network."""
    from efficientpose.inference.runtime.export import export_onnx

    identity = identity or model_identity(model)
    onnx, info = _export_paths(cache, identity)
    if not onnx.is_file():
        export_onnx(model, onnx, dynamic_batch=True, low_resolution=True)
    entry = CachedExport(onnx, model.variant.name, tuple(model.keypoints))
    if _read_export(cache, identity) != entry:  # absent or damaged: (re)write it
        atomic_write_text(info, json.dumps({"variant": entry.variant, "keypoints": list(entry.keypoints)}))
    return entry


def _read_export(cache: Path, identity: str) -> CachedExport | None:
    onnx, info = _export_paths(cache, identity)
    try:
        meta = json.loads(info.read_text())
        entry = CachedExport(onnx, str(meta["variant"]), tuple(str(k) for k in meta["keypoints"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry if onnx.is_file() else None
