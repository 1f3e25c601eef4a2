"""Inference-time rewrites that keep the function exact: batch norm folded into the preceding conv, and the
diagonal bilinear upsamplers turned into depthwise transposed convs (16x fewer multiplies). For the eager torch
backend only (not export, not training): padding buffers kept between calls and in-place activations."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from efficientpose.models.layers import Conv2dSame, ESwish, Swish, same_padding

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


class BufferedSameConv(nn.Conv2d):
    """A strided TF-'same' conv for eager inference: the input is copied into a zero-bordered buffer kept
    between calls (the border is never written), instead of a padded tensor allocated on every call."""

    def __init__(self, conv: Conv2dSame) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=0,
                         groups=conv.groups, bias=conv.bias is not None)
        self.load_state_dict(conv.state_dict())
        self.requires_grad_(conv.weight.requires_grad)
        self._buffers_by_shape: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        top, bottom = same_padding(h, self.kernel_size[0], self.stride[0])
        left, right = same_padding(w, self.kernel_size[1], self.stride[1])
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):  # autograd keeps its input
            return super().forward(F.pad(x, (left, right, top, bottom)))
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        key = (*x.shape, x.dtype, channels_last, torch.is_inference_mode_enabled())
        buffer = self._buffers_by_shape.get(key)
        if buffer is None:
            if len(self._buffers_by_shape) >= 4:  # a few batch sizes at most; never grow without bound
                self._buffers_by_shape.clear()
            buffer = torch.zeros((x.shape[0], x.shape[1], h + top + bottom, w + left + right), dtype=x.dtype)
            if channels_last:
                buffer = buffer.contiguous(memory_format=torch.channels_last)
            self._buffers_by_shape[key] = buffer
        buffer[..., top:top + h, left:left + w] = x
        return super().forward(buffer)


class InplaceSwish(nn.Module):
    """beta * x * sigmoid(x) computed in the input's own storage (its input is always a fresh conv output)."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(x, inplace=True)
        return y.mul_(self.beta) if self.beta != 1.0 else y


def for_eager_inference(model: nn.Module) -> nn.Module:
    """The torch backend's rewrites of an :func:`optimize_for_inference` model, in place: strided 'same' convs
    with kept padding buffers and in-place activations. Same outputs; for inference only."""
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv2dSame) and module.stride[0] > 1:
            _set(model, name, BufferedSameConv(module))
        elif isinstance(module, ESwish):
            _set(model, name, InplaceSwish(module.beta))
        elif isinstance(module, Swish):
            _set(model, name, InplaceSwish())
        elif isinstance(module, nn.ReLU6):
            _set(model, name, nn.ReLU6(inplace=True))
    return model
