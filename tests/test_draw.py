"""Drawing poses on real photos and saving annotated copies."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from efficientpose.io.draw import annotated_path, draw_pose, limb_colours, line_thickness, save_image
from efficientpose.io.images import read_image
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS, MPII_LIMBS


@pytest.fixture(scope="module")
def photo_path(data_dir: Path) -> Path:
    return data_dir / "MPII-sample.jpg"


@pytest.fixture(scope="module")
def photo(photo_path: Path) -> np.ndarray:
    return read_image(photo_path)  # 1024 x 1024


def pose_with(points: dict[str, tuple[float, float]], score: float = 0.9, others: float = 0.1) -> Pose:
    """A pose with the given keypoints confident and every other one low-scored at the image centre."""
    kp = np.tile([512.0, 512.0, others], (len(KEYPOINTS), 1))
    for name, (x, y) in points.items():
        kp[KEYPOINTS.index(name)] = [x, y, score]
    return Pose(kp)


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def test_drawing_returns_a_new_image_of_the_same_size(photo: np.ndarray) -> None:
    original = photo.copy()
    out = draw_pose(photo, pose_with({"left_shoulder": (300.0, 300.0), "left_elbow": (700.0, 500.0)}))
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert out is not photo and not np.shares_memory(out, photo)
    np.testing.assert_array_equal(photo, original)


def test_limb_is_drawn_between_its_keypoints_and_nowhere_else(photo: np.ndarray) -> None:
    a, b = np.array([300.5, 250.5]), np.array([700.5, 650.5])
    out = draw_pose(photo, pose_with({"left_shoulder": tuple(a), "left_elbow": tuple(b)}))
    mask = changed(photo, out)
    for t in np.linspace(0.05, 0.95, 40):  # every point along the limb is painted...
        x, y = a + t * (b - a)
        assert mask[int(y), int(x)]
        assert out[int(y), int(x), 2] > out[int(y), int(x), 0]  # ...in a cool colour: a left limb
    rows, cols = np.nonzero(mask)
    centres = np.column_stack([cols + 0.5, rows + 0.5])
    t = np.clip((centres - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
    distance = np.linalg.norm(centres - (a + t[:, None] * (b - a)), axis=1)
    assert distance.max() < 2 * line_thickness(*photo.shape[:2]) + 2  # ...and nothing far from it


def test_low_scores_draw_nothing(photo: np.ndarray) -> None:
    all_low = pose_with({"left_shoulder": (300.0, 300.0), "left_elbow": (700.0, 500.0)}, score=0.29)
    np.testing.assert_array_equal(draw_pose(photo, all_low, threshold=0.3), photo)

    kp = pose_with({"left_shoulder": (300.0, 300.0), "left_elbow": (700.0, 500.0)}).keypoints
    kp[KEYPOINTS.index("left_elbow"), 2] = 0.2  # the elbow drops out: its limb goes, the shoulder marker stays
    mask = changed(photo, draw_pose(photo, Pose(kp)))
    assert mask[300, 300] and not mask[400, 500]
    assert mask.sum() < 40 * 40

    kp[KEYPOINTS.index("left_elbow")] = [np.nan, np.nan, 0.9]  # unknown positions are never drawn
    np.testing.assert_array_equal(changed(photo, draw_pose(photo, Pose(kp))), mask)


def test_thickness_grows_with_the_image(photo: np.ndarray) -> None:
    widths = []
    for size in (256, 1024, 2048):
        image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA if size < 1024 else cv2.INTER_LINEAR)
        s = size / 1024
        out = draw_pose(image, pose_with({"left_hip": (200 * s, 500 * s), "left_knee": (800 * s, 500 * s)}))
        widths.append(int(changed(image, out)[:, size // 2].sum()))  # painted rows across the limb's middle
    assert widths[0] < widths[1] < widths[2]
    assert widths[2] > 4 * widths[0]


def test_subpixel_coordinates_follow_the_pixel_centre_convention() -> None:
    canvas = np.full((200, 200, 3), 128, np.uint8)  # flat, so the painted profile measures only the geometry
    for x in (20.5, 40.0, 40.25, 40.75):  # a pixel centre, a pixel boundary, quarter pixels
        out = draw_pose(canvas, pose_with({"right_hip": (x, 50.5), "right_knee": (x, 150.5)}, others=0.0))
        profile = np.abs(out[100].astype(float) - 128).sum(axis=1)  # across the vertical limb's middle
        centroid = (profile * (np.arange(200) + 0.5)).sum() / profile.sum()
        assert centroid == pytest.approx(x, abs=0.1)


def test_limb_colours_tell_sides_apart() -> None:
    colours = limb_colours(KEYPOINTS, MPII_LIMBS)
    assert len(set(colours)) == len(MPII_LIMBS)
    for (a, b), (r, _, blue) in zip(MPII_LIMBS, colours, strict=True):
        names = KEYPOINTS[a] + KEYPOINTS[b]
        if "left_" in names:
            assert blue > r
        elif "right_" in names:
            assert r > blue


def test_save_image_keeps_the_input_format_atomically(tmp_path: Path, photo_path: Path, photo: np.ndarray) -> None:
    drawn = draw_pose(photo, pose_with({"left_hip": (200.0, 500.0), "left_knee": (800.0, 500.0)}))
    jpg = save_image(annotated_path(tmp_path, photo_path), drawn, like=photo_path)
    assert jpg == tmp_path / "MPII-sample.jpg"
    with Image.open(jpg) as img:
        assert img.format == "JPEG" and img.size == (1024, 1024)
    assert np.abs(read_image(jpg).astype(int) - drawn).mean() < 3  # high quality

    png = save_image(tmp_path / "copy.png", drawn, like=photo_path)
    np.testing.assert_array_equal(read_image(png), drawn)  # lossless stays lossless
    assert sorted(os.listdir(tmp_path)) == ["MPII-sample.jpg", "copy.png"]

    assert annotated_path(tmp_path, "in/PHOTO.JPG") == tmp_path / "PHOTO.JPG"
    assert annotated_path(tmp_path, "in/anim.gif") == tmp_path / "anim.png"  # GIF cannot hold the colours
