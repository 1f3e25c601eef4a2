"""The ``efficientpose`` command. Thin: parses flags, calls the library, turns errors into one-line messages.

Exit codes: 0 success, 1 some input failed (the rest were processed) or a run error, 2 usage error, 130 Ctrl-C,
143 SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from efficientpose.errors import EfficientPoseError, UsageError, exit_code, one_line
from efficientpose.interrupts import interrupted, raise_on_interrupts, restore_handlers


def report(prog: str, exc: EfficientPoseError) -> int:
    """Print ``exc`` as one line for command ``prog`` and return its exit code (:func:`errors.exit_code`)."""
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
    return exit_code(exc)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage; keep that, one line of reason
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_model_args(p: argparse.ArgumentParser, default: str = "rt") -> None:
    p.add_argument("--model", default=default, help="variant: rt, i, ii, iii, iv, rt-lite, i-lite, ii-lite")
    p.add_argument("--weights", type=Path,
                   help="weight file (.safetensors, .h5 or .tflite) instead of the authors' weights, or named weights: "
                        "lsp (RT fine-tuned on LSP sports images; research use only, see docs/weights.md)")
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
    from efficientpose.inference.smoothing import SmoothingParams
    from efficientpose.predict import PredictOptions, predict_files

    if not args.paths and args.camera is None:
        raise UsageError("give at least one PATH (image, folder or video) or --camera N")
    if args.paths and args.camera is not None:
        raise UsageError("give PATHs or --camera N, not both")
    formats = ("json", "csv") if args.format == "both" else (args.format,)
    options = PredictOptions(
        output=args.output, formats=formats, draw=args.draw, smooth=args.smooth,
        smoothing=SmoothingParams(args.min_cutoff, args.beta, args.d_cutoff), batch_size=args.batch_size,
        roi=args.roi, search=args.search, threshold=args.threshold, detector=args.detector, people=args.people,
        person=args.person,
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
        named = f"; named: {', '.join(variant.named)} (in the package)" if variant.named else ""
        print(f"{name:8} {variant.input_size:>6} {params / 1e6:>9.2f}M {flops / 1e9:>8.2f}  "
              f"{where if where else 'not available locally'}{named}")
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
        from efficientpose.evaluation.samples import predict_samples_authors
        from efficientpose.models.variants import get_variant
        from efficientpose.weights.files import find_weights

        variant = get_variant(model or args.model)
        tflite = next(f for f in variant.files if f.relpath.endswith(".tflite"))
        path = find_weights([tflite], explicit=args.weights, what=f"the authors' pipeline ({tflite.relpath})").path
        if path.suffix != ".tflite":
            raise UsageError(f"--pipeline authors needs the authors' {tflite.relpath}, not {path}")
        poses = predict_samples_authors(samples, path, variant.normalization.name)
    elif getattr(args, "detector", "none").lower() != "none":
        poses = _photo_path_poses(args, samples, model)
    else:
        from efficientpose.evaluation.samples import predict_samples

        poses = predict_samples(samples, _estimator(args, model), batch_size=args.batch_size)
    return evaluate(samples, poses, alpha=args.alpha, dataset=dataset)


def _photo_path_poses(args: argparse.Namespace, samples: list, model: str | None) -> dict:
    """``evaluate --detector``: each whole-image sample through predict's default photo path (the person detector,
    the pose's confirmation, the window search), as ``predict`` writes it."""
    from efficientpose.evaluation.samples import person_box
    from efficientpose.predict import image_people, open_detector

    if any(person_box(s) is not None for s in samples):
        raise UsageError(f"--detector scores whole images as predict sees them; {args.dataset} samples come with a "
                         "person box (use --detector none)")
    estimator = _estimator(args, model)
    detector = open_detector(args.detector, backend=estimator.backend)
    found = image_people([Path(s.image) for s in samples], estimator, detector, batch_size=args.batch_size)
    return {s.id: people[0] for s, (_, _, people) in zip(samples, found, strict=True)}


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
    if args.compare_weights is not None:
        return _compare_weights(args, samples, stem)
    if not args.compare_decoders:
        report = _evaluate_report(args, samples)
        print(report.to_text())
        _write_report(report, args.output, stem)
        return 0
    if args.predictions is not None or args.pipeline != "ours":
        raise UsageError("--compare-decoders runs our model: it cannot be combined with --predictions or "
                         "--pipeline authors")
    from efficientpose.codec.heatmap import DECODERS
    from efficientpose.evaluation.evaluate import evaluate
    from efficientpose.evaluation.samples import predict_samples_by_decoder

    poses = predict_samples_by_decoder(samples, _estimator(args), DECODERS, batch_size=args.batch_size)
    reports = {}
    for decoder in DECODERS:
        reports[decoder] = evaluate(samples, poses[decoder], alpha=args.alpha, dataset=_dataset_label(args))
        print(f"## decoder: {decoder}\n\n{reports[decoder].to_text()}\n")
        _write_report(reports[decoder], args.output, f"{stem}-{decoder}")
    _print_paired(reports)
    return 0


