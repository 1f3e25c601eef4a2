"""Inference-time rewrites that keep the function exact: batch norm folded into the preceding conv, and the
diagonal bilinear upsamplers turned into depthwise transposed convs (16x fewer multiplies)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# The BN that follows each conv, by the conv's attribute name (models/efficientnet.py, models/efficientpose.py).
BN_AFTER = {"conv": "bn", "expand_conv": "expand_bn", "dwconv": "bn", "project_conv": "project_bn",
            "conv1": "conv1_bn", "dconv1": "dconv1_bn", "conv2": "conv2_bn"}


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv path, batch-norm path) for every conv directly followed by a batch norm."""
    modules = dict(model.named_modules())
    pairs = []
    for path, module in modules.items():
        head, _, last = path.rpartition(".")
        if isinstance(module, nn.Conv2d) and last in BN_AFTER:
            bn = f"{head}.{BN_AFTER[last]}" if head else BN_AFTER[last]
            if isinstance(modules.get(bn), nn.BatchNorm2d):
                pairs.append((path, bn))
    return pairs


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    head, _, last = path.rpartition(".")
    setattr(model.get_submodule(head) if head else model, last, module)


def _depthwise_upsample(up: nn.ConvTranspose2d) -> nn.ConvTranspose2d:
    """An equivalent grouped transposed conv when the kernel is diagonal (in == out, zero off the diagonal)."""
    c = up.in_channels
    w = up.weight.detach()
    diag = w[range(c), range(c)]
    off = w.clone()
    off[range(c), range(c)] = 0
    if up.out_channels != c or off.abs().max() > 0:
        return up
    dw = nn.ConvTranspose2d(c, c, up.kernel_size, stride=up.stride, padding=up.padding, groups=c,
                            bias=up.bias is not None)
    with torch.no_grad():
        dw.weight.copy_(diag.unsqueeze(1))
        if up.bias is not None:
            dw.bias.copy_(up.bias)
    return dw


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with BN folded and depthwise upsamplers; same outputs to float rounding."""
    fused = copy.deepcopy(model).eval()
    for conv_path, bn_path in conv_bn_pairs(fused):
        conv = fused.get_submodule(conv_path)
        folded = fuse_conv_bn_eval(conv, fused.get_submodule(bn_path))
        _set(fused, conv_path, folded)
        _set(fused, bn_path, nn.Identity())
    for name, module in list(fused.named_modules()):
        if type(module).__name__ == "BilinearUpsample":
            _set(fused, name, _depthwise_upsample(module))
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
