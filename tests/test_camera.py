"""The live webcam loop (``efficientpose predict --camera N``) without a camera: ``open_camera`` is replaced by a real
:class:`VideoReader` over a clip built at run time from a real LSP photo with known ground truth, and the OpenCV
window functions by recorders. What is checked: the outputs (video format, every frame counted), the keypoints
(on the person, and equal to ``track`` run directly on the same frames with the same options), the window
(BGR frames with the skeleton, q stops after exactly that frame, window destroyed), Ctrl-C and a camera that stops
delivering frames (outputs complete, reader released), and the CLI's error for a missing camera.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_cli import run_cli
from test_predict_video import FPS, FRAME_H, FRAME_W, LSP_INDEX, lsp_photo, write_clip

from efficientpose import camera
from efficientpose.errors import InputError
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.inference.tracking import track
from efficientpose.io.draw import draw_pose
from efficientpose.io.video import Frame, VideoReader
from efficientpose.outputs import read_video_predictions
from efficientpose.pose import Pose
from efficientpose.predict import PredictOptions
from efficientpose.skeleton import KEYPOINTS

N = 12  # frames in the clip
INDEX = 3  # the camera index asked for (any: no device is opened)
HEIGHT = 560.0  # px, of the pasted person


@pytest.fixture(scope="module")
def clip(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """LSP im0002, 560 px tall in 540 x 960 frames at 12 fps, walking 80 px right and 40 px down over 12 frames:
    the clip, the moved ground truth (N, 14, 2) and the pasted box per frame (N, 4)."""
    photo, truth = lsp_photo(data_dir, 2)
    t = np.linspace(0, 1, N)
    centres = np.column_stack([230 + 80 * t, 460 + 40 * t])
    path = tmp_path_factory.mktemp("camera-clip") / "clip.mp4"
    truths, boxes = write_clip(path, photo, truth, np.full(N, HEIGHT), centres)
    return path, truths, boxes


@pytest.fixture(scope="module")
def estimator() -> PoseEstimator:
    return PoseEstimator("rt", backend="torch")  # no ONNX export


@pytest.fixture(scope="module")
def frames(clip: tuple) -> list[Frame]:
    with VideoReader(clip[0]) as reader:
        return list(reader)


@pytest.fixture(scope="module")
def direct(frames: list[Frame], estimator: PoseEstimator) -> np.ndarray:
    """(N, 16, 3) keypoints of ``track`` on the same frames, with the options run_camera is given (and batch 1,
    as run_camera uses): the loop must write exactly these. ``track`` is causal, so a run stopped after k frames
    must write the first k of them."""
    options = PredictOptions()
    poses = [pose.keypoints for _, pose in track(frames, estimator, batch_size=1, roi=options.roi,
                                                 smooth=options.smoothing, threshold=options.threshold)]
    return np.array(poses)


class StandIn(VideoReader):
    """A real clip behind the camera API; raises ``error`` instead of yielding frame ``stop_at``, like Ctrl-C or a
    camera that disconnects."""

    def __init__(self, path: Path, stop_at: int | None = None, error: BaseException | None = None) -> None:
        super().__init__(path)
        self.stop_at, self.error = stop_at, error
        self.yielded = 0

    def __iter__(self) -> Iterator[Frame]:
        for frame in super().__iter__():
            if frame.index == self.stop_at:
                assert self.error is not None
                raise self.error
            self.yielded += 1
            yield frame

    @property
    def released(self) -> bool:
        return not self._capture.isOpened()


def plug_in(monkeypatch: pytest.MonkeyPatch, reader: VideoReader) -> list[int]:
    """Make ``open_camera`` in the camera module return ``reader``; returns the indices it was asked for."""
    asked: list[int] = []

    def fake_open_camera(index: int = 0) -> VideoReader:
        asked.append(index)
        return reader

    monkeypatch.setattr(camera, "open_camera", fake_open_camera)
    return asked


class Window:
    """Recorders for the OpenCV window functions; ``keys`` maps a waitKey call number (from 1) to the key."""

    def __init__(self, keys: dict[int, int] | None = None, interrupt_at: int | None = None) -> None:
        self.keys = keys or {}
        self.interrupt_at = interrupt_at
        self.shown: list[tuple[str, np.ndarray]] = []
        self.waits: list[int] = []
        self.destroyed = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(camera, "_can_show", lambda: True)
        monkeypatch.setattr(camera.cv2, "namedWindow", lambda *a, **k: None)
        monkeypatch.setattr(camera.cv2, "imshow", self.imshow)
        monkeypatch.setattr(camera.cv2, "waitKey", self.wait_key)
        monkeypatch.setattr(camera.cv2, "destroyAllWindows", self.destroy)

    def imshow(self, name: str, image: np.ndarray) -> None:
        self.shown.append((name, np.array(image, copy=True)))

    def wait_key(self, delay: int = 0) -> int:
        self.waits.append(delay)
        if len(self.waits) == self.interrupt_at:
            raise KeyboardInterrupt
        return self.keys.get(len(self.waits), -1)  # -1: no key pressed, as OpenCV returns

    def destroy(self) -> None:
        self.destroyed += 1


def run(reader: VideoReader, estimator: PoseEstimator, out: Path, monkeypatch: pytest.MonkeyPatch,
        formats: tuple[str, ...] = ("json", "csv"), detector: str = "none") -> int:
    """The webcam loop on ``reader``; single-person tracking (``--detector none``, as ``track``) unless told."""
    asked = plug_in(monkeypatch, reader)
    try:
        code = camera.run_camera(INDEX, estimator, PredictOptions(output=out, formats=formats, detector=detector))
    except KeyboardInterrupt:  # would otherwise stop the whole pytest session
        pytest.fail("run_camera let KeyboardInterrupt escape")
    assert asked == [INDEX]
    return code


def check_outputs(out: Path, count: int, direct: np.ndarray, frames: list[Frame]) -> None:
    """``out`` holds exactly camera<INDEX>.json/.csv in the video format, agreeing, with the first ``count`` frames,
    whose keypoints are those of ``track`` run directly."""
    assert sorted(p.name for p in out.iterdir()) == [f"camera{INDEX}.csv", f"camera{INDEX}.json"]  # no temp files
    data = json.loads((out / f"camera{INDEX}.json").read_text(encoding="utf-8"))
    assert (data["file"], data["width"], data["height"], data["model"]) == (f"camera:{INDEX}", FRAME_W, FRAME_H, "rt")
    assert data["fps"] == pytest.approx(FPS)
    assert [f["frame"] for f in data["frames"]] == list(range(count))
    assert [f["time"] for f in data["frames"]] == [f.time for f in frames[:count]]
    assert all(list(f["keypoints"]) == list(KEYPOINTS) for f in data["frames"])  # 16, in the documented order
    with open(out / f"camera{INDEX}.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["frame", "time"] + [f"{n}_{c}" for n in KEYPOINTS for c in ("x", "y", "score")]
    assert len(rows) == count + 1
    for row, record in zip(rows[1:], data["frames"], strict=True):
        assert int(row[0]) == record["frame"] and float(row[1]) == record["time"]
        assert [float(c) for c in row[2:]] == [record["keypoints"][n][c] for n in KEYPOINTS
                                               for c in ("x", "y", "score")]
    written = read_video_predictions(out / f"camera{INDEX}.json")
    assert written.keypoints.shape == (count, 16, 3)
    np.testing.assert_allclose(written.keypoints, direct[:count], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------- no display


def test_can_show_is_false_without_a_display_or_with_a_headless_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert camera._can_show() is False
    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV has GUI support: a display would be tried for real")
    monkeypatch.setenv("DISPLAY", ":99")  # a display is announced, but this OpenCV cannot open windows
    assert camera._can_show() is False


def test_headless_loop_runs_to_the_end_and_writes_every_frame(
    clip: tuple, frames: list[Frame], direct: np.ndarray, estimator: PoseEstimator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    path, truths, boxes = clip
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    def no_window(*args: object, **kwargs: object) -> None:
        raise AssertionError("no window may be used without a display")

    for name in ("namedWindow", "imshow", "waitKey", "destroyAllWindows"):
        monkeypatch.setattr(camera.cv2, name, no_window)
    reader = StandIn(path)
    out = tmp_path / "new" / "out"  # created, parents too

    assert run(reader, estimator, out, monkeypatch) == 0

    assert "no display" in capsys.readouterr().err
    assert reader.yielded == N and reader.released
    check_outputs(out, N, direct, frames)
    assert len(frames) == N
    # on the person: every joint inside the pasted photo (5 % slack), mean error a small fraction of its height
    kp = read_video_predictions(out / f"camera{INDEX}.csv").keypoints[:, LSP_INDEX, :2]
    slack = 0.05 * HEIGHT
    inside = ((kp[..., 0] >= boxes[:, None, 0] - slack) & (kp[..., 0] <= boxes[:, None, 2] + slack)
              & (kp[..., 1] >= boxes[:, None, 1] - slack) & (kp[..., 1] <= boxes[:, None, 3] + slack))
    assert inside.all(), f"{(~inside).sum()} joints off the person"
    error = np.hypot(*(kp - truths).transpose(2, 0, 1))
    print(f"camera loop: mean error {error.mean():.1f} px on a {HEIGHT:.0f} px person")
    assert error.mean() < 0.05 * HEIGHT
    # the track follows the walk: the mean x of the joints moves with the person (80 px over the clip)
    moved = kp[-1, :, 0].mean() - kp[0, :, 0].mean()
    assert moved == pytest.approx(truths[-1, :, 0].mean() - truths[0, :, 0].mean(), abs=15)


# --------------------------------------------------------------------------------------------- the window


@pytest.mark.parametrize("q", [ord("q"), 0x100000 | ord("q")], ids=["q", "q-with-modifier-bits"])
def test_q_in_the_window_stops_after_that_frame(
    q: int, clip: tuple, frames: list[Frame], direct: np.ndarray, estimator: PoseEstimator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k = 5
    window = Window(keys={2: ord("a"), 3: 0x100000 | ord("x"), k: q})  # other keys do not stop it
    window.install(monkeypatch)
    reader = StandIn(clip[0])

    assert run(reader, estimator, tmp_path, monkeypatch) == 0

    assert len(window.shown) == len(window.waits) == k
    assert reader.yielded == k  # no frame read past the one where q was pressed
    assert window.destroyed == 1 and reader.released
    assert {name for name, _ in window.shown} == {"efficientpose"}
    assert all(delay >= 1 for delay in window.waits)  # polls, never blocks waiting for a key
    for i, (_, shown) in enumerate(window.shown):
        raw_rgb = frames[i].image
        raw_bgr = cv2.cvtColor(raw_rgb, cv2.COLOR_RGB2BGR)
        assert shown.shape == (FRAME_H, FRAME_W, 3) and shown.dtype == np.uint8
        changed = (shown != raw_bgr).any(axis=2)
        assert 0.002 < changed.mean() < 0.2  # a skeleton drawn on the frame, not a different image
        # BGR, as imshow expects: far closer to the BGR frame than to the RGB one
        assert np.abs(shown.astype(int) - raw_bgr).mean() < 0.2 * np.abs(shown.astype(int) - raw_rgb).mean()
        # exactly this frame's pose, drawn
        expected = draw_pose(raw_rgb, Pose(direct[i], KEYPOINTS), threshold=PredictOptions().threshold)
        np.testing.assert_array_equal(shown, cv2.cvtColor(expected, cv2.COLOR_RGB2BGR))
    check_outputs(tmp_path, k, direct, frames)


def test_ctrl_c_in_the_window_loop_finishes_the_outputs_and_closes_the_window(
    clip: tuple, frames: list[Frame], direct: np.ndarray, estimator: PoseEstimator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = Window(interrupt_at=3)  # Ctrl-C while waiting for a key after frame 3 (already written)
    window.install(monkeypatch)
    reader = StandIn(clip[0])
    assert run(reader, estimator, tmp_path, monkeypatch) == 0
    assert window.destroyed == 1 and reader.released
    check_outputs(tmp_path, 3, direct, frames)


# --------------------------------------------------------------------------------------------- stopping


def test_ctrl_c_returns_0_with_complete_outputs_and_the_camera_released(
    clip: tuple, frames: list[Frame], direct: np.ndarray, estimator: PoseEstimator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = 4
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    reader = StandIn(clip[0], stop_at=m, error=KeyboardInterrupt())
    assert run(reader, estimator, tmp_path, monkeypatch) == 0
    assert reader.yielded == m and reader.released
    check_outputs(tmp_path, m, direct, frames)  # valid JSON (json.loads), m frames, CSV agrees


def test_camera_that_stops_delivering_raises_but_keeps_what_it_recorded(
    clip: tuple, frames: list[Frame], direct: np.ndarray, estimator: PoseEstimator, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real CameraReader raises InputError when frames stop (unplugged); the error reaches the caller (the CLI
    exits 1 with it) and the frames recorded so far are written as complete files."""
    m = 3
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    gone = InputError(f"camera {INDEX}: stopped delivering frames at frame {m} (disconnected?)")
    reader = StandIn(clip[0], stop_at=m, error=gone)
    plug_in(monkeypatch, reader)
    with pytest.raises(InputError, match="stopped delivering frames at frame 3"):
        camera.run_camera(INDEX, estimator, PredictOptions(output=tmp_path, formats=("json", "csv"), detector="none"))
    assert reader.released
    check_outputs(tmp_path, m, direct, frames)


