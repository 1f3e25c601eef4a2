"""Read the authors' Keras ``.h5`` files into plain float32 arrays (Keras layouts), without TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from efficientpose.errors import WeightsError
from efficientpose.models.variants import VARIANTS

# Input side length -> variant (architecture.md §1); Lite files have no fixed input size but name their backbone.
_SIZE_TO_VARIANT = {v.input_size: v.title.upper() for v in VARIANTS.values() if not v.lite}
_LITE_PREFIX_TO_VARIANT = {f"{v.backbone.name}/": v.title.upper().replace(" ", "_")
                           for v in VARIANTS.values() if v.lite}


def _decode(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)


def _open(path: Path) -> h5py.File:
    """Open ``path`` read-only, turning every failure into a one-line WeightsError."""
    if not path.exists():
        raise WeightsError(f"{path}: weight file not found")
    if not path.is_file():
        raise WeightsError(f"{path}: is not a regular file")
    try:
        return h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError for truncated, non-HDF5 and unreadable files alike
        text = str(exc)
        if "truncated file" in text:
            raise WeightsError(f"{path}: truncated HDF5 file ({path.stat().st_size} bytes)") from None
        if "signature not found" in text:
            raise WeightsError(f"{path}: not an HDF5 (Keras .h5) file") from None
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise WeightsError(f"{path}: cannot open as a Keras .h5 file ({reason})") from None


def _weights_group(f: h5py.File, path: Path) -> h5py.Group:
    """The group holding one subgroup per layer: ``model_weights`` (model.save) or the root (save_weights)."""
    if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
        return f["model_weights"]
    if "layer_names" in f.attrs:
        return f
    raise WeightsError(f"{path}: HDF5 file has no Keras weights (no 'model_weights' group with 'layer_names')")


def read_keras_h5(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Keras layer name -> {weight kind: float32 array in Keras layout}; layers without weights are omitted.

    The kind is the last component of each entry in the layer's ``weight_names`` without ``:0``
    (``kernel``, ``bias``, ``depthwise_kernel``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``).
    """
    path = Path(path)
    f = _open(path)
    try:
        root = _weights_group(f, path)
        layers: dict[str, dict[str, np.ndarray]] = {}
        for raw_layer in root.attrs["layer_names"]:
            layer = _decode(raw_layer)
            if layer not in root:
                raise WeightsError(f"{path}: layer '{layer}' is listed in layer_names but has no group")
            group = root[layer]
            tensors: dict[str, np.ndarray] = {}
            for raw_weight in group.attrs.get("weight_names", []):
                weight = _decode(raw_weight)
                kind = weight.rsplit("/", 1)[-1].split(":", 1)[0]
                if kind in tensors:
                    raise WeightsError(f"{path}: layer '{layer}' has two weights of kind '{kind}'")
                if weight not in group or not isinstance(group[weight], h5py.Dataset):
                    raise WeightsError(f"{path}: layer '{layer}' lacks its dataset '{weight}'")
                tensors[kind] = np.asarray(group[weight][()], dtype=np.float32)
            if tensors:
                layers[layer] = tensors
        return layers
    except WeightsError:
        raise
    except Exception as exc:  # corrupt chunks surface only while reading datasets
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: corrupt Keras .h5 file ({reason})") from None
    finally:
        f.close()


def keras_model_info(path: str | Path) -> dict[str, Any]:
    """Name, Keras version, input shape and guessed variant of a Keras model file, to word wrong-variant errors.

    Keys: ``name`` (model_config name or None), ``keras_version`` (or None), ``input_shape`` ((H, W, C) or None),
    ``lite`` (bool, from the EfficientNet-Lite layer prefix) and ``variant`` (e.g. "I" from the input size,
    "I_LITE" from the ``efficientnet-lite2/`` prefix; None if neither tells).
    """
    path = Path(path)
    f = _open(path)
    try:
        root = _weights_group(f, path)
        layer_names = [_decode(n) for n in root.attrs["layer_names"]]
        version = f.attrs.get("keras_version", root.attrs.get("keras_version"))
        config_raw = f.attrs.get("model_config")
        name, shape = None, None
        if config_raw is not None:
            config = json.loads(_decode(config_raw)).get("config", {})
            name = config.get("name")
            for layer in config.get("layers", []):
                if layer.get("class_name") == "InputLayer":
                    batch_shape = layer.get("config", {}).get("batch_input_shape")
                    if batch_shape and len(batch_shape) == 4:
                        shape = tuple(batch_shape[1:])
                    break
    except WeightsError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path}: corrupt Keras .h5 file ({reason})") from None
    finally:
        f.close()
    lite = any(n.startswith("efficientnet-lite") for n in layer_names)
    if lite:
        variant = next(
            (v for p, v in _LITE_PREFIX_TO_VARIANT.items() if any(n.startswith(p) for n in layer_names)), None
        )
    else:
        variant = _SIZE_TO_VARIANT.get(shape[0]) if shape and shape[0] else None
    return {
        "name": name,
        "keras_version": None if version is None else _decode(version),
        "input_shape": shape,
        "lite": lite,
        "variant": variant,
    }
