"""Streaming video reading and atomic writing on real clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from efficientpose.errors import InputError, UsageError
from efficientpose.io.images import read_image
from efficientpose.io.video import VideoReader, VideoWriter, batched, open_camera

SHIFT = 4  # pixels the photo moves per frame in the synthetic clip


@pytest.fixture(scope="module")
def photo(data_dir: Path) -> np.ndarray:
    image = read_image(data_dir / "lsp" / "images" / "im0001.jpg")
    return image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # (160, 70, 3): even, as MPEG-4 needs


def panned(photo: np.ndarray, n: int) -> list[np.ndarray]:
    """A real photo sliding right by SHIFT pixels per frame."""
    return [np.roll(photo, SHIFT * i, axis=1) for i in range(n)]


def make_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_written_clip_reads_back_with_its_count_fps_size_and_content(tmp_path: Path, photo: np.ndarray) -> None:
    source = panned(photo, 12)
    path = make_clip(tmp_path / "clip.mp4", source, fps=12.5)
    assert os.listdir(tmp_path) == ["clip.mp4"]

    with VideoReader(path) as reader:
        assert (reader.width, reader.height) == (70, 160)
        assert reader.fps == pytest.approx(12.5)
        assert reader.frame_count == 12
        frames = list(reader)
    assert [f.index for f in frames] == list(range(12))
    np.testing.assert_allclose([f.time for f in frames], np.arange(12) / 12.5, atol=1e-3)
    for frame in frames:
        assert frame.image.shape == (160, 70, 3) and frame.image.dtype == np.uint8
        # lossy, but each decoded frame is far closer to its own original than to its neighbours
        errors = [np.abs(frame.image.astype(int) - s).mean() for s in source]
        assert int(np.argmin(errors)) == frame.index
        assert errors[frame.index] < 8
        swapped = np.abs(frame.image.astype(int) - source[frame.index][:, :, ::-1]).mean()
        assert errors[frame.index] < swapped / 2  # RGB in, RGB out


def test_real_clip_is_streamed_frame_by_frame(data_dir: Path) -> None:
    reader = VideoReader(data_dir / "video" / "squats_front.mp4")
    assert (reader.width, reader.height, reader.fps, reader.frame_count) == (720, 1280, 5.0, 65)
    count, last_time = 0, -1.0
    for index, time, image in reader:
        assert index == count and image.shape == (1280, 720, 3)
        assert time > last_time
        count, last_time = count + 1, time
    assert count == 65
    assert last_time == pytest.approx(64 / 5.0)
    assert sum(1 for _ in reader) == 65  # iterating again starts over
    reader.close()


def test_batched_groups_frames(tmp_path: Path, photo: np.ndarray) -> None:
    path = make_clip(tmp_path / "clip.avi", panned(photo, 7), fps=10)
    batches = list(batched(VideoReader(path), 3))
    assert [[f.index for f in b] for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        next(batched([], 0))


def test_truncated_mp4_is_an_input_error(tmp_path: Path, data_dir: Path) -> None:
    real = (data_dir / "video" / "squats_front.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(real[: len(real) // 2])
    with pytest.raises(InputError, match="cannot be opened as a video") as exc:
        VideoReader(path)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)


def test_truncation_mid_stream_names_the_frame(tmp_path: Path, photo: np.ndarray) -> None:
    whole = make_clip(tmp_path / "whole.avi", panned(photo, 20), fps=10).read_bytes()
    path = tmp_path / "cut.avi"
    path.write_bytes(whole[: len(whole) // 2])  # AVI keeps its header, so it opens and then runs dry
    reader = VideoReader(path)
    assert reader.frame_count == 20
    seen = []
    with pytest.raises(InputError, match=r"frame \d+ could not be decoded") as exc:
        for frame in reader:
            seen.append(frame.index)
    assert f"frame {len(seen)} could not" in str(exc.value)
    assert 0 < len(seen) < 18


@pytest.mark.parametrize(("name", "content"), [("notes.mp4", b"not a video at all\n"), ("empty.mp4", b"")])
def test_non_videos_are_input_errors(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        VideoReader(path)
    assert str(exc.value).startswith(f"{path}: ")
    with pytest.raises(InputError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")


def test_no_camera_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match="camera 97: cannot be opened"):
        open_camera(97)


def test_failed_write_leaves_nothing(tmp_path: Path, photo: np.ndarray) -> None:
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(target, 5) as writer:
        writer.write(photo)
        raise RuntimeError("inference crashed")
    assert os.listdir(tmp_path) == []

    with pytest.raises(ValueError, match="expected 70x160"), VideoWriter(target, 5) as writer:
        writer.write(photo)
        writer.write(photo[:100])
    assert os.listdir(tmp_path) == []

    with VideoWriter(target, 5, size=(70, 160)):
        pass  # no frame: no file
    assert os.listdir(tmp_path) == []


def test_writer_validates_suffix_and_odd_sizes(tmp_path: Path, photo: np.ndarray) -> None:
    with pytest.raises(UsageError, match="suffix"):
        VideoWriter(tmp_path / "out.gif", 5)
    odd = photo[:-1, :-1]  # 69 x 159
    path = make_clip(tmp_path / "odd.mp4", [odd, odd], fps=5)
    reader = VideoReader(path)
    assert (reader.width, reader.height) == (68, 158)  # MPEG-4 needs even sizes: last column/row dropped
