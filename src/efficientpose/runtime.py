"""Inference backends behind :class:`~efficientpose.estimator.PoseEstimator`: PyTorch (eager, optimised),
ONNX Runtime and OpenVINO. Each maps a normalised float32 numpy batch (N, 3, R, R) to the network's own R/8
heatmaps (N, K, R/8, R/8); the fixed bilinear upsampling is left to whoever needs full-resolution maps.

ONNX exports and the ``auto`` choice are cached under an *identity* naming the weights (variant plus a digest of
the weights file, or of the state dict for a model built in Python). :func:`cached_runner` reopens such an
export without building the network, so a start with a cached ONNX Runtime or OpenVINO backend never imports
torch.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from efficientpose.errors import UsageError
from efficientpose.io import atomic_write_text
from efficientpose.weights.files import home, sha256

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose

BACKENDS = ("torch", "onnxruntime", "openvino")

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Anything that turns a normalised batch into heatmaps."""

    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """PyTorch eager with batch norm folded, depthwise upsamplers, padding buffers kept between calls, in-place
    activations and channels-last memory."""

    name = "torch"

    def __init__(self, model: EfficientPose) -> None:
        import torch

        from efficientpose.models.efficientpose import LowResolution
        from efficientpose.models.fuse import for_eager_inference, optimize_for_inference

        fused = for_eager_inference(optimize_for_inference(model))
        self.model = LowResolution(fused).to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode():
            return self.model(x.contiguous(memory_format=torch.channels_last)).contiguous().numpy()


class OnnxRuntimeRunner:
    """ONNX Runtime on the CPU, from an exported ONNX file (exported once and cached)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class OpenVinoRunner:
    """OpenVINO on the CPU, reading the same ONNX file.

    One image runs on a latency-tuned compilation (all threads on one request); a batch is split into
    single-image requests over throughput-tuned streams (one per core), which keeps every core busy without
    the synchronisation a batch of small layers needs (about 1.3x more images/s on 2 cores for RT).
    """

    name = "openvino"

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        import openvino as ov

        self._queue_type = ov.AsyncInferQueue
        self._core = ov.Core()
        self._model = self._core.read_model(str(onnx_path))
        shape = self._model.input(0).get_partial_shape()
        shape[0] = 1  # every request holds one image: static shapes compile to faster kernels
        self._model.reshape(shape)
        self._threads = threads
        self._latency = self._compile("LATENCY")
        self._queue = None  # the throughput streams, compiled on the first batch of more than one image

    def _compile(self, hint: str):  # noqa: ANN202 - an openvino.CompiledModel
        # f32: on CPUs with bf16 support OpenVINO would otherwise infer in bf16 and move keypoints by pixels.
        config: dict = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": hint}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        return self._core.compile_model(self._model, "CPU", config)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if len(x) == 1:
            return np.asarray(self._latency(x)[0])
        if self._queue is None:
            compiled = self._compile("THROUGHPUT")
            self._queue = self._queue_type(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        out: list[np.ndarray | None] = [None] * len(x)

        def done(request, i: int) -> None:  # noqa: ANN001 - an openvino.InferRequest
            out[i] = request.get_output_tensor(0).data.copy()

        self._queue.set_callback(done)
        for i in range(len(x)):
            self._queue.start_async({0: x[i:i + 1]}, i)
        self._queue.wait_all()
        return np.concatenate(out)


def available(backend: str) -> bool:
    """Whether the runtime package for ``backend`` is installed."""
    module = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}[backend]
    return importlib.util.find_spec(module) is not None


def cache_dir() -> Path:
    """Where exports and the ``auto`` choice are kept: ``$EFFICIENTPOSE_HOME/runtime``, or a per-user folder in
    the temporary directory when that cannot be created (a read-only or misconfigured home), said once."""
    preferred = home() / "runtime"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"efficientpose-runtime-{getpass.getuser()}"
        log.warning("cannot use %s (%s); caching exports in %s instead", preferred, exc.strerror or exc, fallback)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


@dataclass(frozen=True)
class CachedExport:
    """A cached ONNX export and what running it needs besides the file: the variant and the keypoint names."""

    onnx: Path
    variant: str
    keypoints: tuple[str, ...]


def file_identity(variant: str, weights_file: Path) -> str:
    """The cache identity of a model loaded from ``weights_file``: variant and the file's digest."""
    return f"{variant}-{sha256(Path(weights_file))[:16]}"


def model_identity(model: EfficientPose) -> str:
    """The cache identity of a model in memory: variant and a digest of its state dict."""
    import hashlib

    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return f"{model.variant.name}-{h.hexdigest()[:16]}"


def _export_paths(cache: Path, identity: str) -> tuple[Path, Path]:
    return cache / f"{identity}-low.onnx", cache / f"{identity}-low.json"


