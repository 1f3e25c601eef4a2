"""The output contract: prediction files round-trip exactly, have the documented layout, and appear atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from efficientpose.errors import InputError
from efficientpose.io.predictions import MAX_MAGNITUDE
from efficientpose.outputs import (
    ImagePrediction,
    ImagePredictionsWriter,
    VideoPredictionsWriter,
    image_csv_header,
    read_image_predictions,
    read_predictions,
    read_video_predictions,
    write_image_predictions,
)
from efficientpose.pose import Pose
from efficientpose.predict import PredictOptions
from efficientpose.skeleton import KEYPOINTS, LSP_KEYPOINTS, remap

# BlazePose landmark index of each of our keypoints (head top and upper neck have none).
BLAZEPOSE = {"right_shoulder": 12, "right_elbow": 14, "right_wrist": 16, "left_shoulder": 11, "left_elbow": 13,
             "left_wrist": 15, "right_hip": 24, "right_knee": 26, "right_ankle": 28, "left_hip": 23, "left_knee": 25,
             "left_ankle": 27}


@pytest.fixture(scope="module")
def lsp_predictions(data_dir: Path) -> list[ImagePrediction]:
    """Poses at real LSP annotation coordinates (thorax and pelvis missing -> NaN), with made-up scores."""
    joints = scipy.io.loadmat(data_dir / "lsp" / "joints.mat")["joints"]  # (3, 14, 2000)
    rng = np.random.default_rng(0)
    out = []
    for i, file in enumerate(["im0001.jpg", "im0002.jpg", "im0003.jpg"]):
        path = data_dir / "lsp" / "images" / file
        with Image.open(path) as img:
            width, height = img.size
        xy = remap(joints[:2, :, i].T, LSP_KEYPOINTS, KEYPOINTS)
        kp = np.column_stack([xy, rng.uniform(0, 1, len(KEYPOINTS))])
        given_as = ["photos/a, b.jpg", "фото/ünïcode.jpg", str(path)][i]  # commas and non-ASCII in names
        out.append(ImagePrediction(given_as, width, height, "rt", Pose(kp)))
    return out


@pytest.fixture(scope="module")
def squat_track(data_dir: Path) -> np.ndarray:
    """(65, 16, 3): BlazePose's real track of the squats clip in our keypoint order, made-up scores."""
    landmarks = np.asarray(json.loads((data_dir / "video" / "squats_front.blazepose-full-2d.json").read_text()))
    track = np.full((len(landmarks), len(KEYPOINTS), 3), np.nan)
    for name, j in BLAZEPOSE.items():
        track[:, KEYPOINTS.index(name), :2] = landmarks[:, j, :2]
    track[:, KEYPOINTS.index("thorax"), :2] = landmarks[:, [11, 12], :2].mean(axis=1)
    track[:, KEYPOINTS.index("pelvis"), :2] = landmarks[:, [23, 24], :2].mean(axis=1)
    track[:, :, 2] = np.random.default_rng(1).uniform(0, 1, track.shape[:2])
    return track


def write_squats(json_path: Path | None, csv_path: Path | None, track: np.ndarray) -> None:
    with VideoPredictionsWriter(json_path, csv_path, file="clips/squats_front.mp4", width=720, height=1280,
                                fps=5.0, model="rt") as writer:
        for i, kp in enumerate(track):
            writer.add(i, i / 5.0, Pose(kp))


# --------------------------------------------------------------------------------------------- images


def test_image_predictions_round_trip_exactly(tmp_path: Path, lsp_predictions: list[ImagePrediction]) -> None:
    paths = write_image_predictions(tmp_path / "predictions.json", lsp_predictions, tmp_path / "predictions.csv")
    assert paths == [tmp_path / "predictions.json", tmp_path / "predictions.csv"]
    for path, model in [(paths[0], "rt"), (paths[1], None)]:
        back = read_image_predictions(path)
        assert [(p.file, p.width, p.height, p.model) for p in back] == [
            (p.file, p.width, p.height, model) for p in lsp_predictions]
        for got, want in zip(back, lsp_predictions, strict=True):
            assert got.pose.names == KEYPOINTS
            np.testing.assert_array_equal(got.pose.keypoints, want.pose.keypoints)  # bit-exact, NaN where NaN


def test_image_json_layout(tmp_path: Path, lsp_predictions: list[ImagePrediction]) -> None:
    write_image_predictions(tmp_path / "predictions.json", lsp_predictions[:1])
    records = json.loads((tmp_path / "predictions.json").read_text(encoding="utf-8"))
    assert isinstance(records, list) and len(records) == 1
    record = records[0]
    assert list(record) == ["file", "width", "height", "model", "keypoints"]
    assert (record["file"], record["width"], record["height"], record["model"]) == ("photos/a, b.jpg", 70, 160, "rt")
    assert list(record["keypoints"]) == list(KEYPOINTS)
    thorax = record["keypoints"]["thorax"]  # LSP has no thorax: NaN coordinates are written as null
    assert thorax["x"] is None and thorax["y"] is None and isinstance(thorax["score"], float)
    head = record["keypoints"]["head_top"]
    assert list(head) == ["x", "y", "score"] and all(isinstance(v, float) for v in head.values())


