"""Export to ONNX (fp32, optionally with a dynamic batch axis) and to OpenVINO IR (fp32, bf16 or int8)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from efficientpose.errors import UsageError
from efficientpose.io.atomic import atomic_path, replace_atomically
from efficientpose.models.efficientpose import EfficientPose, LowResolution
from efficientpose.models.fuse import optimize_for_inference

if TYPE_CHECKING:
    from efficientpose.inference.estimator import PoseEstimator


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


def export_openvino(model: str, weights: str | os.PathLike | None, output: str | os.PathLike, precision: str,
                    estimator: PoseEstimator | None = None) -> Path:
    """OpenVINO IR (.xml + .bin) of ``model`` up to its R/8 heatmaps, as the runtimes run it; atomic. int8 is
    ``estimator``'s quantised model; fp32 and bf16 are the fp32 network with the precision OpenVINO should run it
    in recorded in the file (OpenVINO's own default on CPUs with bf16 would be bf16)."""
    import openvino as ov

    from efficientpose.weights.hub import load_model

    if precision == "int8":
        if estimator is None or estimator.precision != "int8":
            raise UsageError("an int8 export needs an int8 PoseEstimator")
        ir = ov.Core().read_model(str(estimator.runner.path))
    else:
        with tempfile.TemporaryDirectory(prefix="efficientpose-export-") as tmp:
            onnx = export_onnx(load_model(model, weights=weights), Path(tmp) / "model.onnx", dynamic_batch=True,
                               low_resolution=True)
            ir = ov.Core().read_model(str(onnx))
        ir.set_rt_info("bf16" if precision == "bf16" else "f32", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    return save_ir(ir, Path(output))


def save_ir(model, output: Path) -> Path:  # noqa: ANN001 - an openvino.Model
    """Write OpenVINO IR ``output`` (.xml) and its .bin atomically: the .bin first, so a present .xml is whole."""
    import openvino as ov

    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.stem}.", dir=output.parent))
    try:
        ov.save_model(model, str(scratch / "model.xml"), compress_to_fp16=False)
        replace_atomically(scratch / "model.bin", output.with_suffix(".bin"))
        replace_atomically(scratch / "model.xml", output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return output
