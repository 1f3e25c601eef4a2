"""Export to ONNX (fp32, optionally with a dynamic batch axis) and int8 static quantisation calibrated on real
images."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from efficientpose.codec.geometry import letterbox
from efficientpose.codec.normalize import to_input
from efficientpose.errors import UsageError
from efficientpose.io.atomic import atomic_path
from efficientpose.io.images import read_image
from efficientpose.io.inputs import expand_inputs
from efficientpose.models.efficientpose import EfficientPose, LowResolution
from efficientpose.models.fuse import optimize_for_inference


def export_onnx(model: EfficientPose, path: str | os.PathLike, *, dynamic_batch: bool = False,
                opset: int = 17, low_resolution: bool = False) -> Path:
    """Write ``model`` (BN folded) as ONNX with input 'image' (N, 3, R, R) and output 'heatmaps' (N, K, R, R),
    or with ``low_resolution`` the R/8 heatmaps before the fixed upsampling; atomic."""
    fused = optimize_for_inference(model)
    net = LowResolution(fused) if low_resolution else fused
    size = model.input_size
    dummy = torch.zeros(1, 3, size, size)
    with atomic_path(path) as temp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on the static TF-same padding, which is intended
            torch.onnx.export(
                net, (dummy,), str(temp), dynamo=False, opset_version=opset, input_names=["image"],
                output_names=["heatmaps"],
                dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}} if dynamic_batch else None,
            )
        import onnx

        proto = onnx.load(str(temp))
        proto.metadata_props.add(key="efficientpose_variant", value=model.variant.name)
        proto.metadata_props.add(key="keypoints", value=",".join(model.keypoints))
        proto.metadata_props.add(key="input_size", value=str(size))
        proto.metadata_props.add(key="output_stride", value="8" if low_resolution else "1")
        onnx.save(proto, str(temp))
    return Path(path)


def quantize_int8(onnx_path: str | os.PathLike, output: str | os.PathLike, calibration: list[np.ndarray]) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on real normalised inputs (N, 3, R, R)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {"image": item.astype(np.float32)}

    with atomic_path(output) as temp:
        quantize_static(str(onnx_path), str(temp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return Path(output)


def calibration_batches(folder: Path | None, model: EfficientPose, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` images from ``folder``, letterboxed and normalised for ``model``, one (1, 3, R, R) each."""
    if folder is None:
        raise UsageError("--int8 needs --calibration DIR, a folder of real images to calibrate on")
    items = [i.path for i in expand_inputs([folder]).items if i.kind == "image"][:limit]
    if not items:
        raise UsageError(f"{folder}: no images to calibrate on")
    norm = model.variant.normalization
    return [to_input(letterbox(read_image(p), model.input_size)[0], norm) for p in items]
