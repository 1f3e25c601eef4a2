"""Parameter and FLOP counting: hand-computed small nets, the side-head conventions, the EfficientPose variants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from efficientpose.models.counting import count_flops, count_parameters, flops_by_module
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.layers import BilinearUpsample, Conv2dSame, ESwish, SqueezeExcite, Swish, batch_norm
from efficientpose.models.variants import get_variant


def test_dense_conv_with_bias() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_parameters(conv) == 3 * 8 * 9 + 8
    assert count_flops(conv, 10) == 2 * (8 * 10 * 10) * (3 * 9)  # bias adds are free


def test_depthwise_and_strided_same_conv() -> None:
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert count_parameters(dw) == 8 * 9
    assert count_flops(dw, 10, in_channels=8) == 2 * (8 * 10 * 10) * 9
    strided = Conv2dSame(4, 6, 3, stride=2)  # 10x10 -> 5x5 with asymmetric TF padding
    assert count_flops(strided, 10, in_channels=4) == 2 * (6 * 5 * 5) * (4 * 9)
    assert count_flops(strided, (10, 6), in_channels=4) == 2 * (6 * 5 * 3) * (4 * 9)


def test_transposed_conv_counts_input_times_kernel() -> None:
    up = BilinearUpsample(4)  # 4 -> 4 channels, k4 s2: 5x5 -> 10x10
    assert count_parameters(up) == 4 * 4 * 16 + 4  # frozen, still stored and counted
    assert count_flops(up, 5, in_channels=4) == 2 * (4 * 5 * 5) * (4 * 16)
    grouped = nn.ConvTranspose2d(4, 6, 3, stride=1, padding=1, groups=2)
    assert count_flops(grouped, 5, in_channels=4) == 2 * (4 * 5 * 5) * (3 * 9)


def test_activations_and_squeeze_excite() -> None:
    elems = 8 * 10 * 10
    assert count_flops(Swish(), 10, in_channels=8) == elems
    assert count_flops(nn.SiLU(), 10, in_channels=8) == elems
    assert count_flops(ESwish(), 10, in_channels=8) == 2 * elems
    assert count_flops(nn.ReLU6(), 10, in_channels=8) == 0
    assert count_flops(nn.Sigmoid(), 10, in_channels=8) == 0
    prelu = nn.PReLU(8)
    assert count_parameters(prelu) == 8
    assert count_flops(prelu, 10, in_channels=8) == elems
    se = SqueezeExcite(8, 2, "eswish")
    assert count_parameters(se) == (8 * 2 + 2) + (2 * 8 + 8)
    per_module = flops_by_module(se, 10, in_channels=8)
    assert per_module == {"": 2 * elems, "reduce": 2 * 8 * 2, "act": 2 * 2, "expand": 2 * 2 * 8}


def test_batch_norm_stats_counted_but_not_num_batches_tracked() -> None:
    bn = batch_norm(5)
    assert "num_batches_tracked" in bn.state_dict()
    assert count_parameters(bn) == 4 * 5  # gamma, beta, running mean, running var
    assert count_flops(bn, 4, in_channels=5) == 0


def test_small_net_total_and_repeated_calls() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), batch_norm(4), Swish())
            self.shared = nn.Conv2d(4, 4, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(self.shared(self.stem(x)))  # a module called twice is counted twice

    net = Twice()
    assert count_parameters(net) == 12 + 16 + 16
    px = 6 * 6
    assert count_flops(net, 6) == 2 * px * 4 * 3 + px * 4 + 2 * (2 * px * 4 * 4)


class _Heads(nn.Module):
    """Toy model laid out like EfficientPose: a trunk, two side heads, a final head."""

    def __init__(self, side_heads_in_forward: bool = False) -> None:
        super().__init__()
        self.trunk = nn.Conv2d(3, 4, 1)
        self.pafs_head = nn.Conv2d(4, 2, 1)
        self.confs1_head = nn.Conv2d(4, 1, 1)
        self.final = nn.Conv2d(4, 1, 1)
        self.side_heads_in_forward = side_heads_in_forward

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.trunk(x)
        return [self.pafs_head(f), self.confs1_head(f), self.final(f)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[-1] if self.side_heads_in_forward else self.final(self.trunk(x))


@pytest.mark.parametrize("side_heads_in_forward", [False, True])
def test_side_heads_excluded_by_default(side_heads_in_forward: bool) -> None:
    net = _Heads(side_heads_in_forward)
    trunk, pafs, confs1, final = 3 * 4 + 4, 4 * 2 + 2, 4 + 1, 4 + 1
    assert count_parameters(net) == trunk + final
    assert count_parameters(net, "all") == trunk + pafs + confs1 + final
    assert count_parameters(net, exclude=("pafs_head",)) == trunk + confs1 + final
    px = 5 * 5
    assert count_flops(net, 5) == 2 * px * (3 * 4 + 4 * 1)
    assert count_flops(net, 5, include_side_heads=True) == 2 * px * (3 * 4 + 4 * 2 + 4 * 1 + 4 * 1)


def test_prefix_matching_is_by_whole_name() -> None:
    net = nn.ModuleDict({"pafs_head": nn.Conv2d(1, 1, 1), "pafs_header": nn.Conv2d(1, 1, 1)})
    assert count_parameters(net) == 2  # only the exact submodule and its children are excluded
    with pytest.raises(ValueError, match="convention"):
        count_parameters(net, "learnable")  # type: ignore[arg-type]


def test_tracing_restores_mode_and_removes_hooks() -> None:
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2)).train()
    before = net[1].running_mean.clone()
    count_flops(net, 8)
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())
    assert torch.equal(net[1].running_mean, before)  # traced in eval mode: statistics untouched


def test_meta_device_gives_same_count() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), batch_norm(8), Swish(), SqueezeExcite(8, 2, "swish"),
                        nn.Conv2d(8, 16, 1), BilinearUpsample(16))
    with torch.device("meta"):
        meta = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), batch_norm(8), Swish(), SqueezeExcite(8, 2, "swish"),
                             nn.Conv2d(8, 16, 1), BilinearUpsample(16))
    assert count_flops(meta, (18, 14)) == count_flops(net, (18, 14)) > 0
    assert count_parameters(meta) == count_parameters(net)


# --- the published EfficientPose variants (architecture.md §8) ---------------------------------------------------

# name: (input size, params paper convention, params incl. side heads, paper GFLOPs, reconstructed GFLOPs)
VARIANTS = {
    "RT": (224, 460_284, 465_608, 0.87, 0.874),
    "I": (256, 719_736, 726_116, 1.67, 1.673),
    "II": (368, 1_732_944, 1_740_380, 7.70, 7.698),
    "III": (480, 3_229_772, 3_238_264, 23.35, 23.334),
    "IV": (600, 6_560_938, 6_571_542, 72.89, 72.853),
    "RT_Lite": (224, 404_608, 404_608, 0.86, 0.856),
    "I_Lite": (256, 591_632, 591_632, 1.54, 1.536),
    "II_Lite": (368, 1_464_960, 1_464_960, 7.25, 7.245),
}


def _efficientpose(name: str) -> nn.Module:
    variant = get_variant(name.lower().replace("_", "-"))
    with torch.device("meta"):  # shapes only: nothing is computed or allocated
        return EfficientPose(variant)  # published layout: side heads exactly for the non-Lite variants


@pytest.mark.parametrize("name", list(VARIANTS))
def test_efficientpose_parameters_match_paper_tables(name: str) -> None:
    _, paper, with_heads, _, _ = VARIANTS[name]
    model = _efficientpose(name)
    assert count_parameters(model, "paper") == paper
    assert count_parameters(model, "all") == with_heads


@pytest.mark.parametrize("name", list(VARIANTS))
def test_efficientpose_flops_match_paper(name: str) -> None:
    size, _, _, paper_g, reconstructed_g = VARIANTS[name]
    model = _efficientpose(name)
    flops = count_flops(model, size)
    assert flops == pytest.approx(paper_g * 1e9, rel=0.01)
    assert flops == pytest.approx(reconstructed_g * 1e9, rel=1e-3)
    if name.endswith("Lite"):  # no side heads, so nothing changes
        assert count_flops(model, size, include_side_heads=True) == flops
    else:
        assert count_flops(model, size, include_side_heads=True) > flops
