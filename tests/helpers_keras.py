"""Write an authors'-style Keras ``.h5`` weight file from a PyTorch EfficientPose state dict (tests only).

Keras layouts follow architecture.md §9.2/§9.4 and are implemented here independently of the package's converter;
only the layer names come from :func:`efficientpose.weights.mapping.keras_layer_names`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from efficientpose.models.efficientpose import EfficientPose
from efficientpose.weights.mapping import keras_layer_names

BN_KINDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def keras_layers(model: EfficientPose,
                 state: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Keras layer name -> {kind: array in Keras layout}, in the order Keras lists the weights (§9.2)."""
    state = model.state_dict() if state is None else state
    modules = dict(model.named_modules())
    out: dict[str, dict[str, np.ndarray]] = {}
    for path, name in keras_layer_names(model).items():
        module = modules[path]
        if isinstance(module, nn.BatchNorm2d):
            out[name] = {kind: _np(state[f"{path}.{attr}"]) for kind, attr in BN_KINDS.items()}
            continue
        weight = state[f"{path}.weight"]
        if isinstance(module, nn.ConvTranspose2d):  # (in, out, kh, kw) -> (kh, kw, out, in)
            tensors = {"kernel": _np(weight.permute(2, 3, 1, 0))}
        elif isinstance(module, nn.Conv2d) and module.groups > 1:  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            tensors = {"depthwise_kernel": _np(weight.permute(2, 3, 0, 1))}
        elif isinstance(module, nn.Conv2d):  # (out, in, kh, kw) -> (kh, kw, in, out)
            tensors = {"kernel": _np(weight.permute(2, 3, 1, 0))}
        else:
            raise TypeError(f"unexpected module {type(module).__name__} at {path}")
        if f"{path}.bias" in state and module.bias is not None:
            tensors["bias"] = _np(state[f"{path}.bias"])
        out[name] = tensors
    return out


def _inner(layer: str) -> str:
    """Keras' uniquified inner weight prefix: ``stem_conv_res1`` -> ``stem_conv``, ``_res2`` -> ``stem_conv_1``."""
    m = re.fullmatch(r"(stem|block\d[a-z])_(.+)_res([12])", layer)
    if m is None:
        return layer
    return f"{m[1]}_{m[2]}" + ("_1" if m[3] == "2" else "")


def write_keras_h5(path: Path, layers: dict[str, dict[str, np.ndarray]], input_size: int,
                   model_name: str = "model") -> Path:
    """Write ``layers`` the way Keras' ``model.save`` does (root ``model_weights`` with ``layer_names``, one group
    per layer with ``weight_names``), plus a parameter-free input layer and a minimal ``model_config``."""
    names = ["input_res1", *layers]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        config = {"class_name": "Model", "config": {"name": model_name, "layers": [
            {"class_name": "InputLayer", "name": "input_res1",
             "config": {"batch_input_shape": [None, input_size, input_size, 3]}}]}}
        f.attrs["model_config"] = json.dumps(config).encode()
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        root.create_group("input_res1").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, tensors in layers.items():
            group = root.require_group(layer)
            weight_names = [f"{_inner(layer)}/{kind}:0" for kind in tensors]
            for weight_name, array in zip(weight_names, tensors.values(), strict=True):
                group.create_dataset(weight_name, data=array)
            group.attrs["weight_names"] = np.array([w.encode() for w in weight_names])
    return path
