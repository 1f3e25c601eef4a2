"""The small-person benchmark: LSP training-half people placed small in a 1280 x 720 frame, and PCK@0.2 of
crop policies on it (issue 13).

    python benchmarks/small_person.py build --out DIR            # deterministic; ~1000 JPEGs, never committed
    python benchmarks/small_person.py measure --root DIR --model rt --policies default,whole

``build`` writes DIR in LSP's layout (``images/im0001.jpg`` ... and ``joints.mat``, MATLAB coordinates), so
``efficientpose evaluate --dataset lsp --root DIR --split train`` scores it exactly as it scores LSP (PCK with
the torso normaliser). Each LSP training image is scaled to 30-50 % of the frame height (seeded per image) and
pasted at a seeded random place on a background cut from a COCO sample image (``../shared/data/coco``) away from
every annotated person (their boxes grown by 10 % of the image's shorter side), with a 16:9 aspect ratio,
scaled up to 1280 x 720 (so also smooth, like a large blurred crop). The test half of ``joints.mat`` repeats the
training half only to keep LSP's 2000-entry shape; it is never read with ``--split train``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import scipy.io

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FRAME = (1280, 720)
HEIGHT_RANGE = (0.30, 0.50)


def _coco_backgrounds(coco: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB image, person boxes x0 y0 x1 y1) for every COCO sample image with annotations."""
    boxes: dict[str, list[list[float]]] = {}
    files: dict[int, str] = {}
    for ann_file in sorted((coco / "annotations").glob("person_keypoints_*_mini.json")):
        data = json.loads(ann_file.read_text())
        split = ann_file.stem.split("_")[2]
        for img in data["images"]:
            files[img["id"]] = f"{split}/{img['file_name']}"
            boxes.setdefault(files[img["id"]], [])
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            boxes[files[ann["image_id"]]].append([x, y, x + w, y + h])
    out = []
    for name in sorted(boxes):
        image = cv2.imread(str(coco / name), cv2.IMREAD_COLOR)
        if image is not None:
            out.append((image[..., ::-1].copy(), np.asarray(boxes[name], dtype=np.float64).reshape(-1, 4)))
    return out


