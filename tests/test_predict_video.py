"""``efficientpose predict`` on videos: clips built at run time from a real LSP photo with known motion (so the
ground truth moves with it), a still clip for smoothing, drawn videos, and the real squats clip.

Ground truth: LSP ``joints.mat`` holds MATLAB 1-based pixel centres, i.e. ``x - 0.5`` in the package's convention;
pasting the photo resized to (new_w, new_h) at integer offset (ox, oy) maps x -> x * new_w / w + ox (likewise y).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from PIL import Image

from efficientpose.cli import main
from efficientpose.inference.tracking import roi_from_pose
from efficientpose.io.video import VideoReader, VideoWriter
from efficientpose.outputs import read_video_predictions
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS, LSP_KEYPOINTS

FPS = 12.0
FRAME_W, FRAME_H = 540, 960  # portrait phone-video frame (even sizes, as MPEG-4 needs)
LSP_INDEX = [KEYPOINTS.index(n) for n in LSP_KEYPOINTS]  # our channels of LSP's 14 joints


def lsp_photo(data_dir: Path, number: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB photo and its (14, 2) ground truth in the package convention."""
    rgb = np.asarray(Image.open(data_dir / "lsp" / "images" / f"im{number:04d}.jpg").convert("RGB"))
    joints = scipy.io.loadmat(data_dir / "lsp" / "joints.mat")["joints"][:, :, number - 1]  # (3, 14): x, y, flag
    return rgb, joints[:2].T - 0.5


