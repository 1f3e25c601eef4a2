"""Inference backends: PyTorch (eager, optimised), ONNX Runtime and OpenVINO. Each maps a normalised float32
numpy batch (N, 3, R, R) to the network's own R/8 heatmaps (N, K, R/8, R/8); the fixed bilinear upsampling is
left to whoever needs full-resolution maps.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose


BACKENDS = ("torch", "onnxruntime", "openvino")
#: Inference precisions; bf16 and int8 run on OpenVINO only (its inference-precision setting; NNCF's int8 models).
PRECISIONS = ("fp32", "bf16", "int8")

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
    the synchronisation a batch of small layers needs (about 1.3x more images/s on 2 cores for RT). The requests
    are waited for in turn, with no completion callback: no Python code ever runs on OpenVINO's own threads.
    """

    name = "openvino"

    def __init__(self, model_path: Path, threads: int | None = None, precision: str = "fp32") -> None:
        import openvino as ov

        self._core = ov.Core()
        self.path = Path(model_path)  #: the ONNX export, or the OpenVINO IR of an int8 model
        self._model = self._core.read_model(str(model_path))
        shape = self._model.input(0).get_partial_shape()
        shape[0] = 1  # every request holds one image: static shapes compile to faster kernels
        self._model.reshape(shape)
        self._threads = threads
        #: what runs: "fp32", "bf16" (where the CPU has it) or "int8" (an int8 model, its other layers in fp32)
        self.precision = "fp32" if precision == "bf16" and not bf16_supported(self._core) else precision
        self._latency = self._compile("LATENCY")
        self._requests: list = []  # the throughput streams' requests, made on the first batch of more than one image

    def _compile(self, hint: str):  # noqa: ANN202 - an openvino.CompiledModel
        # Always explicit: on CPUs with bf16 support OpenVINO's default is bf16, which moves keypoints by pixels.
        config: dict = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                        "PERFORMANCE_HINT": hint}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        # OpenVINO's own cache of compiled kernels (keyed by the model, the config and the CPU): a later start
        # compiles RT in 0.27 s instead of 0.76 s, the person detector in 0.35 s instead of 0.79 s.
        from efficientpose.inference.runtime.cache import cache_dir

        config["CACHE_DIR"] = str(cache_dir() / "openvino")
        return self._core.compile_model(self._model, "CPU", config)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if len(x) == 1:
            return np.asarray(self._latency(x)[0])
        if not self._requests:
            compiled = self._compile("THROUGHPUT")
            self._requests = [compiled.create_infer_request()
                              for _ in range(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))]
        requests, out = self._requests, []
        try:
            for i, request in enumerate(requests[:len(x)]):
                request.start_async({0: x[i:i + 1]})
            for i in range(len(x)):  # image i ran on request i mod n, which then takes image i + n
                request = requests[i % len(requests)]
                request.wait()
                out.append(request.get_output_tensor(0).data.copy())
                if i + len(requests) < len(x):
                    request.start_async({0: x[i + len(requests):i + len(requests) + 1]})
        finally:  # an interrupted batch leaves no request running into the next call
            for request in requests:
                request.wait()
        return np.concatenate(out)


def cpu_capabilities(core) -> list[str]:  # noqa: ANN001 - an openvino.Core
    """OpenVINO's optimisation capabilities of this CPU (e.g. FP32, BF16, INT8)."""
    return list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_supported(core) -> bool:  # noqa: ANN001 - an openvino.Core
    """Whether this CPU runs bf16 natively (AVX-512 BF16 or AMX); if not, says so in one line."""
    if "BF16" in cpu_capabilities(core):
        return True
    log.warning("bf16: this CPU has no bf16 support (AVX-512 BF16 or AMX); running fp32")
    return False
