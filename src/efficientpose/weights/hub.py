"""``load_model``: build a variant and load its weights (``weights`` imports ``models``, never the reverse)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import VARIANTS, get_variant

WeightsArg = str | os.PathLike | None


def load_model(name: str, pretrained: bool = True, weights: WeightsArg = None, *,
               side_heads: bool | None = None) -> EfficientPose:
    """Build EfficientPose ``name`` (rt, i, ii, iii, iv, rt-lite, i-lite, ii-lite) in eval mode.

    With ``pretrained`` the weights are resolved as documented in :mod:`efficientpose.weights.store`; an explicit
    ``weights`` file (.safetensors, .h5 or .tflite) always wins, and a name (``"lsp"`` for RT: the variant's
    ``named`` entries) loads weights shipped in the package (docs/weights.md). A safetensors file from training
    carries its keypoint names, so a model fine-tuned on another keypoint set comes back with the right heads.
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



def list_models(pretrained: bool = False) -> list[str]:
    """The variant names, in the table's order; with ``pretrained`` only those with a published weight file whose
    checksum is pinned (so ``load_model`` can fetch them)."""
    return [name for name, v in VARIANTS.items() if not pretrained or any(f.sha256 for f in v.files)]