def write_clip(path: Path, photo: np.ndarray, truth: np.ndarray, heights: np.ndarray,
               centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``photo`` scaled to each height (px) at each centre on a grey frame; returns per frame the moved
    ground truth (T, 14, 2) and the pasted box (T, 4) x0, y0, x1, y1."""
    h, w = photo.shape[:2]
    truths, boxes = [], []
    with VideoWriter(path, FPS) as writer:
        for height, (cx, cy) in zip(heights, centres, strict=True):
            new_w, new_h = round(w * height / h), round(height)
            ox, oy = round(cx - new_w / 2), round(cy - new_h / 2)
            assert 0 <= ox and ox + new_w <= FRAME_W and 0 <= oy and oy + new_h <= FRAME_H
            frame = np.full((FRAME_H, FRAME_W, 3), 128, np.uint8)
            frame[oy:oy + new_h, ox:ox + new_w] = cv2.resize(photo, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            writer.write(frame)
            truths.append(truth * [new_w / w, new_h / h] + [ox, oy])
            boxes.append((ox, oy, ox + new_w, oy + new_h))
    return np.array(truths), np.array(boxes, dtype=np.float64)


def predict_clip(clip: Path, out: Path, *flags: str) -> Path:
    """Run the CLI on one clip; ONNX Runtime, as ~3x faster than torch on these 2 shared cores. These tests are of
    the single-person tracking (``--detector none``); the person detector's are in ``test_video_people.py``."""
    code = main(["predict", str(clip), "--output", str(out), "--backend", "onnxruntime", "--detector", "none",
                 *flags])
    assert code == 0
    return out


def errors(json_path: Path, truth: np.ndarray) -> np.ndarray:
    """(T, 14) distances between predicted LSP joints and the ground truth."""
    kp = read_video_predictions(json_path).keypoints[:, LSP_INDEX, :2]
    return np.hypot(*(kp - truth).transpose(2, 0, 1))


# --------------------------------------------------------------------------------------------- ROI tracking


@pytest.fixture(scope="module")
def moving_clip(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """LSP im0001, 24 frames at 12 fps: shrinking from 620 to 500 px tall while moving 100 px down."""
    photo, truth = lsp_photo(data_dir, 1)
    t = np.linspace(0, 1, 24)
    centres = np.column_stack([np.full_like(t, FRAME_W / 2), 480 + 100 * t])
    clip = tmp_path_factory.mktemp("moving") / "moving.mp4"
    truths, boxes = write_clip(clip, photo, truth, 620 - 120 * t, centres)
    return clip, truths, boxes


@pytest.fixture(scope="module")
def moving_runs(moving_clip: tuple, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The moving clip through the CLI with and without ROI tracking (no smoothing, to compare ROI alone)."""
    clip = moving_clip[0]
    common = ("--no-smooth", "--batch-size", "4", "--format", "both")
    return {"roi": predict_clip(clip, tmp_path_factory.mktemp("roi"), "--roi", *common),
            "full": predict_clip(clip, tmp_path_factory.mktemp("full"), "--no-roi", *common)}


def test_video_outputs_count_every_frame_and_agree(moving_clip: tuple, moving_runs: dict[str, Path]) -> None:
    clip, truths, _ = moving_clip
    out = moving_runs["roi"]
    assert sorted(p.name for p in out.iterdir()) == ["moving.csv", "moving.json"]
    data = json.loads((out / "moving.json").read_text(encoding="utf-8"))
    assert (data["file"], data["width"], data["height"], data["model"]) == (str(clip), FRAME_W, FRAME_H, "rt")
    assert data["fps"] == pytest.approx(FPS)
    assert [f["frame"] for f in data["frames"]] == list(range(len(truths)))
    np.testing.assert_allclose([f["time"] for f in data["frames"]], np.arange(len(truths)) / FPS, atol=1e-6)
    assert all(list(f["keypoints"]) == list(KEYPOINTS) for f in data["frames"])
    with open(out / "moving.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "time"] + [f"{n}_{c}" for n in KEYPOINTS for c in ("x", "y", "score")]
    assert len(rows) == len(truths) + 1
    for row, frame in zip(rows[1:], data["frames"], strict=True):
        assert int(row[0]) == frame["frame"] and float(row[1]) == frame["time"]
        assert [float(c) for c in row[2:]] == [frame["keypoints"][n][c] for n in KEYPOINTS for c in ("x", "y", "score")]
    a, b = read_video_predictions(out / "moving.json"), read_video_predictions(out / "moving.csv")
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_roi_tracking_keeps_the_keypoints_on_the_moving_person(moving_clip: tuple,
                                                               moving_runs: dict[str, Path]) -> None:
    """Measured (RT): mean error ~32 px with ROI vs ~45 px without; every ROI joint inside the pasted photo."""
    _, truths, boxes = moving_clip
    with_roi = errors(moving_runs["roi"] / "moving.json", truths)
    without = errors(moving_runs["full"] / "moving.json", truths)
    kp = read_video_predictions(moving_runs["roi"] / "moving.json").keypoints[:, LSP_INDEX, :2]
    slack = 0.05 * (boxes[:, 3] - boxes[:, 1])[:, None]
    inside = ((kp[..., 0] >= boxes[:, None, 0] - slack) & (kp[..., 0] <= boxes[:, None, 2] + slack)
              & (kp[..., 1] >= boxes[:, None, 1] - slack) & (kp[..., 1] <= boxes[:, None, 3] + slack))
    assert inside.all(), f"{(~inside).sum()} joints left the person's box"
    print(f"moving person: mean error {with_roi.mean():.1f} px with ROI, {without.mean():.1f} px without")
    assert with_roi.mean() <= without.mean()


def test_roi_makes_a_small_person_far_more_accurate(data_dir: Path, tmp_path: Path) -> None:
    """LSP im0002 zooms out from 640 px to 240 px tall (25 % of the frame height) over 16 frames, then stays small
    for 8. Full-frame RT cannot find so small a person (measured mean error ~210 px on the last 8 frames); ROI
    tracking, started while the person is large, follows it down (~5 px). Other photos, measured: im0001 10.7,
    0004 25.0, 0005 15.7, 0009 11.4, 0010 21.0 px with ROI against 205-251 px without (where the track is lost
    during the zoom, the search of the next untracked batch finds the person again)."""
    photo, truth = lsp_photo(data_dir, 2)
    heights = np.r_[640 * (240 / 640) ** (np.arange(16) / 15), np.full(8, 240.0)]
    t = np.linspace(0, 1, len(heights))
    centres = np.column_stack([270 + 40 * t, 480 + 150 * t])
    truths, _ = write_clip(tmp_path / "zoom.mp4", photo, truth, heights, centres)
    common = ("--no-smooth", "--batch-size", "4")
    with_roi = errors(predict_clip(tmp_path / "zoom.mp4", tmp_path / "roi", *common) / "zoom.json", truths)[16:]
    without = errors(predict_clip(tmp_path / "zoom.mp4", tmp_path / "full", "--no-roi", *common) / "zoom.json",
                     truths)[16:]
    print(f"small person: mean error {with_roi.mean():.1f} px with ROI, {without.mean():.1f} px without")
    assert with_roi.mean() < 0.1 * 240  # PCK-like: within a tenth of the person's height on average
    assert with_roi.mean() < 0.5 * without.mean()


@pytest.mark.parametrize("number", [1, 2, 15])
def test_tracking_finds_a_person_too_small_for_the_whole_frame(number: int, data_dir: Path, tmp_path: Path) -> None:
    """A 200 px person (21 % of a 540 x 960 frame) from the first frame on: the whole-frame pass never finds it, so
    tracking could never start from it; the window search does, and the first batch is re-run around it.
    Measured (RT, 12 frames, batch 4), mean error with ROI / without: im0001 5.8 / 214, im0002 3.6 / 243,
    im0015 4.9 / 132 px; on the frames after the first batch also im0004 17 / 273, im0005 18 / 260, im0009
    19 / 258; the search fails on im0010 and im0012 (~200 px either way)."""
    photo, truth = lsp_photo(data_dir, number)
    t = np.linspace(0, 1, 12)
    truths, _ = write_clip(tmp_path / "small.mp4", photo, truth, np.full(12, 200.0),
                           np.column_stack([300 + 60 * t, 600 + 20 * t]))
    common = ("--no-smooth", "--batch-size", "4")
    with_roi = errors(predict_clip(tmp_path / "small.mp4", tmp_path / "roi", *common) / "small.json", truths)
    without = errors(predict_clip(tmp_path / "small.mp4", tmp_path / "full", "--no-roi", *common) / "small.json",
                     truths)
    print(f"im{number:04d} at 200 px: mean error {with_roi.mean():.1f} px with ROI, {without.mean():.1f} px without")
    assert without.mean() > 100  # the whole-frame pass alone is lost
    assert with_roi.mean(axis=1).max() < 0.1 * 200  # every frame, the first batch included, on the person


def test_search_windows_cover_the_frame_at_each_scale() -> None:
    from efficientpose.inference.tracking import SEARCH_SCALES, search_windows

    for width, height in ((540, 960), (1768, 994), (640, 640)):
        boxes = np.array(search_windows(width, height))
        sides = boxes[:, 2] - boxes[:, 0]
        np.testing.assert_allclose(sides, boxes[:, 3] - boxes[:, 1])  # squares
        assert boxes[:, :2].min() >= 0 and boxes[:, 2].max() <= width + 1e-9 and boxes[:, 3].max() <= height + 1e-9
        covered = np.zeros((height, width), dtype=int)
        for scale in SEARCH_SCALES:
            at_scale = boxes[np.isclose(sides, scale * min(width, height))]
            assert len(at_scale)
            covered[:] = 0
            for x0, y0, x1, y1 in at_scale.round().astype(int):
                covered[y0:y1, x0:x1] += 1
            assert covered.min() >= 1  # nothing left unsearched
            steps = np.diff(np.unique(at_scale[:, 0]))
            assert (steps <= 0.5 * scale * min(width, height) + 1e-9).all()  # neighbours overlap by half or more


def test_roi_from_pose_on_constructed_poses() -> None:
    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.uniform(400, 500, 16), rng.uniform(200, 400, 16)])  # 100 x 200 px person
    xy[0] = (400, 200)
    xy[1] = (500, 400)
    pose = Pose(np.column_stack([xy, np.full(16, 0.9)]))
    box = roi_from_pose(pose, 960, 540)
    assert box is not None
    x0, y0, x1, y1 = box
    assert x1 - x0 == pytest.approx(y1 - y0)  # square
    assert x1 - x0 == pytest.approx(200 * 1.7)  # longer extent plus 35 % each side
    assert (x0 + x1) / 2 == pytest.approx(450) and (y0 + y1) / 2 == pytest.approx(300)
    margins = np.r_[xy[:, 0] - x0, x1 - xy[:, 0], xy[:, 1] - y0, y1 - xy[:, 1]]
    assert margins.min() == pytest.approx(0.35 * 200)  # every keypoint inside, >= 35 % of the extent from an edge

    # too few confident keypoints: 7 of 16 is fewer than half
    scores = np.zeros(16)
    scores[:7] = 0.9
    assert roi_from_pose(Pose(np.column_stack([xy, scores])), 960, 540) is None
    assert roi_from_pose(Pose(np.column_stack([xy, np.full(16, 0.29)])), 960, 540) is None

    # eight confident ones are enough, and unconfident keypoints far away do not widen the box
    scores[:8] = 0.9
    far = xy.copy()
    far[8:] = (5.0, 5.0)
    box = roi_from_pose(Pose(np.column_stack([far, scores])), 960, 540)
    assert box is not None and box[0] > 100 and box[1] > 100

    # a person nearly as large as the frame: no crop (the whole frame is used)
    big = np.column_stack([rng.uniform(0, 960, 16), rng.uniform(0, 540, 16)])
    assert roi_from_pose(Pose(np.column_stack([big, np.full(16, 0.9)])), 960, 540) is None

    # a tiny person still gets a box of at least 15 % of the frame's longer side, containing it
    tiny = np.column_stack([rng.uniform(300, 310, 16), rng.uniform(300, 320, 16)])
    x0, y0, x1, y1 = roi_from_pose(Pose(np.column_stack([tiny, np.full(16, 0.9)])), 960, 540)
    assert x1 - x0 == pytest.approx(0.15 * 960)
    assert x0 < tiny[:, 0].min() and tiny[:, 0].max() < x1 and y0 < tiny[:, 1].min() and tiny[:, 1].max() < y1


# --------------------------------------------------------------------------------------------- smoothing, drawing


@pytest.fixture(scope="module")
def still_clip(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 frames of the same standing person (LSP im0002, 400 px tall in 320 x 480), each with its own sensor
    noise (sigma 8) and a random sub-pixel shift (+-0.5 px): a still pose whose raw keypoints jitter."""
    photo, _ = lsp_photo(data_dir, 2)
    h, w = photo.shape[:2]
    person = cv2.resize(photo, (round(w * 400 / h), 400), interpolation=cv2.INTER_LINEAR)
    base = np.full((480, 320, 3), 128, np.uint8)
    oy, ox = (480 - person.shape[0]) // 2, (320 - person.shape[1]) // 2
    base[oy:oy + person.shape[0], ox:ox + person.shape[1]] = person
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    with VideoWriter(path, FPS) as writer:
        for _ in range(16):
            shift = np.float32([[1, 0, rng.uniform(-0.5, 0.5)], [0, 1, rng.uniform(-0.5, 0.5)]])
            frame = cv2.warpAffine(base, shift, (320, 480), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            writer.write(np.clip(frame + rng.normal(0, 8, frame.shape), 0, 255).astype(np.uint8))
    return path


def test_smoothing_reduces_jitter_on_a_still_pose(still_clip: Path, tmp_path: Path) -> None:
    """Measured: mean |frame-to-frame change| ~0.53 px raw vs ~0.18 px smoothed (One-Euro defaults)."""
    raw = read_video_predictions(predict_clip(still_clip, tmp_path / "raw", "--no-smooth") / "still.json")
    smooth = read_video_predictions(predict_clip(still_clip, tmp_path / "smooth", "--smooth", "--draw")
                                    / "still.json")
    assert len(raw.frames) == len(smooth.frames) == 16
    np.testing.assert_array_equal(raw.keypoints[:, :, 2], smooth.keypoints[:, :, 2])  # scores are never smoothed
    np.testing.assert_array_equal(raw.keypoints[0], smooth.keypoints[0])  # the filter starts at the first pose
    assert (raw.keypoints[:, :, 2] >= 0.3).mean() > 0.9  # the person is seen: smoothing applies
    jitter_raw = np.abs(np.diff(raw.keypoints[:, :, :2], axis=0)).mean()
    jitter_smooth = np.abs(np.diff(smooth.keypoints[:, :, :2], axis=0)).mean()
    print(f"still pose: mean |delta| {jitter_raw:.3f} px raw, {jitter_smooth:.3f} px smoothed")
    assert jitter_raw > 0.1  # the clip does jitter
    assert jitter_smooth < 0.5 * jitter_raw
    # smoothing does not drag the pose away: both average to the same place
    assert np.abs(raw.keypoints[:, :, :2].mean(0) - smooth.keypoints[:, :, :2].mean(0)).max() < 2.0

    drawn = tmp_path / "smooth" / "still_pose.mp4"
    reader = VideoReader(drawn)
    assert (reader.width, reader.height) == (320, 480)
    assert reader.fps == pytest.approx(FPS)
    assert sum(1 for _ in reader) == 16
    assert sorted(p.name for p in (tmp_path / "smooth").iterdir()) == ["still.json", "still_pose.mp4"]  # --format json


# --------------------------------------------------------------------------------------------- a real clip


def test_real_squats_clip_is_counted_right(data_dir: Path, tmp_path: Path) -> None:
    """With the default person detector: the one woman is the subject in every frame."""
    clip = data_dir / "video" / "squats_front.mp4"
    assert main(["predict", str(clip), "--output", str(tmp_path), "--backend", "onnxruntime", "--format", "both"]) == 0
    data = json.loads((tmp_path / "squats_front.json").read_text(encoding="utf-8"))
    assert (data["width"], data["height"]) == (720, 1280)
    assert data["fps"] == pytest.approx(5.0)
    assert [f["frame"] for f in data["frames"]] == list(range(65))
    times = np.array([f["time"] for f in data["frames"]])
    np.testing.assert_allclose(times, np.arange(65) / 5.0, atol=1e-3)
    with open(tmp_path / "squats_front.csv", encoding="utf-8", newline="") as f:
        assert sum(1 for _ in csv.reader(f)) == 65 + 1
    track = read_video_predictions(tmp_path / "squats_front.json")
    assert np.isfinite(track.keypoints).all() and np.isfinite(track.boxes).all()
    assert ((track.person_scores > 0) & (track.person_scores <= 1)).all()
    assert (track.keypoints[:, :, 2] >= 0.3).mean() > 0.8  # one clearly visible person throughout
