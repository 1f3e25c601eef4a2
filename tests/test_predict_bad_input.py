"""``efficientpose predict`` with broken inputs: one line per bad file naming it and the problem, exit code 1,
the good files of the same run still complete, no temporary or partial files, inputs never overwritten;
usage errors exit 2."""

from __future__ import annotations

import contextlib
import hashlib
import io as stdio
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli
from PIL import Image

from efficientpose.cli import main
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.io import images as io
from efficientpose.io.video import VideoReader, VideoWriter
from efficientpose.outputs import read_image_predictions, read_video_predictions


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of width x height black pixels: a few kB on disk, huge when decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + packer.compress(
        row * (height % 1000)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def photo(data_dir: Path) -> np.ndarray:
    return np.asarray(Image.open(data_dir / "lsp" / "images" / "im0001.jpg").convert("RGB"))  # 70 x 160


@pytest.fixture(scope="module")
def bad_run(data_dir: Path, photo: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run over a folder mixing good and bad files, plus bad paths given explicitly."""
    root = tmp_path_factory.mktemp("bad")
    folder = root / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(3)
    shutil.copy(data_dir / "lsp" / "images" / "im0001.jpg", folder / "good.jpg")
    write_clip(folder / "good.mp4", [np.roll(photo, 2 * i, axis=1) for i in range(6)], fps=6.0)
    (folder / "corrupt.jpg").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    jpeg = (data_dir / "MPII-sample.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    Image.open(data_dir / "lsp" / "images" / "im0002.jpg").save(root / "whole.png")
    png = (root / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "letter.png").write_text("Dear user, this is not a picture.\n")
    (folder / "text.mp4").write_text("not a video either\n")
    squats = (data_dir / "video" / "squats_front.mp4").read_bytes()
    (folder / "truncated_real.mp4").write_bytes(squats[: int(len(squats) * 0.3)])
    write_clip(root / "whole.avi", [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(20)], 10.0)
    avi = (root / "whole.avi").read_bytes()
    (folder / "truncated.avi").write_bytes(avi[: len(avi) // 2])  # opens, then stops decoding half-way
    png_bomb(folder / "bomb.png", 20_000, 20_000)  # beyond Pillow's own ceiling (2 x MAX_IMAGE_PIXELS)
    png_bomb(folder / "big.png", 12_000, 10_000)  # beyond our io.DEFAULT_MAX_PIXELS, below Pillow's ceiling
    (folder / "readme.txt").write_text("skipped silently inside a folder")
    (root / "notes.txt").write_text("given explicitly: an error")
    before = digests(root)
    out = root / "out"
    argv = ["predict", str(folder), str(root / "missing.jpg"), str(root / "notes.txt"), "--output", str(out),
            "--format", "both", "--draw", "--backend", "onnxruntime"]
    stdout, stderr = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return {"root": root, "folder": folder, "out": out, "before": before, "code": code,
            "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


EXPECTED_PROBLEMS = {  # file -> words its one-line message must contain
    "mixed/corrupt.jpg": "not an image",
    "mixed/truncated.jpg": "truncated",
    "mixed/truncated.png": "truncated",
    "mixed/empty.png": "empty file",
    "mixed/letter.png": "not an image",
    "mixed/text.mp4": "cannot be opened as a video",
    "mixed/truncated_real.mp4": "cannot be opened as a video",
    "mixed/truncated.avi": "could not be decoded although the video declares 20 frames",
    "mixed/bomb.png": "decompression bomb",
    "mixed/big.png": f"more than the limit of {io.DEFAULT_MAX_PIXELS}",
    "missing.jpg": "no such file",
    "notes.txt": "not an image or video by its suffix",
}


def test_each_bad_file_gets_one_line_and_exit_code_1(bad_run: dict) -> None:
    assert io.DEFAULT_MAX_PIXELS == 100_000_000
    assert (bad_run["folder"] / "bomb.png").stat().st_size < 100_000  # small on disk, 400 Mpx when decoded
    code, out, err = bad_run["code"], bad_run["stdout"], bad_run["stderr"]
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"1 images, 1 videos (6 frames) -> {bad_run['out']}; {len(EXPECTED_PROBLEMS)} failed:"
    assert len(lines) == 1 + len(EXPECTED_PROBLEMS), err  # the summary, then exactly one line per bad input
    error_lines = [line[2:] for line in lines[1:] if line.startswith("  ")]
    assert len(error_lines) == len(EXPECTED_PROBLEMS), err
    for name, problem in EXPECTED_PROBLEMS.items():
        path = str(bad_run["root"] / name)
        matching = [line for line in error_lines if line.startswith(f"{path}: ")]
        assert len(matching) == 1, f"{name}: {matching}"
        assert problem in matching[0], matching[0]
    assert not any("good." in line for line in error_lines)


def test_good_files_of_the_failed_run_are_complete(bad_run: dict) -> None:
    assert bad_run["code"] == 1
    out, folder = bad_run["out"], bad_run["folder"]
    # only the good files' outputs: nothing partial of the video that failed half-way, no temporaries
    assert sorted(p.name for p in out.iterdir()) == [
        "good.csv", "good.jpg", "good.json", "good_pose.mp4", "predictions.csv", "predictions.json"]
    records = read_image_predictions(out / "predictions.json")
    assert [r.file for r in records] == [str(folder / "good.jpg")]
    assert (records[0].width, records[0].height) == (70, 160)
    expected = PoseEstimator("rt", backend="onnxruntime").predict(folder / "good.jpg").keypoints
    np.testing.assert_allclose(records[0].pose.keypoints, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(read_image_predictions(out / "predictions.csv")[0].pose.keypoints,
                                  records[0].pose.keypoints)
    video = read_video_predictions(out / "good.json")
    assert video.frames.tolist() == list(range(6))
    np.testing.assert_array_equal(read_video_predictions(out / "good.csv").keypoints, video.keypoints)
    assert sum(1 for _ in VideoReader(out / "good_pose.mp4")) == 6
    with Image.open(out / "good.jpg") as drawn:
        assert drawn.size == (70, 160) and drawn.format == "JPEG"
    # inputs untouched
    assert {k: v for k, v in digests(bad_run["root"]).items() if not k.startswith("out/")} == bad_run["before"]


def test_usage_errors_exit_2(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = str(data_dir / "lsp" / "images" / "im0001.jpg")
    out = tmp_path / "out"
    cases = {
        "no paths": ["predict", "--output", str(out)],
        "unknown model": ["predict", image, "--model", "efficientpose-xl", "--output", str(out)],
        "batch size 0": ["predict", image, "--batch-size", "0", "--output", str(out)],
        "unknown format": ["predict", image, "--format", "xml", "--output", str(out)],
        "unknown decoder": ["predict", image, "--decoder", "soft", "--output", str(out)],
        "unknown backend": ["predict", image, "--backend", "tensorrt", "--output", str(out)],
    }
    words = {"no paths": "at least one PATH", "unknown model": "unknown model", "batch size 0": "--batch-size",
             "unknown format": "--format", "unknown decoder": "--decoder", "unknown backend": "unknown backend"}
    for case, argv in cases.items():
        code, stdout, err = run_cli(argv, capsys)
        assert code == 2, case
        assert stdout == "", case
        last = err.strip().splitlines()[-1]
        # argparse's own errors come from the top-level parser ("efficientpose: error: ...") or the subcommand's
        assert re.match(r"efficientpose( predict)?: error: ", last) and words[case] in last, f"{case}: {err!r}"
        assert not out.exists(), f"{case}: a usage error must not create the output folder"


def test_output_folder_equal_to_input_folder_never_overwrites_inputs(data_dir: Path, photo: np.ndarray,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(data_dir / "lsp" / "images" / "im0001.jpg", folder / "a.jpg")
    Image.open(data_dir / "lsp" / "images" / "im0002.jpg").save(folder / "b.png")
    before = digests(folder)

    # annotated copies would replace the inputs: refused as a usage error, before anything is written
    code, _, err = run_cli(["predict", str(folder), "--output", str(folder), "--draw", "--backend", "onnxruntime"],
                           capsys)
    assert code == 2
    assert "refusing to overwrite the input file" in err and len(err.strip().splitlines()) == 1
    assert digests(folder) == before  # inputs intact, no predictions, no temporaries

    # without --draw only predictions.json is added next to the inputs
    code, _, err = run_cli(["predict", str(folder), "--output", str(folder), "--backend", "onnxruntime"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "b.png", "predictions.json"]
    assert {k: v for k, v in digests(folder).items() if k != "predictions.json"} == before


def test_drawn_video_never_overwrites_an_input_video(photo: np.ndarray, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """a.mp4's annotated copy is a_pose.mp4; if a_pose.mp4 is itself an input (e.g. left in the folder by an
    earlier run) it must not be replaced. (Before the fix in predict.py it was overwritten before being read.)"""
    folder = tmp_path / "clips"
    folder.mkdir()
    write_clip(folder / "a.mp4", [np.roll(photo, i, axis=1) for i in range(3)], fps=6.0)
    write_clip(folder / "a_pose.mp4", [photo[:, ::-1].copy() for _ in range(4)], fps=6.0)
    before = digests(folder)
    code, _, err = run_cli(["predict", str(folder), "--output", str(folder), "--draw", "--backend", "onnxruntime"],
                           capsys)
    assert code == 2
    assert f"refusing to overwrite the input file {folder / 'a_pose.mp4'}" in err
    assert digests(folder) == before


def test_same_named_inputs_do_not_silently_lose_outputs(data_dir: Path, photo: np.ndarray, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptable outcomes: the run refuses (usage error, nothing written), or every input keeps its outputs."""
    for sub, number in (("d1", 1), ("d2", 2)):
        (tmp_path / sub).mkdir()
        shutil.copy(data_dir / "lsp" / "images" / f"im{number:04d}.jpg", tmp_path / sub / "x.jpg")
    write_clip(tmp_path / "d1" / "clip.mp4", [photo] * 2, fps=5.0)
    write_clip(tmp_path / "d2" / "clip.avi", [photo] * 3, fps=5.0)
    out = tmp_path / "out"
    code, _, _ = run_cli(["predict", str(tmp_path / "d1"), str(tmp_path / "d2"), "--output", str(out), "--draw",
                          "--backend", "onnxruntime"], capsys)
    if code == 2:
        assert not out.exists() or not any(out.iterdir())
        return
    assert code == 0
    drawn_images = [p for p in out.iterdir() if p.suffix == ".jpg"]
    video_files = {read_video_predictions(p).file for p in out.glob("*.json") if p.name != "predictions.json"}
    assert len(drawn_images) == 2
    assert video_files == {str(tmp_path / "d1" / "clip.mp4"), str(tmp_path / "d2" / "clip.avi")}


def test_rerun_with_output_inside_the_input_folder_ignores_earlier_outputs(data_dir: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(data_dir / "lsp" / "images" / "im0001.jpg", folder / "a.jpg")
    out = folder / "out"
    for _ in range(2):
        code, _, err = run_cli(["predict", str(folder), "--output", str(out), "--draw", "--backend", "onnxruntime"],
                               capsys)
        assert code == 0, err
    records = json.loads((out / "predictions.json").read_text())
    assert [Path(r["file"]).name for r in records] == ["a.jpg"]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "predictions.json"]


def test_output_that_is_a_file_is_one_line_and_leaves_the_file(data_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "not-a-folder"
    out.write_text("keep me")
    code, _, err = run_cli(["predict", str(data_dir / "MPII-sample.jpg"), "--output", str(out),
                            "--backend", "torch"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("efficientpose predict: error: ") and str(out) in lines[0], err
    assert out.read_text() == "keep me"
