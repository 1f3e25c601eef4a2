"""The EfficientPose network: EfficientNet features at one or two resolutions, one skeleton (PAF) pass and two
heatmap passes of Mobile DenseNets, and three fixed bilinear transposed convolutions (architecture.md §7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from efficientpose.models.efficientnet import EfficientNetFeatures
from efficientpose.models.layers import BilinearUpsample, Conv2dSame, SqueezeExcite, activation, batch_norm
from efficientpose.models.variants import Variant

PASS_TAGS = ("skeleton", "detection1", "detection2")


class EMBConv(nn.Module):
    """Detection MBConv: 1x1 to 6W, BN, act, depthwise 5x5, BN, act, [SE to W/4], 1x1 to W, BN. No residual."""

    def __init__(self, in_ch: int, width: int, act: str, se: bool) -> None:
        super().__init__()
        hidden = 6 * width
        self.conv1 = Conv2dSame(in_ch, hidden, 1)
        self.conv1_bn = batch_norm(hidden)
        self.dconv1 = Conv2dSame(hidden, hidden, 5, groups=hidden)
        self.dconv1_bn = batch_norm(hidden)
        self.act = activation(act)
        self.se = SqueezeExcite(hidden, width // 4, act) if se else None
        self.conv2 = Conv2dSame(hidden, width, 1)
        self.conv2_bn = batch_norm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1_bn(self.conv1(x)))
        y = self.act(self.dconv1_bn(self.dconv1(y)))
        if self.se is not None:
            y = self.se(y)
        return self.conv2_bn(self.conv2(y))


class MobileDenseNet(nn.Module):
    """Three E-MBConvs with dense connections; output = concat(c, b, a), newest first (3W channels)."""

    def __init__(self, in_ch: int, width: int, act: str, se: bool) -> None:
        super().__init__()
        self.mbconv1 = EMBConv(in_ch, width, act, se)
        self.mbconv2 = EMBConv(width, width, act, se)
        self.mbconv3 = EMBConv(2 * width, width, act, se)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.mbconv1(x)
        b = self.mbconv2(a)
        ba = torch.cat((b, a), 1)
        return torch.cat((self.mbconv3(ba), ba), 1)


class DetectionPass(nn.Module):
    """A chain of Mobile DenseNets; from the second on, each adds its input (a skip connection)."""

    def __init__(self, in_ch: int, width: int, blocks: int, act: str, se: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            MobileDenseNet(in_ch if b == 0 else 3 * width, width, act, se) for b in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks[0](x)
        for block in self.blocks[1:]:
            y = block(y) + y
        return y


class EfficientPose(nn.Module):
    """An EfficientPose variant. ``forward`` maps a normalised (N, 3, R, R) batch to (N, K, R, R) heatmaps;
    ``forward_all`` also returns the skeleton PAFs and the intermediate heatmaps, for training.

    ``side_heads`` adds the intermediate PAF and heatmap heads (present in the published non-Lite models);
    ``num_keypoints`` and ``num_pafs`` change the heads for a new keypoint set.
    """

    def __init__(self, variant: Variant, *, num_keypoints: int | None = None, num_pafs: int = 28,
                 side_heads: bool | None = None, keypoint_names: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.variant = variant
        k = len(variant.keypoints) if num_keypoints is None else num_keypoints
        w = variant.width
        self.res1 = EfficientNetFeatures(variant.backbone)
        self.res2 = EfficientNetFeatures(variant.low_res) if variant.low_res is not None else None
        f0 = w + (variant.low_res.out_channels if variant.low_res is not None else 0)
        se = not variant.lite
        self.skeleton = DetectionPass(f0, w, variant.blocks_per_pass, variant.act, se)
        self.detection1 = DetectionPass(3 * w + f0, w, variant.blocks_per_pass, variant.act, se)
        self.detection2 = DetectionPass(3 * w + f0, w, variant.blocks_per_pass, variant.act, se)
        heads = variant.side_heads if side_heads is None else side_heads
        self.pafs_head = nn.Conv2d(3 * w, num_pafs, 1) if heads else None
        self.confs1_head = nn.Conv2d(3 * w, k, 1) if heads else None
        self.confs_head = nn.Conv2d(3 * w, k, 1)
        self.upsample = nn.Sequential(BilinearUpsample(k), BilinearUpsample(k), BilinearUpsample(k))
        if keypoint_names is not None and len(keypoint_names) != k:
            raise ValueError(f"{len(keypoint_names)} keypoint names for {k} heatmap channels")
        self.keypoints = keypoint_names or (variant.keypoints if k == len(variant.keypoints)
                                            else tuple(f"keypoint_{i}" for i in range(k)))

    @property
    def input_size(self) -> int:
        return self.variant.input_size

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.res1(x)]
        if self.res2 is not None:
            # TF 'same' 2x2 average pooling: exact non-overlapping means; partial windows at odd edges.
            feats.append(self.res2(F.avg_pool2d(x, 2, 2, ceil_mode=True)))
        return feats

    def _passes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self._features(x)
        p1 = self.skeleton(torch.cat(feats, 1) if len(feats) > 1 else feats[0])
        p2 = self.detection1(torch.cat([p1, *feats], 1))
        p3 = self.detection2(torch.cat([p2, *feats], 1))
        return p1, p2, p3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.forward_low(x))

    def forward_low(self, x: torch.Tensor) -> torch.Tensor:
        """The final heatmaps at the network's own resolution (R/8), before the fixed bilinear upsampling."""
        return self.confs_head(self._passes(x)[2])

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every pass output: 'pafs' and 'heatmaps_1' (R/8; only with side heads), 'heatmaps_2' (R/8) and
        'heatmaps' (R, the final output)."""
        p1, p2, p3 = self._passes(x)
        out: dict[str, torch.Tensor] = {}
        if self.pafs_head is not None:
            out["pafs"] = self.pafs_head(p1)
        if self.confs1_head is not None:
            out["heatmaps_1"] = self.confs1_head(p2)
        out["heatmaps_2"] = self.confs_head(p3)
        out["heatmaps"] = self.upsample(out["heatmaps_2"])
        return out


class LowResolution(nn.Module):
    """Wraps a model so that ``forward`` returns its R/8 heatmaps (for export and inference backends)."""

    def __init__(self, model: EfficientPose) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_low(x)
