"""The .h5 and .tflite readers against the authors' real files: names, counts, layouts, BN folding, errors."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pytest

from efficientpose.errors import WeightsError
from efficientpose.weights.keras import keras_model_info, read_keras_h5
from efficientpose.weights.tflite import read_tflite, tflite_io

H5_VARIANTS = ["RT", "I", "RT_LITE", "I_LITE"]
ALL_VARIANTS = ["RT", "I", "II", "RT_LITE", "I_LITE", "II_LITE"]
# architecture.md §8.1: weighted Keras layers / weight tensors / parameters incl. aux heads.
H5_COUNTS = {
    "RT": (118, 278, 465_608),
    "I": (164, 387, 726_116),
    "RT_LITE": (88, 218, 404_608),
    "I_LITE": (100, 248, 591_632),
}
PARAMS = {"II": 1_740_380, "II_LITE": 1_464_960, **{v: c[2] for v, c in H5_COUNTS.items()}}
INPUT_SIZE = {"RT": 224, "I": 256, "II": 368, "RT_LITE": 224, "I_LITE": 256, "II_LITE": 368}
BN_EPS = 1e-3
BILINEAR_1D = np.array([0.25, 0.75, 0.75, 0.25], dtype=np.float32)


def _h5(weights_dir: Path, variant: str) -> Path:
    return weights_dir / "keras" / f"EfficientPose{variant}.h5"


def _tfl(weights_dir: Path, variant: str) -> Path:
    return weights_dir / "tflite" / f"EfficientPose{variant}.tflite"


@cache
def _read_h5(path: Path) -> dict[str, dict[str, np.ndarray]]:
    return read_keras_h5(path)


@cache
def _read_tfl(path: Path) -> dict[str, dict[str, np.ndarray]]:
    return read_tflite(path)


def _expected_conv_names(variant: str) -> set[str]:
    """Conv/deconv layer names from the naming scheme of architecture.md §9.3 (checked on real .h5 names below)."""
    lite = variant.endswith("_LITE")
    base = variant.removesuffix("_LITE")
    n_blocks = {"RT": 1, "I": 1, "II": 2}[base]
    names = {"pass3_detection2_confs", "upscaled_deconv1", "upscaled_deconv2", "upscaled_confs"}
    if lite:
        prefix, n = {"RT": ("efficientnet-lite0", 5), "I": ("efficientnet-lite2", 7), "II": ("efficientnet-lite4", 9)}[
            base
        ]
        names.add(f"{prefix}/model/stem/conv2d/Conv2D_0")
        for i in range(n):
            names |= {f"{prefix}/model/blocks_{i}/{c}" for c in ("conv2d/Conv2D_0", "depthwise_conv2d/depthwise_0")}
            if i:  # blocks_0 has no expansion, so its conv2d is the projection and there is no conv2d_1
                names.add(f"{prefix}/model/blocks_{i}/conv2d_1/Conv2D_0")
    else:
        names |= {"pass1_skeleton_pafs", "pass2_detection1_confs"}
        res1 = {"RT": "1a 2a2b 3a3b", "I": "1a1b 2a2b2c 3a3b3c", "II": "1a1b 2a2b2c2d 3a3b3c3d"}[base]
        paths = {1: res1} if base == "RT" else {1: res1, 2: "1a 2a2b"}
        for r, spec in paths.items():
            names.add(f"stem_conv_res{r}")
            for blk in re.findall(r"\d[a-z]", spec):
                parts = ["dwconv", "se_reduce", "se_expand", "project_conv"] + (
                    [] if blk[0] == "1" else ["expand_conv"]
                )
                names |= {f"block{blk}_{part}_res{r}" for part in parts}
    for p, tag in enumerate(("skeleton", "detection1", "detection2"), start=1):
        for b in range(1, n_blocks + 1):
            for m in (1, 2, 3):
                parts = ["conv1", "dconv1", "conv2"] + ([] if lite else ["se_se_squeeze_conv", "se_se_excite_conv"])
                names |= {f"pass{p}_block{b}_mbconv{m}_{tag}_{part}" for part in parts}
    return names


def _bn_after_conv(path: Path) -> dict[str, str]:
    """Conv layer -> the BatchNormalization layer fed by it, from the .h5 model_config graph."""
    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    return {L["inbound_nodes"][0][0][0]: L["name"] for L in layers if L["class_name"] == "BatchNormalization"}


@pytest.mark.parametrize("variant", H5_VARIANTS)
def test_h5_counts_and_kinds(weights_dir: Path, variant: str) -> None:
    layers = _read_h5(_h5(weights_dir, variant))
    n_layers, n_tensors, n_params = H5_COUNTS[variant]
    assert len(layers) == n_layers
    assert sum(len(kinds) for kinds in layers.values()) == n_tensors
    assert sum(a.size for kinds in layers.values() for a in kinds.values()) == n_params
    allowed = {
        ("kernel",),
        ("kernel", "bias"),
        ("depthwise_kernel",),
        ("gamma", "beta", "moving_mean", "moving_variance"),
    }
    assert {tuple(kinds) for kinds in layers.values()} <= allowed
    assert all(a.dtype == np.float32 for kinds in layers.values() for a in kinds.values())
    conv_names = {n for n, kinds in layers.items() if "kernel" in kinds or "depthwise_kernel" in kinds}
    assert conv_names == _expected_conv_names(variant)


def test_h5_layouts_and_info(weights_dir: Path) -> None:
    layers = _read_h5(_h5(weights_dir, "I"))
    assert layers["stem_conv_res1"]["kernel"].shape == (3, 3, 3, 32)  # (kh, kw, in, out)
    assert layers["block3a_dwconv_res1"]["depthwise_kernel"].shape == (5, 5, 144, 1)
    assert layers["block2a_se_reduce_res1"]["kernel"].shape == (1, 1, 96, 4)
    assert layers["pass1_block1_mbconv1_skeleton_conv1"]["kernel"].shape == (1, 1, 72, 288)
    assert layers["stem_conv_res2"]["kernel"].shape == (3, 3, 3, 32)  # the Keras-uniquified stem_conv_1/kernel:0
    assert not np.array_equal(layers["stem_conv_res1"]["kernel"], layers["stem_conv_res2"]["kernel"])
    lite = _read_h5(_h5(weights_dir, "RT_LITE"))
    dw = lite["efficientnet-lite0/model/blocks_3/depthwise_conv2d/depthwise_0"]["depthwise_kernel"]
    assert dw.shape == (5, 5, 144, 1)
    for variant in H5_VARIANTS:
        info = keras_model_info(_h5(weights_dir, variant))
        assert info["variant"] == variant
        assert info["lite"] == variant.endswith("_LITE")


@pytest.mark.parametrize("variant", H5_VARIANTS)
def test_tflite_names_and_layouts_match_h5(weights_dir: Path, variant: str) -> None:
    h5 = _read_h5(_h5(weights_dir, variant))
    tfl = _read_tfl(_tfl(weights_dir, variant))
    h5_convs = {n for n, kinds in h5.items() if "kernel" in kinds or "depthwise_kernel" in kinds}
    assert set(tfl) == h5_convs
    for name, kinds in tfl.items():
        assert set(kinds) - {"bias"} == set(h5[name]) - {"bias"}, name
        assert "bias" in kinds
        for kind, array in kinds.items():
            assert array.dtype == np.float32
            if kind in h5[name]:
                expected = h5[name][kind].shape
            elif "depthwise_kernel" in h5[name]:  # folded BN bias of a depthwise conv: C * multiplier
                expected = (h5[name]["depthwise_kernel"].shape[2] * h5[name]["depthwise_kernel"].shape[3],)
            else:  # folded BN bias of a conv: out channels
                expected = (h5[name]["kernel"].shape[3],)
            assert array.shape == expected, (name, kind)


@pytest.mark.parametrize("variant", H5_VARIANTS)
def test_tflite_equals_folded_h5(weights_dir: Path, variant: str) -> None:
    """Folding each .h5 conv with its BN reproduces the fp16 TFLite weights; convs without BN are stored as is."""
    h5 = _read_h5(_h5(weights_dir, variant))
    tfl = _read_tfl(_tfl(weights_dir, variant))
    bn_of = _bn_after_conv(_h5(weights_dir, variant))
    n_folded = 0
    for name, kinds in tfl.items():
        kind = "depthwise_kernel" if "depthwise_kernel" in kinds else "kernel"
        weight, bias = h5[name][kind], h5[name].get("bias")
        if name in bn_of:
            bn = h5[bn_of[name]]
            scale = bn["gamma"] / np.sqrt(bn["moving_variance"] + BN_EPS)
            weight = weight * (scale[:, None] if kind == "depthwise_kernel" else scale)
            bias = bn["beta"] - bn["moving_mean"] * scale
            n_folded += 1
        assert bias is not None, name
        np.testing.assert_allclose(kinds[kind], weight, rtol=1e-3, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(kinds["bias"], bias, rtol=1e-3, atol=1e-6, err_msg=name)
    assert n_folded == sum(1 for kinds in h5.values() if "gamma" in kinds)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_tflite_names_params_and_io(weights_dir: Path, variant: str) -> None:
    """Every variant (II, II_LITE have no .h5) follows the naming scheme and unfolds to the §8.1 parameter count."""
    tfl = _read_tfl(_tfl(weights_dir, variant))
    assert set(tfl) == _expected_conv_names(variant)
    folded = [n for n in tfl if not re.search(r"_se_|pafs|confs|upscaled", n)]  # a BN followed these in Keras
    n_params = sum(a.size for kinds in tfl.values() for a in kinds.values())
    assert n_params + 3 * sum(tfl[n]["bias"].size for n in folded) == PARAMS[variant]
    size = INPUT_SIZE[variant]
    io = tflite_io(_tfl(weights_dir, variant))
    assert [shape for _, shape in io["inputs"]] == [(1, size, size, 3)]
    assert io["outputs"][-1] == ("upscaled_confs/BiasAdd", (1, size, size, 16))


def test_tflite_ii_two_blocks_per_pass(weights_dir: Path) -> None:
    tfl = _read_tfl(_tfl(weights_dir, "II"))
    # W = 56: block 1 sees F0 = 56 + 24 (pass 1) or 3W + F0 = 248 (passes 2, 3); block 2 sees 3W = 168.
    assert tfl["pass1_block1_mbconv1_skeleton_conv1"]["kernel"].shape == (1, 1, 80, 336)
    assert tfl["pass2_block1_mbconv1_detection1_conv1"]["kernel"].shape == (1, 1, 248, 336)
    assert tfl["pass1_block2_mbconv1_skeleton_conv1"]["kernel"].shape == (1, 1, 168, 336)
    assert tfl["pass3_block2_mbconv3_detection2_dconv1"]["depthwise_kernel"].shape == (5, 5, 336, 1)
    assert tfl["pass2_block2_mbconv2_detection1_se_se_squeeze_conv"]["kernel"].shape == (1, 1, 336, 14)
    assert tfl["block3d_se_reduce_res1"]["kernel"].shape == (1, 1, 336, 14)
    lite = _read_tfl(_tfl(weights_dir, "II_LITE"))
    assert lite["pass1_block2_mbconv3_skeleton_conv1"]["kernel"].shape == (1, 1, 112, 336)
    dw = lite["efficientnet-lite4/model/blocks_5/depthwise_conv2d/depthwise_0"]["depthwise_kernel"]
    assert dw.shape == (5, 5, 192, 1)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_deconvs_are_bilinear(weights_dir: Path, variant: str) -> None:
    bilinear = np.zeros((4, 4, 16, 16), dtype=np.float32)
    for c in range(16):
        bilinear[:, :, c, c] = np.outer(BILINEAR_1D, BILINEAR_1D)
    sources = [_read_tfl(_tfl(weights_dir, variant))]
    if variant in H5_VARIANTS:
        sources.append(_read_h5(_h5(weights_dir, variant)))
    for layers in sources:
        for name in ("upscaled_deconv1", "upscaled_deconv2", "upscaled_confs"):
            np.testing.assert_array_equal(layers[name]["kernel"], bilinear)
            np.testing.assert_array_equal(layers[name]["bias"], np.zeros(16, dtype=np.float32))


def _assert_one_line_error(func, path: Path, words: str) -> None:
    with pytest.raises(WeightsError) as info:
        func(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert re.search(words, message), message


@pytest.mark.parametrize("func", [read_keras_h5, keras_model_info, read_tflite, tflite_io])
def test_bad_files_raise_weights_error(weights_dir: Path, tmp_path: Path, func) -> None:
    is_h5 = func in (read_keras_h5, keras_model_info)
    real = _h5(weights_dir, "RT_LITE") if is_h5 else _tfl(weights_dir, "RT_LITE")
    data = real.read_bytes()
    cases = {
        "missing.bin": (None, "not found"),
        "half.bin": (data[: len(data) // 2], "truncated"),
        "garbage.bin": (np.random.default_rng(0).bytes(4096), "not an HDF5" if is_h5 else "not a TFLite"),
        "empty.bin": (b"", "not an HDF5" if is_h5 else "not a TFLite"),
        "other.bin": (
            _tfl(weights_dir, "RT").read_bytes()[:4096] if is_h5 else _h5(weights_dir, "RT").read_bytes()[:4096],
            "not an HDF5" if is_h5 else "not a TFLite",
        ),
    }
    if not is_h5:
        cases["tail_cut.bin"] = (data[: len(data) - 100], "truncated")
    for name, (content, words) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        _assert_one_line_error(func, path, words)
    _assert_one_line_error(func, tmp_path, "not a regular file")


def test_hdf5_without_keras_weights(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    _assert_one_line_error(read_keras_h5, path, "no Keras weights")
