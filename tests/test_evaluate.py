"""Evaluation end to end: predict-format files made from displaced ground truth, matched, scored, reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from efficientpose.data.registry import open_dataset
from efficientpose.errors import InputError, UsageError
from efficientpose.evaluation.evaluate import evaluate, load_predictions, match_predictions
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS, remap


def _to_model_order(joints: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(16, 3) in the model's order; joints the dataset lacks are filled with something finite (a midpoint)."""
    xy = remap(joints, names, KEYPOINTS)
    fill = np.nanmean(xy, axis=0)
    xy = np.where(np.isnan(xy), fill, xy)
    return np.column_stack([xy, np.full(len(KEYPOINTS), 0.9)])


def _write_predict_json(path: Path, records: list[tuple[str, np.ndarray]]) -> None:
    data = [{"file": file, "width": 100, "height": 200, "model": "rt",
             "keypoints": Pose(kp).to_dict()} for file, kp in records]
    path.write_text(json.dumps(data))


def _displace(joints: np.ndarray, radius: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi, len(joints))
    return joints + radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])


def test_lsp_end_to_end_from_a_predict_file(data_dir: Path, tmp_path: Path) -> None:
    samples = open_dataset("lsp", data_dir / "lsp", "train")
    rng = np.random.default_rng(0)
    # joint k of sample i moves 0.35 torso sizes when (i + k) % 3 == 0, else 0.1; the last 10 get no record
    far = (np.arange(1000)[:, None] + np.arange(14)[None]) % 3 == 0
    records = []
    for i, s in enumerate(samples[:-10]):
        moved = _displace(s.joints, np.where(far[i], 0.35, 0.1) * s.norm_size, rng)
        # the three ways a predict run may name a file: absolute, relative to the dataset root, bare
        file = [str(s.image), f"images/{s.image.name}", s.image.name][i % 3]
        records.append((file, _to_model_order(moved, s.keypoints)))
    path = tmp_path / "predictions.json"
    _write_predict_json(path, records)
    predictions = load_predictions(path)
    assert len(predictions) == 990 and predictions[samples[0].image.as_posix()].names == KEYPOINTS

    report = evaluate(samples, predictions, dataset="lsp/train")
    assert (report.metric, report.alpha) == ("pck", 0.2)  # torso-normalised PCK@0.2 by default for LSP
    assert report.n_samples == report.n_scored == 1000
    assert report.missing_predictions == 10 and report.unmatched_predictions == 0
    correct = ~far
    correct[-10:] = False  # no prediction: every joint wrong
    for k, name in enumerate(samples[0].keypoints):
        assert report.per_joint[name] == pytest.approx(100.0 * correct[:, k].mean())
        assert report.counts[name] == 1000
    assert report.mean == report.mean_all == pytest.approx(100.0 * correct.mean())
    assert report.groups["Head"] == pytest.approx(50.0 * (correct[:, 12].mean() + correct[:, 13].mean()))
    assert evaluate(samples, predictions, alpha=0.5).mean == pytest.approx(99.0)  # only the 10 missed remain

    text = report.to_text()
    assert text.startswith("PCK@0.2 on lsp/train: 1000 of 1000 samples scored, 10 without a prediction")
    assert "| Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | UBody | Mean |" in text
    assert str(report) == text

    report.write_json(tmp_path / "out/report.json")
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["metric"] == "PCK" and saved["mean"] == pytest.approx(report.mean)
    assert saved["per_joint"]["left_wrist"]["count"] == 1000 and len(saved["curve"]["alpha"]) == 51
    report.plot_curve(tmp_path / "out/curve.png")
    with Image.open(tmp_path / "out/curve.png") as image:
        assert image.format == "PNG" and image.size == (640, 480)
    assert sorted(os.listdir(tmp_path / "out")) == ["curve.png", "report.json"]  # no temporary files left


def test_mpii_means_with_and_without_pelvis_and_thorax(data_dir: Path) -> None:
    samples = open_dataset("mpii", data_dir / "mpii", "valid", require_images=False)
    rng = np.random.default_rng(1)
    predictions = {}
    for s in samples:  # pelvis and thorax off by 0.7 head sizes, every other joint by 0.105
        radius = np.where(np.isin(s.keypoints, ("pelvis", "thorax")), 0.7, 0.105) * s.norm_size
        predictions[s.id] = remap(_displace(s.joints, radius, rng), s.keypoints, KEYPOINTS)
    report = evaluate(samples, predictions, dataset="mpii/valid")
    annotated = np.stack([s.annotated for s in samples])
    torso = np.isin(samples[0].keypoints, ("pelvis", "thorax"))
    assert report.metric == "pckh" and report.alpha == 0.5 and report.missing_predictions == 0
    assert report.mean == 100.0 and len(report.mean_joints) == 14
    assert report.mean_all == pytest.approx(100.0 * annotated[:, ~torso].sum() / annotated.sum())
    assert report.per_joint["pelvis"] == report.per_joint["thorax"] == 0.0
    # the 14-joint curve is 0 up to alpha 0.10 and 100 from 0.11: (0.005 + 0.39) * 100 / 0.5
    assert report.auc == pytest.approx(79.0)
    assert report.to_dict()["mean_joints"] == [k for k in samples[0].keypoints if k not in ("pelvis", "thorax")]
    with pytest.raises(UsageError):
        evaluate(samples, predictions, metric="pck")  # MPII samples carry head sizes