def _compare_weights(args: argparse.Namespace, samples: list, stem: str) -> int:
    """``evaluate --compare-weights B``: the model with ``--weights`` (A, default the authors') and with B on the same
    images, each report written (``<stem>-a``, ``<stem>-b``; only once both are scored, so a bad B leaves nothing),
    and the paired test of the difference."""
    if args.predictions is not None or args.pipeline != "ours" or args.compare_decoders:
        raise UsageError("--compare-weights runs our model twice: it cannot be combined with --predictions, "
                         "--pipeline authors or --compare-decoders")
    authors = "the authors' weights"
    runs = {f"{suffix.upper()} ({weights or authors})": (suffix, weights)
            for suffix, weights in (("a", args.weights), ("b", args.compare_weights))}
    reports = {label: _evaluate_report(argparse.Namespace(**{**vars(args), "weights": weights}), samples)
               for label, (_, weights) in runs.items()}
    for label, (suffix, _) in runs.items():
        print(f"## {label}\n\n{reports[label].to_text()}\n")
        _write_report(reports[label], args.output, f"{stem}-{suffix}")
    _print_paired(reports)
    return 0


def _print_paired(reports: dict) -> None:
    """One paragraph: two reports' Mean and the exact McNemar test of their joint-by-joint difference."""
    from efficientpose.evaluation.evaluate import compare_reports

    (a, ra), (b, rb) = reports.items()
    paired = compare_reports(ra, rb)
    print(f"\n{ra.title}, Mean: {a} {ra.mean:.2f}, {b} {rb.mean:.2f} ({paired.difference:+.2f} points). "
          f"Of {paired.total} joints, {paired.only_a} are right only with {a} and {paired.only_b} only with {b}; "
          f"exact McNemar p = {paired.p_value:.3g}"
          + (" (no detectable difference at 5 %)." if paired.p_value >= 0.05 else "."))


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
    from efficientpose.analysis import FilterParams, analyze
    from efficientpose.errors import InputError
    from efficientpose.io.inputs import classify

    if args.compare:
        if args.input is not None:
            raise UsageError("give an input to analyse or --compare A B, not both")
        from efficientpose.analysis.compare import write_compare

        print(f"comparison: {write_compare(*args.compare, args.output)}")
        return 0
    if args.input is None:
        raise UsageError("give a video or predictions file to analyse (or --compare A B)")
    source: Path = args.input
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    if source.suffix.lower() in (".json", ".csv"):
        if args.person is not None:
            raise UsageError("--person picks the subject while tracking a video; a predictions file has its subject")
        predictions, video = source, None
        from efficientpose.io.predictions import read_video_predictions

        recorded = read_video_predictions(source).file
        if recorded and Path(recorded).is_file():
            video = Path(recorded)
    elif classify(source) == "video":
        from efficientpose.predict import PredictOptions, predict_video

        # Raw keypoints: the analysis filters them itself (zero-lag), so no One-Euro smoothing here.
        options = PredictOptions(output=args.output, formats=("json",), smooth=False, detector=args.detector,
                                 person=args.person)
        predictions, video = predict_video(source, _estimator(args), options)[0], source
    else:
        raise UsageError(f"{source}: give a video or a video predictions JSON/CSV written by 'efficientpose predict'")
    filters = FilterParams.off() if args.no_filter else FilterParams(
        hampel_window_s=args.hampel_window or None, hampel_sigmas=args.hampel_sigmas,
        max_gap_s=None if args.max_gap < 0 else args.max_gap, cutoff_hz=args.cutoff or None, order=args.filter_order,
    )
    if args.height is not None and args.calibrate is not None:
        raise UsageError("give --height or --calibrate, not both")
    from efficientpose.analysis.units import parse_calibration

    calibration = parse_calibration(args.calibrate) if args.calibrate is not None else None
    export = tuple(f.strip().lower() for f in args.export.split(",") if f.strip()) if args.export else ()
    unknown = sorted(set(export) - {"trc", "mot", "c3d"})
    if unknown:
        raise UsageError(f"--export {args.export}: unknown format(s) {', '.join(unknown)}; use trc, mot, c3d")
    result = analyze(predictions, args.output, video=video, score_threshold=args.threshold, filters=filters,
                     activity=args.activity, rep_signal_name=args.rep_signal, height_m=args.height,
                     calibration=calibration, export=export, slowmo=args.slowmo)
    reps, gait = result.summary.get("repetitions", {}), result.summary.get("gait")
    if gait:
        cadence = gait["cadence_steps_per_min"]
        print(f"gait: {gait['steps']} heel strikes in {len(gait['passes'])} straight pass(es), cadence "
              f"{'unknown' if cadence is None else f'{cadence:.1f} steps/min'}; report: {args.output / 'report.html'}")
    else:
        print(f"{reps.get('count', 0)} repetitions ({reps.get('complete', 0)} complete) of "
              f"{reps.get('signal', 'the main angle').replace('_', ' ')}; report: {args.output / 'report.html'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from efficientpose.app.server import Config, parse_size, serve
    except ImportError as exc:
        raise UsageError(f"the web app needs its extra: pip install \"efficientpose[app]\" ({exc})") from None
    try:
        limit = parse_size(args.max_upload)
    except ValueError:
        raise UsageError(f"--max-upload {args.max_upload!r}: give a size such as 2G, 500M or 100000") from None
    serve(Config(data=args.data.expanduser(), host=args.host, port=args.port, max_upload=limit))
    return 0

#: analysis.activity.ACTIVITIES, spelled out so that building the parser imports no analysis code (a test pins it).
ANALYZE_ACTIVITIES = ("auto", "squat", "lateral-raise", "sit-to-stand", "push-up", "gait")

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "predict": cmd_predict, "models": cmd_models, "export": cmd_export, "evaluate": cmd_evaluate,
    "compare": cmd_compare, "analyze": cmd_analyze, "serve": cmd_serve,
}


