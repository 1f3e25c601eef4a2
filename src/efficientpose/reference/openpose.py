"""OpenPose baseline (Cao et al., TPAMI 2019 staging), randomly initialised, for size and latency comparisons.

The EfficientPose paper lists OpenPose at 25.94 M parameters and 160.36 GFLOPs for a 368x368 input. The
architecture that reproduces both is the multi-stage network of the OpenPose 1.x ``BODY_25`` model with MPII-sized
output layers (the CVPR 2017 two-branch six-stage net with 7x7 refinement convs has ~51.5 M / ~268 GFLOPs):

* front end: VGG-19 conv1_1 ... conv4_2 (3x3, 64-64-M-128-128-M-256x4-M-512-512; max-pool 2x2/2, so stride 8) and
  conv4_3_CPM 512->256, conv4_4_CPM 256->128 (3x3). ReLU after conv1_1 ... conv4_1, PReLU after conv4_2,
  conv4_3_CPM and conv4_4_CPM (as in BODY_25).
* 4 PAF stages, then 2 confidence-map stages. A stage is 5 dense blocks and two 1x1 convs. A dense block is three
  chained 3x3 convs (each + PReLU) whose three outputs are concatenated (replacing one 7x7 conv of the CVPR
  model). The first PAF stage and the first confidence stage use 96 channels per conv and a 256-channel 1x1 hidden
  layer; all other stages 128 and 512. The last 1x1 conv is linear.
* Stage inputs: PAF stage 1 gets the 128-ch features F; later PAF stages [F, PAFs]; confidence stage 1
  [F, PAFs]; later confidence stages [F, heatmaps, PAFs] (BODY_25's concatenation order).
* Outputs at stride 8 (46x46 for 368x368): ``2 * num_limbs`` PAF channels (28 for MPII's 14 limbs, as in
  OpenPose's own MPI model and EfficientPose's PAF head) and ``num_keypoints`` (+1 with ``background``) heatmaps.

Measured with :mod:`efficientpose.models.counting` at 368x368 (defaults: 16 keypoints, 14 limbs, PReLU):
25,972,432 parameters (paper 25.94 M, +0.12 %) and 160.357 GFLOPs = 160.327 G for 2 x conv multiply-adds plus
0.031 G for PReLU at one multiply per element (paper 160.36 G, -0.002 %); ReLU costs nothing. With ``prelu=False``
(plain ReLU everywhere): 25,958,416 parameters and 160.327 GFLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

_VGG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 256, 128)
_PRELU_FROM = 9  # conv4_2 is the 10th conv; from there on BODY_25 uses PReLU instead of ReLU


def _act(channels: int, prelu: bool) -> nn.Module:
    return nn.PReLU(channels) if prelu else nn.ReLU(inplace=True)


class DenseBlock(nn.Module):
    """Three chained 3x3 convs (each + activation) whose outputs are concatenated: the TPAMI stand-in for a 7x7."""

    def __init__(self, in_ch: int, width: int, prelu: bool = True) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_ch if i == 0 else width, width, 3, padding=1) for i in range(3))
        self.acts = nn.ModuleList(_act(width, prelu) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv, act in zip(self.convs, self.acts, strict=True):
            x = act(conv(x))
            outs.append(x)
        return torch.cat(outs, 1)


class Stage(nn.Module):
    """One refinement stage: 5 dense blocks, a 1x1 hidden conv + activation, a linear 1x1 output conv."""

    def __init__(self, in_ch: int, width: int, hidden: int, out_ch: int, prelu: bool = True, blocks: int = 5) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(in_ch if i == 0 else 3 * width, width, prelu) for i in range(blocks)))
        self.hidden = nn.Conv2d(3 * width, hidden, 1)
        self.act = _act(hidden, prelu)
        self.out = nn.Conv2d(hidden, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.hidden(self.blocks(x))))


def _front_end(prelu: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch, n_conv = 3, 0
    for spec in _VGG:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # Caffe pooling rounds up
            continue
        layers += [nn.Conv2d(in_ch, spec, 3, padding=1), _act(spec, prelu and n_conv >= _PRELU_FROM)]
        in_ch, n_conv = spec, n_conv + 1
    return nn.Sequential(*layers)


class OpenPose(nn.Module):
    """OpenPose body network (4 PAF + 2 confidence stages); ``forward`` returns the final (heatmaps, PAFs)."""

    feature_channels = 128

    def __init__(self, num_keypoints: int = 16, num_limbs: int = 14, *, background: bool = False,
                 paf_stages: int = 4, confidence_stages: int = 2, prelu: bool = True) -> None:
        super().__init__()
        if paf_stages < 1 or confidence_stages < 1:
            raise ValueError("OpenPose needs at least one PAF and one confidence stage")
        f = self.feature_channels
        self.num_pafs = 2 * num_limbs
        self.num_heatmaps = num_keypoints + int(background)
        self.features = _front_end(prelu)
        self.paf_stages = nn.ModuleList(
            Stage(f if i == 0 else f + self.num_pafs, 96 if i == 0 else 128, 256 if i == 0 else 512, self.num_pafs,
                  prelu)
            for i in range(paf_stages))
        self.confidence_stages = nn.ModuleList(
            Stage(f + self.num_pafs + (0 if i == 0 else self.num_heatmaps), 96 if i == 0 else 128,
                  256 if i == 0 else 512, self.num_heatmaps, prelu)
            for i in range(confidence_stages))

    def forward_all(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Every stage's prediction (for intermediate supervision): {'pafs': [...], 'heatmaps': [...]}, stride 8."""
        feats = self.features(x)
        pafs = [self.paf_stages[0](feats)]
        for stage in self.paf_stages[1:]:
            pafs.append(stage(torch.cat([feats, pafs[-1]], 1)))
        heatmaps = [self.confidence_stages[0](torch.cat([feats, pafs[-1]], 1))]
        for stage in self.confidence_stages[1:]:
            heatmaps.append(stage(torch.cat([feats, heatmaps[-1], pafs[-1]], 1)))
        return {"pafs": pafs, "heatmaps": heatmaps}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (heatmaps, PAFs), each N x C x ceil(H/8) x ceil(W/8)."""
        out = self.forward_all(x)
        return out["heatmaps"][-1], out["pafs"][-1]
