"""The ``efficientpose`` command. Thin: parses flags, calls the library, turns errors into one-line messages.

Exit codes: 0 success, 1 some input failed (the rest were processed) or a run error, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from efficientpose.errors import EfficientPoseError, UsageError, report


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage; keep that, one line of reason
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_model_args(p: argparse.ArgumentParser, default: str = "rt") -> None:
    p.add_argument("--model", default=default, help="variant: rt, i, ii, iii, iv, rt-lite, i-lite, ii-lite")
    p.add_argument("--weights", type=Path, help="weight file (.safetensors, .h5 or .tflite) instead of the default")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="fp32 (default); bf16 or int8 run on OpenVINO (int8: NNCF, calibrated once, cached)")
    p.add_argument("--calibration", type=Path, metavar="DIR",
                   help="int8: photos of people to calibrate on (default $EFFICIENTPOSE_CALIBRATION_DIR, else the "
                        "int8 model cached for these weights)")


def _estimator(args: argparse.Namespace, model: str | None = None):
    from efficientpose.inference.estimator import PoseEstimator

    return PoseEstimator(model or args.model, args.weights, backend=getattr(args, "backend", "auto"),
                         flip=getattr(args, "flip", False), decoder=getattr(args, "decoder", "refined"),
                         precision=getattr(args, "precision", "fp32"), calibration=getattr(args, "calibration", None))


def _dataset_label(args: argparse.Namespace) -> str:
    return f"{args.dataset}/{args.split or 'default'}"


def cmd_predict(args: argparse.Namespace) -> int:
    from efficientpose.inference.tracking import SmoothingParams
    from efficientpose.predict import PredictOptions, predict_files

    if not args.paths and args.camera is None:
        raise UsageError("give at least one PATH (image, folder or video) or --camera N")
    if args.paths and args.camera is not None:
        raise UsageError("give PATHs or --camera N, not both")
    formats = ("json", "csv") if args.format == "both" else (args.format,)
    options = PredictOptions(
        output=args.output, formats=formats, draw=args.draw, smooth=args.smooth,
        smoothing=SmoothingParams(args.min_cutoff, args.beta, args.d_cutoff), batch_size=args.batch_size,
        roi=args.roi, search=args.search, threshold=args.threshold,
    )
    estimator = _estimator(args)
    if args.camera is not None:
        from efficientpose.camera import run_camera

        return run_camera(args.camera, estimator, options)
    report = predict_files(args.paths, estimator, options)
    summary = f"{report.images} images, {report.videos} videos ({report.frames} frames) -> {args.output}"
    if report.errors:
        print(f"{summary}; {len(report.errors)} failed:", file=sys.stderr)
        for error in report.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from efficientpose.models.counting import count_flops, count_parameters
    from efficientpose.models.efficientpose import EfficientPose
    from efficientpose.models.variants import VARIANTS
    from efficientpose.weights.files import local_weights

    print(f"{'model':8} {'input':>6} {'params':>10} {'GFLOPs':>8}  weights")
    for name, variant in VARIANTS.items():
        with torch.device("meta"):
            model = EfficientPose(variant)
        params = count_parameters(model)
        flops = count_flops(model, variant.input_size)
        where = local_weights(variant)
        print(f"{name:8} {variant.input_size:>6} {params / 1e6:>9.2f}M {flops / 1e9:>8.2f}  "
              f"{where if where else 'not available locally'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or ("onnx" if args.precision == "fp32" else "openvino")
    if fmt == "onnx" and args.precision != "fp32":
        raise UsageError(f"--precision {args.precision} exports OpenVINO IR: use --format openvino")
    if fmt == "onnx":
        from efficientpose.inference.runtime.export import export_onnx
        from efficientpose.weights.hub import load_model

        model = load_model(args.model, weights=args.weights)
        output = args.output or Path(f"efficientpose-{model.variant.name}.onnx")
        export_onnx(model, output, dynamic_batch=args.dynamic_batch)
        print(output)
        return 0
    from efficientpose.inference.runtime.export import export_openvino
    from efficientpose.models.variants import get_variant

    estimator = _estimator(args) if args.precision == "int8" else None  # quantises (or reopens the cached model)
    suffix = "" if args.precision == "fp32" else f"-{args.precision}"
    output = args.output or Path(f"efficientpose-{get_variant(args.model).name}{suffix}.xml")
    export_openvino(args.model, args.weights, output, args.precision, estimator)
    print(output)
    return 0


def _evaluate_report(args: argparse.Namespace, samples: list, model: str | None = None):
    """Predictions for ``samples`` (from a file, the authors' pipeline, or our estimator) scored into a Report."""
    from efficientpose.evaluation.evaluate import evaluate, load_predictions

    dataset = _dataset_label(args)
    if args.predictions is not None:
        return evaluate(samples, load_predictions(args.predictions), alpha=args.alpha, dataset=dataset)
    if args.pipeline == "authors":
        import os

        from efficientpose.evaluation.samples import predict_samples_authors
        from efficientpose.models.variants import get_variant

        variant = get_variant(model or args.model)
        tflite = next(f for f in variant.files if f.relpath.endswith(".tflite"))
        folder = os.environ.get("EFFICIENTPOSE_WEIGHTS_DIR")
        path = args.weights if args.weights else (Path(folder) / tflite.relpath if folder else None)
        if path is None or not path.is_file() or path.suffix != ".tflite":
            raise UsageError(f"--pipeline authors needs the authors' {tflite.relpath}: set EFFICIENTPOSE_WEIGHTS_DIR "
                             f"or pass --weights FILE.tflite")
        poses = predict_samples_authors(samples, path, variant.normalization)
    else:
        from efficientpose.evaluation.samples import predict_samples

        poses = predict_samples(samples, _estimator(args, model), batch_size=args.batch_size)
    return evaluate(samples, poses, alpha=args.alpha, dataset=dataset)


def _samples(args: argparse.Namespace) -> list:
    """The samples to evaluate: all of the split, or (``--available-only``) those whose images exist, said aloud."""
    from efficientpose.data.registry import open_dataset

    samples = open_dataset(args.dataset, args.root, args.split, require_images=not args.available_only)
    if args.available_only:
        present = [s for s in samples if Path(s.image).is_file()]
        print(f"{len(present)} of {len(samples)} samples have their image; evaluating those", file=sys.stderr)
        samples = present
    if not samples:
        raise UsageError(f"{args.root}: no samples to evaluate")
    return samples[: args.limit] if args.limit else samples


def _write_report(report, output: Path, stem: str) -> None:
    """The report as JSON, markdown and a curve plot under ``output``; says where."""
    from efficientpose.io.atomic import atomic_write_text

    output.mkdir(parents=True, exist_ok=True)
    report.write_json(output / f"{stem}.json")
    report.plot_curve(output / f"{stem}-curve.png")
    atomic_write_text(output / f"{stem}.md", report.to_text() + "\n")
    print(f"report: {output / (stem + '.json')}, curve: {output / (stem + '-curve.png')}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    samples = _samples(args)
    stem = f"{args.dataset}-{args.split or 'default'}-{args.model if args.predictions is None else 'predictions'}"
    if args.predictions is None and args.precision != "fp32":
        stem += f"-{args.precision}"  # reports of the same model in several precisions sit side by side
    if not args.compare_decoders:
        report = _evaluate_report(args, samples)
        print(report.to_text())
        _write_report(report, args.output, stem)
        return 0
    if args.predictions is not None or args.pipeline != "ours":
        raise UsageError("--compare-decoders runs our model: it cannot be combined with --predictions or "
                         "--pipeline authors")
    from efficientpose.evaluation.evaluate import compare_reports, evaluate
    from efficientpose.evaluation.samples import predict_samples_by_decoder
    from efficientpose.inference.estimator import DECODERS

    poses = predict_samples_by_decoder(samples, _estimator(args), DECODERS, batch_size=args.batch_size)
    reports = {}
    for decoder in DECODERS:
        reports[decoder] = evaluate(samples, poses[decoder], alpha=args.alpha, dataset=_dataset_label(args))
        print(f"## decoder: {decoder}\n\n{reports[decoder].to_text()}\n")
        _write_report(reports[decoder], args.output, f"{stem}-{decoder}")
    (a, ra), (b, rb) = reports.items()
    paired = compare_reports(ra, rb)
    print(f"\n{ra.title}, Mean: {a} {ra.mean:.2f}, {b} {rb.mean:.2f} ({paired.difference:+.2f} points). "
          f"Of {paired.total} joints, {paired.only_a} are right only with {a} and {paired.only_b} only with {b}; "
          f"exact McNemar p = {paired.p_value:.3g}"
          + (" (no detectable difference at 5 %)." if paired.p_value >= 0.05 else "."))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from efficientpose.errors import WeightsError
    from efficientpose.evaluation.paper import comparison_table, to_markdown
    from efficientpose.models.variants import get_variant

    names = [get_variant(n).name for n in args.models.split(",")]
    samples = _samples(args) if args.root is not None else None

    def measure(name: str) -> tuple[float, float] | None:
        if samples is None:
            return None
        try:
            at50 = _evaluate_report(args, samples, name)
        except WeightsError as exc:
            print(f"{name}: accuracy not measured ({exc})", file=sys.stderr)
            return None
        return at50.mean, _pck_at(at50, 0.1)

    print(to_markdown(comparison_table(names, latency=not args.no_latency, measure=measure)))
    return 0


def _pck_at(report, alpha: float) -> float:
    """The mean PCK(h) at ``alpha`` read off the report's alpha curve."""
    import numpy as np

    index = int(np.argmin(np.abs(report.curve_alpha - alpha)))
    return float(report.curve["Mean"][index])


def cmd_analyze(args: argparse.Namespace) -> int:
    import numpy as np

    from efficientpose.analysis import analyze, load_predictions
    from efficientpose.errors import InputError
    from efficientpose.io.draw import draw_pose
    from efficientpose.io.inputs import classify
    from efficientpose.pose import Pose

    source: Path = args.input
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    if source.suffix.lower() == ".json":
        predictions = load_predictions(source)
        video = Path(predictions["file"]) if Path(str(predictions.get("file", ""))).is_file() else None
    elif classify(source) == "video":
        from efficientpose.predict import PredictOptions, predict_video

        options = PredictOptions(output=args.output, formats=("json",), smooth=True)
        written = predict_video(source, _estimator(args), options)
        predictions, video = load_predictions(written[0]), source
    else:
        raise UsageError(f"{source}: give a video or a predictions JSON written by 'efficientpose predict'")

    def drawer(bgr: np.ndarray, kp: np.ndarray, valid: np.ndarray) -> np.ndarray:
        pose = Pose(np.where(valid[:, None], kp, np.nan))
        return draw_pose(np.ascontiguousarray(bgr[..., ::-1]), pose, threshold=args.threshold)[..., ::-1].copy()

    result = analyze(predictions, args.output, video=video, score_threshold=args.threshold, drawer=drawer)
    reps = result.summary.get("repetitions", {})
    print(f"{reps.get('count', 0)} repetitions of {reps.get('signal', 'the main angle')}; "
          f"report: {args.output / 'report.html'}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "predict": cmd_predict, "models": cmd_models, "export": cmd_export, "evaluate": cmd_evaluate,
    "compare": cmd_compare, "analyze": cmd_analyze,
}


def _add_eval_args(p: argparse.ArgumentParser, dataset_required: bool) -> None:
    p.add_argument("--dataset", choices=("mpii", "lsp", "lspet", "coco"), required=dataset_required,
                   default=None if dataset_required else "mpii")
    p.add_argument("--root", type=Path, required=dataset_required, help="dataset folder")
    p.add_argument("--split", help="mpii: valid|train; lsp: train|test|all; lspet: all; coco: a JSON stem")
    p.add_argument("--limit", type=int, help="only the first N samples (quick checks)")
    p.add_argument("--available-only", action="store_true",
                   help="evaluate only the samples whose images exist (by default a missing image is an error)")
    p.add_argument("--pipeline", choices=("ours", "authors"), default="ours",
                   help="authors: their TFLite model with their pre- and post-processing")
    p.add_argument("--backend", default="auto")
    p.add_argument("--decoder", choices=("refined", "argmax"), default="refined")
    p.add_argument("--flip", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--alpha", type=float, help="threshold fraction (default 0.5 for PCKh, 0.2 for PCK)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="efficientpose", description="Single-person pose estimation with EfficientPose.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("predict", help="keypoints for images, folders, videos or a webcam")
    p.add_argument("paths", nargs="*", type=Path, help="images, folders (walked recursively) or videos")
    _add_model_args(p)
    p.add_argument("--output", type=Path, default=Path("efficientpose-output"), help="output folder")
    p.add_argument("--format", choices=("json", "csv", "both"), default="json", help="prediction file format")
    p.add_argument("--draw", action="store_true", help="also write annotated images / MP4 videos")
    p.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                   help="One-Euro smoothing of video keypoints (default on)")
    p.add_argument("--min-cutoff", type=float, default=1.0, help="One-Euro minimum cutoff frequency (Hz)")
    p.add_argument("--beta", type=float, default=0.05, help="One-Euro speed coefficient")
    p.add_argument("--d-cutoff", type=float, default=1.0, help="One-Euro derivative cutoff (Hz)")
    p.add_argument("--roi", action=argparse.BooleanOptionalAction, default=True,
                   help="crop video frames around the previous confident pose, and search untracked frames "
                        "for a small person (default on)")
    p.add_argument("--search", action=argparse.BooleanOptionalAction, default=False,
                   help="photos: where the whole-image pose is unsure, search for a smaller person in "
                        "overlapping crops (about 20 extra passes for such a photo; default off)")
    p.add_argument("--threshold", type=float, default=0.3, help="score below which a keypoint is not drawn")
    p.add_argument("--batch-size", type=int, default=8, help="images/frames per forward pass")
    p.add_argument("--camera", type=int, metavar="N", help="live webcam N (q or Ctrl-C stops)")
    p.add_argument("--backend", default="auto", help="auto, torch, onnxruntime or openvino")
    p.add_argument("--decoder", choices=("refined", "argmax"), default="refined",
                   help="refined: sub-pixel DARK decoding; argmax: the authors' decoding")

    sub.add_parser("models", help="list the variants: input size, parameters, FLOPs, local weights")

    p = sub.add_parser("export", help="export a model to ONNX or OpenVINO IR (optionally bf16 or int8)")
    _add_model_args(p)
    p.add_argument("--format", choices=("onnx", "openvino"),
                   help="onnx (default for fp32) or openvino IR (.xml + .bin; the only format for bf16 and int8)")
    p.add_argument("--output", type=Path, help="output file (default efficientpose-<model>[-<precision>].onnx|.xml)")
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch axis dynamic (ONNX)")

    p = sub.add_parser("evaluate", help="PCKh/PCK of a model or a predictions file on MPII, LSP, LSPET or COCO")
    _add_model_args(p)
    _add_eval_args(p, dataset_required=True)
    p.add_argument("--predictions", type=Path, help="score this predict-format JSON instead of running a model")
    p.add_argument("--output", type=Path, default=Path("efficientpose-eval"), help="folder for the report")
    p.add_argument("--compare-decoders", action="store_true",
                   help="score the refined and the authors' arg-max decoding on the same images, and test the "
                        "difference joint by joint (exact McNemar)")

    p = sub.add_parser("compare", help="the paper's comparison table against OpenPose")
    p.add_argument("--models", default="rt,i,ii,iii,iv,rt-lite,i-lite,ii-lite")
    p.add_argument("--weights", type=Path, default=None, help=argparse.SUPPRESS)
    _add_eval_args(p, dataset_required=False)
    p.add_argument("--no-latency", action="store_true", help="skip the CPU latency column")
    p.set_defaults(predictions=None, model="rt")

    sub.add_parser("train", help="train or fine-tune (see 'efficientpose train --help')", add_help=False)

    p = sub.add_parser("analyze", help="joint angles, range of motion, symmetry, repetitions and an HTML report")
    p.add_argument("input", type=Path, help="a video, or a video predictions JSON from 'efficientpose predict'")
    _add_model_args(p)
    p.add_argument("--output", type=Path, default=Path("efficientpose-analysis"), help="output folder")
    p.add_argument("--threshold", type=float, default=0.3, help="keypoint score below which a frame is a gap")
    p.add_argument("--backend", default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``efficientpose`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":  # its own flag set (config files, overrides), shared with torchrun's -m entry
        from efficientpose.train.cli_args import main as train_main

        return train_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        parser.error("--batch-size must be at least 1")
    try:
        return COMMANDS[args.command](args)
    except EfficientPoseError as exc:
        return report(f"efficientpose {args.command}", exc)
    except OSError as exc:  # e.g. --output names a file, or a folder we may not write: one line, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"efficientpose {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
