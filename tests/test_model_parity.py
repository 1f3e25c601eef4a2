"""Acceptance tests of the models + weights: every published file against the authors' TFLite models run by the
TFLite interpreter on real, letterboxed images; III and IV through an authors'-style .h5 written from random weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter
from helpers_keras import keras_layers, write_keras_h5

from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.fuse import optimize_for_inference
from efficientpose.models.variants import get_variant
from efficientpose.weights.hub import load_model

# variant -> file stem in the authors' models/ folder; those with an .h5 first so that the indirect parametrisations
# below share indices and pytest groups each variant's tests around one module-scoped oracle run
STEMS = {"rt": "EfficientPoseRT", "i": "EfficientPoseI", "rt-lite": "EfficientPoseRT_LITE",
         "i-lite": "EfficientPoseI_LITE", "ii": "EfficientPoseII", "ii-lite": "EfficientPoseII_LITE"}
H5_VARIANTS = ["rt", "i", "rt-lite", "i-lite"]
TFLITE_TOL = 1e-4  # final heatmaps of a model loaded from the .tflite itself
SIDE_TOL = 2e-4  # its R/8 side outputs (non-Lite; PAFs reach ~1.1, the interpreter is ~1e-4 off a float64 run)
H5_TOL = 5e-3  # fp32 .h5 weights against the fp16 .tflite
PEAK_AGREEMENT = 0.99  # share of keypoint arg-maxes within 1 px (Chebyshev distance)
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
BATCH = 8


def _image_paths(data: Path) -> list[Path]:
    """35 real images of many aspect ratios: the authors' sample, the 5 MPII, 14 COCO and 15 LSP images."""
    coco = [p for split in ("val2017", "train2017") for p in sorted((data / "coco" / split).glob("*.jpg"))[:7]]
    lsp = sorted((data / "lsp" / "images").glob("im*.jpg"))[:1000:67]
    return [data / "MPII-sample.jpg", *sorted((data / "mpii" / "images").glob("*.jpg")), *coco, *lsp]