def test_coco_scores_only_joints_the_model_emits_and_counts_skips(data_dir: Path, tmp_path: Path) -> None:
    samples = open_dataset("coco", data_dir / "coco", "train2017_mini")
    assert len({s.image for s in samples}) < len(samples)  # several people per image
    first = {}
    for s in samples:
        first.setdefault(s.image.name, s)
    path = tmp_path / "p.json"  # one record per image, as `predict` writes: exact for the first person only
    _write_predict_json(path, [(name, _to_model_order(s.joints, s.keypoints)) for name, s in first.items()])
    report = evaluate(samples, load_predictions(path))
    assert report.metric == "pck"
    assert set(report.scored) == {k for k in samples[0].keypoints if k in KEYPOINTS} and len(report.scored) == 12
    assert np.isnan(report.per_joint["nose"]) and report.counts["nose"] == 0
    saved = json.loads(report.to_json())
    assert saved["per_joint"]["nose"] == {"pck": None, "count": 0, "scored": False}
    no_torso = sum(not np.isfinite(s.norm_size) for s in samples)
    assert no_torso > 0 and sum(report.skipped.values()) == no_torso and report.n_scored == len(samples) - no_torso
    scored = [s for s in samples if np.isfinite(s.norm_size)]
    assert report.shared_predictions == sum(1 for s in scored if sum(t.image == s.image for t in scored) > 1)
    assert report.missing_predictions == 0
    firsts = [s for s in scored if first[s.image.name] is s]
    assert report.mean >= 100.0 * sum(s.annotated[np.isin(s.keypoints, KEYPOINTS)].sum() for s in firsts) / sum(
        s.annotated[np.isin(s.keypoints, KEYPOINTS)].sum() for s in scored) - 1e-9
    assert "samples skipped: no torso size" in report.to_text()


def test_lspet_samples_without_a_torso_are_skipped(data_dir: Path) -> None:
    samples = open_dataset("lspet", data_dir / "lspet", require_images=False)
    predictions = {s.id: remap(np.nan_to_num(s.joints), s.keypoints, KEYPOINTS) for s in samples}
    report = evaluate(samples, predictions)
    assert report.skipped == {"no torso size (both shoulder-hip diagonals unannotated)": 1705}
    assert report.n_scored == 8295 and report.mean == 100.0 and report.auc == 100.0


def test_prediction_matching_rules(tmp_path: Path, data_dir: Path) -> None:
    samples = open_dataset("lsp", data_dir / "lsp", "train")[:3]
    pose = Pose(np.zeros((16, 3)))
    keys = {samples[0].id: pose, f"../lsp/images/{samples[1].image.name}": pose, "images/im0003.jpg": pose,
            "im0003.jpg": pose, "elsewhere/im0003.jpg": pose, "im9999.jpg": pose}
    # by id; by the path after '..'; by the longest path that ends the image path
    assert match_predictions(samples, keys) == [samples[0].id, "../lsp/images/im0002.jpg", "images/im0003.jpg"]
    assert evaluate(samples, keys).unmatched_predictions == 3
    with pytest.raises(InputError):
        match_predictions(samples, {"im0001.jpg": pose, "./im0001.jpg": pose})


_KP = '"keypoints": {"head_top": {"x": 1, "y": 2, "score": 1}}'
_SIZE = '"width": 10, "height": 20'


@pytest.mark.parametrize("content, needle", [
    ("{oops", "not valid JSON"), ('{"file": "a.jpg"}', "expected a JSON list"),
    (f'[{{{_KP}, {_SIZE}}}]', "'file'"),
    (f'[{{"file": "a.jpg", {_SIZE}, "keypoints": {{"head_top": {{"x": "1", "y": 2, "score": 1}}}}}}]', "head_top"),
    (f'[{{"file": "a.jpg", {_SIZE}, "keypoints": {{"head_top": {{"y": 2}}}}}}]', "head_top"),
    (f'[{{"file": "a.jpg", {_SIZE}, {_KP}}}, {{"file": "a.jpg", {_SIZE}, {_KP}}}]', "repeats"),
    (f'[{{"file": "a.jpg", {_SIZE}, "keypoints": [1, 2]}}]', "non-empty object"),
    (f'[{{"file": "a.jpg", {_SIZE}, "keypoints": null}}, {{"file": "a.jpg", {_SIZE}, {_KP}}}]', "repeats"),
    pytest.param("[" * 100_000, "nested too deeply", id="deep"),
    pytest.param(f'[{{"file": "a.jpg", {_SIZE}, "keypoints": {{"head_top": {{"x": 1{"0" * 400}, "y": 2, '
                 f'"score": 1}}}}}}]', "out of range", id="huge-integer"),
])
def test_malformed_prediction_files_are_one_line_input_errors(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        load_predictions(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and needle in message
    with pytest.raises(InputError):
        load_predictions(tmp_path / "absent.json")


def test_records_without_keypoints_count_as_missed(data_dir: Path, tmp_path: Path) -> None:
    samples = open_dataset("lsp", data_dir / "lsp", "train")[:2]
    path = tmp_path / "p.json"
    path.write_text(json.dumps([
        {"file": "im0001.jpg", "width": 10, "height": 20, "keypoints": None},
        {"file": "im0002.jpg", "width": 10, "height": 20,
         "keypoints": Pose(_to_model_order(samples[1].joints, samples[1].keypoints)).to_dict()},
    ]))
    report = evaluate(samples, load_predictions(path))
    assert report.missing_predictions == 1 and report.mean == 50.0


def test_usage_errors(data_dir: Path) -> None:
    lsp = open_dataset("lsp", data_dir / "lsp", "train")[:2]
    coco = open_dataset("coco", data_dir / "coco", "val2017_mini")[:2]
    with pytest.raises(UsageError):
        evaluate(lsp + coco, {})
    with pytest.raises(UsageError):
        evaluate(lsp, {}, metric="pckh")
    with pytest.raises(UsageError):
        evaluate([], {})
    with pytest.raises(UsageError):
        evaluate(lsp, {lsp[0].id: np.zeros((14, 2))})  # an array must be in the order of `names` (16)