def _background(rng: np.random.Generator, pool: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """A 1280 x 720 person-free background: a 16:9 region of a pool image that no grown person box touches."""
    while True:
        image, persons = pool[int(rng.integers(len(pool)))]
        h, w = image.shape[:2]
        grown = persons + np.array([-1, -1, 1, 1]) * 0.1 * min(h, w)
        for _ in range(200):
            rh = rng.uniform(0.25, 1.0) * h
            rw = rh * 16 / 9
            if rw > w or rh < 90:
                continue
            x0, y0 = rng.uniform(0, w - rw), rng.uniform(0, h - rh)
            box = np.array([x0, y0, x0 + rw, y0 + rh])
            hit = (np.minimum(box[2], grown[:, 2]) > np.maximum(box[0], grown[:, 0])) & \
                  (np.minimum(box[3], grown[:, 3]) > np.maximum(box[1], grown[:, 1]))
            if not hit.any():
                crop = image[int(y0):int(y0 + rh), int(x0):int(x0 + rw)]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                return cv2.resize(np.ascontiguousarray(crop), FRAME, interpolation=cv2.INTER_CUBIC)


def build(out: Path, lsp: Path, coco: Path, seed: int) -> None:
    from efficientpose.data.lsp import MATLAB_OFFSET, read_lsp
    from efficientpose.io.images import read_image

    samples = read_lsp(lsp, "train")
    pool = _coco_backgrounds(coco)
    (out / "images").mkdir(parents=True, exist_ok=True)
    joints = np.zeros((3, 14, 2000))
    placement = {}
    for i, sample in enumerate(samples):
        rng = np.random.default_rng([seed, i])
        frame = _background(rng, pool)
        person = read_image(sample.image)
        h, w = person.shape[:2]
        new_h = int(round(rng.uniform(*HEIGHT_RANGE) * FRAME[1]))
        new_w = min(FRAME[0], max(1, int(round(w * new_h / h))))
        small = cv2.resize(person, (new_w, new_h), interpolation=cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR)
        x0, y0 = int(rng.integers(0, FRAME[0] - new_w + 1)), int(rng.integers(0, FRAME[1] - new_h + 1))
        frame[y0:y0 + new_h, x0:x0 + new_w] = small
        xy = sample.joints * np.array([new_w / w, new_h / h]) + np.array([x0, y0])  # continuous convention
        joints[:2, :, i] = (xy + MATLAB_OFFSET).T
        joints[2, :, i] = (~sample.visible).astype(float)
        placement[sample.id] = [x0, y0, x0 + new_w, y0 + new_h]
        cv2.imwrite(str(out / "images" / f"im{i + 1:04d}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    joints[:, :, 1000:] = joints[:, :, :1000]
    scipy.io.savemat(out / "joints.mat", {"joints": joints})
    (out / "placement.json").write_text(json.dumps({"seed": seed, "frame": FRAME, "pasted": placement}))
    print(f"wrote {len(samples)} frames to {out}")


# ---- crop policies ----

POLICIES = ("default", "whole", "search", "detector", "confirmed", "staged", "staged-all")


def measure(root: Path, model: str, policies: list[str], limit: int | None, detector_path: str | None,
            split: str = "train", backend: str = "openvino", threads: int | None = 1) -> dict:
    """PCK@0.2 and ms per image of each crop policy (``inference.people``); where a policy finds nobody, the
    whole-image pose is kept.

    default: ``predict``'s default photo path (:func:`efficientpose.predict.image_people`); whole: the whole image
    (``--detector none``); search: ``--detector none --search``; detector: the best detection on the
    whole image, its crop; confirmed: the pose on the crops of the two best detections on the whole image, the
    surest kept; staged: :func:`find_people` (whole image, then windows while no pose is sure); staged-all: the
    same, always through every pass."""
    from efficientpose.codec.geometry import search_windows
    from efficientpose.data.lsp import read_lsp
    from efficientpose.detection import BlazePoseDetector
    from efficientpose.evaluation.evaluate import evaluate
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.inference.people import crop_from_detection, find_people
    from efficientpose.inference.tracking import find_person, roi_from_pose
    from efficientpose.io.images import read_image
    from efficientpose.predict import image_people

    samples = read_lsp(root, split)[:limit]
    est = PoseEstimator(model, backend=backend, threads=threads)
    det = BlazePoseDetector(detector_path, backend=backend if backend in ("openvino", "onnxruntime") else "auto",
                            threads=threads)
    preds: dict[str, dict] = {p: {} for p in policies}
    seconds = dict.fromkeys(policies, 0.0)
    nobody = dict.fromkeys(policies, 0)
    passes = {"whole image": 0, "windows 1.0": 0, "windows 0.6": 0}
    for sample in samples:
        image = read_image(sample.image)
        h, w = image.shape[:2]
        for policy in policies:
            t0 = time.perf_counter()
            pose = None
            if policy == "default":
                pose = next(image_people([Path(sample.image)], est, det, batch_size=1))[2][0]
            elif policy == "search":
                whole = est.predict(image)
                pose = whole if roi_from_pose(whole, w, h) is not None else find_person(est, image, whole)
            elif policy == "detector":
                if found := det(image):
                    pose = est.predict(image, crop_from_detection(found[0]))
            elif policy in ("confirmed", "staged", "staged-all"):
                stages = ((),) if policy == "confirmed" else ((), (1.0,), (0.6,))
                counting = _Counting(det)
                found = find_people(counting, est, image, stages, sure=2.0 if policy == "staged-all" else 0.4)
                if found:
                    pose = found[0][1]
                if policy == "staged":
                    first = 1 + len(search_windows(w, h, (1.0,)))
                    passes[list(passes)[0 if counting.calls == 1 else 1 if counting.calls == first else 2]] += 1
            elif policy != "whole":
                raise SystemExit(f"unknown policy {policy}; choose from {', '.join(POLICIES)}")
            if pose is None:
                nobody[policy] += policy != "whole"
                pose = est.predict(image)
            seconds[policy] += time.perf_counter() - t0
            preds[policy][sample.id] = pose
    result = {"model": model, "root": str(root), "split": split, "n": len(samples), "nobody_detected": nobody,
              "staged_stopped_after": passes, "pck@0.2": {}, "ms_per_image": {}}
    for policy in policies:
        result["pck@0.2"][policy] = round(evaluate(samples, preds[policy], alpha=0.2).mean, 2)
        result["ms_per_image"][policy] = round(1000 * seconds[policy] / len(samples), 1)
    return result


class _Counting:
    """A detector that counts its calls (to tell how many passes :func:`find_people` ran)."""

    def __init__(self, detector) -> None:  # noqa: ANN001
        self.detector, self.calls = detector, 0

    def __call__(self, image: np.ndarray) -> list:
        self.calls += 1
        return self.detector(image)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--lsp", type=Path, default=SHARED / "data" / "lsp")
    b.add_argument("--coco", type=Path, default=SHARED / "data" / "coco")
    b.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("measure")
    m.add_argument("--root", type=Path, required=True)
    m.add_argument("--model", default="rt")
    m.add_argument("--policies", default=",".join(POLICIES))
    m.add_argument("--split", default="train", help="train for the generated set or plain LSP's training half")
    m.add_argument("--limit", type=int)
    m.add_argument("--detector")
    m.add_argument("--backend", default="openvino", help="of the pose model and the detector")
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "build":
        build(args.out, args.lsp, args.coco, args.seed)
        return 0
    result = measure(args.root, args.model, args.policies.split(","), args.limit, args.detector, args.split,
                     args.backend, args.threads)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
