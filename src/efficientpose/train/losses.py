"""The training loss: masked per-pixel MSE on every supervised output (intermediate supervision), weighted."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from efficientpose.codec.heatmap import flip_back

#: Model output -> (batch target, mask key). The R/8 heatmap heads share the low-resolution target.
TARGETS: dict[str, tuple[str, str]] = {
    "heatmaps": ("heatmaps", "keypoint_mask"),
    "heatmaps_1": ("heatmaps_low", "keypoint_mask"),
    "heatmaps_2": ("heatmaps_low", "keypoint_mask"),
    "pafs": ("pafs", "limb_mask"),
}


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels of the channels whose mask is 1: (N, C, H, W) maps, (N, C) mask.

    Unannotated joints (and limbs) contribute nothing, and the mean is over annotated channels only, so the
    loss scale does not depend on how many joints a sample has. No annotated channel gives 0 (with a graph).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    per_channel = (pred.float() - target.float()).pow(2).mean(dim=(2, 3))
    mask = mask.to(per_channel.dtype)
    return (per_channel * mask).sum() / mask.sum().clamp_min(1.0)


def pose_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
              weights: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted total, each term) over the outputs the model produced; a term weighted 0 is still reported.

    ``limb_mask`` (N, L) covers both PAF channels of a limb (x at 2i, y at 2i + 1).
    """
    terms: dict[str, torch.Tensor] = {}
    total = None
    for name, (target_key, mask_key) in TARGETS.items():
        if name not in outputs:
            continue
        mask = batch[mask_key]
        if name == "pafs":
            mask = mask.repeat_interleave(2, dim=1)
        term = masked_mse(outputs[name], batch[target_key], mask)
        terms[name] = term
        weighted = term * float(weights.get(name, 0.0))
        total = weighted if total is None else total + weighted
    if total is None:
        raise ValueError("the model produced none of the supervised outputs " + ", ".join(TARGETS))
    return total, terms


def flip_consistency(heatmaps: torch.Tensor, mirrored: torch.Tensor, flip_index: np.ndarray) -> torch.Tensor:
    """Mean squared difference between a batch's heatmaps and those of the mirrored batch mirrored back (left and
    right swapped): flip-consistency, which needs no labels, so it also reaches joints without ground truth."""
    return (heatmaps.float() - flip_back(mirrored, flip_index).float()).pow(2).mean()
