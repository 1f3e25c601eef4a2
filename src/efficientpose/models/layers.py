"""Building blocks shared by the backbones and the detection passes, with the TF/Keras conventions explicit.

* Batch norm uses Keras' eps = 1e-3 (PyTorch's default is 1e-5).
* Convolutions use TF "same" padding: symmetric at stride 1, asymmetric (more after) at stride 2. Using
  PyTorch's symmetric padding instead moves keypoints by ~12 px (architecture.md §0 check h).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3


def batch_norm(channels: int, keras_momentum: float = 0.99) -> nn.BatchNorm2d:
    """BatchNorm2d with Keras constants (eps 1e-3; Keras momentum m becomes PyTorch 1 - m)."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=1.0 - keras_momentum)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) for one axis of length ``size``."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF 'same' padding. Stride 1 pads symmetrically inside the conv (no extra tensor);
    other strides pad asymmetrically for the actual input size."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        pad = (kernel - 1) // 2 if stride == 1 else 0
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=pad, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        return super().forward(F.pad(x, (left, right, top, bottom)))


class Swish(nn.Module):
    """x * sigmoid(x), the EfficientNet backbone activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


class ESwish(nn.Module):
    """E-swish, beta * x * sigmoid(x) with beta = 1.25: the detection-block activation."""

    def __init__(self, beta: float = 1.25) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.beta * F.silu(x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def activation(name: str) -> nn.Module:
    """The activation module for a settings-table name: 'swish', 'eswish' or 'relu6'."""
    if name == "swish":
        return Swish()
    if name == "eswish":
        return ESwish(1.25)
    if name == "relu6":
        return nn.ReLU6()
    raise ValueError(f"unknown activation {name!r}")


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global mean, 1x1 reduce (+bias), activation, 1x1 expand (+bias), sigmoid gate."""

    def __init__(self, channels: int, reduced: int, act: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = activation(act)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


def bilinear_kernel(channels: int, kernel: int = 4) -> torch.Tensor:
    """Diagonal bilinear ×2 kernel (in, out, k, k), the authors' 'BilinearWeights' initialisation."""
    factor = (kernel + 1) // 2
    centre = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = torch.arange(kernel, dtype=torch.float64)
    filt = 1 - (og - centre).abs() / factor
    weight = torch.zeros(channels, channels, kernel, kernel, dtype=torch.float64)
    weight[range(channels), range(channels)] = torch.outer(filt, filt)
    return weight.float()


class BilinearUpsample(nn.ConvTranspose2d):
    """×2 transposed conv (k4, s2, p1) initialised to, and by default frozen at, the bilinear kernel.

    Kept as a transposed conv rather than F.interpolate: its zero padding attenuates the border exactly as
    the published models do (architecture.md §5).
    """

    def __init__(self, channels: int, trainable: bool = False) -> None:
        super().__init__(channels, channels, 4, stride=2, padding=1, bias=True)
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels))
            self.bias.zero_()
        self.weight.requires_grad_(trainable)
        self.bias.requires_grad_(trainable)
