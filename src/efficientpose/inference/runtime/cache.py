"""The export cache: ONNX exports kept under an *identity* naming the weights (variant plus a digest of the
weights file, or of the state dict for a model built in Python), so a later start reopens the export without
building the network.
"""

from __future__ import annotations

import getpass
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
    """An ONNX export and what running it needs besides the file, read from the metadata :func:`export_onnx` writes
    into it: the variant, the keypoint names, the input size and the stride of its heatmaps."""

    onnx: Path
    variant: str
    keypoints: tuple[str, ...]
    input_size: int
    stride: int


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read straight from its protobuf (no onnx, onnxruntime or torch
    import, and the graph is skipped, not parsed). ValueError for a file that is not a whole ONNX model."""
    data = Path(path).read_bytes()
    props: dict[str, str] = {}
    for field, value in _fields(data, 0, len(data)):
        if field == 14 and isinstance(value, tuple):  # ModelProto.metadata_props: StringStringEntryProto
            entry = {f: data[a:b].decode("utf-8") for f, (a, b) in
                     ((f, v) for f, v in _fields(data, *value) if isinstance(v, tuple))}
            props[entry.get(1, "")] = entry.get(2, "")
    return props


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated or malformed protobuf")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes, start: int, end: int):  # noqa: ANN202 - yields (field number, int or (start, end))
    """Top-level fields of a protobuf message in ``data[start:end]``: varints as ints, length-delimited fields as
    (start, end) spans; fixed-size fields are skipped."""
    i = start
    while i < end:
        tag, i = _varint(data, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield field, value
        elif wire == 2:
            length, i = _varint(data, i)
            if i + length > end:
                raise ValueError("truncated or malformed protobuf")
            yield field, (i, i + length)
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if i != end:
        raise ValueError("truncated or malformed protobuf")


def read_export(path: Path) -> CachedExport:
    """What an efficientpose ONNX export says about itself; ValueError if it is not one (or is damaged)."""
    meta = onnx_metadata(path)
    try:
        return CachedExport(Path(path), meta["efficientpose_variant"], tuple(meta["keypoints"].split(",")),
                            int(meta["input_size"]), int(meta["output_stride"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"no efficientpose metadata ({exc})") from None


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


def export_path(cache: Path, identity: str) -> Path:
    """Where the R/8 export of the weights named ``identity`` is cached."""
    return cache / f"{identity}-low.onnx"


def export_for(model: EfficientPose, cache: Path, identity: str | None = None) -> CachedExport:
    """The dynamic-batch R/8 ONNX export of ``model`` in ``cache``, exported on first use (the file's own metadata
    records what :func:`cached_export` needs to run it without the network)."""
    from efficientpose.inference.runtime.export import export_onnx

    onnx = export_path(cache, identity or model_identity(model))
    if cached_export(onnx) is None:
        export_onnx(model, onnx, dynamic_batch=True, low_resolution=True)
    return CachedExport(onnx, model.variant.name, tuple(model.keypoints), model.input_size, 8)


def cached_export(onnx: Path) -> CachedExport | None:
    """The cached export at ``onnx``, or None when there is none; a damaged one is deleted (and so exported again),
    with a warning."""
    if not onnx.is_file():
        return None
    try:
        return read_export(onnx)
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable cached export %s (%s)", onnx, exc)
        onnx.unlink(missing_ok=True)
        return None
