"""Every variant with random weights, no ../shared: forward shapes at a reduced input size, forward_all, the
inference fusion against the plain network, an ONNX round trip, and the estimator end to end on a random
safetensors file (from_pretrained and from_onnx)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from efficientpose.codec.normalize import to_input
from efficientpose.inference.estimator import ModelSpec, PoseEstimator
from efficientpose.inference.runtime.cache import read_export
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.fuse import optimize_for_inference
from efficientpose.models.variants import VARIANTS
from efficientpose.weights.store import model_metadata, save_weights

#: Small enough to be quick, divisible by 16 (the low-resolution path halves the input before its stride 8).
SIZE = 64


def _random(name: str, seed: int = 0) -> EfficientPose:
    """A variant with random weights and random batch-norm statistics (so folding them is not a no-op)."""
    torch.manual_seed(seed)
    model = EfficientPose(VARIANTS[name])
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_runs_at_a_reduced_size_and_fuses_exactly(name: str) -> None:
    model = _random(name)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        out = model(x)
        parts = model.forward_all(x)
        fused = optimize_for_inference(model)(x)
    k = len(model.keypoints)
    assert out.shape == (2, k, SIZE, SIZE) and torch.isfinite(out).all()
    expected = {"heatmaps", "heatmaps_2"} | ({"pafs", "heatmaps_1"} if VARIANTS[name].side_heads else set())
    assert expected <= set(parts), sorted(parts)
    assert parts["heatmaps_2"].shape == (2, k, SIZE // 8, SIZE // 8)
    torch.testing.assert_close(parts["heatmaps"], out)
    torch.testing.assert_close(fused, out, rtol=0, atol=1e-4 * float(out.abs().max()) + 1e-5)


def _random_weights(tmp_path, name: str = "rt"):  # noqa: ANN001, ANN202
    model = _random(name, seed=1)
    path = tmp_path / f"{name}-random.safetensors"
    save_weights(path, model.state_dict(), model_metadata(model, source="random"))
    return model, path


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (120, 90, 3), dtype=np.uint8), rng.integers(0, 256, (64, 200, 3), dtype=np.uint8)]


def test_estimator_end_to_end_on_a_random_safetensors_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "home"))
    model, path = _random_weights(tmp_path)
    est = PoseEstimator.from_pretrained("rt", path, backend="torch")
    assert est.spec == ModelSpec.of(VARIANTS["rt"]) and est.backend == "torch"
    images = _images()
    poses = est.predict_batch(images, [None, (20.0, 5.0, 120.0, 60.0)])
    assert [p.image_size for p in poses] == [(90, 120), (200, 64)]
    assert poses[0].roi is None and poses[1].roi == (20.0, 5.0, 120.0, 60.0)
    for pose in poses:
        assert pose.keypoints.shape == (16, 3) and np.isfinite(pose.keypoints).all()
        assert ((pose.scores >= 0) & (pose.scores <= 1)).all()
    # The same network, run by hand: letterbox, normalise, R/8 maps, refined decoding, back to the image.
    prepared = est.prepare(images[1], (20.0, 5.0, 120.0, 60.0))
    with torch.inference_mode():
        low = model.forward_low(torch.from_numpy(to_input(prepared.input, est.normalization))).numpy()
    by_hand = prepared.geometry.to_original(est.codec.decode(low)[0])
    np.testing.assert_allclose(poses[1].keypoints, by_hand, atol=1e-2)  # float32 runner vs eager network
    assert PoseEstimator("rt", path, backend="torch").predict(images[0]).keypoints.shape == (16, 3)  # short form


def test_onnx_round_trip_and_from_onnx(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime (the [onnx] extra) is not installed")
    from efficientpose.inference.runtime.export import export_onnx

    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "home"))
    model, path = _random_weights(tmp_path)
    reference = PoseEstimator.from_pretrained(model, backend="torch")
    images = _images()
    expected = [p.keypoints for p in reference.predict_batch(images)]
    for low in (True, False):
        onnx = export_onnx(model, tmp_path / f"rt-{low}.onnx", dynamic_batch=True, low_resolution=low)
        meta = read_export(onnx)
        assert (meta.variant, meta.input_size, meta.stride, meta.keypoints) == ("rt", 224, 8 if low else 1,
                                                                                  tuple(model.keypoints))
        est = PoseEstimator.from_onnx(onnx, backend="onnxruntime")
        assert est.backend == "onnxruntime" and est.spec.stride == (8 if low else 1)
        batch = np.stack([est.prepare(image).input for image in images])
        # the full-resolution export's maps are the network's upsampling; the codec's numpy x8 matches it
        np.testing.assert_allclose(est.heatmaps(batch), reference.heatmaps(batch, full=not low), atol=1e-4)
        if low:  # the same R/8 maps decoded the same way
            for a, b in zip((p.keypoints for p in est.predict_batch(images)), expected, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-2)
    argmax = PoseEstimator.from_onnx(tmp_path / "rt-True.onnx", backend="onnxruntime", decoder="argmax")
    assert argmax.decoder == "argmax" and argmax.predict(images[0]).keypoints.shape == (16, 3)


def test_from_onnx_refuses_other_files(tmp_path) -> None:
    from efficientpose.errors import UsageError

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07\x12\x04test" + b"\xff" * 10)
    with pytest.raises(UsageError, match="not an efficientpose ONNX export"):
        PoseEstimator.from_onnx(junk)
    with pytest.raises(UsageError, match="cannot read"):
        PoseEstimator.from_onnx(tmp_path / "absent.onnx")
