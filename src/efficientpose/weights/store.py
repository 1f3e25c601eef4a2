"""Where weights come from, in order: an explicit file or named weights shipped in the package (``"lsp"``), the
converted cache, ``$EFFICIENTPOSE_WEIGHTS_DIR`` (laid out like the authors' ``models/`` folder), then a checksummed
download from the authors' repository.

Converted weights are cached as safetensors in ``$EFFICIENTPOSE_HOME`` (default ``~/.cache/efficientpose``).
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from efficientpose.errors import WeightsError
from efficientpose.io.atomic import atomic_path
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import WeightFile
from efficientpose.weights.convert import keras_to_state_dict
from efficientpose.weights.files import cache_path, find_weights, sha256
from efficientpose.weights.keras import read_keras_h5
from efficientpose.weights.tflite import read_tflite

log = logging.getLogger(__name__)

#: Side heads a published file may lack when a model is built with them for training.
OPTIONAL_HEADS = ("pafs_head", "confs1_head")


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file (variant, keypoints, source), without loading tensors."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size > 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(size))
        return dict(header.get("__metadata__") or {})
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a state dict as safetensors atomically (:func:`~efficientpose.io.atomic.atomic_path`)."""
    with atomic_path(path) as temp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(temp), metadata=metadata)


def model_metadata(model: EfficientPose, **extra: str) -> dict[str, str]:
    """Metadata that lets a safetensors file rebuild its model: variant, keypoints, head sizes."""
    meta = {
        "format": "efficientpose",
        "variant": model.variant.name,
        "keypoints": json.dumps(list(model.keypoints)),
        "num_keypoints": str(model.confs_head.out_channels),
        "num_pafs": str(model.pafs_head.out_channels if model.pafs_head is not None else 28),
        "side_heads": str(int(model.pafs_head is not None)),
    }
    meta.update(extra)
    return meta


def _load_safetensors(model: EfficientPose, path: Path) -> dict[str, torch.Tensor]:
    meta = read_metadata(path)
    if meta.get("variant") not in (None, model.variant.name):
        raise WeightsError(f"{path}: holds weights for variant {meta['variant']!r}, not {model.variant.name!r}")
    return _checked(model, read_safetensors(path), path)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (never unpickled), floating point ones as float32 (the shipped fp16
    weights run in fp32); WeightsError if it is corrupt."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: corrupt safetensors file ({str(exc).splitlines()[0]})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def check_state_dict(model: EfficientPose, state: dict[str, torch.Tensor], source: object, *,
                     keys: list[str] | None = None, unexpected: bool = True) -> None:
    """The one state-dict check: WeightsError unless ``state`` holds every tensor of ``model`` named in ``keys``
    (default: all; the optional side heads may be absent) in its shape and, with ``unexpected``, nothing else.
    Never a half-loaded model."""
    own = model.state_dict()
    wanted = [k for k in (own if keys is None else keys) if not k.endswith("num_batches_tracked")]
    missing = [k for k in wanted if k not in state and not k.startswith(OPTIONAL_HEADS)]
    extra = [k for k in state if k not in own] if unexpected else []
    shapes = [k for k in wanted if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = [f"{len(v)} {what} (e.g. {v[0]})" for v, what in
                 ((missing, "missing"), (extra, "unexpected"), (shapes, "mis-shaped")) if v]
        raise WeightsError(f"{source}: does not fit EfficientPose {model.variant.title}: {', '.join(parts)}")


def _checked(model: EfficientPose, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """``state`` checked (:func:`check_state_dict`) and completed with ``model``'s own buffers it may lack."""
    check_state_dict(model, state, path)
    merged = dict(model.state_dict())
    merged.update(state)
    return merged


def convert_file(model: EfficientPose, path: Path) -> dict[str, torch.Tensor]:
    """Read an authors' ``.h5`` or ``.tflite`` file (or our ``.safetensors``) into ``model``'s state dict."""
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _load_safetensors(model, path)
    if suffix in (".h5", ".hdf5", ".keras"):
        return keras_to_state_dict(model, read_keras_h5(path), path, folded=False, optional=OPTIONAL_HEADS)
    if suffix == ".tflite":
        return keras_to_state_dict(model, read_tflite(path), path, folded=True, optional=OPTIONAL_HEADS)
    raise WeightsError(f"{path}: unknown weight format {suffix!r}; expected .safetensors, .h5 or .tflite")


def resolve_state_dict(model: EfficientPose, weights: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict for ``model``, found in the documented order (:func:`find_weights`); one clear WeightsError
    if nowhere. An unusable cache file is deleted (with a warning) and the search goes on."""
    variant = model.variant
    find = {"cached": cache_path(variant), "what": f"EfficientPose {variant.title}"}
    source = find_weights(variant.files, explicit=weights, named=variant.named, **find)
    if source.origin == "cache":
        try:
            return _load_safetensors(model, source.path)
        except WeightsError as exc:
            log.warning("ignoring unusable cache file: %s", exc)
            source.path.unlink(missing_ok=True)
            source = find_weights(variant.files, **find)
    if source.file is None or source.file.packaged:
        return convert_file(model, source.path)
    return _cache(model, source.path, source.file)


def _cache(model: EfficientPose, source: Path, file: WeightFile) -> dict[str, torch.Tensor]:
    state = convert_file(model, source)
    try:
        save_weights(cache_path(model.variant), state,
                     model_metadata(model, source=file.relpath, source_sha256=file.sha256 or sha256(source)))
    except OSError as exc:  # a read-only cache is not fatal
        log.warning("could not write the weight cache %s: %s", cache_path(model.variant), exc)
    return state
