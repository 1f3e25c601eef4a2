"""People in photos (issue 13): the person fields of the output contract, `--detector` and `--people`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli as _run

from efficientpose.codec.geometry import person_box
from efficientpose.errors import UsageError
from efficientpose.io.predictions import (
    PERSON_COLUMNS,
    ImagePrediction,
    image_csv_header,
    keypoint_columns,
    read_image_predictions,
    write_image_predictions,
)
from efficientpose.pose import Pose
from efficientpose.predict import PredictOptions, people_limit
from efficientpose.skeleton import KEYPOINTS

# ---- the contract (no data) ----


def _pose(seed: int, box=None, score=None) -> Pose:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    kp = np.column_stack([rng.uniform(0, 640, (16, 2)), rng.uniform(0, 1, 16)])
    return Pose(kp, image_size=(640, 480), box=box, person_score=score)


def test_pose_validates_box_and_person_score():
    assert Pose(np.zeros((16, 3)), box=np.array([1, 2, 3, 4])).box == (1.0, 2.0, 3.0, 4.0)
    for bad in ([1, 2, 3], [3, 0, 1, 4], [0, 0, math.nan, 1]):
        with pytest.raises(ValueError, match="box"):
            Pose(np.zeros((16, 3)), box=bad)
    for bad in (-0.1, 1.5, math.nan, "high"):
        with pytest.raises(ValueError, match="person_score"):
            Pose(np.zeros((16, 3)), person_score=bad)
    assert Pose(np.zeros((16, 3))).box is None and Pose(np.zeros((16, 3))).person_score is None


def test_person_fields_round_trip_through_the_one_reader(tmp_path: Path):
    """JSON and CSV: box, person_score and the rank read back exactly; a person nobody found reads back None."""
    written = [ImagePrediction("a.jpg", 640, 480, "rt", _pose(0, (10.5, 20.25, 300.0, 470.125), 0.625), person=0),
               ImagePrediction("a.jpg", 640, 480, "rt", _pose(1, (400.0, 0.0, 640.0, 480.0), 0.5), person=1),
               ImagePrediction("b, c.jpg", 640, 480, "rt", _pose(2), person=0)]
    write_image_predictions(tmp_path / "p.json", written, tmp_path / "p.csv")
    for path in (tmp_path / "p.json", tmp_path / "p.csv"):
        back = read_image_predictions(path)
        assert [(b.file, b.person, b.pose.box, b.pose.person_score) for b in back] == \
               [(w.file, w.person, w.pose.box, w.pose.person_score) for w in written]
        for b, w in zip(back, written, strict=True):
            np.testing.assert_array_equal(b.pose.keypoints, w.pose.keypoints)
    records = json.loads((tmp_path / "p.json").read_text())
    assert list(records[0]) == ["file", "width", "height", "model", "person", "box", "person_score", "keypoints"]
    assert records[2]["box"] is None and records[2]["person_score"] is None


def test_csv_person_columns_come_last(tmp_path: Path):
    assert image_csv_header() == ["file", "width", "height", *keypoint_columns(KEYPOINTS)]  # unchanged
    header = image_csv_header(detection=True)
    assert header[-5:] == ["box_x0", "box_y0", "box_x1", "box_y1", "person_score"] == list(PERSON_COLUMNS)
    assert header[:-5] == image_csv_header()
    assert image_csv_header(detection=True, ranked=True) == [*image_csv_header(), "person", *PERSON_COLUMNS]
    write_image_predictions(None, [ImagePrediction("a.jpg", 640, 480, None, _pose(0, None, None))],
                            tmp_path / "p.csv", detection=True)
    with open(tmp_path / "p.csv", newline="") as f:
        head, row = list(csv.reader(f))
    assert head == header and row[-5:] == ["", "", "", "", ""]
    assert read_image_predictions(tmp_path / "p.csv")[0].pose.box is None


def test_bad_person_fields_are_refused_with_one_line(tmp_path: Path):
    good = {"file": "a.jpg", "width": 4, "height": 4, "keypoints": _pose(0).to_dict()}
    for extra, reason in (({"box": [1, 2, 3]}, "box"), ({"box": [3, 0, 1, 4]}, "box"),
                          ({"person_score": 2}, "person_score"), ({"person": -1}, "person")):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([{**good, **extra}]))
        with pytest.raises(ValueError, match=reason) as err:
            read_image_predictions(path)
        assert "\n" not in str(err.value) and "bad.json" in str(err.value)


def test_people_option_is_validated():
    assert people_limit(None) is None and people_limit("3") == 3 and people_limit(2) == 2
    assert people_limit("all") > 1000
    for bad in ("0", "-1", "two", "1.5", "", True, 0):
        with pytest.raises(UsageError, match="--people"):
            PredictOptions(people=bad)


def test_person_box_is_the_joints_extent_times_the_margin():
    joints = np.array([[10.0, 20.0], [30.0, 100.0], [np.nan, 5.0], [500.0, 0.0]])
    assert person_box(joints, [True, True, True, False]) == (7.5, 10.0, 32.5, 110.0)
    assert person_box(joints, [True, True, False, False], image_size=(31, 105)) == (7.5, 10.0, 31.0, 105.0)
    assert person_box(joints, [False] * 4) is None


# ---- the command on real images ----


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """``run_cli(argv, env=None)``: exit code, stdout, stderr of the command with ``env`` set."""
    def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return _run(argv, capsys)
    return run


def _records(out: Path) -> list[dict]:
    return json.loads((out / "predictions.json").read_text())


def test_detector_none_is_todays_output_byte_for_byte(data_dir: Path, tmp_path: Path, run_cli):
    """`--detector none`: the authors' whole-image pose in today's schema, written exactly as the writer of the
    release before detection wrote it (the same bytes as a record built from `PoseEstimator.predict`)."""
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.io.images import read_image
    from efficientpose.io.predictions import ImagePredictionsWriter

    image = data_dir / "lsp" / "images" / "im0002.jpg"
    out = tmp_path / "out"
    code, _, err = run_cli(["predict", str(image), "--output", str(out), "--format", "both", "--detector", "none",
                            "--backend", "onnxruntime"])
    assert code == 0, err
    rgb = read_image(image)
    pose = PoseEstimator("rt", backend="onnxruntime").predict(rgb)
    with ImagePredictionsWriter(tmp_path / "ref.json", tmp_path / "ref.csv", model="rt") as writer:
        writer.add(str(image), rgb.shape[1], rgb.shape[0], pose)
    assert (out / "predictions.json").read_bytes() == (tmp_path / "ref.json").read_bytes()
    assert (out / "predictions.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert "box" not in (out / "predictions.json").read_text()


def test_people_all_gives_one_ranked_record_per_person(data_dir: Path, weights_dir: Path, tmp_path: Path, run_cli):
    """Two people of about 200 px side by side (COCO val 000000040083): two records, ranks 0 and 1, surest first,
    each box around a different annotated person."""
    image = data_dir / "coco" / "val2017" / "000000040083.jpg"
    detector = weights_dir / "mediapipe" / "pose_detection.tflite"
    out = tmp_path / "out"
    code, _, err = run_cli(["predict", str(image), "--output", str(out), "--format", "both", "--people", "all",
                            "--detector", str(detector), "--backend", "onnxruntime"])
    assert code == 0, err
    records = _records(out)
    assert [r["person"] for r in records] == list(range(len(records))) and len(records) >= 2
    scores = [r["person_score"] for r in records]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    annotations = json.loads((data_dir / "coco" / "annotations" / "person_keypoints_val2017_mini.json").read_text())
    image_id = next(i["id"] for i in annotations["images"] if i["file_name"] == image.name)
    truth = [a["bbox"] for a in annotations["annotations"] if a["image_id"] == image_id and a["num_keypoints"] >= 10]
    matched = set()
    for r in records[:2]:
        x0, y0, x1, y1 = r["box"]
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        inside = [i for i, (x, y, w, h) in enumerate(truth) if x <= centre[0] <= x + w and y <= centre[1] <= y + h]
        assert len(inside) >= 1
        matched.add(inside[0])
    assert len(matched) == 2  # two different people
    rows = read_image_predictions(out / "predictions.csv")
    assert [r.person for r in rows] == [r["person"] for r in records]
    assert [r.pose.box for r in rows] == [tuple(r["box"]) for r in records]


def _small_person(data_dir: Path, tmp_path: Path) -> tuple[Path, np.ndarray, tuple[int, int, int, int]]:
    """LSP im0008 pasted at 40 % of a 1280 x 720 frame of smooth noise, written as PNG: (path, its LSP joints in
    the frame, the pasted photo's x0, y0, width, height)."""
    import cv2

    from efficientpose.data.lsp import read_lsp

    sample = read_lsp(data_dir / "lsp", "train")[7]
    rng = np.random.default_rng(3)
    frame = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC)
    person = cv2.imread(str(sample.image))
    h, w = person.shape[:2]
    new_h = 288
    new_w = round(w * new_h / h)
    x0, y0 = 800, 300
    frame[y0:y0 + new_h, x0:x0 + new_w] = cv2.resize(person, (new_w, new_h), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "small.png"), frame)
    return tmp_path / "small.png", sample.joints * [new_w / w, new_h / h] + [x0, y0], (x0, y0, new_w, new_h)


