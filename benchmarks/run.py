"""Speed benchmark: our backends against the authors' TFLite models under LiteRT, measured interleaved on the
same real images in one run. Prints markdown tables of medians and ratios and writes JSON.

    python benchmarks/run.py                 # full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick         # fewer repeats, RT only

Reads weights and images from ../shared (EFFICIENTPOSE_WEIGHTS_DIR defaults to ../shared/weights/efficientpose).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EFFICIENTPOSE_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("EFFICIENTPOSE_WEIGHTS_DIR", str(SHARED / "weights" / "efficientpose"))
# Interleaved runs: torch's OpenMP workers must not spin on the cores after each call and slow whatever runs next.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TFLITE = {"rt": "EfficientPoseRT", "i": "EfficientPoseI", "ii": "EfficientPoseII", "rt-lite": "EfficientPoseRT_LITE",
          "i-lite": "EfficientPoseI_LITE", "ii-lite": "EfficientPoseII_LITE"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def images(n: int) -> list[Path]:
    files = sorted((SHARED / "data" / "lsp" / "images").glob("im*.jpg"))[:n]
    if not files:
        sys.exit(f"no images under {SHARED / 'data' / 'lsp' / 'images'}")
    return files


def interleaved(fns: dict[str, callable], rounds: int, settle: int = 2, timed: int = 3,
                settle_s: float = 0.1) -> dict[str, float]:
    """Median milliseconds of each function over ``rounds`` rounds that take the functions in turn.

    In each turn a function first runs untimed calls (at least ``settle`` and ``settle_s`` seconds' worth), then
    ``timed`` timed ones: runtimes keep worker threads spinning for a while after a call (ONNX Runtime,
    XNNPACK, OpenMP) and caches hold the previous model, so the first calls after another runtime measure that
    runtime's leftovers, not this one. Alternating in every round still exposes all of them to the same drift
    of the machine.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            start, calls = time.perf_counter(), 0
            while calls < settle or time.perf_counter() - start < settle_s:
                fn()
                calls += 1
            for _ in range(timed):
                start = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v) * 1000) for k, v in times.items()}


