"""ONNX export parity, inference backends (onnxruntime, OpenVINO) against torch, ``auto``'s choice and fallback.
Reduced precision (bf16, int8) is tested in test_precision.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from efficientpose.codec.geometry import letterbox
from efficientpose.codec.normalize import to_input
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.inference.runtime import select as runtime
from efficientpose.inference.runtime.export import export_onnx
from efficientpose.io.images import read_image
from efficientpose.weights.hub import load_model

WITH_WEIGHTS = ["rt", "i", "ii", "rt-lite", "i-lite", "ii-lite"]


def _real_batch(data_dir, model, n=4) -> torch.Tensor:
    norm = model.variant.normalization
    files = [data_dir / "MPII-sample.jpg", *sorted((data_dir / "lsp" / "images").glob("im*.jpg"))[: n - 1]]
    return to_input(np.stack([letterbox(read_image(p), model.input_size)[0] for p in files]), norm)


@pytest.mark.parametrize("name", WITH_WEIGHTS)
def test_onnx_export_matches_pytorch(name, data_dir, tmp_path):
    model = load_model(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", dynamic_batch=True)
    onnx.checker.check_model(onnx.load(str(path)))
    x = _real_batch(data_dir, model)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x})[0]
    assert got.shape == expected.shape == (4, 16, model.input_size, model.input_size)
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_export_command_writes_a_checked_file(tmp_path):
    from efficientpose.cli import main

    out = tmp_path / "rt.onnx"
    assert main(["export", "--model", "rt", "--format", "onnx", "--output", str(out)]) == 0
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["efficientpose_variant"] == "rt" and meta["keypoints"].split(",")[0] == "head_top"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backend_keypoints_match_torch(backend, data_dir):
    if not runtime.available(backend):
        pytest.skip(f"{backend} is not installed")
    files = [data_dir / "MPII-sample.jpg", *sorted((data_dir / "lsp" / "images").glob("im*.jpg"))[:15]]
    ref = PoseEstimator("rt", backend="torch").predict_batch(files)
    got = PoseEstimator("rt", backend=backend).predict_batch(files)
    diff = np.array([np.abs(a.xy - b.xy).max(axis=1) for a, b in zip(ref, got, strict=True)])
    assert (diff <= 1.0).all(), diff.max()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backend_heatmaps_match_torch_one_by_one_and_batched(backend, data_dir, tmp_path):
    """Single images and batches take different paths in OpenVINO (latency vs throughput streams)."""
    if not runtime.available(backend):
        pytest.skip(f"{backend} is not installed")
    model = load_model("rt")
    x = _real_batch(data_dir, model, n=5)
    expected = runtime.TorchRunner(model)(x)
    runner = runtime.make_runner(backend, model, tmp_path)
    batched = runner(x)
    single = np.concatenate([runner(x[i:i + 1]) for i in range(len(x))])
    assert batched.shape == expected.shape == (5, 16, 28, 28)
    assert np.abs(batched - expected).max() <= 1e-4
    assert np.abs(single - expected).max() <= 1e-4


@pytest.mark.parametrize("name", ["rt", "rt-lite", "i"])
def test_torch_runner_rewrites_keep_the_function(name, data_dir):
    """Padding buffers kept between calls and in-place activations: same maps as the plain module, whatever the
    order of batch sizes (a reused buffer keeps its zero border), and the loaded model itself is untouched."""
    model = load_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _real_batch(data_dir, model, n=4)
    with torch.inference_mode():
        expected = model.forward_low(torch.from_numpy(x)).numpy()
    runner = runtime.TorchRunner(model)
    for rows in ([0], [0, 1, 2, 3], [3], [0, 1, 2, 3], [2]):
        got = runner(x[rows])
        assert np.abs(got - expected[rows]).max() <= 1e-5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training is False and not any("Buffered" in type(m).__name__ for m in model.modules())


def test_buffered_conv_still_differentiates():
    """Outside inference the buffered conv pads afresh, so autograd sees an ordinary graph."""
    from efficientpose.models.fuse import BufferedSameConv
    from efficientpose.models.layers import Conv2dSame

    conv = Conv2dSame(3, 4, 3, stride=2)
    buffered = BufferedSameConv(conv)
    x = torch.randn(2, 3, 9, 10, requires_grad=True)
    a, b = conv(x), buffered(x)
    assert torch.allclose(a, b, atol=1e-6)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    assert torch.allclose(ga, gb, atol=1e-5)


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_auto_picks_a_backend_and_caches_the_choice(monkeypatch):
    est = PoseEstimator("rt", backend="auto")
    assert est.backend in runtime.BACKENDS
    calls = []
    monkeypatch.setattr(runtime, "wall_ms", lambda *a, **k: calls.append(1) or np.ones(1))
    again = PoseEstimator("rt", backend="auto")
    assert again.backend == est.backend and not calls  # cached: nothing re-measured


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_auto_falls_back_when_runtimes_are_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path))  # no cached choice
    monkeypatch.setattr(runtime, "available", lambda name: name == "torch")
    assert PoseEstimator("rt", backend="auto").backend == "torch"


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_auto_measures_again_when_the_installed_runtimes_change(monkeypatch, tmp_path):
    """A choice made where only torch was installed (the README's first command, then ``.[test]`` into another venv
    sharing the home cache) once kept every later run on torch at twice the time."""
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path))
    real_available = runtime.available
    monkeypatch.setattr(runtime, "available", lambda name: name == "torch")
    assert PoseEstimator("rt", backend="auto").backend == "torch"
    monkeypatch.setattr(runtime, "available", real_available)
    installed = [b for b in ("onnxruntime", "openvino") if real_available(b)]
    if not installed:
        pytest.skip("no optional runtime installed")
    ranking = {"torch": 3.0, "onnxruntime": 2.0, "openvino": 1.0}
    monkeypatch.setattr(runtime, "speed_cost", lambda runner, batch: ranking[runner.name])
    assert PoseEstimator("rt", backend="auto").backend == installed[-1]


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_auto_takes_the_fastest_backend_that_matches_torch(monkeypatch, tmp_path):
    """Costs are faked to fix the ranking; the parity check and the choice are real."""
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path))
    ranking = {"torch": 3.0, "onnxruntime": 2.0, "openvino": 1.0}
    monkeypatch.setattr(runtime, "speed_cost", lambda runner, batch: ranking[runner.name])
    installed = [b for b in ("onnxruntime", "openvino") if runtime.available(b)]
    if not installed:
        pytest.skip("no optional runtime installed")
    assert PoseEstimator("rt", backend="auto").backend == installed[-1]
    if len(installed) == 2:  # a backend whose heatmaps differ from torch's is never chosen, however fast
        monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "again"))
        real_call = runtime.OpenVinoRunner.__call__
        monkeypatch.setattr(runtime.OpenVinoRunner, "__call__", lambda self, batch: real_call(self, batch) + 0.01)
        assert PoseEstimator("rt", backend="auto").backend == "onnxruntime"


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_missing_runtime_named_explicitly_is_a_clear_error(monkeypatch):
    from efficientpose.errors import UsageError

    monkeypatch.setattr(runtime, "available", lambda name: name == "torch")
    with pytest.raises(UsageError, match=r"efficientpose\[onnx\]"):
        PoseEstimator("rt", backend="onnxruntime")
