"""EfficientNet / EfficientNet-Lite feature extractors cut after stage 2 or 3, as EfficientPose uses them.

Blocks live here; the per-variant settings live in :mod:`efficientpose.models.variants`.
"""

from __future__ import annotations

import torch
from torch import nn

from efficientpose.models.layers import Conv2dSame, SqueezeExcite, activation, batch_norm
from efficientpose.models.variants import BackboneSpec


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [1x1 expand, BN, act], depthwise kxk, BN, act, [SE], 1x1 project, BN, [+x].

    The SE width is floor(0.25 * block input width), as in EfficientNet (not of the expanded width).
    """

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int, *, act: str, se: bool,
                 residual: bool, keras_momentum: float) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand_conv = Conv2dSame(in_ch, mid, 1) if expand != 1 else None
        self.expand_bn = batch_norm(mid, keras_momentum) if expand != 1 else None
        self.dwconv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self.bn = batch_norm(mid, keras_momentum)
        self.act = activation(act)
        self.se = SqueezeExcite(mid, max(1, in_ch // 4), act) if se else None
        self.project_conv = Conv2dSame(mid, out_ch, 1)
        self.project_bn = batch_norm(out_ch, keras_momentum)
        self.residual = residual and stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand_conv is not None:
            y = self.act(self.expand_bn(self.expand_conv(y)))
        y = self.act(self.bn(self.dwconv(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project_conv(y))
        return y + x if self.residual else y


class Stem(nn.Module):
    """3x3 stride-2 conv, BN, activation."""

    def __init__(self, out_ch: int, act: str, keras_momentum: float) -> None:
        super().__init__()
        self.conv = Conv2dSame(3, out_ch, 3, stride=2)
        self.bn = batch_norm(out_ch, keras_momentum)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class EfficientNetFeatures(nn.Module):
    """Stem plus the stages of ``spec``; returns the last stage's feature map (stride 2**len(stages))."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = Stem(spec.stem, spec.act, spec.keras_momentum)
        stages = []
        in_ch = spec.stem
        for s, stage in enumerate(spec.stages):
            blocks = []
            for b in range(stage.repeats):
                last = s == len(spec.stages) - 1 and b == stage.repeats - 1
                blocks.append(MBConv(
                    in_ch, stage.channels, stage.expand, stage.kernel, stage.stride if b == 0 else 1,
                    act=spec.act, se=spec.se, residual=spec.last_residual or not last,
                    keras_momentum=spec.keras_momentum,
                ))
                in_ch = stage.channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))
