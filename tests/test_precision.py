"""Reduced precision on OpenVINO: int8 (NNCF, calibrated on LSP-extended photos) judged by accuracy against fp32,
its export and cache (keyed by weights, calibration set and quantiser version), bf16 and its fallback on a CPU
without it, and the refusals. RT with a small calibration set; the quantised model is built once per session."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from efficientpose.errors import UsageError
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.inference.runtime import quantize, runners
from efficientpose.inference.runtime import select as runtime

pytestmark = pytest.mark.skipif(not runtime.available("openvino") or importlib.util.find_spec("nncf") is None,
                                reason="OpenVINO and NNCF are needed for reduced precision")

CALIBRATION_IMAGES = 100  # the product uses 300; 100 keeps the test quick and (measured) as accurate


@pytest.fixture(autouse=True)
def _no_calibration_default(monkeypatch):
    monkeypatch.delenv(quantize.CALIBRATION_ENV, raising=False)


@pytest.fixture(scope="session")
def calibration(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small calibration folder: LSP-extended images (never the LSP images the accuracy is measured on)."""
    files = sorted((data_dir / "lspet" / "images").glob("im*.jpg"))
    folder = tmp_path_factory.mktemp("calibration")
    for i in np.linspace(0, len(files) - 1, CALIBRATION_IMAGES).round().astype(int):
        (folder / files[i].name).symlink_to(files[i])
    return folder


@pytest.fixture(scope="session")
def int8_rt(calibration: Path) -> PoseEstimator:
    return PoseEstimator("rt", precision="int8", calibration=calibration)


