"""The OpenPose baseline: the paper's size and cost at 368x368, output shapes and staging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from efficientpose.models.counting import count_flops, count_parameters
from efficientpose.reference.openpose import OpenPose


def _meta(**kwargs: object) -> OpenPose:
    with torch.device("meta"):
        return OpenPose(**kwargs)


def test_matches_paper_parameters_and_flops() -> None:
    model = _meta()
    params, flops = count_parameters(model), count_flops(model, 368)
    assert params == pytest.approx(25.94e6, rel=0.01)
    assert flops == pytest.approx(160.36e9, rel=0.03)
    assert (params, flops) == (25_972_432, 160_357_048_064)  # documented in the module docstring


def test_relu_variant_counts() -> None:
    model = _meta(prelu=False)
    assert not any(isinstance(m, nn.PReLU) for m in model.modules())
    assert (count_parameters(model), count_flops(model, 368)) == (25_958_416, 160_327_390_208)


def test_front_end_is_vgg19_plus_cpm_convs() -> None:
    model = _meta()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    widths = [(c.in_channels, c.out_channels) for c in convs]
    assert widths == [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256),
                      (256, 512), (512, 512), (512, 256), (256, 128)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 3
    vgg = sum(a * b * 9 + b for a, b in widths)
    assert count_parameters(model.features) == vgg + 512 + 256 + 128  # PReLU after conv4_2 and the CPM convs


def test_staging_and_stage_inputs() -> None:
    model = _meta(num_keypoints=16, num_limbs=14)
    assert len(model.paf_stages) == 4 and len(model.confidence_stages) == 2
    first_in = [s.blocks[0].convs[0].in_channels for s in [*model.paf_stages, *model.confidence_stages]]
    assert first_in == [128, 128 + 28, 128 + 28, 128 + 28, 128 + 28, 128 + 16 + 28]
    assert [s.out.out_channels for s in model.paf_stages] == [28] * 4
    assert [s.out.out_channels for s in model.confidence_stages] == [16] * 2
    assert _meta(background=True).confidence_stages[-1].out.out_channels == 17


def test_forward_shapes_and_all_outputs() -> None:
    torch.manual_seed(0)
    model = OpenPose(num_keypoints=16, num_limbs=14).eval()
    x = torch.randn(1, 3, 100, 64)  # odd stride-8 size: Caffe-style ceil pooling, 100 -> 50 -> 25 -> 13
    with torch.no_grad():
        heatmaps, pafs = model(x)
        everything = model.forward_all(x)
    assert heatmaps.shape == (1, 16, 13, 8) and pafs.shape == (1, 28, 13, 8)
    assert [t.shape[1] for t in everything["pafs"]] == [28] * 4
    assert [t.shape[1] for t in everything["heatmaps"]] == [16] * 2
    assert torch.equal(everything["heatmaps"][-1], heatmaps) and torch.equal(everything["pafs"][-1], pafs)
    assert torch.isfinite(heatmaps).all() and heatmaps.std() > 0


def test_rejects_missing_stages() -> None:
    with pytest.raises(ValueError, match="stage"):
        OpenPose(confidence_stages=0)