def model_latency(names: list[str], rounds: int, threads: int) -> list[dict]:
    """Batch 1 and 8 model latency of each backend vs LiteRT, plus keypoint agreement on real images."""
    import torch

    from efficientpose.codec.heatmap import decode_argmax
    from efficientpose.inference.runtime.runners import BACKENDS
    from efficientpose.inference.runtime.select import available, make_runner
    from efficientpose.models.fuse import optimize_for_inference
    from efficientpose.reference.authors import TFLiteModel, authors_preprocess
    from efficientpose.weights.hub import load_model

    rows = []
    cache = Path(tempfile.mkdtemp(prefix="ep-bench-"))
    for name in names:
        model = load_model(name)
        tfl = TFLiteModel(Path(os.environ["EFFICIENTPOSE_WEIGHTS_DIR"]) / "tflite" / f"{TFLITE[name]}.tflite",
                          num_threads=threads)
        r = model.input_size
        mode = model.variant.normalization.name
        from efficientpose.io.images import read_image

        real = np.stack([authors_preprocess(read_image(p), r, mode) for p in images(8)]).astype(np.float32)
        runners = {b: make_runner(b, model, cache, threads) for b in BACKENDS if available(b)}
        up = optimize_for_inference(model).upsample
        for batch in (1, 8):
            nhwc = np.ascontiguousarray(real[:batch])
            nchw = torch.from_numpy(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
            fns = {"litert": lambda x=nhwc, t=tfl: t(x)}
            fns.update({b: (lambda run=run, x=nchw: run(x)) for b, run in runners.items()})
            ms = interleaved(fns, rounds)
            ref = decode_argmax(tfl(nhwc).transpose(0, 3, 1, 2))[..., :2]
            # Our backends stop at the network's R/8 maps; for the identity check, upsample them with the model's
            # fixed bilinear layers and decode both sides with the same arg-max.
            with torch.inference_mode():
                agree = {b: float((np.abs(decode_argmax(up(torch.from_numpy(run(nchw))).numpy())[..., :2] - ref)
                                   .max(-1) <= 1.0).mean()) for b, run in runners.items()}
            best = min(runners, key=lambda b: ms[b])
            rows.append({"model": name, "batch": batch, "ms": ms, "best": best,
                         "ratio": ms[best] / ms["litert"], "keypoints_within_1px": agree})
            print(f"  {name} batch {batch}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()), file=sys.stderr)
    return rows


def end_to_end(n: int, rounds: int, threads: int) -> dict:
    """Image file -> keypoints throughput: the predict job's image pipeline (reader thread decoding and letterboxing
    ahead, batches of 8, refined decoding) vs the authors' pipeline with their TFLite RT model: scikit-image's
    rescale (when installed; else our scipy re-implementation of it), Gaussian blur and arg-max."""
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.io.images import read_image
    from efficientpose.predict import image_poses
    from efficientpose.reference.authors import TFLiteModel, authors_predict, authors_rescale, skimage_rescale

    files = images(n)
    est = PoseEstimator("rt", threads=threads)
    tfl = TFLiteModel(Path(os.environ["EFFICIENTPOSE_WEIGHTS_DIR"]) / "tflite" / "EfficientPoseRT.tflite",
                      num_threads=threads)
    rescale = skimage_rescale()

    def ours() -> None:
        for _ in image_poses(files, est, batch_size=8):
            pass

    def authors() -> None:
        for p in files:
            authors_predict(read_image(p), tfl, "torch", real_time=False, rescale=rescale or authors_rescale)

    ms = interleaved({"ours": ours, "authors": authors}, rounds, settle=1, timed=1, settle_s=0.0)
    return {"images": len(files), "backend": est.backend, "resize": "scikit-image" if rescale else "scipy",
            "ours_img_per_s": len(files) / ms["ours"] * 1000, "authors_img_per_s": len(files) / ms["authors"] * 1000,
            "ratio": ms["authors"] / ms["ours"]}


#: The issue's bounds for int8 against fp32 (same run): PCK@0.2 and @0.1 drops, and the batch-8 speed-up.
BOUNDS = {"rt": (0.3, 0.5, 1.6), "ii": (0.3, 0.5, 1.8)}


def precision_rows(names: list[str], precisions: list[str], rounds: int, threads: int, n_eval: int = 1000,
                   n_e2e: int = 100) -> list[dict]:
    """Each variant in each precision on OpenVINO (int8 calibrated on LSP-extended's images): PCK@0.2 and @0.1 on
    the LSP training half, model latency at batch 1 and 8 and end-to-end images/s, the speeds interleaved across
    the precisions in one run so that their ratios hold on a drifting machine. Accuracy, not keypoint parity with
    fp32, is what judges a reduced precision."""
    from efficientpose.codec.normalize import to_input
    from efficientpose.data.registry import open_dataset
    from efficientpose.evaluation.evaluate import evaluate
    from efficientpose.evaluation.samples import predict_samples
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.io.images import read_image
    from efficientpose.predict import image_poses

    calibration = SHARED / "data" / "lspet" / "images"
    samples = open_dataset("lsp", SHARED / "data" / "lsp", "train")[:n_eval]
    files = images(n_e2e)
    rows = []
    for name in names:
        ests = {p: PoseEstimator(name, backend="openvino", precision=p, threads=threads,
                                 calibration=calibration if p == "int8" else None) for p in precisions}
        first = next(iter(ests.values()))

        real = to_input(np.stack([first.prepare(read_image(f))[0] for f in files[:8]]), first.normalization)
        latency = {b: interleaved({p: (lambda e=e, v=real[:b]: e.runner(v)) for p, e in ests.items()}, rounds)
                   for b in (1, 8)}

        def e2e(est: PoseEstimator) -> None:
            for _ in image_poses(files, est, batch_size=8):
                pass

        whole = interleaved({p: (lambda e=e: e2e(e)) for p, e in ests.items()}, max(2, rounds // 3), settle=1,
                            timed=1, settle_s=0.0)
        for p, est in ests.items():
            poses = predict_samples(samples, est, progress=False)
            pck = {a: evaluate(samples, poses, alpha=a).mean for a in (0.2, 0.1)}
            rows.append({"model": name, "precision": p, "runs": est.precision, "pck02": pck[0.2], "pck01": pck[0.1],
                         "ms_b1": latency[1][p], "ms_b8": latency[8][p], "img_per_s": len(files) / whole[p] * 1000,
                         "images": len(samples)})
            print(f"  {name} {p}: PCK@0.2 {pck[0.2]:.2f}, @0.1 {pck[0.1]:.2f}, batch 1 {latency[1][p]:.1f} ms, "
                  f"batch 8 {latency[8][p]:.1f} ms, {rows[-1]['img_per_s']:.1f} images/s", file=sys.stderr)
    return rows


def precision_markdown(rows: list[dict]) -> str:
    """The precision table with ratios against fp32 from the same run, and the issue's bounds checked."""
    base = {r["model"]: r for r in rows if r["precision"] == "fp32"}
    lines = ["| model | precision | PCK@0.2 | PCK@0.1 | batch 1 ms | batch 8 ms | batch 8 speed-up | "
             "end to end images/s |", "|---|---|---|---|---|---|---|---|"]
    checks = []
    for r in rows:
        f = base.get(r["model"])
        up = f["ms_b8"] / r["ms_b8"] if f else float("nan")
        shown = r["precision"] if r["runs"] == r["precision"] else f"{r['precision']} (ran {r['runs']})"
        lines.append(f"| {r['model']} | {shown} | {r['pck02']:.2f} | {r['pck01']:.2f} | {r['ms_b1']:.1f} | "
                     f"{r['ms_b8']:.1f} | {up:.2f}x | {r['img_per_s']:.1f} |")
        if f and r["precision"] != "fp32":
            d02, d01 = f["pck02"] - r["pck02"], f["pck01"] - r["pck01"]
            b02, b01, speed = BOUNDS.get(r["model"], (0.3, 0.5, None))
            speed = speed if r["precision"] == "int8" else None
            ok = d02 <= b02 and d01 <= b01 and (speed is None or up >= speed)
            checks.append(f"{r['model']} {r['precision']}: PCK@0.2 {-d02:+.2f} (bound -{b02}), PCK@0.1 {-d01:+.2f} "
                          f"(bound -{b01}), batch 8 {up:.2f}x" + (f" (bound {speed}x)" if speed else "")
                          + (": holds" if ok else ": FAILS"))
    n = rows[0]["images"] if rows else 0
    return "\n".join(lines + ["", f"Accuracy on the LSP training half ({n} images); against fp32 in this run:", ""]
                     + [f"- {c}" for c in checks])


def video_fps(frames: int, threads: int) -> dict:
    """Frames per second of the predict job on a 640x480 clip made from the real squats video (RT, smoothing on,
    no drawing, single-person tracking: ``--detector none``; the person detector's video speed is measured against
    MediaPipe by the video benchmark)."""
    import cv2

    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.predict import PredictOptions, predict_video

    tmp = Path(tempfile.mkdtemp(prefix="ep-video-"))
    clip = tmp / "clip640x480.mp4"
    cap = cv2.VideoCapture(str(SHARED / "data" / "video" / "squats_front.mp4"))
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    src = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        canvas = np.full((480, 640, 3), 128, np.uint8)
        small = cv2.resize(f, (270, 480))
        canvas[:, 185:455] = small
        src.append(canvas)
    for i in range(frames):
        out.write(src[i % len(src)])
    out.release()
    est = PoseEstimator("rt", threads=threads)
    options = PredictOptions(output=tmp / "out", smooth=True, draw=False, progress=False, detector="none")
    predict_video(clip, est, options)  # warm-up
    start = time.perf_counter()
    predict_video(clip, est, options)
    elapsed = time.perf_counter() - start
    return {"frames": frames, "size": "640x480", "fps": frames / elapsed, "backend": est.backend}


def peak_memory(which: str, n: int) -> float:
    """Peak resident memory (MiB) of a fresh process running one pipeline over ``n`` images. Ours is measured on
    a second start, as users run it: the first start of a model exports it and picks the backend, once."""
    def probe(count: int) -> float:
        code = (f"import sys; sys.argv=['x']; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import run; "
                f"run._memory_probe({which!r}, {count})")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    if which == "ours":
        probe(1)
    return probe(n)


def _memory_probe(which: str, n: int) -> None:
    files = images(n)
    if which == "ours":
        from efficientpose.inference.estimator import PoseEstimator
        from efficientpose.predict import image_poses

        for _ in image_poses(files, PoseEstimator("rt"), batch_size=8):
            pass
    else:
        from efficientpose.io.images import read_image
        from efficientpose.reference.authors import TFLiteModel, authors_predict, authors_rescale, skimage_rescale

        tfl = TFLiteModel(Path(os.environ["EFFICIENTPOSE_WEIGHTS_DIR"]) / "tflite" / "EfficientPoseRT.tflite")
        rescale = skimage_rescale() or authors_rescale
        for p in files:
            authors_predict(read_image(p), tfl, "torch", rescale=rescale)
    print(_peak_rss_mib())


def _peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    across fork and exec, which would report the benchmark's own peak for every probe."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def comparison() -> list[dict]:
    """The paper's comparison table (``efficientpose compare``) with measured parameters, FLOPs and torch batch-1
    latency, OpenPose included."""
    from dataclasses import asdict

    from efficientpose.evaluation.paper import comparison_table
    from efficientpose.models import VARIANTS

    return [asdict(row) for row in comparison_table(list(VARIANTS))]


def profile(name: str, threads: int, n: int = 100) -> str:
    """Where OpenVINO's batch-1 time goes for one model (per layer type, with the 1x1 convolutions' GFLOP/s), and
    what bf16 would gain and cost (latency, keypoints within 1 px of fp32 on ``n`` real images)."""
    import collections

    import openvino as ov
    from torch import nn

    from efficientpose.codec.heatmap import decode_refined
    from efficientpose.codec.normalize import to_input
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.inference.runtime.cache import export_for
    from efficientpose.io.images import read_image
    from efficientpose.models.counting import flops_by_module

    est = PoseEstimator(name, backend="torch")
    model, r = est.model, est.size
    onnx = export_for(model, Path(tempfile.mkdtemp(prefix="ep-profile-"))).onnx
    batch = to_input(np.stack([est.prepare(read_image(f))[0] for f in images(n)]), est.normalization)
    x = batch[:1]
    core = ov.Core()

    def compiled(precision: str, counters: bool = False):  # noqa: ANN202
        m = core.read_model(str(onnx))
        m.reshape([1, 3, r, r])
        return core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                                             "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": counters})

    lines = [f"OpenVINO profile of {name} (batch 1, {threads} threads)", "",
             "| layer type | layers | ms |", "|---|---|---|"]
    request = compiled("f32", counters=True).create_infer_request()
    for _ in range(20):
        request.infer({0: x})
    per_type: dict[str, list[float]] = collections.defaultdict(list)
    for info in request.profiling_info:
        per_type[f"{info.node_type} ({info.exec_type})"].append(info.real_time.total_seconds() * 1000)
    total = sum(sum(v) for v in per_type.values())
    for kind, ms in sorted(per_type.items(), key=lambda kv: -sum(kv[1])):
        if sum(ms) > 0:
            lines.append(f"| {kind} | {len(ms)} | {sum(ms):.2f} |")
    flops = flops_by_module(model, r)
    modules = dict(model.named_modules())
    pointwise = sum(v for k, v in flops.items()
                    if isinstance(modules.get(k), nn.Conv2d) and modules[k].kernel_size == (1, 1))
    pw_ms = sum(sum(v) for k, v in per_type.items() if k.startswith("Convolution") and "1x1" in k)
    lines += ["", f"total {total:.2f} ms; 1x1 convolutions {pointwise / 1e9:.3f} GFLOP in {pw_ms:.2f} ms = "
              f"{pointwise / 1e6 / max(pw_ms, 1e-9):.0f} GFLOP/s", ""]
    fp32, bf16 = compiled("f32"), compiled("bf16")
    ms = interleaved({"f32": lambda: fp32(x), "bf16": lambda: bf16(x)}, 5)
    kp32 = decode_refined(np.concatenate([np.asarray(fp32(batch[i:i + 1])[0]) for i in range(n)]), 0.0, 8)
    kp16 = decode_refined(np.concatenate([np.asarray(bf16(batch[i:i + 1])[0]) for i in range(n)]), 0.0, 8)
    moved = np.abs(kp16[..., :2] - kp32[..., :2]).max(-1)
    lines.append(f"f32 {ms['f32']:.2f} ms, bf16 {ms['bf16']:.2f} ms; with bf16 {np.mean(moved <= 1):.2%} of "
                 f"{moved.size} keypoints stay within 1 input px of f32 (worst {moved.max():.1f} px)")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    lines = [f"Measured {result['date']} on {result['cpu']} ({result['cores']} cores), torch {result['torch']}, "
             f"{result['threads']} threads.", ""]
    lines += ["| model | batch | LiteRT (authors) ms | torch ms | onnxruntime ms | openvino ms | best / LiteRT | "
              "keypoints within 1 px |", "|---|---|---|---|---|---|---|---|"]
    for r in result["latency"]:
        ms = r["ms"]
        agree = r["keypoints_within_1px"][r["best"]]
        lines.append(f"| {r['model']} | {r['batch']} | {ms['litert']:.1f} | {ms.get('torch', float('nan')):.1f} | "
                     f"{ms.get('onnxruntime', float('nan')):.1f} | {ms.get('openvino', float('nan')):.1f} | "
                     f"{r['ratio']:.2f}x ({r['best']}) | {agree:.1%} |")
    e = result["end_to_end"]
    lines += ["", "| end to end (RT, image file -> keypoints) | images/s |", "|---|---|",
              f"| ours ({e['backend']}, predict's image pipeline, batch 8, refined decoding) | "
              f"{e['ours_img_per_s']:.1f} |",
              f"| authors' pipeline ({e['resize']} rescale, blur, arg-max, LiteRT) | {e['authors_img_per_s']:.1f} |",
              f"| ratio | {e['ratio']:.2f}x |"]
    v = result["video"]
    lines += ["", f"Video: {v['fps']:.1f} frames/s ({v['size']}, RT, smoothing on, no drawing, --detector none, "
              f"{v['backend']}).",
              f"Peak memory over {result['memory']['images']} images: ours {result['memory']['ours_mib']:.0f} MiB, "
              f"authors' pipeline {result['memory']['authors_mib']:.0f} MiB."]
    if result.get("precision"):
        lines += ["", "Precision (OpenVINO; int8: NNCF, calibrated on 300 LSP-extended images):", "",
                  precision_markdown(result["precision"])]
    if result.get("comparison"):
        from efficientpose.evaluation.paper import Row, to_markdown

        lines += ["", to_markdown([Row(**r) for r in result["comparison"]])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="RT only, fewer repeats")
    parser.add_argument("--models", default="rt,i,ii,rt-lite,i-lite,ii-lite")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-comparison", action="store_true")
    parser.add_argument("--profile", metavar="MODEL", help="only OpenVINO's per-layer profile and bf16 trade-off")
    parser.add_argument("--precisions", default="fp32,bf16,int8",
                        help="precisions compared on OpenVINO (accuracy and speed); empty to skip")
    parser.add_argument("--only-precision", action="store_true", help="only the precision table")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.profile:
        print(profile(args.profile, args.threads))
        return
    names = ["rt"] if args.quick else args.models.split(",")
    rounds = 4 if args.quick else args.rounds
    result = {"date": str(date.today()), "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
              "threads": args.threads}
    precisions = [p for p in args.precisions.split(",") if p]
    if args.only_precision:
        rows = precision_rows(names, precisions, rounds, args.threads)
        print(precision_markdown(rows))
        return
    print("model latency ...", file=sys.stderr)
    result["latency"] = model_latency(names, rounds, args.threads)
    print("end to end ...", file=sys.stderr)
    result["end_to_end"] = end_to_end(40 if args.quick else 100, 3 if args.quick else 5, args.threads)
    print("video ...", file=sys.stderr)
    result["video"] = video_fps(150 if args.quick else 300, args.threads)
    print("memory ...", file=sys.stderr)
    result["memory"] = {"images": 50, "ours_mib": peak_memory("ours", 50), "authors_mib": peak_memory("authors", 50)}
    if precisions:
        print("precision ...", file=sys.stderr)
        result["precision"] = precision_rows(names, precisions, rounds, args.threads)
    if not args.no_comparison and not args.quick:
        print("comparison table ...", file=sys.stderr)
        result["comparison"] = comparison()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