def _letterbox(bgr: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 size x size: longer side resized to ``size``, centred zero padding, odd pixel right/bottom."""
    h, w = bgr.shape[:2]
    scale = size / max(h, w)
    nh, nw = min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized[..., ::-1]
    return out


def _normalise(images: list[np.ndarray], size: int, mode: str) -> np.ndarray:
    """The letterboxed NHWC float32 batch ('torch' = ImageNet mean/std, 'tf' = [-1, 1])."""
    batch = np.stack([_letterbox(im, size) for im in images]).astype(np.float64)
    x = (batch / 255.0 - MEAN) / STD if mode == "torch" else batch / 127.5 - 1.0
    return x.astype(np.float32)


def _oracle(tflite: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the authors' TFLite model (NHWC), by tensor name, one image at a time (batch 1 is baked in)."""
    interp = Interpreter(model_path=str(tflite), num_threads=2)
    interp.allocate_tensors()
    (inp,), outs = interp.get_input_details(), interp.get_output_details()
    assert tuple(inp["shape"]) == (1, *x.shape[1:])
    assert outs[-1]["name"] == "upscaled_confs/BiasAdd"  # the final heatmaps are the last output (§6.2)
    results: dict[str, list[np.ndarray]] = {o["name"]: [] for o in outs}
    for image in x:
        interp.set_tensor(inp["index"], image[None])
        interp.invoke()
        for o in outs:
            results[o["name"]].append(interp.get_tensor(o["index"]).copy())
    return {name: np.concatenate(v) for name, v in results.items()}


OUTPUTS = {"heatmaps": "upscaled_confs/BiasAdd", "pafs": "pass1_skeleton_pafs/BiasAdd",
           "heatmaps_1": "pass2_detection1_confs/BiasAdd", "heatmaps_2": "pass3_detection2_confs/BiasAdd"}


def _compare(model: EfficientPose, x: np.ndarray, oracle: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run ``forward_all`` in batches of BATCH against the oracle's outputs (streamed, to keep memory low): max abs
    difference per output the oracle has, share of keypoint arg-maxes within 1 px, and the first batch's heatmaps.

    Runs channels-last like the package's runtime (1.5x faster depthwise convs on CPU); the default layout is
    checked separately in the .tflite test."""
    model = model.to(memory_format=torch.channels_last)
    diffs = {k: 0.0 for k, t in OUTPUTS.items() if t in oracle}
    within: list[np.ndarray] = []
    first = None
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            batch = torch.from_numpy(x[i:i + BATCH]).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            out = {k: v.permute(0, 2, 3, 1).numpy() for k, v in model.forward_all(batch).items()}
            for key in diffs:
                diffs[key] = max(diffs[key], float(np.abs(out[key] - oracle[OUTPUTS[key]][i:i + BATCH]).max()))
            theirs = oracle[OUTPUTS["heatmaps"]][i:i + BATCH]
            assert out["heatmaps"].shape == theirs.shape
            within.append(np.abs(_peaks(out["heatmaps"]) - _peaks(theirs)).max(-1) <= 1)
            first = out["heatmaps"] if first is None else first
    return {**diffs, "within_1px": float(np.concatenate(within).mean()), "first": first}


def _peaks(heatmaps: np.ndarray) -> np.ndarray:
    """(N, K, 2) row, col of each channel's first maximum (row-major, as the authors' arg-max)."""
    n, h, w, k = heatmaps.shape
    flat = heatmaps.transpose(0, 3, 1, 2).reshape(n, k, h * w).argmax(-1)
    return np.stack(np.divmod(flat, w), -1)


@dataclass
class Case:
    """One variant's inputs and its TFLite oracle's outputs."""

    name: str
    x: np.ndarray
    oracle: dict[str, np.ndarray]

    @property
    def final(self) -> np.ndarray:
        return self.oracle["upscaled_confs/BiasAdd"]


@pytest.fixture(scope="module")
def images(data_dir: Path) -> list[np.ndarray]:
    decoded = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in _image_paths(data_dir)]
    assert all(im is not None for im in decoded)
    return decoded


@pytest.fixture(scope="module")
def case(request: pytest.FixtureRequest, images: list[np.ndarray], weights_dir: Path) -> Case:
    """Parametrised indirectly by variant name; module scope groups each variant's tests, one oracle run each."""
    v = get_variant(request.param)
    x = _normalise(images, v.input_size, v.normalization.name)
    return Case(v.name, x, _oracle(weights_dir / "tflite" / f"{STEMS[v.name]}.tflite", x))


@pytest.fixture(scope="module")
def h5_result(case: Case, weights_dir: Path) -> dict[str, Any]:
    """The model loaded from the authors' fp32 .h5 (after checking a value it holds) against the oracle."""
    path = weights_dir / "keras" / f"{STEMS[case.name]}.h5"
    model = load_model(case.name, weights=path)
    with h5py.File(path) as f:  # really the .h5 file's fp32 values, not the fp16 ones
        group = f["model_weights/pass3_detection2_confs"]
        bias = group[[n for n in group.attrs["weight_names"] if n.endswith(b"bias:0")][0]][()]
    np.testing.assert_array_equal(model.confs_head.bias.detach().numpy(), bias)
    return _compare(model, case.x, case.oracle)


def test_enough_real_images(images: list[np.ndarray]) -> None:
    assert len(images) >= 30
    assert any(h > w for h, w, _ in (im.shape for im in images))  # both padding directions occur
    assert any(w > h for h, w, _ in (im.shape for im in images))
    x = _normalise(images[:2], 224, "tf")
    assert x.shape == (2, 224, 224, 3) and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("case", list(STEMS), indirect=True)
def test_tflite_weights_match_interpreter(case: Case, weights_dir: Path) -> None:
    """A model loaded from a .tflite file reproduces that file's outputs to <= 1e-4 on every image."""
    x, oracle, final = case.x, case.oracle, case.final
    model = load_model(case.name, weights=weights_dir / "tflite" / f"{STEMS[case.name]}.tflite")
    with torch.inference_mode():  # the default (contiguous NCHW) layout through forward()
        first = model(torch.from_numpy(x[:2]).permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1).numpy()
    assert first.shape == (2, model.input_size, model.input_size, 16) and final.shape[0] == len(x)
    assert np.median(final.max(axis=(1, 2))) > 0.3  # real people produce real peaks
    # the Lite files have only the final output
    assert set(oracle) == ({OUTPUTS["heatmaps"]} if model.variant.lite else set(OUTPUTS.values()))
    result = _compare(model, x, oracle)
    print(f"\n{case.name} .tflite: max abs diff {result['heatmaps']:.3g}, "
          f"keypoints within 1 px {100 * result['within_1px']:.2f}%", end="")
    print("".join(f", {k} {result[k]:.3g}" for k in ("pafs", "heatmaps_1", "heatmaps_2") if k in result))
    assert result["heatmaps"] <= TFLITE_TOL
    for key in ("pafs", "heatmaps_1", "heatmaps_2"):
        assert result.get(key, 0.0) <= SIDE_TOL, key
    # forward() in NCHW gives forward_all()'s final output (batch size and layout change only the rounding)
    np.testing.assert_allclose(first, result["first"][:2], rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", [
    "rt", "i",
    pytest.param("rt-lite", marks=pytest.mark.xfail(strict=True, reason=(
        "fp16 rounding of the .tflite weights alone moves RT Lite's heatmaps by 7.0e-3 on LSP im0805 (> 5e-3); "
        "test_h5_weights_rounded_to_fp16_match_interpreter shows the .h5 conversion itself is exact"))),
    "i-lite",
], indirect=True)
def test_h5_weights_match_interpreter(case: Case, h5_result: dict[str, Any]) -> None:
    """The fp32 .h5 weights agree with the fp16 TFLite model to <= 5e-3 max abs difference."""
    print(f"\n{case.name} .h5: max abs diff {h5_result['heatmaps']:.3g}")
    assert h5_result["heatmaps"] <= H5_TOL


