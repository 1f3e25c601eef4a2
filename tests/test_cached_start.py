"""A start with a cached ONNX export runs without torch: same keypoints, weights-sensitive cache, lazy network.

Each check runs a fresh Python process (this one has torch loaded) against an ``EFFICIENTPOSE_HOME`` that the
first, in-process start filled with the export, its description and the ``auto`` backend choice.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from efficientpose.inference.estimator import PoseEstimator

PROBE = """
import json, sys
import efficientpose as ep
est = ep.PoseEstimator("rt", {weights!r}, backend={backend!r}, decoder={decoder!r})
after_init = "torch" in sys.modules
pose = est.predict({image!r})
print(json.dumps({{"backend": est.backend, "torch_at_start": after_init, "torch_at_end": "torch" in sys.modules,
                  "names": list(est.names), "size": est.size, "keypoints": pose.keypoints.tolist()}}))
"""


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _probe(image: Path, backend: str, weights: str | None = None, decoder: str = "refined") -> dict:
    code = PROBE.format(weights=weights, backend=backend, decoder=decoder, image=str(image))
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_second_start_skips_torch_and_gives_the_same_keypoints(home: Path, data_dir: Path, backend: str) -> None:
    image = data_dir / "lsp" / "images" / "im0002.jpg"
    first = PoseEstimator("rt", backend=backend)
    expected = first.predict(image).keypoints
    assert list((home / "runtime").glob("rt-*-low.onnx")), "the first start exports to the cache"
    again = _probe(image, backend)
    exported = first.backend != "torch"  # auto may find torch fastest; that start then needs torch again
    assert again["torch_at_start"] is again["torch_at_end"] is not exported
    assert again["backend"] == first.backend
    assert again["names"] == list(first.names) and again["size"] == first.size == 224
    np.testing.assert_allclose(np.array(again["keypoints"]), expected, atol=1e-4)
    reference = PoseEstimator("rt", backend="torch").predict(image).keypoints  # the network itself
    assert np.abs(np.array(again["keypoints"])[:, :2] - reference[:, :2]).max() <= 1.0


def test_other_weights_never_reuse_the_cached_export(home: Path, data_dir: Path, weights_dir: Path) -> None:
    image = data_dir / "lsp" / "images" / "im0002.jpg"
    PoseEstimator("rt", backend="onnxruntime")  # caches the export of the default (converted .h5) weights
    tflite = weights_dir / "tflite" / "EfficientPoseRT.tflite"
    other = _probe(image, "onnxruntime", weights=str(tflite))
    assert other["torch_at_start"], "weights with another digest must be converted and exported afresh"
    expected = PoseEstimator("rt", tflite, backend="torch").predict(image).keypoints
    assert np.abs(np.array(other["keypoints"])[:, :2] - expected[:, :2]).max() <= 1.0
    assert len(list((home / "runtime").glob("rt-*-low.onnx"))) == 2
    assert not _probe(image, "onnxruntime", weights=str(tflite))["torch_at_start"]  # now cached too


def test_argmax_decoding_stays_torch_free(home: Path, data_dir: Path) -> None:
    image = data_dir / "lsp" / "images" / "im0002.jpg"
    expected = PoseEstimator("rt", backend="onnxruntime", decoder="argmax").predict(image).keypoints
    run = _probe(image, "onnxruntime", decoder="argmax")
    assert not run["torch_at_start"] and not run["torch_at_end"]  # the codec upsamples x8 in numpy
    np.testing.assert_allclose(np.array(run["keypoints"]), expected, atol=1e-4)


def test_an_export_without_its_metadata_is_exported_again(home: Path, data_dir: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """What running a cached export needs (variant, keypoints, input size, stride) is read from the ONNX file's own
    metadata: an export without it is not trusted, but replaced."""
    import onnx

    image = data_dir / "lsp" / "images" / "im0002.jpg"
    expected = PoseEstimator("rt", backend="onnxruntime").predict(image).keypoints
    (export,) = (home / "runtime").glob("rt-*-low.onnx")
    assert not list((home / "runtime").glob("*.json")) or not list((home / "runtime").glob("rt-*-low.json"))
    proto = onnx.load(str(export))
    del proto.metadata_props[:]
    onnx.save(proto, str(export))
    with caplog.at_level(logging.WARNING):
        est = PoseEstimator("rt", backend="onnxruntime")  # no cached start possible: builds the network again
    assert est._model is not None
    assert any("unreadable cached export" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(est.predict(image).keypoints, expected, atol=1e-4)
    repaired = _probe(image, "onnxruntime")
    assert not repaired["torch_at_start"]
    np.testing.assert_allclose(np.array(repaired["keypoints"]), expected, atol=1e-4)


def test_an_unusable_home_still_predicts_and_caches_in_the_temporary_folder(
        tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    image = data_dir / "lsp" / "images" / "im0002.jpg"
    expected = PoseEstimator("rt", backend="torch").predict(image).keypoints
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file, not a folder")
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(not_a_folder / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with caplog.at_level(logging.WARNING):
        est = PoseEstimator("rt", backend="onnxruntime")
    assert est.backend == "onnxruntime"
    assert any("cannot use" in r.getMessage() and str(not_a_folder) in r.getMessage() for r in caplog.records)
    assert list((tmp_path / "tmp").glob("efficientpose-runtime-*/rt-*-low.onnx"))
    assert np.abs(est.predict(image).keypoints[:, :2] - expected[:, :2]).max() <= 1.0


def test_a_damaged_cached_export_is_exported_again(home: Path, data_dir: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    image = data_dir / "lsp" / "images" / "im0002.jpg"
    expected = PoseEstimator("rt", backend="openvino").predict(image).keypoints
    (export,) = (home / "runtime").glob("rt-*-low.onnx")
    export.write_bytes(export.read_bytes()[:5000])  # truncated
    with caplog.at_level(logging.WARNING):
        est = PoseEstimator("rt", backend="openvino")
    assert any("unreadable cached export" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(est.predict(image).keypoints, expected, atol=1e-4)
    assert export.stat().st_size > 5000 and not _probe(image, "openvino")["torch_at_start"]
