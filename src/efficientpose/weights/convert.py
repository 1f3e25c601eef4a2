"""Turn the authors' Keras-named tensors (from the .h5 or .tflite readers) into a PyTorch state dict,
one tensor for one tensor, failing loudly on anything unused, missing or of the wrong shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from efficientpose.errors import WeightsError
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.fuse import conv_bn_pairs
from efficientpose.models.layers import BN_EPS
from efficientpose.weights.mapping import keras_layer_names, weighted_modules


def _torch_layout(module: nn.Module, kind: str, array: np.ndarray) -> np.ndarray:
    """Keras layout -> PyTorch layout (architecture.md §9.4)."""
    if kind == "depthwise_kernel":  # (kh, kw, C, 1) -> (C, 1, kh, kw)
        return array.transpose(2, 3, 0, 1)
    if kind == "kernel":  # Conv2D (kh,kw,in,out) -> (out,in,kh,kw); Conv2DTranspose (kh,kw,out,in) -> (in,out,kh,kw)
        return array.transpose(3, 2, 0, 1)
    return array


_KINDS = {
    nn.BatchNorm2d: {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                     "moving_variance": "running_var"},
    nn.ConvTranspose2d: {"kernel": "weight", "bias": "bias"},
}


def _conv_kinds(module: nn.Conv2d) -> dict[str, str]:
    kernel = "depthwise_kernel" if module.groups > 1 else "kernel"
    return {kernel: "weight", "bias": "bias"} if module.bias is not None else {kernel: "weight"}


def keras_to_state_dict(model: EfficientPose, layers: dict[str, dict[str, np.ndarray]], source: Path, *,
                        folded: bool, optional: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Map ``layers`` (Keras layer name -> {kind: Keras-layout array}) onto ``model``'s state dict.

    ``folded`` means batch norm is folded into the preceding convs (TFLite): each such BN becomes the identity
    (gamma 1, beta = folded bias, mean 0, var 1 - eps), which is exact. Modules whose path starts with one of
    ``optional`` may be absent from the file (e.g. side heads added for training).
    """
    names = keras_layer_names(model)
    modules = weighted_modules(model)
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    bn_of = dict(conv_bn_pairs(model))
    folded_bns = set(bn_of.values())

    def put(key: str, array: np.ndarray) -> None:
        expected = tuple(state[key].shape)
        if tuple(array.shape) != expected:
            problems.append(f"{key} has shape {tuple(array.shape)}, expected {expected}")
        else:
            out[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    for path, module in modules.items():
        keras = names[path]
        if folded and path in folded_bns:
            continue  # filled in from its conv below
        if keras not in layers:
            if not path.startswith(optional):
                problems.append(f"missing layer {keras}")
            continue
        used.add(keras)
        tensors = layers[keras]
        if isinstance(module, nn.ConvTranspose2d):
            kinds = _KINDS[nn.ConvTranspose2d]
        elif isinstance(module, nn.Conv2d):
            kinds = _conv_kinds(module)
            bn = bn_of.get(path) if folded else None
            if bn is not None:
                kinds = {k: v for k, v in kinds.items() if k != "bias"}
                c = modules[bn].num_features
                bias = tensors.get("bias", np.zeros(c, np.float32))
                put(f"{bn}.weight", np.ones(c, np.float32))
                put(f"{bn}.bias", bias)
                put(f"{bn}.running_mean", np.zeros(c, np.float32))
                put(f"{bn}.running_var", np.full(c, 1.0 - BN_EPS, np.float32))
                tensors = {k: v for k, v in tensors.items() if k != "bias"}
        else:
            kinds = _KINDS[nn.BatchNorm2d]
        extra = set(tensors) - set(kinds)
        if extra:
            problems.append(f"unexpected tensors {sorted(extra)} in layer {keras}")
        for kind, attr in kinds.items():
            if kind not in tensors:
                problems.append(f"missing tensor {keras}/{kind}")
                continue
            put(f"{path}.{attr}", _torch_layout(module, kind, tensors[kind]))
    unused = sorted(set(layers) - used)
    if unused:
        problems.append(f"{len(unused)} unused layers, e.g. {', '.join(unused[:3])}")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WeightsError(
            f"{source}: does not fit EfficientPose {model.variant.title}: {'; '.join(problems[:3])}{more}"
        )
    for key, value in state.items():  # num_batches_tracked and buffers the file does not define
        out.setdefault(key, value)
    return out