def test_image_csv_header_is_exact(tmp_path: Path, lsp_predictions: list[ImagePrediction]) -> None:
    write_image_predictions(None, lsp_predictions, tmp_path / "predictions.csv")
    lines = (tmp_path / "predictions.csv").read_text(encoding="utf-8").split("\n")
    assert lines[0] == (
        "file,width,height,head_top_x,head_top_y,head_top_score,upper_neck_x,upper_neck_y,upper_neck_score,"
        "right_shoulder_x,right_shoulder_y,right_shoulder_score,right_elbow_x,right_elbow_y,right_elbow_score,"
        "right_wrist_x,right_wrist_y,right_wrist_score,thorax_x,thorax_y,thorax_score,"
        "left_shoulder_x,left_shoulder_y,left_shoulder_score,left_elbow_x,left_elbow_y,left_elbow_score,"
        "left_wrist_x,left_wrist_y,left_wrist_score,pelvis_x,pelvis_y,pelvis_score,"
        "right_hip_x,right_hip_y,right_hip_score,right_knee_x,right_knee_y,right_knee_score,"
        "right_ankle_x,right_ankle_y,right_ankle_score,left_hip_x,left_hip_y,left_hip_score,"
        "left_knee_x,left_knee_y,left_knee_score,left_ankle_x,left_ankle_y,left_ankle_score"
    )
    assert lines[0].split(",") == image_csv_header()
    assert lines[1].startswith('"photos/a, b.jpg",70,160,')  # quoted because of the comma
    assert len(lines) == 1 + len(lsp_predictions) + 1 and lines[-1] == ""  # "\n" line ends, no "\r"


def test_empty_image_list_is_valid(tmp_path: Path) -> None:
    write_image_predictions(tmp_path / "p.json", [], tmp_path / "p.csv")
    assert json.loads((tmp_path / "p.json").read_text()) == []
    assert read_image_predictions(tmp_path / "p.csv") == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE, width=64) | st.just(float("nan")), min_size=48, max_size=48))
def test_any_float_survives_json_and_csv(tmp_path_factory: pytest.TempPathFactory, values: list[float]) -> None:
    tmp = tmp_path_factory.mktemp("floats")
    pose = Pose(np.array(values, dtype=np.float64).reshape(16, 3))
    write_image_predictions(tmp / "p.json", [ImagePrediction("x.jpg", 1, 1, "rt", pose)], tmp / "p.csv")
    for path in (tmp / "p.json", tmp / "p.csv"):
        np.testing.assert_array_equal(read_image_predictions(path)[0].pose.keypoints, pose.keypoints)


# --------------------------------------------------------------------------------------------- videos


def test_video_predictions_round_trip_exactly(tmp_path: Path, squat_track: np.ndarray) -> None:
    json_path, csv_path = PredictOptions(output=tmp_path, formats=("json", "csv")).output_paths("squats_front")
    write_squats(json_path, csv_path, squat_track)

    from_json = read_video_predictions(json_path)
    assert (from_json.file, from_json.width, from_json.height, from_json.fps, from_json.model) == (
        "clips/squats_front.mp4", 720, 1280, 5.0, "rt")
    from_csv = read_video_predictions(csv_path)
    assert (from_csv.file, from_csv.fps, from_csv.model) == (None, None, None)
    for back in (from_json, from_csv):
        assert back.names == KEYPOINTS and back.keypoints.shape == (65, 16, 3)
        np.testing.assert_array_equal(back.frames, np.arange(65))
        np.testing.assert_array_equal(back.times, np.arange(65) / 5.0)
        np.testing.assert_array_equal(back.keypoints, squat_track)
    np.testing.assert_array_equal(from_json.pose(3).keypoints, squat_track[3])


def test_video_files_layout(tmp_path: Path, squat_track: np.ndarray) -> None:
    write_squats(tmp_path / "s.json", tmp_path / "s.csv", squat_track[:2])
    data = json.loads((tmp_path / "s.json").read_text())
    assert list(data) == ["file", "width", "height", "fps", "model", "frames"]
    assert [list(f) for f in data["frames"]] == [["frame", "time", "keypoints"]] * 2
    assert data["frames"][1]["time"] == 0.2 and list(data["frames"][1]["keypoints"]) == list(KEYPOINTS)
    header = (tmp_path / "s.csv").read_text().split("\n")[0].split(",")
    assert header[:5] == ["frame", "time", "head_top_x", "head_top_y", "head_top_score"]
    assert len(header) == 2 + 3 * 16
    assert (tmp_path / "s.csv").read_text().split("\n")[2].startswith("1,0.2,,,")  # head top unknown: empty


