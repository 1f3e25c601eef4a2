"""Where weights come from (explicit file, cache, $EFFICIENTPOSE_WEIGHTS_DIR, checksummed download) and how bad
weight files are refused: always one clear WeightsError naming the file, never a half-loaded model."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from helpers_keras import keras_layers, write_keras_h5
from safetensors.torch import load_file

from efficientpose.errors import WeightsError
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import get_variant
from efficientpose.weights.hub import load_model
from efficientpose.weights.store import cache_path, model_metadata, read_metadata, resolve_state_dict, save_weights

RT_H5 = "keras/EfficientPoseRT.h5"
RT_TFLITE = "tflite/EfficientPoseRT.tflite"
RT_SHA256 = "508943cfdeb1d102d69aff4280b805c023585b0d9ae530344fb4c4fad3a175f1"  # sha256sum of the published file


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh cache per test, the shared weights folder, downloads from a closed local port and no proxies."""
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_URL", "http://127.0.0.1:9/no-network-in-tests")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _h5_bias(path: Path, layer: str = "pass3_detection2_confs") -> np.ndarray:
    """A layer's bias straight from the .h5 file with h5py (independent of the package's reader)."""
    with h5py.File(path) as f:
        group = f["model_weights"][layer]
        name = next(n for n in group.attrs["weight_names"] if n.endswith(b"/bias:0"))
        return group[name][()]


@cache
def _rt_state(weights_dir: Path) -> dict[str, torch.Tensor]:
    return load_model("rt", weights=weights_dir / RT_H5).state_dict()


def _write_cache(weights_dir: Path) -> torch.Tensor:
    """A distinguishable cache: the RT model with its final head's bias shifted by 1. Returns that bias."""
    model = EfficientPose(get_variant("rt"))
    state = dict(_rt_state(weights_dir))
    state["confs_head.bias"] = state["confs_head.bias"] + 1.0
    save_weights(cache_path(model.variant), state, model_metadata(model, source="test"))
    return state["confs_head.bias"]


def _bias(model: EfficientPose) -> np.ndarray:
    return model.confs_head.bias.detach().numpy()


def _layout(folder: Path, weights_dir: Path, *relpaths: str) -> Path:
    """A folder laid out like the authors' models/ with symlinks to the named shared files."""
    for rel in relpaths:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).symlink_to(weights_dir / rel)
    return folder


# --- resolution order ------------------------------------------------------------------------------------------


def test_explicit_path_wins(weights_dir: Path) -> None:
    cached = _write_cache(weights_dir)
    before = cache_path(get_variant("rt")).read_bytes()
    from_h5 = load_model("rt", weights=weights_dir / RT_H5)
    np.testing.assert_array_equal(_bias(from_h5), _h5_bias(weights_dir / RT_H5))
    from_tflite = load_model("rt", weights=str(weights_dir / RT_TFLITE))  # str works as well as Path
    np.testing.assert_allclose(_bias(from_tflite), _h5_bias(weights_dir / RT_H5), atol=1e-3)  # fp16 copy
    assert not np.array_equal(_bias(from_tflite), _h5_bias(weights_dir / RT_H5))
    assert not np.allclose(_bias(from_h5), cached.numpy())
    assert cache_path(get_variant("rt")).read_bytes() == before  # an explicit file leaves the cache alone


