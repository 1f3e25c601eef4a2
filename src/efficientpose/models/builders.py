"""Typed builders for every variant and the ``load_model`` entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import get_variant

WeightsArg = str | os.PathLike | None


def load_model(name: str, pretrained: bool = True, weights: WeightsArg = None, *,
               side_heads: bool | None = None) -> EfficientPose:
    """Build EfficientPose ``name`` (rt, i, ii, iii, iv, rt-lite, i-lite, ii-lite) in eval mode.

    With ``pretrained`` the weights are resolved as documented in :mod:`efficientpose.weights.store`; an explicit
    ``weights`` file (.safetensors, .h5 or .tflite) always wins. A safetensors file from training carries its
    keypoint names, so a model fine-tuned on another keypoint set comes back with the right heads.
    """
    from efficientpose.weights.store import read_metadata, resolve_state_dict

    variant = get_variant(name)
    kwargs: dict = {"side_heads": side_heads}
    if weights is not None and Path(weights).suffix.lower() == ".safetensors" and Path(weights).is_file():
        meta = read_metadata(Path(weights))
        if "keypoints" in meta:
            names = tuple(json.loads(meta["keypoints"]))
            if names != variant.keypoints:
                kwargs.update(num_keypoints=len(names), keypoint_names=names)
            kwargs["num_pafs"] = int(meta.get("num_pafs", 28))
            if side_heads is None and meta.get("side_heads") is not None:
                kwargs["side_heads"] = meta["side_heads"] == "1"
    model = EfficientPose(variant, **kwargs)
    if pretrained or weights is not None:
        model.load_state_dict(resolve_state_dict(model, weights))
    return model.eval()


def efficientpose_rt(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose RT: 224 px, EfficientNet-B0, 0.46 M parameters."""
    return load_model("rt", pretrained, weights)


def efficientpose_i(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose I: 256 px, EfficientNet-B2 + B0 low-resolution path, 0.72 M parameters."""
    return load_model("i", pretrained, weights)


def efficientpose_ii(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose II: 368 px, EfficientNet-B4 + B0, 1.73 M parameters."""
    return load_model("ii", pretrained, weights)


def efficientpose_iii(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose III: 480 px, EfficientNet-B5 + B1, 3.23 M parameters."""
    return load_model("iii", pretrained, weights)


def efficientpose_iv(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose IV: 600 px, EfficientNet-B7 + B3, 6.56 M parameters."""
    return load_model("iv", pretrained, weights)


def efficientpose_rt_lite(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose RT Lite: 224 px, EfficientNet-Lite0, ReLU6, no SE, 0.40 M parameters."""
    return load_model("rt-lite", pretrained, weights)


def efficientpose_i_lite(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose I Lite: 256 px, EfficientNet-Lite2, 0.59 M parameters."""
    return load_model("i-lite", pretrained, weights)


def efficientpose_ii_lite(pretrained: bool = True, weights: WeightsArg = None) -> EfficientPose:
    """EfficientPose II Lite: 368 px, EfficientNet-Lite4, 1.46 M parameters."""
    return load_model("ii-lite", pretrained, weights)