def test_read_predictions_tells_images_from_videos(tmp_path: Path, lsp_predictions: list[ImagePrediction],
                                                   squat_track: np.ndarray) -> None:
    write_image_predictions(tmp_path / "predictions.json", lsp_predictions, tmp_path / "predictions.csv")
    write_squats(tmp_path / "squats.json", tmp_path / "squats.csv", squat_track)
    assert isinstance(read_predictions(tmp_path / "predictions.json"), list)
    assert isinstance(read_predictions(tmp_path / "predictions.csv"), list)
    assert read_predictions(tmp_path / "squats.json").keypoints.shape == (65, 16, 3)
    assert read_predictions(tmp_path / "squats.csv").keypoints.shape == (65, 16, 3)
    with pytest.raises(InputError, match="video's predictions"):
        read_image_predictions(tmp_path / "squats.json")


# --------------------------------------------------------------------------------------------- atomicity


def test_failure_mid_video_leaves_no_partial_or_temp_file(tmp_path: Path, squat_track: np.ndarray) -> None:
    (tmp_path / "squats.csv").write_text("previous run\n")
    with pytest.raises(RuntimeError), VideoPredictionsWriter(
        tmp_path / "squats.json", tmp_path / "squats.csv", file="x.mp4", width=720, height=1280, fps=5.0, model="rt"
    ) as writer:
        for i, kp in enumerate(squat_track):
            writer.add(i, i / 5.0, Pose(kp))
            if i == 30:
                assert not (tmp_path / "squats.json").exists()  # rows go to a hidden temporary file
                raise RuntimeError("decoder failed at frame 31")
    assert sorted(os.listdir(tmp_path)) == ["squats.csv"]
    assert (tmp_path / "squats.csv").read_text() == "previous run\n"


def test_failure_mid_images_leaves_nothing(tmp_path: Path, lsp_predictions: list[ImagePrediction]) -> None:
    with pytest.raises(KeyboardInterrupt), ImagePredictionsWriter(tmp_path / "p.json", tmp_path / "p.csv") as w:
        w.add("a.jpg", 70, 160, lsp_predictions[0].pose)
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_writer_refuses_poses_in_another_order(tmp_path: Path, lsp_predictions: list[ImagePrediction]) -> None:
    lsp_pose = Pose(np.zeros((14, 3)), LSP_KEYPOINTS)
    with pytest.raises(ValueError, match="expected 16"), ImagePredictionsWriter(tmp_path / "p.json") as w:
        w.add("a.jpg", 70, 160, lsp_pose)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("p.json", '[{"file": "a.jpg", "width": 70', "not valid JSON"),
        ("p.json", '{"frames": []}', "expected a JSON list"),
        ("p.json", '[{"file": "a.jpg", "height": 1, "keypoints": {"a": {"x": 1, "y": 2, "score": 0}}}]',
         "record 0: missing 'width'"),
        ("p.json", '[{"file": "a.jpg", "width": 1, "height": 1, "keypoints": {"a": {"x": "1", "y": 2, "score": 0}}}]',
         r"record 0 a\.x: expected a number"),
        ("p.json", '[{"file": "a.jpg", "width": true, "height": 1, "keypoints": {"a": {"x": 1, "y": 2, "score": 0}}}]',
         "expected an integer"),
        ("p.csv", "", "empty CSV"),
        ("p.csv", "name,width,height\n", "header must start with file,width,height"),
        ("p.csv", "file,width,height,a_x,a_y\n", "triples"),
        ("p.csv", "file,width,height,a_x,a_y,a_score\na.jpg,70,160,1.5,abc,0.5\n", "row 2 column a_y: not a number"),
        ("p.csv", "file,width,height,a_x,a_y,a_score\na.jpg,70,160,1.5\n", "row 2: 4 cells, expected 6"),
        ("p.csv", "file,width,height,a_x,a_y,a_score\na.jpg,7.5,160,1,2,3\n", "row 2 width: not an integer"),
    ],
)
def test_malformed_image_files_are_one_line_input_errors(tmp_path: Path, name: str, content: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=reason) as exc:
        read_image_predictions(path)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("v.json", "[]", "expected a JSON object"),
        ("v.json", '{"fps": 5}', "missing 'frames'"),
        ("v.json", '{"frames": [{"frame": 0, "keypoints": {"a": {"x": 1, "y": 2, "score": 0}}}]}',
         "frame record 0: missing 'time'"),
        ("v.json", '{"frames": [{"frame": 0, "time": 0, "keypoints": {"a": {"x": 1, "y": 2, "score": 0}}}, '
         '{"frame": 1, "time": 0.2, "keypoints": {"b": {"x": 1, "y": 2, "score": 0}}}]}', "names differ"),
        ("v.csv", "frame,time,a_x,a_y,a_score\nzero,0,1,2,3\n", "row 2 frame: not an integer"),
    ],
)
def test_malformed_video_files_are_one_line_input_errors(tmp_path: Path, name: str, content: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=reason) as exc:
        read_video_predictions(path)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)


def test_missing_prediction_file_is_an_input_error(tmp_path: Path) -> None:
    for path in (tmp_path / "none.json", tmp_path / "none.csv"):
        with pytest.raises(InputError, match="no such file"):
            read_predictions(path)
