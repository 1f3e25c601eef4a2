"""``efficientpose predict`` on real images: predictions.json / .csv against the independent reference, the
output contract (exact CSV header, CSV numbers == JSON numbers, readers round-trip), annotated copies, flags."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli
from PIL import Image
from test_predict_api import load_rgb, reference_keypoints

from efficientpose.cli import main
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.outputs import read_image_predictions, read_predictions
from efficientpose.skeleton import KEYPOINTS
from efficientpose.weights.hub import load_model


@pytest.fixture(scope="module")
def inputs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real photos as JPEG (as shipped), PNG and PGM copies made at run time, and a name needing CSV quoting."""
    folder = tmp_path_factory.mktemp("photos")
    png = folder / "im0002.png"
    Image.open(data_dir / "lsp" / "images" / "im0002.jpg").save(png)
    pgm = folder / "im0001.pgm"
    Image.open(data_dir / "lsp" / "images" / "im0001.jpg").convert("L").save(pgm)
    quoted = folder / 'coco, "quoted".jpg'
    shutil.copy(data_dir / "coco" / "train2017" / "000000027731.jpg", quoted)
    return [data_dir / "MPII-sample.jpg", data_dir / "mpii" / "images" / "052475643.jpg", png, pgm, quoted,
            data_dir / "coco" / "val2017" / "000000197388.jpg"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def input_digests(inputs: list[Path]) -> dict[Path, str]:
    return {p: digest(p) for p in inputs}


@pytest.fixture(scope="module")
def argmax_run(inputs: list[Path], input_digests: dict[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CLI run: authors' decoding, JSON and CSV, annotated copies, the whole image (no detector)."""
    out = tmp_path_factory.mktemp("argmax-run")
    code = main(["predict", *map(str, inputs), "--output", str(out), "--format", "both", "--draw",
                 "--decoder", "argmax", "--backend", "torch", "--detector", "none"])
    assert code == 0
    return out


def test_cli_keypoints_match_the_independent_reference(argmax_run: Path, inputs: list[Path],
                                                       weights_dir: Path) -> None:
    records = json.loads((argmax_run / "predictions.json").read_text(encoding="utf-8"))
    assert [r["file"] for r in records] == [str(p) for p in inputs]  # paths as given, in the order given
    model = load_model("rt").eval()
    rgbs = [load_rgb(p) for p in inputs]
    references = reference_keypoints(model, rgbs)
    for record, rgb, (ref, _) in zip(records, rgbs, references, strict=True):
        assert (record["width"], record["height"]) == (rgb.shape[1], rgb.shape[0])
        assert record["model"] == "rt"
        assert list(record["keypoints"]) == list(KEYPOINTS)
        got = np.array([[v["x"], v["y"], v["score"]] for v in record["keypoints"].values()])
        # same tolerance argument as in test_predict_api: same heatmap pixel -> agreement to float rounding
        np.testing.assert_allclose(got[:, :2], ref[:, :2], rtol=0, atol=1e-3, err_msg=record["file"])
        np.testing.assert_allclose(got[:, 2], ref[:, 2], rtol=0, atol=1e-4, err_msg=record["file"])


def test_csv_equals_json_and_both_read_back(argmax_run: Path, inputs: list[Path]) -> None:
    json_text = (argmax_run / "predictions.json").read_text(encoding="utf-8")
    records = json.loads(json_text)
    assert json_text.startswith("[\n") and json_text.endswith("\n]\n")
    assert len(json_text.splitlines()) == len(inputs) + 2  # one record per line
    with open(argmax_run / "predictions.csv", encoding="utf-8", newline="") as f:
        raw = f.read()
    assert "\r" not in raw
    rows = list(csv.reader(raw.splitlines()))
    expected_header = ["file", "width", "height"] + [f"{n}_{f}" for n in KEYPOINTS for f in ("x", "y", "score")]
    assert rows[0] == expected_header
    assert raw.splitlines()[0] == ",".join(expected_header)
    assert len(rows) == len(inputs) + 1
    for row, record in zip(rows[1:], records, strict=True):
        assert row[0] == record["file"]
        assert (int(row[1]), int(row[2])) == (record["width"], record["height"])
        json_numbers = [record["keypoints"][n][f] for n in KEYPOINTS for f in ("x", "y", "score")]
        assert [float(c) for c in row[3:]] == json_numbers  # exactly the same 64-bit floats
    assert any('"' in line for line in raw.splitlines()[1:])  # the name with comma and quotes was quoted

    from_json = read_image_predictions(argmax_run / "predictions.json")
    from_csv = read_predictions(argmax_run / "predictions.csv")
    assert isinstance(from_csv, list) and len(from_json) == len(from_csv) == len(inputs)
    for a, b, record in zip(from_json, from_csv, records, strict=True):
        assert a.file == b.file == record["file"]
        assert (a.width, a.height) == (b.width, b.height) == (record["width"], record["height"])
        assert a.model == "rt" and b.model is None  # the CSV has no model column
        assert a.pose.names == b.pose.names == KEYPOINTS
        np.testing.assert_array_equal(a.pose.keypoints, b.pose.keypoints)
        np.testing.assert_array_equal(a.pose.keypoints, [[v["x"], v["y"], v["score"]]
                                                         for v in record["keypoints"].values()])


def test_drawn_copies_keep_size_and_format_and_inputs_are_untouched(argmax_run: Path, inputs: list[Path],
                                                                     input_digests: dict[Path, str]) -> None:
    expected = {p: argmax_run / (p.name if p.suffix != ".pgm" else p.with_suffix(".png").name) for p in inputs}
    assert sorted(x.name for x in argmax_run.iterdir()) == sorted(
        ["predictions.json", "predictions.csv", *(e.name for e in expected.values())])
    scores = {r.file: r.pose.scores for r in read_image_predictions(argmax_run / "predictions.json")}
    drew_something = 0
    for source, drawn in expected.items():
        with Image.open(source) as a, Image.open(drawn) as b:
            assert b.size == a.size, drawn.name
            assert b.format == ("PNG" if source.suffix == ".pgm" else a.format), drawn.name
            assert b.mode == "RGB"
            before = np.asarray(a.convert("RGB"), dtype=np.int16)
            after = np.asarray(b.convert("RGB"), dtype=np.int16)
        changed = np.abs(after - before).max(axis=2) > 40  # JPEG q95 re-encoding alone stays far below 40
        if (scores[str(source)] >= 0.3).any():  # the default threshold: markers were drawn
            assert 0.0002 < changed.mean() < 0.5, f"{drawn.name}: {changed.mean():.4f} of pixels changed"
            drew_something += 1
        else:
            assert not changed.any(), f"{drawn.name}: nothing is confident, yet pixels changed"
    assert drew_something >= 4
    assert {p: digest(p) for p in inputs} == input_digests


def test_default_decoder_csv_only_and_flip_flag_match_the_api(inputs: list[Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    chosen = inputs[1:4]  # JPEG, PNG, PGM
    code, out, err = run_cli(["predict", *map(str, chosen), "--output", str(tmp_path), "--format", "csv",
                              "--flip", "--backend", "onnxruntime", "--detector", "none"], capsys)
    assert code == 0, err
    assert out.strip() == f"3 images, 0 videos (0 frames) -> {tmp_path}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]  # CSV only, no temporaries
    got = read_image_predictions(tmp_path / "predictions.csv")
    api = PoseEstimator("rt", backend="onnxruntime", flip=True)
    for record, path in zip(got, chosen, strict=True):
        assert record.file == str(path)
        # one batched forward pass in the CLI vs one per image here: float rounding only
        np.testing.assert_allclose(record.pose.keypoints, api.predict(path).keypoints, rtol=0, atol=1e-3)


def test_folder_input_is_walked_in_natural_order(inputs: list[Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(inputs[2], folder / "im10.png")
    shutil.copy(inputs[2], folder / "sub" / "im2.png")
    shutil.copy(inputs[2], folder / "im9.png")
    (folder / "notes.txt").write_text("not an image")  # skipped silently inside folders
    code, _, err = run_cli(["predict", str(folder), "--output", str(tmp_path / "out"), "--backend", "onnxruntime"],
                           capsys)
    assert code == 0, err
    files = [r.file for r in read_image_predictions(tmp_path / "out" / "predictions.json")]
    assert files == [str(folder / "im9.png"), str(folder / "im10.png"), str(folder / "sub" / "im2.png")]
    poses = [r.pose.keypoints for r in read_image_predictions(tmp_path / "out" / "predictions.json")]
    np.testing.assert_array_equal(poses[0], poses[1])  # same pixels, same answer


def _coco_people(data_dir: Path) -> dict[str, list]:
    """Every COCO sample image -> its annotated people (keypoints in COCO order, read by the package's reader)."""
    from efficientpose.data.registry import open_dataset

    people: dict[str, list] = {}
    for split in ("val2017_mini", "train2017_mini"):
        for sample in open_dataset("coco", data_dir / "coco", split):
            people.setdefault(str(sample.image), []).append(sample)
    return people


def _error_to_nearest_person(pose_xy: np.ndarray, people: list) -> float:
    """Median distance of the limb keypoints to the closest annotated person, over that person's size."""
    from efficientpose.evaluation.evaluate import _as_xy

    best = np.inf
    for person in people:
        pred = _as_xy(pose_xy, KEYPOINTS, person.keypoints)
        seen = person.annotated & np.isfinite(pred).all(axis=1)
        if seen.sum() >= 6:
            size = np.sqrt(np.prod(np.ptp(person.joints[seen], axis=0)) + 1.0)
            best = min(best, float(np.median(np.hypot(*(pred[seen] - person.joints[seen]).T)) / size))
    return best


def test_search_finds_small_people_in_photos(data_dir: Path, weights_dir: Path, tmp_path: Path, capsys) -> None:
    """All COCO sample photos (people of 60-420 px, often several): the whole image vs ``--search`` (both with
    ``--detector none``) vs the default person detector. An image counts as right when the pose lies on an annotated
    person (median error under 0.2 of that person's size). Measured (RT): 10 of 15 scored photos right with
    --search and with the detector, against 4 of 15 without either, and none that was right becomes wrong with
    --search (it only replaces a pose by a more confident one)."""
    people = _coco_people(data_dir)
    files = sorted(people)
    results = {}
    detector = weights_dir / "mediapipe" / "pose_detection.tflite"
    for flag, detection in (("--no-search", "none"), ("--search", "none"), ("detector", str(detector))):
        out = tmp_path / flag
        code, _, _ = run_cli(["predict", *files, "--output", str(out), "--backend", "onnxruntime",
                              *([flag] if flag.startswith("--") else []), "--detector", detection], capsys)
        assert code == 0
        poses = {r.file: r.pose.keypoints for r in read_image_predictions(out / "predictions.json")}
        results[flag] = np.array([_error_to_nearest_person(poses[f][:, :2], people[f]) for f in files])
    scored = np.isfinite(results["--no-search"]) & np.isfinite(results["--search"])
    right = {flag: int((errors[scored] < 0.2).sum()) for flag, errors in results.items()}
    print(f"COCO photos right: {right} of {scored.sum()}")
    assert right["detector"] >= right["--search"]  # the default: the detector in front of the pose model
    assert scored.sum() >= 12
    assert right["--search"] >= right["--no-search"] + 4
    was_right = scored & (results["--no-search"] < 0.2)
    assert (results["--search"][was_right] < 0.2).all()
    assert np.median(results["--search"][scored]) < 0.5 * np.median(results["--no-search"][scored])