def export_for(model: EfficientPose, cache: Path, identity: str | None = None) -> CachedExport:
    """The dynamic-batch R/8 ONNX export of ``model`` in ``cache``, exported on first use; a small JSON beside
    it records what :func:`cached_runner` needs to run it without the network."""
    from efficientpose.export import export_onnx

    identity = identity or model_identity(model)
    onnx, info = _export_paths(cache, identity)
    if not onnx.is_file():
        export_onnx(model, onnx, dynamic_batch=True, low_resolution=True)
    entry = CachedExport(onnx, model.variant.name, tuple(model.keypoints))
    if _read_export(cache, identity) != entry:  # absent or damaged: (re)write it
        atomic_write_text(info, json.dumps({"variant": entry.variant, "keypoints": list(entry.keypoints)}))
    return entry


def _read_export(cache: Path, identity: str) -> CachedExport | None:
    onnx, info = _export_paths(cache, identity)
    try:
        meta = json.loads(info.read_text())
        entry = CachedExport(onnx, str(meta["variant"]), tuple(str(k) for k in meta["keypoints"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry if onnx.is_file() else None


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if not available(backend):
        extra = {"onnxruntime": "onnx", "openvino": "openvino"}[backend]
        raise UsageError(f"backend {backend!r} is not installed: pip install 'efficientpose[{extra}]'")


def _onnx_runner(backend: str, onnx: Path, threads: int | None) -> Runner:
    return OnnxRuntimeRunner(onnx, threads) if backend == "onnxruntime" else OpenVinoRunner(onnx, threads)


def make_runner(backend: str, model: EfficientPose, cache: Path, threads: int | None = None,
                identity: str | None = None) -> Runner:
    """Build one named backend; a missing runtime gives a UsageError saying which extra to install."""
    _check_backend(backend)
    if backend == "torch":
        return TorchRunner(model)
    return _onnx_runner(backend, export_for(model, cache, identity).onnx, threads)


def cached_runner(identity: str, backend: str, cache: Path,
                  threads: int | None = None) -> tuple[Runner, CachedExport] | None:
    """An ONNX Runtime or OpenVINO runner over a cached export, built without torch; None when there is no such
    export, the backend is torch, or ``auto`` has not chosen yet (the caller then builds the network)."""
    if backend == "auto":
        backend = _read_choices(cache).get(_choice_key(identity, threads), "")
        if backend not in ("onnxruntime", "openvino") or not available(backend):
            return None
    elif backend == "torch":
        return None
    else:
        _check_backend(backend)
    entry = _read_export(cache, identity)
    if entry is None:
        return None
    try:
        return _onnx_runner(backend, entry.onnx, threads), entry
    except Exception as exc:  # noqa: BLE001 - a damaged export of any kind is exported again
        log.warning("ignoring the unreadable cached export %s (%s)", entry.onnx, str(exc).splitlines()[0] if str(exc)
                    else type(exc).__name__)
        entry.onnx.unlink(missing_ok=True)
        return None


def median_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def speed_cost(runner: Runner, batch: np.ndarray) -> float:
    """Milliseconds per image, weighing one image (webcam, single photos) and a whole ``batch`` (folders, video)
    equally: the geometric mean of the batch-1 latency and the per-image time of the batch."""
    one = median_ms(lambda: runner(batch[:1]))
    many = median_ms(lambda: runner(batch), repeats=3) / len(batch)
    return float(np.sqrt(one * many))


def _choice_key(identity: str, threads: int | None) -> str:
    return f"{identity}-{os.cpu_count()}-{threads}-cost2"  # cost2: ranked by speed_cost


def _read_choices(cache: Path) -> dict[str, str]:
    try:
        choices = json.loads((cache / "backend.json").read_text())
    except (OSError, ValueError):
        return {}
    return choices if isinstance(choices, dict) else {}


def select_auto(model: EfficientPose, cache: Path, threads: int | None = None,
                candidates: tuple[str, ...] = BACKENDS, identity: str | None = None) -> Runner:
    """The fastest installed backend whose heatmaps match torch's (max abs diff <= 1e-3); the choice is cached
    per model identity and machine in ``cache/backend.json`` so later starts skip the measurement.

    "Fastest" is the lowest :func:`speed_cost`.
    """
    identity = identity or model_identity(model)
    key = _choice_key(identity, threads)
    choices = _read_choices(cache)
    cached = choices.get(key)
    if cached in candidates and available(cached):
        try:
            return make_runner(cached, model, cache, threads, identity)
        except Exception:  # noqa: BLE001 - a broken runtime falls back to re-measuring
            pass
    reference = TorchRunner(model)
    size = model.input_size
    batch = np.random.default_rng(0).standard_normal((4, 3, size, size), dtype=np.float32)
    expected = reference(batch)

    best: tuple[float, Runner] = (speed_cost(reference, batch), reference)
    for name in candidates:
        if name == "torch" or not available(name):
            continue
        try:
            runner = make_runner(name, model, cache, threads, identity)
            if float(np.abs(runner(batch) - expected).max()) > 1e-3:
                continue
            ms = speed_cost(runner, batch)
        except Exception:  # noqa: BLE001 - any failing runtime is simply not chosen
            continue
        if ms < best[0]:
            best = (ms, runner)
    choices[key] = best[1].name
    atomic_write_text(cache / "backend.json", json.dumps(choices, indent=1))
    return best[1]