@pytest.mark.parametrize("case", H5_VARIANTS, indirect=True)
def test_h5_keypoints_match_interpreter(case: Case, h5_result: dict[str, Any]) -> None:
    """>= 99% of the keypoint arg-maxes of the .h5 model lie within 1 px of the TFLite model's, in Chebyshev
    distance (|drow| <= 1 and |dcol| <= 1)."""
    agree = h5_result["within_1px"]
    print(f"\n{case.name} .h5: keypoints within 1 px {100 * agree:.2f}% of {case.final.shape[0] * 16}")
    assert agree >= PEAK_AGREEMENT


@pytest.mark.parametrize("case", ["rt-lite"], indirect=True)  # the variant whose .h5 gap exceeds 5e-3
def test_h5_weights_rounded_to_fp16_match_interpreter(case: Case, weights_dir: Path) -> None:
    """Folding BN into the .h5 convs and rounding to fp16 (what the authors' TFLite export did) reproduces the
    TFLite model to <= 1e-4: the whole .h5-vs-.tflite gap is the fp16 storage, not the conversion."""
    model = optimize_for_inference(load_model(case.name, weights=weights_dir / "keras" / f"{STEMS[case.name]}.h5"))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    diff = _compare(model, case.x, case.oracle)["heatmaps"]
    print(f"\n{case.name} .h5 folded + fp16: max abs diff {diff:.3g}")
    assert diff <= TFLITE_TOL


# III and IV: no published weights. Representative Keras shapes from architecture.md §3.2 / §4 / §8.1.
DOC_SHAPES = {
    "iii": {
        "stem_conv_res1": {"kernel": (3, 3, 3, 48)},
        "block1a_se_reduce_res1": {"kernel": (1, 1, 48, 12), "bias": (12,)},
        "block1c_dwconv_res1": {"depthwise_kernel": (3, 3, 24, 1)},
        "block2a_expand_conv_res1": {"kernel": (1, 1, 24, 144)},
        "block2e_se_reduce_res1": {"kernel": (1, 1, 240, 10), "bias": (10,)},
        "block3a_dwconv_res1": {"depthwise_kernel": (5, 5, 240, 1)},
        "block3b_dwconv_res1": {"depthwise_kernel": (5, 5, 384, 1)},
        "block3e_se_reduce_res1": {"kernel": (1, 1, 384, 16), "bias": (16,)},
        "block3e_project_bn_res1": {k: (64,) for k in ("gamma", "beta", "moving_mean", "moving_variance")},
        "stem_conv_res2": {"kernel": (3, 3, 3, 32)},
        "block1b_se_reduce_res2": {"kernel": (1, 1, 16, 4), "bias": (4,)},
        "block2c_project_conv_res2": {"kernel": (1, 1, 144, 24)},
        "pass1_block1_mbconv1_skeleton_conv1": {"kernel": (1, 1, 88, 384)},
        "pass2_block1_mbconv1_detection1_conv1": {"kernel": (1, 1, 280, 384)},
        "pass1_block3_mbconv1_skeleton_conv1": {"kernel": (1, 1, 192, 384)},
        "pass3_block3_mbconv3_detection2_conv1": {"kernel": (1, 1, 128, 384)},
        "pass2_block2_mbconv2_detection1_se_se_squeeze_conv": {"kernel": (1, 1, 384, 16), "bias": (16,)},
        "pass1_skeleton_pafs": {"kernel": (1, 1, 192, 28), "bias": (28,)},
        "pass3_detection2_confs": {"kernel": (1, 1, 192, 16), "bias": (16,)},
        "upscaled_confs": {"kernel": (4, 4, 16, 16), "bias": (16,)},
    },
    "iv": {
        "stem_conv_res1": {"kernel": (3, 3, 3, 64)},
        "block1a_se_reduce_res1": {"kernel": (1, 1, 64, 16), "bias": (16,)},
        "block1d_dwconv_res1": {"depthwise_kernel": (3, 3, 32, 1)},
        "block2g_expand_conv_res1": {"kernel": (1, 1, 48, 288)},
        "block3a_se_reduce_res1": {"kernel": (1, 1, 288, 12), "bias": (12,)},
        "block3g_dwconv_res1": {"depthwise_kernel": (5, 5, 480, 1)},
        "block3g_se_reduce_res1": {"kernel": (1, 1, 480, 20), "bias": (20,)},
        "block3g_project_conv_res1": {"kernel": (1, 1, 480, 80)},
        "stem_conv_res2": {"kernel": (3, 3, 3, 40)},
        "block1a_se_reduce_res2": {"kernel": (1, 1, 40, 10), "bias": (10,)},
        "block2c_se_reduce_res2": {"kernel": (1, 1, 192, 8), "bias": (8,)},
        "block2c_project_conv_res2": {"kernel": (1, 1, 192, 32)},
        "pass1_block1_mbconv1_skeleton_conv1": {"kernel": (1, 1, 112, 480)},
        "pass2_block1_mbconv1_detection1_conv1": {"kernel": (1, 1, 352, 480)},
        "pass1_block4_mbconv1_skeleton_conv1": {"kernel": (1, 1, 240, 480)},
        "pass3_block4_mbconv3_detection2_se_se_squeeze_conv": {"kernel": (1, 1, 480, 20), "bias": (20,)},
        "pass3_block4_mbconv3_detection2_dconv1": {"depthwise_kernel": (5, 5, 480, 1)},
        "pass2_detection1_confs": {"kernel": (1, 1, 240, 16), "bias": (16,)},
        "upscaled_deconv1": {"kernel": (4, 4, 16, 16), "bias": (16,)},
    },
}
ABSENT = {  # one past the end of each repeated structure
    "iii": ["block1d_dwconv_res1", "block2f_dwconv_res1", "block3f_dwconv_res1", "block1c_dwconv_res2",
            "block2d_dwconv_res2", "block3a_dwconv_res2", "pass1_block4_mbconv1_skeleton_conv1"],
    "iv": ["block1e_dwconv_res1", "block2h_dwconv_res1", "block3h_dwconv_res1", "block1c_dwconv_res2",
           "block2d_dwconv_res2", "pass1_block5_mbconv1_skeleton_conv1"],
}
# architecture.md §8.1: weighted Keras layers / weight tensors / parameters including the aux heads.
DOC_COUNTS = {"iii": (360, 852, 3_238_264), "iv": (470, 1113, 6_571_542)}


