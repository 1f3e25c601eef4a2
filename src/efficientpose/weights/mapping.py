"""The one-to-one correspondence between the PyTorch modules and the authors' Keras layer names
(architecture.md §9.3), derived from the model's own structure."""

from __future__ import annotations

import string
from collections.abc import Iterator

from torch import nn

from efficientpose.models.efficientnet import EfficientNetFeatures, MBConv
from efficientpose.models.efficientpose import PASS_TAGS, EfficientPose


def _keras_backbone(net: EfficientNetFeatures, res: int) -> Iterator[tuple[str, str]]:
    """(torch path relative to ``net``, Keras layer name) for a non-Lite backbone path ``res`` (1 or 2)."""
    r = f"_res{res}"
    yield "stem.conv", f"stem_conv{r}"
    yield "stem.bn", f"stem_bn{r}"
    for s, stage in enumerate(net.stages):
        for b, block in enumerate(stage):
            assert isinstance(block, MBConv)
            p, k = f"stages.{s}.{b}", f"block{s + 1}{string.ascii_lowercase[b]}"
            if block.expand_conv is not None:
                yield f"{p}.expand_conv", f"{k}_expand_conv{r}"
                yield f"{p}.expand_bn", f"{k}_expand_bn{r}"
            yield f"{p}.dwconv", f"{k}_dwconv{r}"
            yield f"{p}.bn", f"{k}_bn{r}"
            if block.se is not None:
                yield f"{p}.se.reduce", f"{k}_se_reduce{r}"
                yield f"{p}.se.expand", f"{k}_se_expand{r}"
            yield f"{p}.project_conv", f"{k}_project_conv{r}"
            yield f"{p}.project_bn", f"{k}_project_bn{r}"


def _keras_lite_backbone(net: EfficientNetFeatures) -> Iterator[tuple[str, str]]:
    """(torch path, Keras layer name) for an EfficientNet-Lite backbone (TPU naming, blocks numbered globally)."""
    pre = f"{net.spec.name}/model"
    bn = "tpu_batch_normalization{}/FusedBatchNormV3_0"
    yield "stem.conv", f"{pre}/stem/conv2d/Conv2D_0"
    yield "stem.bn", f"{pre}/stem/{bn.format('')}"
    i = 0
    for s, stage in enumerate(net.stages):
        for b, block in enumerate(stage):
            p, k = f"stages.{s}.{b}", f"{pre}/blocks_{i}"
            if block.expand_conv is not None:
                yield f"{p}.expand_conv", f"{k}/conv2d/Conv2D_0"
                yield f"{p}.expand_bn", f"{k}/{bn.format('')}"
                yield f"{p}.dwconv", f"{k}/depthwise_conv2d/depthwise_0"
                yield f"{p}.bn", f"{k}/{bn.format('_1')}"
                yield f"{p}.project_conv", f"{k}/conv2d_1/Conv2D_0"
                yield f"{p}.project_bn", f"{k}/{bn.format('_2')}"
            else:  # without expansion the names shift by one (architecture.md §9.3)
                yield f"{p}.dwconv", f"{k}/depthwise_conv2d/depthwise_0"
                yield f"{p}.bn", f"{k}/{bn.format('')}"
                yield f"{p}.project_conv", f"{k}/conv2d/Conv2D_0"
                yield f"{p}.project_bn", f"{k}/{bn.format('_1')}"
            i += 1


def keras_layer_names(model: EfficientPose) -> dict[str, str]:
    """Map every weighted module path of ``model`` to its Keras layer name."""
    out: dict[str, str] = {}
    lite = model.variant.lite
    if lite:
        out.update((f"res1.{t}", k) for t, k in _keras_lite_backbone(model.res1))
    else:
        out.update((f"res1.{t}", k) for t, k in _keras_backbone(model.res1, 1))
    if model.res2 is not None:
        out.update((f"res2.{t}", k) for t, k in _keras_backbone(model.res2, 2))
    for p, (attr, tag) in enumerate(zip(("skeleton", "detection1", "detection2"), PASS_TAGS, strict=True)):
        for b, block in enumerate(getattr(model, attr).blocks):
            for m in (1, 2, 3):
                t = f"{attr}.blocks.{b}.mbconv{m}"
                k = f"pass{p + 1}_block{b + 1}_mbconv{m}_{tag}"
                for sub in ("conv1", "conv1_bn", "dconv1", "dconv1_bn", "conv2", "conv2_bn"):
                    out[f"{t}.{sub}"] = f"{k}_{sub}"
                if getattr(block, f"mbconv{m}").se is not None:
                    out[f"{t}.se.reduce"] = f"{k}_se_se_squeeze_conv"
                    out[f"{t}.se.expand"] = f"{k}_se_se_excite_conv"
    if model.pafs_head is not None:
        out["pafs_head"] = "pass1_skeleton_pafs"
    if model.confs1_head is not None:
        out["confs1_head"] = "pass2_detection1_confs"
    out["confs_head"] = "pass3_detection2_confs"
    for i, name in enumerate(("upscaled_deconv1", "upscaled_deconv2", "upscaled_confs")):
        out[f"upsample.{i}"] = name
    return out


def weighted_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every module that directly owns parameters or buffers (convs, BNs, transposed convs)."""
    return {
        name: mod for name, mod in model.named_modules()
        if any(True for _ in mod.parameters(recurse=False)) or any(True for _ in mod.buffers(recurse=False))
    }
