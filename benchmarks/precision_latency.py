"""Model latency of one variant in fp32, bf16 and int8 (the package's recipe and, with ``--every-layer``, NNCF's
performance preset with nothing kept in floating point: the most int8 OpenVINO can run), interleaved in one process.

    python benchmarks/precision_latency.py --model rt --calibration ../shared/data/lspet/images --every-layer

Pause background jobs first. Each model is compiled for a static batch (8, then 1) with 2 threads and the latency
hint; the precisions take turns every round, so the ratios to fp32 are measured under the same conditions.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np


def every_layer_int8(onnx: Path, calibration: Path, name: str, out: Path) -> Path:
    """NNCF's performance preset on the fp32 export with no ignored scope, calibrated like the package's recipe."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    from efficientpose.inference.runtime.quantize import calibration_files, calibration_inputs
    from efficientpose.models.variants import get_variant

    if not out.is_file():
        inputs = calibration_inputs(calibration_files(calibration), get_variant(name))
        model = nncf.quantize(ov.Core().read_model(str(onnx)), nncf.Dataset(inputs),
                              preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=len(inputs),
                              fast_bias_correction=True,
                              advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE))
        model.set_rt_info("f32", ["runtime_options", "INFERENCE_PRECISION_HINT"])
        ov.save_model(model, str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rt")
    parser.add_argument("--calibration", type=Path, required=True, help="photos of people (as for --precision int8)")
    parser.add_argument("--every-layer", action="store_true", help="also NNCF's performance preset, nothing ignored")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import openvino as ov

    from efficientpose.inference.runtime.cache import cache_dir, export_for, model_identity
    from efficientpose.inference.runtime.quantize import int8_for
    from efficientpose.models.variants import get_variant
    from efficientpose.weights.hub import load_model

    model = load_model(args.model)
    cache, identity = cache_dir(), model_identity(model)
    onnx = export_for(model, cache, identity).onnx
    files = {"fp32": (onnx, "f32"), "bf16": (onnx, "bf16"),
             "int8 (recipe)": (int8_for(model, cache, identity, args.calibration).path, None)}
    if args.every_layer:
        out = cache / f"{identity}-int8-every-layer.xml"
        files["int8 (every layer)"] = (every_layer_int8(onnx, args.calibration, args.model, out), None)
    size = get_variant(args.model).input_size
    core = ov.Core()
    print(f"| {args.model} | batch | " + " | ".join(files) + " |")
    print("|---|---|" + "---|" * len(files))
    for batch, rounds in ((8, 12), (1, 40)):
        compiled = {}
        for label, (path, hint) in files.items():
            network = core.read_model(str(path))
            network.reshape({network.inputs[0].get_any_name(): [batch, 3, size, size]})
            config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
            compiled[label] = core.compile_model(network, "CPU", {**config, **(
                {"INFERENCE_PRECISION_HINT": hint} if hint else {})})
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
        times: dict[str, list[float]] = {label: [] for label in compiled}
        for run in compiled.values():
            for _ in range(3):
                run(x)
        for _ in range(rounds):
            for label, run in compiled.items():
                start = time.perf_counter()
                run(x)
                times[label].append(time.perf_counter() - start)
        base = float(np.median(times["fp32"]))
        cells = [f"{np.median(t) * 1e3:.1f} ms ({base / np.median(t):.2f}x)" for t in times.values()]
        print(f"| {args.model} | {batch} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
