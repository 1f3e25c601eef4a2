"""Photos per second with person detection (predict's default) against ``--detector none``, as a ratio measured
interleaved in one run (issue 13: at least 0.5), on folders of real photos.

    python benchmarks/photos.py                               # plain LSP (100) and the small-person set (100)
    python benchmarks/photos.py --folder DIR --n 100 --threads 1

The small-person set is ``benchmarks/small_person.py build --out DIR`` (default /root/ep-state/h2/small-person;
skipped when absent). Each measurement is the predict job's image path end to end (reading, detection, pose,
JSON), in-process, on OpenVINO with ``--threads`` threads for the pose model and the detector alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EFFICIENTPOSE_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("EFFICIENTPOSE_WEIGHTS_DIR", str(SHARED / "weights" / "efficientpose"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import interleaved  # noqa: E402


def photos_per_second(files: list[Path], model: str, threads: int, rounds: int) -> dict:
    """Images/s of predict's image path with the default detector and with none, interleaved, and their ratio."""
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.predict import PredictOptions, open_detector, predict_files

    est = PoseEstimator(model, backend="openvino", threads=threads)
    detector = open_detector("auto", backend="openvino", threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"detector none": PredictOptions(output=Path(tmp) / "none", detector="none", progress=False),
                "detection": PredictOptions(output=Path(tmp) / "det", detector=detector, progress=False)}
        ms = interleaved({k: (lambda o=o: predict_files(files, est, o)) for k, o in runs.items()}, rounds,
                         settle=0, timed=1, settle_s=0.0)
    rate = {k: len(files) / v * 1000 for k, v in ms.items()}
    return {"images": len(files), "model": model, "threads": threads, "img_per_s": rate,
            "ratio": rate["detection"] / rate["detector none"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, action="append", help="folders of photos (default: LSP, small-person)")
    p.add_argument("--n", type=int, default=100, help="the first N photos of each folder")
    p.add_argument("--model", default="rt")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    folders = args.folder or [SHARED / "data" / "lsp" / "images", Path("/root/ep-state/h2/small-person/images")]
    results = {}
    for folder in folders:
        files = sorted(folder.glob("*.jpg"))[: args.n]
        if not files:
            print(f"{folder}: no photos, skipped", file=sys.stderr)
            continue
        results[str(folder)] = r = photos_per_second(files, args.model, args.threads, args.rounds)
        print(f"{folder}: {r['img_per_s']['detection']:.1f} photos/s with detection, "
              f"{r['img_per_s']['detector none']:.1f} with --detector none: ratio {r['ratio']:.2f} (bound 0.5)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
