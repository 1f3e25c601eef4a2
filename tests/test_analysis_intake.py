"""Robust video intake for the analysis: per-frame timestamps (variable frame rate), rotation metadata, and a
slow-motion factor."""

from __future__ import annotations

import fractions
import struct
from pathlib import Path

import numpy as np
import pytest
from gait_synthetic import walker

from efficientpose.analysis import analyze, compute
from efficientpose.analysis.report import read_frames
from efficientpose.io.video import VideoReader

av = pytest.importorskip("av", reason="PyAV writes the test clips (pip install av)")

#: Frame times (ms) of a phone clip that drops from 30 to about 10 fps and back.
VFR_MS = [0, 33, 67, 100, 200, 300, 400, 433, 467, 500, 533]


def _write(path: Path, images: list[np.ndarray], times_ms: list[int] | None = None) -> Path:
    out = av.open(str(path), "w")
    stream = out.add_stream("mpeg4", rate=30)
    stream.height, stream.width = images[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = times_ms[i] if times_ms else round(i * 1000 / 30)
        frame.time_base = fractions.Fraction(1, 1000)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def _rotate_90(path: Path) -> Path:
    """Tag an MP4 as 'display rotated 90 degrees clockwise' (the track header's matrix, as phones do)."""
    data = bytearray(path.read_bytes())
    i = data.find(b"tkhd")
    start = i + 8 + (20 if data[i + 4] == 0 else 32) + 16  # after version/flags, times, ids, layer, volume
    data[start:start + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    rotated = path.with_name(f"{path.stem}_rot90.mp4")
    rotated.write_bytes(bytes(data))
    return rotated


def test_variable_frame_rate_clips_keep_each_frames_own_time(tmp_path: Path) -> None:
    images = [np.full((96, 128, 3), 20 * i, np.uint8) for i in range(len(VFR_MS))]
    clip = _write(tmp_path / "vfr.mp4", images, VFR_MS)
    with VideoReader(clip) as reader:
        times = [f.time for f in reader]
    np.testing.assert_allclose(times, np.array(VFR_MS) / 1000, atol=1e-3)


def test_the_analysis_resamples_a_variable_rate_and_says_so() -> None:
    predictions, _ = walker(((4.4, 1),))
    frames = predictions["frames"]
    keep = [f for i, f in enumerate(frames) if i < 40 or i % 3 == 0]  # 30 fps, then 10 fps
    summary = compute({**predictions, "frames": keep}, activity="gait").summary
    assert summary["filters"]["variable_frame_rate"] and summary["filters"]["resampled"]
    assert summary["quality"]["variable_frame_rate"]
    assert summary["gait"]["cadence_steps_per_min"] == pytest.approx(60 / 0.55, rel=0.05)


def test_rotation_metadata_is_honoured_for_predictions_and_key_frames(tmp_path: Path) -> None:
    image = np.zeros((96, 160, 3), np.uint8)
    image[:, :40] = 255  # a white band on the left of the stored picture
    clip = _rotate_90(_write(tmp_path / "stored.mp4", [image] * 3))
    with VideoReader(clip) as reader:
        assert (reader.width, reader.height) == (96, 160)
        upright = next(iter(reader)).image
    assert upright.shape == (160, 96, 3)
    assert upright[:40].mean() > 200 and upright[60:].mean() < 30  # turned clockwise: the band is on top
    frames = read_frames(clip, [0, 2])  # the report's key frames come out upright too
    assert frames[2].shape == (160, 96, 3)


def test_slow_motion_factor_makes_times_real(tmp_path: Path) -> None:
    """The walk filmed in 4x slow motion (its frames 4x further apart) reads like the real walk with slowmo=4."""
    predictions, _ = walker(((4.4, 1),))
    real = compute(predictions, activity="gait").summary
    filmed = {**predictions, "fps": predictions["fps"] / 4,
              "frames": [{**f, "time": 4 * f["time"]} for f in predictions["frames"]]}
    assert compute(filmed, activity="gait").summary["gait"]["cadence_steps_per_min"] == pytest.approx(
        real["gait"]["cadence_steps_per_min"] / 4, rel=0.02)
    slow = analyze(filmed, tmp_path, activity="gait", slowmo=4.0).summary
    assert slow["duration"] == pytest.approx(real["duration"])
    assert slow["gait"]["cadence_steps_per_min"] == pytest.approx(real["gait"]["cadence_steps_per_min"], rel=0.02)
    assert slow["slowmo_factor"] == 4.0 and "slow motion" in (tmp_path / "report.html").read_text()
    with pytest.raises(ValueError, match="slowmo"):
        compute(predictions, slowmo=0)
