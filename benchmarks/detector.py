"""Measurements of the person detector (issue 13): boxes against LSP's people, misses on people seen from behind,
the COCO sample, and the time per call. Reads ../shared beside the checkout; writes nothing there.

    python benchmarks/detector.py [--lspet 2000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _percentiles(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {f"p{q}": round(float(np.percentile(v, q)), 3) for q in (10, 25, 50, 75, 90)} if len(v) else {}


def _square(lo: np.ndarray, hi: np.ndarray, margin: float) -> np.ndarray:
    c, side = (lo + hi) / 2, margin * (hi - lo).max()
    return np.array([*(c - side / 2), *(c + side / 2)])


def lsp_boxes(detector, samples) -> dict:  # noqa: ANN001
    """Best detection per LSP image against the annotated joints: found, true centre inside, IoU."""
    from efficientpose.detection.anchors import iou
    from efficientpose.io.images import read_image

    found = inside = hip_inside = 0
    iou_joints, iou_crop, size_ratio = [], [], []
    for s in samples:
        dets = detector(read_image(s.image))
        if not dets:
            continue
        found += 1
        box = np.asarray(dets[0].box)
        lo, hi = np.nanmin(s.joints, 0), np.nanmax(s.joints, 0)
        c = (lo + hi) / 2
        inside += bool(box[0] <= c[0] <= box[2] and box[1] <= c[1] <= box[3])
        hips = s.joints[[2, 3]].mean(0)  # LSP order: right hip 2, left hip 3
        hip_inside += bool(np.hypot(*(dets[0].keypoints[0] - hips)) <= 0.2 * (hi - lo).max())
        iou_joints.append(float(iou(np.array([*lo, *hi]), box[None])[0]))
        iou_crop.append(float(iou(_square(lo, hi, 1.25), box[None])[0]))
        size_ratio.append(float((box[2] - box[0]) / ((hi - lo).max() * 1.25)))
    n = len(samples)
    return {"images": n, "found": round(100 * found / n, 1), "centre_in_box": round(100 * inside / n, 1),
            "hip_within_0.2_extent": round(100 * hip_inside / n, 1),
            "iou_with_joint_box": _percentiles(iou_joints), "iou_with_1.25_square": _percentiles(iou_crop),
            "box_side_over_1.25_extent": _percentiles(size_ratio)}


def facing(samples, tau: float = 0.25) -> tuple[list, list]:  # noqa: ANN001
    """(front, back): upright people whose shoulders and hips both show the person's right on the image's left
    (facing the camera) or on its right (seen from behind), by at least ``tau`` x the torso height."""
    front, back = [], []
    for s in samples:
        j, a = s.joints, s.annotated
        if not a[[2, 3, 8, 9, 12]].all():  # hips, shoulders, neck
            continue
        torso = np.hypot(*(j[[8, 9]].mean(0) - j[[2, 3]].mean(0)))
        if torso <= 0 or j[12, 1] > j[[2, 3], 1].mean():  # not upright: left/right order says nothing
            continue
        shoulders, hips = (j[8, 0] - j[9, 0]) / torso, (j[2, 0] - j[3, 0]) / torso  # right minus left
        if shoulders < -tau and hips < -tau:
            front.append(s)
        elif shoulders > tau and hips > tau:
            back.append(s)
    return front, back


def miss_rate(detector, samples) -> dict:  # noqa: ANN001
    from efficientpose.io.images import read_image

    missed = sum(not detector(read_image(s.image)) for s in samples)
    return {"images": len(samples), "nobody_found": round(100 * missed / max(1, len(samples)), 1)}


def video_frames(detector, path: Path, step: int) -> dict:  # noqa: ANN001
    cap = cv2.VideoCapture(str(path))
    frames = hits = index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            frames += 1
            hits += bool(detector(frame[..., ::-1].copy()))
        index += 1
    return {"frames": frames, "with_a_detection": round(100 * hits / max(1, frames), 1)}


def coco(detector) -> dict:  # noqa: ANN001
    """Per annotated person (not crowd, at least 8 keypoints): is some detection's box around its box centre."""
    from efficientpose.io.images import read_image

    by_size = {"<100 px": [0, 0], "100-200 px": [0, 0], ">=200 px": [0, 0]}
    images = nobody = 0
    for ann_file in sorted((DATA / "coco" / "annotations").glob("person_keypoints_*_mini.json")):
        data = json.loads(ann_file.read_text())
        split = ann_file.stem.split("_")[2]
        for img in data["images"]:
            people = [a for a in data["annotations"] if a["image_id"] == img["id"] and not a["iscrowd"]
                      and a["num_keypoints"] >= 8]
            if not people:
                continue
            images += 1
            dets = detector(read_image(DATA / "coco" / split / img["file_name"]))
            nobody += not dets
            for a in people:
                x, y, w, h = a["bbox"]
                c = (x + w / 2, y + h / 2)
                hit = any(d.box[0] <= c[0] <= d.box[2] and d.box[1] <= c[1] <= d.box[3] for d in dets)
                key = "<100 px" if h < 100 else "100-200 px" if h < 200 else ">=200 px"
                by_size[key][0] += hit
                by_size[key][1] += 1
    return {"images": images, "images_with_nobody_found": nobody,
            "people_found": {k: f"{v[0]}/{v[1]}" for k, v in by_size.items()}}