def test_int8_runs_on_openvino_from_its_cache(int8_rt, calibration, monkeypatch):
    assert (int8_rt.backend, int8_rt.precision) == ("openvino", "int8")
    path = int8_rt.runner.path
    assert path.suffix == ".xml" and path.with_suffix(".bin").is_file()
    assert quantize.quantiser_version() in path.name and path.name.startswith("rt-")

    def no_quantising(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("quantised again instead of reopening the cache")

    monkeypatch.setattr(quantize, "quantize", no_quantising)
    again = PoseEstimator("rt", precision="int8", calibration=calibration)
    assert again.runner.path == path and again._model is None  # reopened without building the network
    assert PoseEstimator("rt", precision="int8").runner.path == path  # no calibration given: the cached one
    photo = np.asarray(int8_rt.prepare(str(calibration / sorted(p.name for p in calibration.iterdir())[0]))[0])
    np.testing.assert_array_equal(again.heatmaps(photo[None]), int8_rt.heatmaps(photo[None]))


def test_int8_rt_keeps_its_sensitive_operations_in_floating_point(int8_rt):
    """The recipe's per-variant ignored scope reaches the saved IR: every named operation exists (an export that
    renamed them would silently quantise them again) and none of them reads a quantised input."""
    import openvino as ov

    ops = {op.get_friendly_name(): op for op in ov.Core().read_model(str(int8_rt.runner.path)).get_ops()}
    names = quantize.IGNORED_NAMES["rt"]
    assert set(names) <= set(ops)
    quantised = [name for name in names for port in ops[name].inputs()
                 if port.get_source_output().get_node().get_type_name() == "FakeQuantize"]
    assert not quantised
    assert any(op.get_type_name() == "FakeQuantize" for op in ops.values())  # the rest is int8


def test_int8_cache_key_names_weights_calibration_and_quantiser(calibration, monkeypatch):
    files = quantize.calibration_files(calibration)
    assert len(files) == CALIBRATION_IMAGES
    digest = quantize.calibration_digest(files)
    base = quantize._paths(Path("c"), "rt-aaaa", digest)[0]
    assert quantize._paths(Path("c"), "rt-bbbb", digest)[0] != base  # other weights
    assert quantize._paths(Path("c"), "rt-aaaa", quantize.calibration_digest(files[1:]))[0] != base  # other images
    monkeypatch.setattr(quantize, "RECIPE", "r-test")
    assert quantize._paths(Path("c"), "rt-aaaa", digest)[0] != base  # another quantiser


def test_int8_export_writes_the_cached_model(int8_rt, calibration, tmp_path):
    import openvino as ov

    from efficientpose.cli import main

    out = tmp_path / "rt-int8.xml"
    assert main(["export", "--model", "rt", "--precision", "int8", "--calibration", str(calibration),
                 "--output", str(out)]) == 0
    model = ov.Core().read_model(str(out))
    assert model.get_rt_info(["runtime_options", "INFERENCE_PRECISION_HINT"]).astype(str) == "f32"
    kinds = {op.get_type_name() for op in model.get_ops()}
    assert "FakeQuantize" in kinds  # really quantised
    assert main(["export", "--model", "rt", "--precision", "int8", "--format", "onnx"]) == 2


def test_int8_accuracy_within_one_point_of_fp32(int8_rt, data_dir):
    """PCK@0.2 on 200 LSP training images (the calibration images are LSP-extended ones)."""
    from efficientpose.data.registry import open_dataset
    from efficientpose.evaluation.evaluate import evaluate
    from efficientpose.evaluation.samples import predict_samples

    samples = open_dataset("lsp", data_dir / "lsp", "train")[:200]
    fp32 = PoseEstimator("rt", backend="openvino")
    pck = {label: evaluate(samples, predict_samples(samples, est, progress=False), alpha=0.2).mean
           for label, est in (("fp32", fp32), ("int8", int8_rt))}
    print(f"\nRT PCK@0.2 on 200 LSP images: fp32 {pck['fp32']:.2f}, int8 {pck['int8']:.2f}")
    assert pck["fp32"] > 75
    assert abs(pck["int8"] - pck["fp32"]) <= 1.0


def test_int8_with_a_weights_file(calibration, weights_dir, data_dir, tmp_path):
    """--weights FILE: the int8 model is made from that file's weights and cached under its digest."""
    from efficientpose.cli import main

    weights = weights_dir / "tflite" / "EfficientPoseRT.tflite"  # another file than the default .h5
    out = tmp_path / "out"
    photo = data_dir / "MPII-sample.jpg"
    assert main(["predict", str(photo), "--precision", "int8", "--weights", str(weights), "--calibration",
                 str(calibration), "--output", str(out)]) == 0
    assert (out / "predictions.json").is_file()
    est = PoseEstimator("rt", weights, precision="int8", calibration=calibration)
    from efficientpose.inference.runtime.cache import file_identity

    assert est.runner.path.name.startswith(file_identity("rt", weights) + "-int8-")
    default = PoseEstimator("rt", precision="int8", calibration=calibration)
    assert default.runner.path != est.runner.path


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_other_backends_refuse_reduced_precision(backend, capsys):
    from efficientpose.cli import main

    with pytest.raises(UsageError, match="OpenVINO only"):
        PoseEstimator("rt", backend=backend, precision="int8")
    assert main(["predict", "x.jpg", "--backend", backend, "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OpenVINO only" in err[0]


def test_bf16_where_supported_else_fp32_said_once(monkeypatch, caplog, tmp_path):
    import openvino as ov
    import torch

    from efficientpose.models.efficientpose import EfficientPose
    from efficientpose.models.variants import VARIANTS
    from efficientpose.weights.store import model_metadata, save_weights

    torch.manual_seed(0)  # random weights: the choice of precision does not depend on them (no ../shared needed)
    model = EfficientPose(VARIANTS["rt"])
    weights = tmp_path / "rt-random.safetensors"
    save_weights(weights, model.state_dict(), model_metadata(model, source="random"))
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "home"))

    assert PoseEstimator("rt", weights=weights).precision == "fp32"  # auto never picks a reduced precision itself
    has_bf16 = "BF16" in runners.cpu_capabilities(ov.Core())
    assert PoseEstimator("rt", weights=weights, precision="bf16").precision == ("bf16" if has_bf16 else "fp32")
    monkeypatch.setattr(runners, "cpu_capabilities", lambda core: ["FP32", "INT8"])  # a CPU without bf16
    with caplog.at_level(logging.WARNING):
        est = PoseEstimator("rt", weights=weights, precision="bf16")
    assert est.precision == "fp32"
    said = [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()]
    assert said == ["bf16: this CPU has no bf16 support (AVX-512 BF16 or AMX); running fp32"]