def test_unusable_output_folder_still_releases_the_camera(
    clip: tuple, estimator: PoseEstimator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should go\n", encoding="utf-8")
    reader = StandIn(clip[0])
    plug_in(monkeypatch, reader)
    with pytest.raises(OSError):
        camera.run_camera(INDEX, estimator, PredictOptions(output=blocker))
    assert reader.released
    assert reader.yielded == 0
    assert blocker.read_text(encoding="utf-8") == "a file where the output folder should go\n"


# --------------------------------------------------------------------------------------------- the command


@pytest.mark.parametrize("formats", [("json",), ("csv",)])
def test_format_chooses_the_camera_outputs(formats: tuple[str, ...], clip: tuple, direct: np.ndarray,
                                           estimator: PoseEstimator, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "out"
    assert run(StandIn(clip[0]), estimator, out, monkeypatch, formats) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"camera{INDEX}.{formats[0]}"]
    written = read_video_predictions(out / f"camera{INDEX}.{formats[0]}")
    np.testing.assert_allclose(written.keypoints, direct, rtol=0, atol=1e-6)


def test_cli_camera_with_paths_is_a_usage_error(data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["predict", str(data_dir / "MPII-sample.jpg"), "--camera", "0",
                            "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.strip().splitlines() == ["efficientpose predict: error: give PATHs or --camera N, not both"]
    assert not (tmp_path / "out").exists()


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_cli_missing_camera_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["predict", "--camera", "97", "--output", str(tmp_path / "out"), "--backend", "torch"],
                             capsys)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert lines == ["efficientpose predict: error: camera 97: cannot be opened (no camera with this index, "
                     "or it is in use)"], err
    assert not (tmp_path / "out").exists()  # nothing written when there is no camera



def test_the_webcam_follows_the_subject_with_the_person_detector(clip: tuple, estimator: PoseEstimator,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (person detection): forward only, every frame has the subject's box, and the keypoints are on
    the person (within 6 % of their height)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run(StandIn(clip[0]), estimator, tmp_path, monkeypatch, formats=("json",), detector="auto") == 0
    written = read_video_predictions(tmp_path / f"camera{INDEX}.json")
    assert len(written.frames) == N and np.isfinite(written.boxes).all()
    err = np.hypot(*(written.keypoints[:, LSP_INDEX, :2] - clip[1]).transpose(2, 0, 1))
    assert np.median(err) < 0.06 * HEIGHT, np.median(err)