def speed(path: str | None) -> dict:
    from efficientpose.detection import BlazePoseDetector
    from efficientpose.detection.blazepose import BACKENDS, _installed
    from efficientpose.io.images import read_image

    image = cv2.resize(read_image(DATA / "MPII-sample.jpg"), (1280, 720))
    out = {}
    for backend in BACKENDS:
        if not _installed(backend):
            continue
        det = BlazePoseDetector(path, backend=backend)
        for _ in range(3):
            det(image)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            det(image)
            times.append(1000 * (time.perf_counter() - t))
        out[backend] = {"ms_median": round(float(np.median(times)), 2), "ms_min": round(min(times), 2)}
    try:
        from ai_edge_litert.interpreter import Interpreter

        from efficientpose.codec.geometry import letterbox
        from efficientpose.codec.normalize import TF_MODE, to_input
        from efficientpose.detection.blazepose import INPUT_SIZE

        it = Interpreter(model_path=str(BlazePoseDetector(path).path), num_threads=2)
        it.allocate_tensors()
        idx = it.get_input_details()[0]["index"]

        def run() -> None:
            x = to_input(letterbox(image, INPUT_SIZE)[0], TF_MODE).transpose(0, 2, 3, 1)
            it.set_tensor(idx, np.ascontiguousarray(x))
            it.invoke()

        for _ in range(3):
            run()
        times = []
        for _ in range(30):
            t = time.perf_counter()
            run()
            times.append(1000 * (time.perf_counter() - t))
        out["litert (network + letterbox only)"] = {"ms_median": round(float(np.median(times)), 2)}
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lspet", type=int, default=2000, help="LSP-extended images to judge facing direction on")
    p.add_argument("--detector")
    p.add_argument("--json", type=Path)
    p.add_argument("--only", default="speed,lsp,facing,video,coco")
    args = p.parse_args(argv)
    from efficientpose.data.lsp import read_lsp, read_lspet
    from efficientpose.detection import BlazePoseDetector

    detector = BlazePoseDetector(args.detector)
    only = args.only.split(",")
    result: dict = {"backend": detector.backend}
    if "speed" in only:
        result["speed_1280x720"] = speed(args.detector)
    lsp = read_lsp(DATA / "lsp", "train")
    if "lsp" in only:
        result["lsp_train"] = lsp_boxes(detector, lsp)
    if "facing" in only:
        pool = lsp + read_lspet(DATA / "lspet", "all")[:args.lspet]
        front, back = facing(pool)
        result["facing_camera"] = miss_rate(detector, front)
        result["seen_from_behind"] = miss_rate(detector, back)
    if "video" in only:
        result["balance_back.mp4 (every 5th frame)"] = video_frames(detector, DATA / "video" / "balance_back.mp4", 5)
    if "coco" in only:
        result["coco_sample"] = coco(detector)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