def _randomize(model: EfficientPose, seed: int) -> dict[str, torch.Tensor]:
    """Random values for every tensor, including non-symmetric deconv kernels and positive BN variances."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif key.endswith(("running_var", "bn.weight")):  # BN variances and gammas
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        else:
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
    return state


@pytest.fixture(scope="module", params=["iii", "iv"])
def random_h5(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    reference = EfficientPose(get_variant(name)).eval()
    state = _randomize(reference, seed=len(name))
    reference.load_state_dict(state)
    path = write_keras_h5(tmp_path_factory.mktemp(name) / f"EfficientPose{name.upper()}.h5",
                          keras_layers(reference), reference.input_size, f"EfficientPose{name.upper()}")
    return name, reference, state, path


def test_random_h5_shapes_follow_architecture_doc(random_h5) -> None:
    name, _, _, path = random_h5
    with h5py.File(path) as f:
        root = f["model_weights"]
        layers = {}
        for layer in (n.decode() for n in root.attrs["layer_names"]):
            names = [w.decode() for w in root[layer].attrs["weight_names"]]
            if names:
                layers[layer] = {w.rsplit("/", 1)[1].removesuffix(":0"): root[layer][w].shape for w in names}
    for layer, shapes in DOC_SHAPES[name].items():
        assert layers[layer] == shapes, layer
    for layer in ABSENT[name]:
        assert layer not in layers
    n_layers, n_tensors, n_params = DOC_COUNTS[name]
    assert len(layers) == n_layers
    assert sum(len(s) for s in layers.values()) == n_tensors
    assert sum(int(np.prod(s)) for kinds in layers.values() for s in kinds.values()) == n_params


def test_random_h5_round_trips(random_h5) -> None:
    """load_model(name, weights=<.h5>) restores every tensor exactly and computes what the source model computes."""
    name, reference, state, path = random_h5
    model = load_model(name, weights=path)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    size = 256  # any multiple of 8 works; the native 480 / 600 would only cost time
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ours, expected = model(x), reference(x)
    assert ours.shape == (1, 16, size, size)
    assert torch.isfinite(expected).all() and expected.std() > 0
    assert torch.equal(ours, expected)
