"""Choosing a backend: a named one, or ``auto`` (the fastest installed backend whose heatmaps match torch's,
measured once per model and machine and cached). :func:`cached_runner` reopens a cached export without
building the network, so a start with a cached ONNX Runtime or OpenVINO backend never imports torch.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from efficientpose.errors import UsageError
from efficientpose.inference.runtime.cache import CachedExport, cached_export, export_for, export_path, model_identity
from efficientpose.inference.runtime.runners import (
    BACKENDS,
    PRECISIONS,
    OnnxRuntimeRunner,
    OpenVinoRunner,
    Runner,
    TorchRunner,
)
from efficientpose.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from efficientpose.inference.runtime.quantize import QuantizedModel
    from efficientpose.models.efficientpose import EfficientPose


log = logging.getLogger(__name__)


def available(backend: str) -> bool:
    """Whether the runtime package for ``backend`` is installed."""
    module = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}[backend]
    return importlib.util.find_spec(module) is not None


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if not available(backend):
        extra = {"onnxruntime": "onnx", "openvino": "openvino"}[backend]
        raise UsageError(f"backend {backend!r} is not installed: pip install 'efficientpose[{extra}]'")


def precision_backend(backend: str, precision: str) -> str:
    """The backend to use for ``precision``: bf16 and int8 run on OpenVINO (its inference-precision setting,
    NNCF's int8 models), so ``auto`` means OpenVINO there and any other backend is refused in one line."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return backend
    if backend not in ("auto", "openvino"):
        raise UsageError(f"--precision {precision} runs on OpenVINO only (--backend openvino or auto), "
                         f"not on {backend}")
    _check_backend("openvino")
    return "openvino"


def onnx_runner(backend: str, onnx: Path, threads: int | None = None, precision: str = "fp32") -> Runner:
    return OnnxRuntimeRunner(onnx, threads) if backend == "onnxruntime" else OpenVinoRunner(onnx, threads, precision)


def make_runner(backend: str, model: EfficientPose, cache: Path, threads: int | None = None,
                identity: str | None = None, precision: str = "fp32",
                calibration: str | os.PathLike | None = None) -> Runner:
    """Build one named backend; a missing runtime gives a UsageError saying which extra to install. bf16 and
    int8 (quantised on first use, calibrated on ``calibration``) need OpenVINO (:func:`precision_backend`)."""
    backend = precision_backend(backend, precision)
    _check_backend(backend)
    if backend == "torch":
        return TorchRunner(model)
    if precision == "int8":
        from efficientpose.inference.runtime.quantize import int8_for

        return OpenVinoRunner(int8_for(model, cache, identity or model_identity(model), calibration).path, threads,
                              "int8")
    return onnx_runner(backend, export_for(model, cache, identity).onnx, threads, precision)


def cached_runner(identity: str, backend: str, cache: Path, threads: int | None = None, precision: str = "fp32",
                  calibration: str | os.PathLike | None = None
                  ) -> tuple[Runner, CachedExport | QuantizedModel] | None:
    """An ONNX Runtime or OpenVINO runner over a cached export (or cached int8 model), built without torch; None
    when there is no such file, the backend is torch, or ``auto`` has not chosen yet (the caller then builds the
    network)."""
    backend = precision_backend(backend, precision)
    if precision == "int8":
        from efficientpose.inference.runtime.quantize import cached_int8

        entry = cached_int8(cache, identity, calibration)
        if entry is None:
            return None
        try:
            return OpenVinoRunner(entry.path, threads, "int8"), entry
        except Exception as exc:  # noqa: BLE001 - a damaged model of any kind is quantised again
            log.warning("ignoring the unreadable cached int8 model %s (%s)", entry.path, _first_line(exc))
            entry.path.unlink(missing_ok=True)
            return None
    if backend == "auto":
        backend = _read_choices(cache).get(_choice_key(identity, threads), "")
        if backend not in ("onnxruntime", "openvino") or not available(backend):
            return None
    elif backend == "torch":
        return None
    else:
        _check_backend(backend)
    entry = cached_export(export_path(cache, identity))
    if entry is None:
        return None
    try:
        return onnx_runner(backend, entry.onnx, threads, precision), entry
    except Exception as exc:  # noqa: BLE001 - a damaged export of any kind is exported again
        log.warning("ignoring the unreadable cached export %s (%s)", entry.onnx, _first_line(exc))
        entry.onnx.unlink(missing_ok=True)
        return None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def wall_ms(fn: Callable[[], object], repeats: int = 5) -> np.ndarray:
    """Wall times of ``repeats`` calls of ``fn()`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1000


def median_ms(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, after one warm-up call."""
    return float(np.median(wall_ms(fn, repeats)))


def speed_cost(runner: Runner, batch: np.ndarray) -> float:
    """Milliseconds per image, weighing one image (webcam, single photos) and a whole ``batch`` (folders, video)
    equally: the geometric mean of the fastest batch-1 latency and per-image time of the batch. The fastest of the
    repeats, since other work on the machine only slows a run down (a median taken beside a training job once cached
    torch for good)."""
    one = wall_ms(lambda: runner(batch[:1])).min()
    many = wall_ms(lambda: runner(batch), repeats=3).min() / len(batch)
    return float(np.sqrt(one * many))


def _choice_key(identity: str, threads: int | None) -> str:
    """The cache key of ``auto``'s choice: the model, the machine, the threads and the runtimes installed (a choice
    made where only torch was installed, say a first run before ``.[openvino]``, must not outlive that install)."""
    installed = "+".join(b for b in BACKENDS if available(b))
    return f"{identity}-{os.cpu_count()}-{threads}-{installed}-cost3"  # cost3: ranked by speed_cost's fastest times


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
        except Exception as exc:  # noqa: BLE001 - a broken runtime falls back to re-measuring, said in the log
            log.warning("the cached backend choice %s failed (%s); measuring the backends again", cached,
                        _first_line(exc))
    reference = TorchRunner(model)
    size = model.input_size
    batch = np.random.default_rng(0).standard_normal((4, 3, size, size), dtype=np.float32)
    expected = reference(batch)

    best: tuple[float, Runner] = (speed_cost(reference, batch), reference)
    for name in candidates:
        if name == "torch":
            continue
        if not available(name):
            log.info("auto: %s is not installed", name)
            continue
        try:
            runner = make_runner(name, model, cache, threads, identity)
            diff = float(np.abs(runner(batch) - expected).max())
            if diff > 1e-3:
                log.warning("auto: %s is not used: its heatmaps differ from torch's by %.2g (> 1e-3)", name, diff)
                continue
            ms = speed_cost(runner, batch)
        except Exception as exc:  # noqa: BLE001 - a failing runtime is not chosen, and the log says why
            log.warning("auto: %s is not used: %s", name, _first_line(exc))
            continue
        log.info("auto: %s costs %.2f ms per image", name, ms)
        if ms < best[0]:
            best = (ms, runner)
    choices[key] = best[1].name
    atomic_write_text(cache / "backend.json", json.dumps(choices, indent=1))
    return best[1]