def test_default_finds_a_small_person_and_reports_its_box(data_dir: Path, weights_dir: Path, tmp_path: Path, run_cli):
    """An LSP person pasted at 40 % of a 1280 x 720 frame: by default (detector from the weights folder) the record
    carries a box around the pasted person and most joints land within 0.2 torso lengths (LSP's PCK)."""
    image, joints, (x0, y0, new_w, new_h) = _small_person(data_dir, tmp_path)
    out = tmp_path / "out"
    code, _, err = run_cli(["predict", str(image), "--output", str(out), "--format", "both",
                            "--backend", "onnxruntime"], env={"EFFICIENTPOSE_WEIGHTS_DIR": str(weights_dir)})
    assert code == 0, err
    (record,) = _records(out)
    assert list(record)[-3:] == ["box", "person_score", "keypoints"]
    bx0, by0, bx1, by1 = record["box"]
    assert bx0 <= x0 + new_w and bx1 >= x0 and by0 <= y0 + new_h and by1 >= y0
    assert bx1 - bx0 < 1.5 * new_h and by1 - by0 < 1.5 * new_h
    predicted = np.array([[record["keypoints"][n]["x"], record["keypoints"][n]["y"]] for n in KEYPOINTS])
    from efficientpose.skeleton import LSP_KEYPOINTS, remap

    lsp = remap(predicted, KEYPOINTS, LSP_KEYPOINTS)
    torso = np.linalg.norm(joints[9] - joints[2])  # left shoulder to right hip
    assert (np.linalg.norm(lsp - joints, axis=1) <= 0.2 * torso).sum() >= 10


