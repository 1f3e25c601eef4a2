"""Real units: a real photo moved by a known distance, measured in metres from the subject's height or a known
length; without either, lengths say they are pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from efficientpose.analysis import compute
from efficientpose.analysis.units import SHOULDER_TO_ANKLE_SHARE, parse_calibration
from efficientpose.cli import main
from efficientpose.errors import UsageError
from efficientpose.io.video import VideoWriter

LSP_IMAGE = 38  # a man walking away from the camera, upright, whole body in the picture
HEIGHT_M = 1.80  # the subject's height we declare
PASTE_H = 540  # px: the photo's height in the clip
SHIFT_PX = 400  # the photo moves this far to the right
FPS = 12.0


def lsp_body_length(number: int, data_dir: Path) -> float:
    """Shoulder midpoint -> hip midpoint -> knee -> ankle (mean of the legs) of LSP's ground truth, in pixels."""
    j = scipy.io.loadmat(data_dir / "lsp" / "joints.mat")["joints"][:2, :, number - 1].T  # (14, 2)
    r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle = j[:6]
    r_shoulder, l_shoulder = j[8], j[9]

    def d(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.hypot(*(a - b)))

    legs = (d(r_hip, r_knee) + d(r_knee, r_ankle) + d(l_hip, l_knee) + d(l_knee, l_ankle)) / 2
    return d((r_shoulder + l_shoulder) / 2, (r_hip + l_hip) / 2) + legs


@pytest.fixture(scope="module")
def moved_photo(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, float]:
    """(predictions JSON, the photo's pasted width in px, its scale factor): 8 frames still, 16 moving 400 px
    right, 8 still, on a 1280x720 grey frame; predicted by the CLI (RT, no smoothing)."""
    photo = Image.open(data_dir / "lsp" / "images" / f"im{LSP_IMAGE:04d}.jpg").convert("RGB")
    factor = PASTE_H / photo.height
    pasted = np.asarray(photo.resize((round(photo.width * factor), PASTE_H), Image.BILINEAR))
    xs = np.concatenate([np.zeros(8), np.linspace(0, SHIFT_PX, 16), np.full(8, SHIFT_PX)]).round().astype(int)
    folder = tmp_path_factory.mktemp("moved")
    clip = folder / "moved.mp4"
    with VideoWriter(clip, FPS) as writer:
        for x in xs:
            frame = np.full((720, 1280, 3), 128, np.uint8)
            frame[90:90 + PASTE_H, 300 + x:300 + x + pasted.shape[1]] = pasted
            writer.write(frame)
    assert main(["predict", str(clip), "--output", str(folder), "--backend", "onnxruntime", "--no-smooth"]) == 0
    return folder / "moved.json", float(pasted.shape[1]), factor


def test_displacement_in_metres_from_the_subjects_height(moved_photo: tuple, data_dir: Path) -> None:
    predictions, _, factor = moved_photo
    height_px = lsp_body_length(LSP_IMAGE, data_dir) * factor / SHOULDER_TO_ANKLE_SHARE
    truth = SHIFT_PX * HEIGHT_M / height_px
    summary = compute(predictions, height_m=HEIGHT_M).summary
    assert summary["units"]["length"] == "m" and summary["scale"]["source"] == "height"
    moved = summary["displacement"]
    assert moved["unit"] == "m"
    assert moved["distance"] == pytest.approx(truth, rel=0.03)
    assert moved["dx"] == pytest.approx(truth, rel=0.03) and abs(moved["dy"]) < 0.03 * truth


def test_displacement_in_metres_from_a_known_length(moved_photo: tuple) -> None:
    predictions, width_px, _ = moved_photo
    calibration = ((300.0, 100.0, 300.0 + width_px, 100.0), 1.0)  # the pasted photo is declared 1 m wide
    moved = compute(predictions, calibration=calibration).summary["displacement"]
    assert moved["distance"] == pytest.approx(SHIFT_PX / width_px, rel=0.03)


def test_without_a_scale_lengths_are_pixels(moved_photo: tuple, tmp_path: Path) -> None:
    predictions = moved_photo[0]
    summary = compute(predictions).summary
    assert summary["units"]["length"] == "px" and "pixels" in summary["scale"]["note"]
    assert summary["displacement"]["distance"] == pytest.approx(SHIFT_PX, rel=0.03)
    assert main(["analyze", str(predictions), "--output", str(tmp_path), "--calibrate", "0,0,100,0=0.5"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["scale"]["metres_per_pixel"] == pytest.approx(0.005)
    assert "Lengths in metres" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(("text", "expected"), [
    ("10,20,110,20=1.5", ((10.0, 20.0, 110.0, 20.0), 1.5)),
    (" 0,0, 3,4 = 2m", ((0.0, 0.0, 3.0, 4.0), 2.0)),
])
def test_parse_calibration(text: str, expected: tuple) -> None:
    assert parse_calibration(text) == expected


@pytest.mark.parametrize("text", ["1,2,3=4", "a,b,c,d=1", "1,2,3,4"])
def test_bad_calibration_says_the_format(text: str) -> None:
    with pytest.raises(UsageError, match="X1,Y1,X2,Y2=METRES"):
        parse_calibration(text)