def test_cache_used_when_present(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = _write_cache(weights_dir)
    np.testing.assert_array_equal(_bias(load_model("rt")), cached.numpy())  # before the weights folder
    monkeypatch.delenv("EFFICIENTPOSE_WEIGHTS_DIR")
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_URL", "http://127.0.0.1:9/")
    np.testing.assert_array_equal(_bias(load_model("rt")), cached.numpy())  # and without any other source


def test_weights_dir_used_and_cached(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = cache_path(get_variant("rt"))
    assert not target.exists()
    model = load_model("rt")
    np.testing.assert_array_equal(_bias(model), _h5_bias(weights_dir / RT_H5))
    meta = read_metadata(target)
    assert meta["variant"] == "rt" and meta["source"] == RT_H5  # the fp32 .h5 before the fp16 .tflite
    assert meta["source_sha256"] == RT_SHA256 == _sha256(weights_dir / RT_H5)
    assert json.loads(meta["keypoints"])[:2] == ["head_top", "upper_neck"] and meta["num_keypoints"] == "16"
    cached = load_file(str(target))
    assert {k for k in model.state_dict() if not k.endswith("num_batches_tracked")} <= cached.keys()
    for key, value in cached.items():
        assert torch.equal(model.state_dict()[key], value), key
    monkeypatch.delenv("EFFICIENTPOSE_WEIGHTS_DIR")  # the second load needs nothing but the cache
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_URL", "http://127.0.0.1:9/")
    np.testing.assert_array_equal(_bias(load_model("rt")), _bias(model))


RTL_H5, RTL_TFLITE = "keras/EfficientPoseRT_LITE.h5", "tflite/EfficientPoseRT_LITE.tflite"


@pytest.mark.parametrize(("name", "files", "source"), [
    ("rt-lite", [RTL_H5, RTL_TFLITE], RTL_H5),
    ("rt-lite", [RTL_TFLITE], RTL_TFLITE),
    ("ii-lite", ["tflite/EfficientPoseII_LITE.tflite"], "tflite/EfficientPoseII_LITE.tflite"),  # no .h5 published
])
def test_h5_preferred_over_tflite(name: str, files: list[str], source: str, tmp_path: Path, weights_dir: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_DIR", str(_layout(tmp_path / "models", weights_dir, *files)))
    load_model(name)
    meta = read_metadata(cache_path(get_variant(name)))
    assert meta["source"] == source and meta["source_sha256"] == _sha256(weights_dir / source)


def test_unusable_cache_is_replaced(weights_dir: Path) -> None:
    target = cache_path(get_variant("rt"))
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    np.testing.assert_array_equal(_bias(load_model("rt")), _h5_bias(weights_dir / RT_H5))
    assert read_metadata(target)["source"] == RT_H5


# --- download ---------------------------------------------------------------------------------------------------


class _Server:
    """A static file server on 127.0.0.1 in a thread, recording the paths requested."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    """The server with ``$EFFICIENTPOSE_WEIGHTS_URL`` pointing at its models/ folder and no weights folder."""
    root = tmp_path / "www"
    (root / "models").mkdir(parents=True)
    srv = _Server(root)
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_URL", srv.url)
    monkeypatch.delenv("EFFICIENTPOSE_WEIGHTS_DIR")
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_download_verified_and_converted(server: _Server, weights_dir: Path, tmp_path: Path) -> None:
    _layout(server.root / "models", weights_dir, RT_H5, RT_TFLITE)
    model = load_model("rt")
    assert server.requests == [f"/models/{RT_H5}"]
    downloaded = tmp_path / "home" / "downloads" / RT_H5
    assert _sha256(downloaded) == RT_SHA256
    meta = read_metadata(cache_path(get_variant("rt")))
    assert meta["source"] == RT_H5 and meta["source_sha256"] == RT_SHA256
    for key, value in _rt_state(weights_dir).items():
        assert torch.equal(model.state_dict()[key], value), key
    assert {p.name for p in _files_under(tmp_path / "home")} == {"EfficientPoseRT.h5", "efficientpose-rt.safetensors"}


def test_download_falls_back_to_tflite(server: _Server, weights_dir: Path) -> None:
    _layout(server.root / "models", weights_dir, RT_TFLITE)  # the .h5 answers 404
    model = load_model("rt")
    assert server.requests == [f"/models/{RT_H5}", f"/models/{RT_TFLITE}"]
    assert read_metadata(cache_path(get_variant("rt")))["source"] == RT_TFLITE
    np.testing.assert_allclose(_bias(model), _h5_bias(weights_dir / RT_H5), atol=1e-3)


def test_download_with_wrong_checksum_is_refused(server: _Server, weights_dir: Path, tmp_path: Path) -> None:
    data = bytearray((weights_dir / RT_H5).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (server.root / "models" / "keras").mkdir()
    (server.root / "models" / RT_H5).write_bytes(bytes(data))
    model = EfficientPose(get_variant("rt"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        model.load_state_dict(resolve_state_dict(model))
    message = str(info.value)
    assert "\n" not in message and "SHA-256" in message and RT_H5 in message
    assert _files_under(tmp_path / "home") == []  # nothing in the cache, nothing in downloads/, no .part file
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


# --- bad weight files -------------------------------------------------------------------------------------------


def _assert_refused(path: Path, name: str, words: str) -> str:
    """Both ways in refuse ``path`` with a one-line WeightsError naming it; the model passed in stays untouched."""
    model = EfficientPose(get_variant(name))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        model.load_state_dict(resolve_state_dict(model, path))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items()), "half-loaded model"
    with pytest.raises(WeightsError) as again:
        load_model(name, weights=path)
    for message in (str(info.value), str(again.value)):
        assert "\n" not in message and str(path) in message, message
        assert re.search(words, message), message
    return str(info.value)


def _assert_refused_resolved(name: str, *words: str) -> str:
    """Resolution without an explicit file fails with one line containing ``words``; the model stays untouched."""
    model = EfficientPose(get_variant(name))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        model.load_state_dict(resolve_state_dict(model))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items()), "half-loaded model"
    with pytest.raises(WeightsError) as again:
        load_model(name)
    for message in (str(info.value), str(again.value)):
        assert "\n" not in message
        for word in words:
            assert word in message, (word, message)
    return str(info.value)


def _truncated(src: Path, dest: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def _rt_safetensors(weights_dir: Path, path: Path, **changes: torch.Tensor) -> Path:
    model = EfficientPose(get_variant("rt"))
    save_weights(path, {**_rt_state(weights_dir), **changes}, model_metadata(model))
    return path


def test_truncated_files(tmp_path: Path, weights_dir: Path) -> None:
    _assert_refused(_truncated(weights_dir / RT_H5, tmp_path / "rt.h5"), "rt", "truncated|corrupt")
    _assert_refused(_truncated(weights_dir / RT_TFLITE, tmp_path / "rt.tflite"), "rt", "truncated|corrupt")
    whole = _rt_safetensors(weights_dir, tmp_path / "whole.safetensors")
    np.testing.assert_array_equal(_bias(load_model("rt", weights=whole)), _h5_bias(weights_dir / RT_H5))  # control
    _assert_refused(_truncated(whole, tmp_path / "half.safetensors"), "rt", "corrupt|truncated")
    _assert_refused(_truncated(whole, tmp_path / "head.safetensors", 0.001), "rt", "not a readable|corrupt")


@pytest.mark.parametrize(("file", "name"), [
    (RT_H5, "i"),
    (RT_TFLITE, "rt-lite"),
    ("keras/EfficientPoseI_LITE.h5", "rt-lite"),
    ("tflite/EfficientPoseII.tflite", "i"),
])
def test_file_for_another_variant(file: str, name: str, weights_dir: Path) -> None:
    _assert_refused(weights_dir / file, name, "does not fit")


def test_safetensors_of_another_variant(tmp_path: Path, weights_dir: Path) -> None:
    _assert_refused(_rt_safetensors(weights_dir, tmp_path / "rt.safetensors"), "i", "variant 'rt'")


def test_tensor_of_wrong_shape(tmp_path: Path, weights_dir: Path) -> None:
    weight = _rt_state(weights_dir)["confs_head.weight"]  # (16, 120, 1, 1)
    path = _rt_safetensors(weights_dir, tmp_path / "reshaped.safetensors", **{"confs_head.weight": weight.reshape(
        120, 16, 1, 1)})
    _assert_refused(path, "rt", r"mis-shaped.*confs_head\.weight")
    model = EfficientPose(get_variant("rt"))
    model.load_state_dict(_rt_state(weights_dir))
    layers = keras_layers(model)
    control = write_keras_h5(tmp_path / "control.h5", layers, 224, "EfficientPoseRT")
    for key, value in load_model("rt", weights=control).state_dict().items():  # the writer itself is faithful
        assert torch.equal(value, _rt_state(weights_dir)[key]), key
    layers["pass3_detection2_confs"]["kernel"] = layers["pass3_detection2_confs"]["kernel"].transpose(0, 1, 3, 2)
    bad = write_keras_h5(tmp_path / "bad.h5", layers, 224, "EfficientPoseRT")
    _assert_refused(bad, "rt", r"confs_head\.weight has shape \(120, 16, 1, 1\)")


def test_wrong_checksum_in_weights_dir(tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _layout(tmp_path / "models", weights_dir, RT_TFLITE)
    bad = folder / RT_H5
    bad.parent.mkdir(parents=True)
    data = bytearray((weights_dir / RT_H5).read_bytes())
    data[-1000] ^= 0x01
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_DIR", str(folder))
    message = _assert_refused_resolved("rt", str(bad))
    assert "SHA-256" in message
    assert not cache_path(get_variant("rt")).exists()


def test_missing_explicit_file(tmp_path: Path) -> None:
    _assert_refused(tmp_path / "nowhere" / "EfficientPoseRT.h5", "rt", "not found")


def test_unknown_suffix(tmp_path: Path, weights_dir: Path) -> None:
    path = tmp_path / "EfficientPoseRT.pt"
    shutil.copyfile(weights_dir / RT_H5, path)
    _assert_refused(path, "rt", r"unknown weight format '\.pt'")


# --- nothing anywhere -------------------------------------------------------------------------------------------


def test_no_weights_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_URL", "http://127.0.0.1:9/")
    _assert_refused_resolved(
        "rt",
        str(cache_path(get_variant("rt"))), str(empty / RT_H5), str(empty / RT_TFLITE),  # where it looked
        "127.0.0.1:9",  # where it tried to download from
        "weights=", "EFFICIENTPOSE_WEIGHTS_DIR",  # how to supply the file
    )
    assert _files_under(tmp_path / "home") == []


def test_no_weights_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: _Server) -> None:
    """III and IV have no published file with a checksum: nothing is downloaded, the message says what to do."""
    message = _assert_refused_resolved("iii", "$EFFICIENTPOSE_WEIGHTS_DIR (not set)", "weights=",
                                       "keras/EfficientPoseIII.h5", "no published file with a pinned checksum")
    assert "download" not in message
    with pytest.raises(WeightsError, match="no published file with a pinned checksum"):
        load_model("iv")
    assert server.requests == []