def test_a_person_found_in_a_crop_gets_the_crops_flip_averaged_pose(data_dir: Path, weights_dir: Path,
                                                                     tmp_path: Path):
    """The small pasted person is found in a crop, and the pose returned is that crop's pose with flip test-time
    augmentation (an estimator built with ``flip=True`` on the same crop gives it exactly), not the plain one; the
    whole-image pose of a photo the person fills is returned as it is."""
    from efficientpose.detection import BlazePoseDetector
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.inference.people import people_in_photo
    from efficientpose.io.images import read_image

    path, _, _ = _small_person(data_dir, tmp_path)
    image = read_image(path)
    estimator = PoseEstimator("rt", backend="onnxruntime")
    detector = BlazePoseDetector(weights_dir / "mediapipe" / "pose_detection.tflite", backend="onnxruntime")
    (person,) = people_in_photo(image, estimator, detector)
    assert person.roi is not None  # found in a crop
    flipped = PoseEstimator("rt", backend="onnxruntime", flip=True).predict(image, person.roi)
    plain = estimator.predict(image, person.roi)
    np.testing.assert_allclose(person.keypoints, flipped.keypoints, atol=1e-5)
    assert np.abs(person.keypoints[:, 2] - plain.keypoints[:, 2]).max() > 1e-3
    assert person.person_score == pytest.approx(float(np.mean(flipped.scores)), abs=1e-6)

    filling = read_image(data_dir / "lsp" / "images" / "im0002.jpg")
    (whole,) = people_in_photo(filling, estimator, detector)
    assert whole.roi is None
    np.testing.assert_allclose(whole.keypoints, estimator.predict(filling).keypoints, atol=1e-6)


def test_missing_or_corrupt_detector_is_one_line(tmp_path: Path, data_dir: Path, run_cli):
    image = data_dir / "lsp" / "images" / "im0002.jpg"
    for name, content in (("missing.tflite", None), ("corrupt.tflite", b"not a tflite file")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        code, _, err = run_cli(["predict", str(image), "--output", str(tmp_path / "out"), "--detector", str(path)])
        assert code != 0 and str(path) in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out" / "predictions.json").exists()


def test_no_detector_anywhere_and_no_network_searches_windows(tmp_path: Path, data_dir: Path, weights_dir: Path,
                                                              run_cli):
    """No cached or shipped detector and a download that fails: one warning, then the window search; the record
    still has the person fields."""
    from efficientpose.detection.weights import cached_file

    image = data_dir / "lsp" / "images" / "im0002.jpg"
    mirror = tmp_path / "empty-mirror"
    mirror.mkdir()
    folder = tmp_path / "weights"  # the pose weights, no detector
    folder.mkdir()
    for sub in ("keras", "tflite"):
        (folder / sub).symlink_to(weights_dir / sub)
    assert not cached_file().exists()
    env = {"EFFICIENTPOSE_WEIGHTS_URL": mirror.as_uri(), "EFFICIENTPOSE_WEIGHTS_DIR": str(folder)}
    other = data_dir / "lsp" / "images" / "im0003.jpg"
    code, _, err = run_cli(["predict", str(image), str(other), "--output", str(tmp_path / "out"),
                            "--backend", "onnxruntime"], env=env)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "window search" in line]
    assert len(warnings) == 1 and "pose_detection.tflite" in warnings[0]
    records = _records(tmp_path / "out")
    assert len(records) == 2 and all("box" in r and "person_score" in r for r in records)


def test_evaluate_detector_is_for_whole_images(data_dir: Path, run_cli):
    """`evaluate --detector` scores whole images as predict sees them: datasets whose samples come with a person box
    are refused with one usage line (before any model runs)."""
    code, _, err = run_cli(["evaluate", "--dataset", "coco", "--root", str(data_dir / "coco"), "--split",
                            "val2017_mini", "--detector", "auto", "--limit", "3"])
    assert code == 2 and "--detector none" in err and len(err.strip().splitlines()) == 1, err