def _add_eval_args(p: argparse.ArgumentParser, dataset_required: bool) -> None:
    p.add_argument("--dataset", choices=("mpii", "lsp", "lspet", "coco"), required=dataset_required,
                   default=None if dataset_required else "mpii")
    p.add_argument("--root", type=Path, required=dataset_required, help="dataset folder")
    p.add_argument("--split", help="mpii: valid|train; lsp: test|train|train-a|train-b|all; lspet: all;"
                   " coco: a JSON stem")
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
    p.add_argument("--detector", default="none", metavar="FILE|auto|none",
                   help="none (default): the benchmark protocol (whole LSP images, dataset crops); auto or FILE: "
                        "whole images through predict's default photo path with this person detector")


def build_parser() -> argparse.ArgumentParser:
    from efficientpose.inference.smoothing import DEFAULT_SMOOTHING
    from efficientpose.pose import DEFAULT_THRESHOLD

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
    p.add_argument("--min-cutoff", type=float, default=DEFAULT_SMOOTHING.min_cutoff,
                   help="One-Euro minimum cutoff frequency (Hz; default %(default)s)")
    p.add_argument("--beta", type=float, default=DEFAULT_SMOOTHING.beta,
                   help="One-Euro speed coefficient (default %(default)s)")
    p.add_argument("--d-cutoff", type=float, default=DEFAULT_SMOOTHING.d_cutoff,
                   help="One-Euro derivative cutoff (Hz; default %(default)s)")
    p.add_argument("--roi", action=argparse.BooleanOptionalAction, default=True,
                   help="with --detector none: crop video frames around the previous confident pose, and search "
                        "untracked frames for a small person (default on)")
    p.add_argument("--search", action=argparse.BooleanOptionalAction, default=False,
                   help="photos: where the whole-image pose is unsure, search for a smaller person in "
                        "overlapping crops (about 20 extra passes for such a photo; default off)")
    p.add_argument("--detector", default="auto", metavar="FILE|none",
                   help="photos and videos: MediaPipe's person detector (default: the cache, then "
                        "$EFFICIENTPOSE_WEIGHTS_DIR/mediapipe/pose_detection.tflite, then a verified download; "
                        "without one, the window search); 'none': the whole image, as the authors ran it (videos: "
                        "today's single-person tracking)")
    p.add_argument("--people", metavar="all|N",
                   help="photos: one record per person (all, or the N surest), best first, ranked by 'person'; "
                        "videos: also list everyone tracked (at most N at once) with stable ids in each frame")
    p.add_argument("--person", metavar="X,Y[@SECONDS]",
                   help="videos: the subject is whoever stands at pixel X,Y (at SECONDS into the video; default: "
                        "the first frame where anyone does) instead of the person tracked longest and largest")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="score below which a keypoint is not drawn (default %(default)s)")
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
    p.add_argument("--compare-weights", metavar="WEIGHTS",
                   help="also score the model with these weights (a file or a name) on the same images, and test "
                        "the difference from --weights (default the authors') joint by joint (exact McNemar)")

    p = sub.add_parser("compare", help="the paper's comparison table against OpenPose")
    p.add_argument("--models", default="rt,i,ii,iii,iv,rt-lite,i-lite,ii-lite")
    p.add_argument("--weights", type=Path, default=None, help=argparse.SUPPRESS)
    _add_eval_args(p, dataset_required=False)
    p.add_argument("--no-latency", action="store_true", help="skip the CPU latency column")
    p.set_defaults(predictions=None, model="rt")

    sub.add_parser("train", help="train or fine-tune (see 'efficientpose train --help')", add_help=False)

    p = sub.add_parser("analyze", help="joint angles, range of motion, symmetry, repetitions and an HTML report")
    p.add_argument("input", type=Path, nargs="?",
                   help="a video, or a video predictions JSON/CSV from 'efficientpose predict'")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                   help="put two analyze output folders side by side in OUTPUT/compare.html (before, after)")
    _add_model_args(p)
    p.add_argument("--output", type=Path, default=Path("efficientpose-analysis"), help="output folder")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="keypoint score below which a frame is a gap (default %(default)s)")
    p.add_argument("--detector", default="auto", metavar="FILE|none",
                   help="a video: the person detector, as for predict; 'none': single-person tracking as before")
    p.add_argument("--person", metavar="X,Y[@SECONDS]",
                   help="a video: analyse whoever stands at pixel X,Y (at SECONDS) instead of the person tracked "
                        "longest and largest")
    p.add_argument("--backend", default="auto")
    p.add_argument("--activity", default="auto", choices=ANALYZE_ACTIVITIES,
                   help="preset choosing the repetition signal and thresholds (auto: the largest periodic angle)")
    p.add_argument("--rep-signal", help="count repetitions on this angle or joint instead (e.g. knee_flexion)")
    p.add_argument("--hampel-window", type=float, default=0.25, help="Hampel window in seconds (0: off)")
    p.add_argument("--hampel-sigmas", type=float, default=3.0, help="Hampel outlier threshold in robust SDs")
    p.add_argument("--max-gap", type=float, default=0.12,
                   help="fill gaps up to this many seconds (at least one frame; negative: never fill)")
    p.add_argument("--cutoff", type=float, default=6.0,
                   help="Butterworth low-pass cut-off in Hz, capped at 0.8 x Nyquist (0: off)")
    p.add_argument("--filter-order", type=int, default=4, help="overall order of the zero-lag Butterworth filter")
    p.add_argument("--no-filter", action="store_true", help="analyse the keypoints as predicted, with no cleaning")
    p.add_argument("--export", metavar="trc,mot,c3d",
                   help="also write keypoints.trc, angles.mot and/or keypoints.c3d for OpenSim and lab tools")
    p.add_argument("--slowmo", type=float, default=1.0, metavar="FACTOR",
                   help="slow-motion factor of the footage (8: filmed at 240 fps, played at 30); times are real-world")
    p.add_argument("--height", type=float, metavar="METRES", help="the subject's height: lengths in metres")
    p.add_argument("--calibrate", metavar="X1,Y1,X2,Y2=METRES",
                   help="two image points (pixels) a known distance apart: lengths in metres")

    p = sub.add_parser("serve", help="the local web app: upload videos, follow jobs, keep and compare sessions")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default loopback; any other address requires the printed access token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data", type=Path, default=Path("~/.local/share/efficientpose"),
                   help="folder for the sessions database and files")
    p.add_argument("--max-upload", default="2G", help="largest upload accepted, e.g. 2G, 500M (default 2G)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``efficientpose <argv>``: exit code 0, 1 (some input failed, or a run error), 2 (usage error),
    130 (Ctrl-C) or 143 (SIGTERM); partial outputs are removed on every way out."""
    previous = raise_on_interrupts()
    show = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Terminated
        from efficientpose.io.atomic import remove_temporaries

        remove_temporaries()  # whatever moment it came at
        return interrupted(exc)
    finally:
        warnings.showwarning = show
        restore_handlers(previous)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: object = None, line: str | None = None) -> None:
    """Any warning that reaches the terminal is one line of ours, never a library's source line."""
    print(f"efficientpose: warning: {one_line(message)}", file=sys.stderr)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is shown as \xNN, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
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


if __name__ == "__main__":
    sys.exit(main())
