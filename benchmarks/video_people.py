"""Video benchmark of issue 13 ("Find the person"): the share of frames in which `efficientpose predict` finds the
subject, against MediaPipe Pose 0.10.21 on the same frames; id switches of `--people all` on the two-person clip;
end-to-end speed on a 720p clip, as ratios from one run. Every number comes from whole processes run as a user
runs them (`python -m efficientpose.cli predict CLIP`; MediaPipe through `benchmarks/mediapipe_video.py`).

    python benchmarks/video_people.py --mediapipe-python /root/ep-state/mp-venv/bin/python
    python benchmarks/video_people.py --skip-speed            # found shares and id switches only
    python benchmarks/video_people.py --speed-only --rounds 3 # the speed table only (pause background jobs first)
    python benchmarks/video_people.py --check-boxes DIR       # also draw the true boxes on the scored frames

MediaPipe lives in its own venv (`python -m venv V && V/bin/pip install mediapipe==0.10.21`), never in the
project's: `--mediapipe-python` or `$EFFICIENTPOSE_MEDIAPIPE_PYTHON`; without it its columns read "-".
`--src` picks the efficientpose source tree under test (default: this checkout's `src`). Clips come from
../shared/data/video; the made clips (side-view walkers, also at 480 x 270; the 720p copy) go to `--work` (default
/root/ep-state/videobench when writable, else a temporary folder). Nothing is written under ../shared.

Found (the issue's definition): at least 12 of our 16 keypoints with score >= 0.3 inside the person's true box,
grown by `MARGIN` of its height on every side; MediaPipe: 9 of its 12 limb landmarks (shoulders, elbows, wrists,
hips, knees, ankles) with visibility >= 0.5 inside it. Shares count the scored frames where the person is visible.
True boxes: drawn by hand on sampled frames (`benchmarks/video_people_boxes.json`), or from background
subtraction on a still camera (`SUBTRACTION`), or known by construction (the made side-view clip).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EFFICIENTPOSE_SHARED", ROOT.parent / "shared"))
VIDEO = SHARED / "data" / "video"
HAND_BOXES = Path(__file__).with_name("video_people_boxes.json")
MEDIAPIPE_SCRIPT = Path(__file__).with_name("mediapipe_video.py")

MARGIN = 0.1  #: the true box grows by this fraction of its height on every side before "inside" is tested
MIN_SCORE, MIN_KEYPOINTS = 0.3, 12  #: ours: keypoints with score >= 0.3 inside the box, at least 12 of 16
MP_LIMBS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)  #: MediaPipe's shoulders ... ankles
MP_VISIBILITY, MP_MIN = 0.5, 9

#: Background subtraction on the still-camera clip: the background is the per-pixel median of frames
#: [start, stop) (both people are elsewhere or moving fast then); a pixel is foreground where any channel differs
#: by more than 25 (at half resolution, opened 3x3, closed 15x15 within the person's gate). Each person has
#: gates per frame range: (first, last, gate x0 y0 x1 y1, floor); the box is the union of the gate's large
#: components (>= 15 % of the largest). While the jumper stands on the hut's roof, his box reaches down to the
#: roof line (his feet stand on it; his legs against the dark trees fall below the threshold). Frames where more
#: than 3 % of the image changes by > 40 (the camera's exposure jumps, frames 164-182) are not scored. Every 4th
#: frame is scored; `EXCLUDED` lists those whose automatic box was judged wrong by eye (`--check-boxes`).
#: A third, tiny person far behind the hut is not scored.
SUBTRACTION: dict[str, dict] = {
    "two_people_jumping_walking.mp4": {
        "background": (195, 230), "step": 4,
        "people": {
            "jumper": [(0, 163, (360, 0, 1120, 456), 452), (183, 229, (800, 300, 1768, 984), None)],
            "walker": [(36, 182, (0, 470, 1600, 984), None), (183, 205, (0, 470, 700, 984), None)],
        },
    },
}
EDGE = 16  #: a person whose box comes this close (pixels) to the left, right or bottom edge is partly out of view
EXCLUDED: dict[str, dict[str, tuple[int, ...]]] = {
    "two_people_jumping_walking.mp4": {"walker": (36,), "jumper": (228,)},  # half hidden by the tree trunk
}

CLIPS = ("squats_front.mp4", "balance_back.mp4", "two_people_jumping_walking.mp4")
#: LSP training-half people seen from the side, upright, whole body in the photo (chosen by their joints, then by eye)
WALKERS = ("im0149", "im0362", "im0420", "im0559", "im0871", "im0131", "im0476", "im0511")
WALK_FRAME, WALK_FPS, WALK_PASS = (1280, 720), 30.0, 75


# ---- true boxes ----

def read_frames(path: Path) -> list[np.ndarray]:
    """All frames of a clip, BGR (the benchmark's clips are short)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        sys.exit(f"{path}: no frames decoded")
    return frames


def hand_boxes(clip: str) -> dict[int, dict[str, list[float]]]:
    """Frame -> person -> box, drawn by hand (the JSON beside this script)."""
    data = json.loads(HAND_BOXES.read_text())
    return {int(k): v for k, v in data.get(clip, {}).items()}


def subtraction_boxes(path: Path, spec: dict, excluded: dict[str, tuple[int, ...]]) -> dict[int, dict]:
    """Frame -> person -> box from background subtraction (see `SUBTRACTION`), on the scored frames only.

    A person is left out of a frame (not visible) where no large component lies in its gate, where its box
    touches the image's edge (partly out of view), or where the frame is excluded by eye."""
    frames = read_frames(path)
    small = np.stack([f[::2, ::2] for f in frames]).astype(np.int16)
    h, w = frames[0].shape[:2]
    a, b = spec["background"]
    background = np.median(small[a:b], axis=0).astype(np.int16)
    out: dict[int, dict] = {}
    for index in range(0, len(frames), spec["step"]):
        diff = np.abs(small[index] - background).max(-1)
        if (diff > 40).mean() > 0.03:
            continue
        mask = cv2.morphologyEx((diff > 25).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        people = {}
        for name, gates in spec["people"].items():
            gate = next(((g, floor) for first, last, g, floor in gates if first <= index <= last), None)
            if gate is None or index in excluded.get(name, ()):
                continue
            (x0, y0, x1, y1), floor = gate
            sub = cv2.morphologyEx(mask[y0 // 2:y1 // 2, x0 // 2:x1 // 2], cv2.MORPH_CLOSE,
                                   np.ones((15, 15), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
            n, _, stats, _ = cv2.connectedComponentsWithStats(sub)
            if n < 2 or stats[1:, 4].max() < 300:
                continue
            big = stats[1:][stats[1:, 4] >= 0.15 * stats[1:, 4].max()]
            box = [x0 + 2 * float(big[:, 0].min()), y0 + 2 * float(big[:, 1].min()),
                   x0 + 2 * float((big[:, 0] + big[:, 2]).max()), y0 + 2 * float((big[:, 1] + big[:, 3]).max())]
            if floor is not None:
                box[3] = max(box[3], floor)
            if box[0] <= EDGE or box[2] >= w - EDGE or box[3] >= h - EDGE:  # entering or leaving; raised hands may
                continue                                                     # leave at the top
            people[name] = box
        out[index] = people
    return out


def walking_clips(work: Path, seed: int = 0) -> list[tuple[Path, dict[int, dict]]]:
    """Made side-view clips, one person each: an LSP person seen from the side (`WALKERS`) walks past a still camera.

    The LSP photo, scaled so the person is 30-45 % of the 1280 x 720 frame's height, slides across one
    person-free COCO-sample background (drawn as the small-person benchmark draws them) in `WALK_PASS` frames at
    30 fps with a small vertical bob, its edges feathered; every other clip goes right to left, mirrored. True
    box: the annotated joints' extent, moved with the photo. Deterministic for a seed; a clip is written only when
    missing."""
    sys.path.insert(0, str(Path(__file__).parent))
    from small_person import _background, _coco_backgrounds

    from efficientpose.data.lsp import read_lsp
    from efficientpose.io.images import read_image

    samples = {s.id: s for s in read_lsp(SHARED / "data" / "lsp", "train")}
    # One scene for every clip (seed 0: a lobby with plants), as from one still camera.
    background = _background(np.random.default_rng(seed), _coco_backgrounds(SHARED / "data" / "coco"))[..., ::-1]
    width, height = WALK_FRAME
    out = []
    for k, sid in enumerate(WALKERS):
        rng = np.random.default_rng([seed, k])
        sample = samples[sid]
        photo = read_image(sample.image)[..., ::-1]
        joints = sample.joints.copy()
        if k % 2:
            photo = photo[:, ::-1]
            joints[:, 0] = photo.shape[1] - joints[:, 0]
        extent = np.nanmax(joints[:, 1]) - np.nanmin(joints[:, 1])
        scale = rng.uniform(0.30, 0.45) * height / extent
        ph, pw = photo.shape[:2]
        new_w, new_h = int(round(pw * scale)), int(round(ph * scale))
        pasted = cv2.resize(np.ascontiguousarray(photo), (new_w, new_h), interpolation=cv2.INTER_CUBIC)
        alpha = np.ones((new_h, new_w), np.float32)
        feather = max(2, new_w // 12)
        ramp = np.linspace(0, 1, feather, dtype=np.float32)
        alpha[:, :feather] *= ramp
        alpha[:, -feather:] *= ramp[::-1]
        alpha[:feather] *= ramp[:, None]
        alpha[-feather:] *= ramp[::-1, None]
        top0 = rng.uniform(0.85, 0.98) * height - new_h
        xs = np.linspace(0.02 * width, width - new_w - 0.02 * width, WALK_PASS)
        if k % 2:
            xs = xs[::-1]
        boxes: dict[int, dict] = {}
        frames = []
        for t, x in enumerate(xs):
            xi = int(round(x))
            yi = int(round(top0 - 0.015 * new_h * abs(np.sin(np.pi * 2 * t / WALK_FPS))))
            frame = background.copy()
            region = frame[yi:yi + new_h, xi:xi + new_w].astype(np.float32)
            frame[yi:yi + new_h, xi:xi + new_w] = (region * (1 - alpha[..., None])
                                                   + pasted * alpha[..., None]).round().astype(np.uint8)
            xy = joints * scale + np.array([xi, yi])
            boxes[t] = {"subject": [float(np.nanmin(xy[:, 0])), float(np.nanmin(xy[:, 1])),
                                    float(np.nanmax(xy[:, 0])), float(np.nanmax(xy[:, 1]))]}
            frames.append(frame)
        path = work / f"side_walker_{sid}_seed{seed}.mp4"
        if not path.is_file():
            tmp = path.with_name(path.stem + ".tmp.mp4")
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), WALK_FPS, (width, height))
            for frame in frames:
                writer.write(frame)
            writer.release()
            tmp.replace(path)
        out.append((path, boxes))
    return out


#: The made clips again at this width (480 x 270): the held running clip is 480 x 352, its runner about half its height.
SMALL_WIDTH = 480


def small_clip(work: Path, source: Path, truth: dict[int, dict], width: int = SMALL_WIDTH) -> tuple[Path, dict]:
    """`source` scaled to `width` (:func:`resized_clip`) and its true boxes scaled with it."""
    cap = cv2.VideoCapture(str(source))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    scale = width / w
    size = (width, int(round(h * scale)))
    path = resized_clip(work, source, size, f"{source.stem}_{size[0]}x{size[1]}.mp4")
    return path, {i: {k: [v * scale for v in box] for k, box in boxes.items()} for i, boxes in truth.items()}


def resized_clip(work: Path, source: Path, size: tuple[int, int] = (1280, 720), name: str | None = None) -> Path:
    """`source` resized to `size` (area-averaged, mp4v, same fps) as `name` (default `<stem>_<height>p.mp4`), for the
    speed run and the small made clips; rebuilt only when missing."""
    path = work / (name or f"{source.stem}_{size[1]}p.mp4")
    if path.is_file():
        return path
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    tmp = path.with_name(path.stem + ".tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for frame in read_frames(source):
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    writer.release()
    tmp.replace(path)
    return path


# ---- found ----

def _inside(points: np.ndarray, box: list[float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = MARGIN * (y1 - y0)
    return (points[:, 0] >= x0 - m) & (points[:, 0] <= x1 + m) & (points[:, 1] >= y0 - m) & (points[:, 1] <= y1 + m)


def keypoint_array(keypoints: dict | None) -> np.ndarray:
    """(K, 3) x, y, score from a predictions record's `keypoints` (NaN where missing)."""
    rows = []
    for point in (keypoints or {}).values():
        if not point:
            rows.append([np.nan] * 3)
        else:
            rows.append([np.nan if point.get(k) is None else float(point[k]) for k in ("x", "y", "score")])
    return np.asarray(rows, dtype=float).reshape(-1, 3)


def found_ours(keypoints: dict | None, box: list[float]) -> bool:
    kp = keypoint_array(keypoints)
    sure = kp[kp[:, 2] >= MIN_SCORE]
    return int(_inside(sure[:, :2], box).sum()) >= MIN_KEYPOINTS


def found_mediapipe(landmarks: list | None, box: list[float]) -> bool:
    if not landmarks:
        return False
    lm = np.asarray(landmarks, dtype=float)[list(MP_LIMBS)]
    sure = lm[lm[:, 2] >= MP_VISIBILITY]
    return int(_inside(sure[:, :2], box).sum()) >= MP_MIN


# ---- runs ----

def predict_help(python: str, env: dict) -> str:
    return subprocess.run([python, "-m", "efficientpose.cli", "predict", "--help"], env=env, capture_output=True,
                          text=True, check=True).stdout


def run_ours(clip: Path, out: Path, env: dict, extra: tuple[str, ...] = ()) -> tuple[list[dict], float]:
    """`efficientpose predict CLIP --output OUT [extra]` as a process: (frame records, wall seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "efficientpose.cli", "predict", str(clip), "--output", str(out),
                           *extra], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"predict {clip.name} {' '.join(extra)} failed:\n{done.stderr[-2000:]}")
    return json.loads((out / f"{clip.stem}.json").read_text())["frames"], seconds


def run_mediapipe(python: str, clip: Path, out: Path) -> tuple[list[dict], float]:
    """MediaPipe Pose (video mode, model_complexity=1) as a process: (frame records, wall seconds)."""
    start = time.perf_counter()
    done = subprocess.run([python, str(MEDIAPIPE_SCRIPT), str(clip), str(out)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"MediaPipe on {clip.name} failed:\n{done.stderr[-2000:]}")
    return json.loads(out.read_text())["frames"], seconds


def found_shares(truth: dict[int, dict], runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Person -> {visible frames, method -> found frames} over the scored frames."""
    people = sorted({p for boxes in truth.values() for p in boxes})
    result = {}
    for person in people:
        frames = [i for i, boxes in truth.items() if person in boxes]
        row = {"visible": len(frames)}
        for method, records in runs.items():
            hits = 0
            for i in frames:
                if i >= len(records):
                    continue
                rec, box = records[i], truth[i][person]
                hits += (found_mediapipe(rec.get("landmarks"), box) if method == "mediapipe"
                         else found_ours(rec.get("keypoints"), box))
            row[method] = hits
        result[person] = row
    return result


def id_switches(truth: dict[int, dict], records: list[dict]) -> dict:
    """Match each true person to an output person found in its box (the one with most keypoints inside; each output
    person used once per frame) on every scored frame: `matched` counts the frames where the person is found by
    some id; a switch is a change of the matched id from that person's previous match."""
    last: dict[str, object] = {}
    ids: dict[str, list] = {}
    switches = {p: 0 for boxes in truth.values() for p in boxes}
    matched = {p: 0 for p in switches}
    visible = {p: 0 for p in switches}
    for i, boxes in sorted(truth.items()):
        people = records[i].get("people") or [] if i < len(records) else []
        taken: set[int] = set()
        for person, box in sorted(boxes.items()):
            visible[person] += 1
            best, best_n = None, MIN_KEYPOINTS - 1
            for j, other in enumerate(people):
                kp = keypoint_array(other.get("keypoints"))
                n = int(_inside(kp[kp[:, 2] >= MIN_SCORE][:, :2], box).sum())
                if j not in taken and n > best_n:
                    best, best_n = j, n
            if best is None:
                continue
            taken.add(best)
            pid = people[best].get("id")
            matched[person] += 1
            ids.setdefault(person, [])
            if pid not in ids[person]:
                ids[person].append(pid)
            if person in last and last[person] != pid:
                switches[person] += 1
            last[person] = pid
    return {p: {"visible": visible[p], "matched": matched[p], "ids": ids.get(p, []), "switches": switches[p]}
            for p in switches}


# ---- main ----

def _pct(hits: int | None, n: int) -> str:
    return "-" if hits is None or not n else f"{100 * hits / n:.0f} % ({hits}/{n})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mediapipe-python", default=os.environ.get("EFFICIENTPOSE_MEDIAPIPE_PYTHON"),
                   help="python of a venv with mediapipe==0.10.21 (default $EFFICIENTPOSE_MEDIAPIPE_PYTHON)")
    p.add_argument("--src", type=Path, default=ROOT / "src", help="efficientpose source tree under test")
    p.add_argument("--work", type=Path, help="folder for the made clips and outputs")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--rounds", type=int, default=3, help="speed: timed rounds, each side in turn (median)")
    p.add_argument("--check-boxes", type=Path, help="write the scored frames with their true boxes as PNGs here")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)

    work = args.work
    if work is None:
        default = Path("/root/ep-state/videobench")
        work = default if default.parent.is_dir() and os.access(default.parent, os.W_OK) else \
            Path(tempfile.mkdtemp(prefix="ep-video-"))
    work.mkdir(parents=True, exist_ok=True)
    mp_python = args.mediapipe_python if args.mediapipe_python and Path(args.mediapipe_python).exists() else None
    env = dict(os.environ, PYTHONPATH=str(args.src.resolve()))
    env.setdefault("EFFICIENTPOSE_WEIGHTS_DIR", str(SHARED / "weights" / "efficientpose"))
    quiet = dict(env, OMP_NUM_THREADS="1")
    help_text = predict_help(sys.executable, env)
    has_detector, has_people = "--detector" in help_text, "--people" in help_text
    print(f"source under test: {args.src.resolve()} (--detector: {'yes' if has_detector else 'no'}, "
          f"--people: {'yes' if has_people else 'no'}); MediaPipe: {mp_python or 'not given, its columns are -'}")
    report: dict = {"src": str(args.src.resolve()), "has_detector": has_detector, "has_people": has_people,
                    "mediapipe": mp_python}
    runs_dir = work / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)

    if not args.speed_only:
        clips: dict[str, tuple[Path, dict]] = {}
        for name in CLIPS:
            path = VIDEO / name
            if not path.is_file():
                print(f"{path}: missing, skipped")
                continue
            truth = (subtraction_boxes(path, SUBTRACTION[name], EXCLUDED.get(name, {})) if name in SUBTRACTION
                     else hand_boxes(name))
            clips[name] = (path, truth)
        if (SHARED / "data" / "lsp" / "joints.mat").is_file() and (SHARED / "data" / "coco").is_dir():
            made = walking_clips(work)
            for walk_path, walk_truth in made + [small_clip(work, *clip) for clip in made]:
                clips[walk_path.name] = (walk_path, walk_truth)
        else:
            print(f"{SHARED / 'data'}: no LSP or COCO sample, the made side-view clip is skipped")
        if args.check_boxes:
            draw_boxes(clips, args.check_boxes)

        methods = {"default": ()}
        if has_detector:
            methods["--detector none"] = ("--detector", "none")
        rows, table = [], {}
        for name, (path, truth) in clips.items():
            runs = {m: run_ours(path, runs_dir / m.strip("-").replace(" ", "_"), quiet, extra)[0]
                    for m, extra in methods.items()}
            if mp_python:
                runs["mediapipe"] = run_mediapipe(mp_python, path, runs_dir / f"{path.stem}.mediapipe.json")[0]
            table[name] = found_shares(truth, runs)
            for person, row in table[name].items():
                rows.append(f"| {name} | {person} | {row['visible']} | "
                            + " | ".join(_pct(row.get(m), row["visible"]) for m in [*methods, "mediapipe"]) + " |")
        if not has_detector:
            print("\n(--detector is not an option of this checkout: today's default is the whole-image behaviour, "
                  "so `--detector none` equals the default column)")
        print("\n| clip | person | scored frames visible | ours, default | "
              + ("ours, --detector none | " if has_detector else "") + "MediaPipe Pose |")
        print("|---|---|---|---|" + ("---|" if has_detector else "") + "---|")
        for small in (False, True):  # the made clips together, at 1280 x 720 and at SMALL_WIDTH
            made = [r["subject"] for n, r in table.items()
                    if n.startswith("side_walker_") and (f"_{SMALL_WIDTH}x" in n) == small]
            if made:
                total = {k: sum(r.get(k, 0) for r in made) for k in made[0]}
                size = f"{SMALL_WIDTH} x {SMALL_WIDTH * 9 // 16}" if small else "1280 x 720"
                rows.append(f"| side walkers, {len(made)} made clips at {size} | subject | {total['visible']} | "
                            + " | ".join(_pct(total.get(m), total["visible"]) for m in [*methods, "mediapipe"])
                            + " |")
        print("\n".join(rows))
        report["found"] = table
        for name, persons in table.items():
            if len(persons) > 1:  # which person each side's single-person output follows most
                follows = {m: max(persons, key=lambda q, m=m: persons[q].get(m) or 0) for m in [*methods, "mediapipe"]
                           if all(m in r for r in persons.values())}
                print(f"{name}: the output follows " + ", ".join(f"{m}: {q}" for m, q in follows.items()))

        name = "two_people_jumping_walking.mp4"
        if name in clips:
            if has_people:
                path, truth = clips[name]
                records, _ = run_ours(path, runs_dir / "people_all", quiet, ("--people", "all"))
                report["id_switches"] = id_switches(truth, records)
                print(f"\n`predict {name} --people all`, ids matched to the true boxes on the scored frames:\n")
                print("| person | scored frames visible | found (by some id) | ids matched | id switches |\n"
                      "|---|---|---|---|---|")
                for person, r in report["id_switches"].items():
                    print(f"| {person} | {r['visible']} | {r['matched']} | {r['ids']} | {r['switches']} |")
            else:
                print("\n--people is not an option of this checkout: no id switches to report")

    if not args.skip_speed:
        report["speed"] = speed(work, env, mp_python, args.rounds, has_detector)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def speed(work: Path, env: dict, mp_python: str | None, rounds: int, has_detector: bool) -> dict:
    """Whole processes on the 720p clip, each side in turn per round after one untimed warm-up each (ours builds
    its runtime cache then): frames/s from the median wall time, and the ratio to MediaPipe. Threads are left
    at each side's defaults (OMP_NUM_THREADS is removed from our environment)."""
    clip = resized_clip(work, VIDEO / "two_people_jumping_walking.mp4")
    n = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    env = {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
    sides: dict[str, callable] = {"ours, default": lambda: run_ours(clip, work / "runs" / "speed", env)[1]}
    if has_detector:
        sides["ours, --detector none"] = lambda: run_ours(clip, work / "runs" / "speed", env,
                                                          ("--detector", "none"))[1]
    if mp_python:
        sides["MediaPipe Pose"] = lambda: run_mediapipe(mp_python, clip, work / "runs" / "speed.mediapipe.json")[1]
    for fn in sides.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(rounds):
        for k, fn in sides.items():
            times[k].append(fn())
    med = {k: float(np.median(v)) for k, v in times.items()}
    ref = med.get("MediaPipe Pose")
    print(f"\nSpeed: {clip.name}, {n} frames 1280x720, whole processes (decode, detection, pose, smoothing, JSON), "
          f"median of {rounds} rounds taken in turn, {os.cpu_count()} CPUs:\n")
    print("| side | seconds | frames/s | speed vs MediaPipe |\n|---|---|---|---|")
    for k, s in med.items():
        print(f"| {k} | {s:.2f} | {n / s:.1f} | {'-' if ref is None else f'{ref / s:.2f}x'} |")
    return {"clip": str(clip), "frames": n, "rounds": rounds, "seconds": times, "median": med}


def draw_boxes(clips: dict[str, tuple[Path, dict]], out: Path) -> None:
    """Contact sheets of the scored frames with their true boxes (grown box dashed in spirit: thin), for a look."""
    out.mkdir(parents=True, exist_ok=True)
    colours = [(0, 0, 255), (255, 0, 0), (0, 200, 0)]
    for name, (path, truth) in clips.items():
        frames = read_frames(path)
        people = sorted({p for boxes in truth.values() for p in boxes})
        tiles = []
        for i, boxes in sorted(truth.items()):
            im = frames[i].copy()
            for person, box in boxes.items():
                c = colours[people.index(person) % len(colours)]
                cv2.rectangle(im, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), c, 4)
            scale = 300 / im.shape[0]
            im = cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            tiles.append(cv2.putText(im, str(i), (5, 25), 0, 0.8, (0, 255, 255), 2))
        per = max(1, 1800 // tiles[0].shape[1])
        while len(tiles) % per:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [cv2.hconcat(tiles[k:k + per]) for k in range(0, len(tiles), per)]
        for k in range(0, len(rows), 4):
            cv2.imwrite(str(out / f"{Path(name).stem}_{k // 4}.png"), cv2.vconcat(rows[k:k + 4]))


if __name__ == "__main__":
    sys.exit(main())
