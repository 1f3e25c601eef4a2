"""The evaluate, compare and analyze commands end to end with the RT model on real data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from efficientpose.cli import main
from efficientpose.evaluation.metrics import mcnemar_p

# Squats in ../shared/data/video/squats_front.mp4, counted by eye on a contact sheet of all 65 frames
# (deepest near frames 10, 34 and 59; the clip ends while she rises from the third).
SQUATS_BY_EYE = 3


def test_evaluate_the_five_mpii_images_end_to_end(data_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["evaluate", "--dataset", "mpii", "--root", str(data_dir / "mpii"), "--split", "valid",
                 "--model", "rt", "--available-only", "--output", str(tmp_path), "--backend", "onnxruntime"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "5 of 2958 samples have their image" in out.err
    report = json.loads((tmp_path / "mpii-valid-rt.json").read_text())
    assert report["metric"] == "PCKh" and report["scored_samples"] == 5 and report["missing_predictions"] == 0
    assert 50 <= report["mean"] <= 100  # a working model on real single-person crops
    assert (tmp_path / "mpii-valid-rt-curve.png").stat().st_size > 1000


def test_evaluate_without_available_only_refuses_a_partial_split(data_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["evaluate", "--dataset", "mpii", "--root", str(data_dir / "mpii"), "--model", "rt",
                 "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "images missing" in err and len(err.strip().splitlines()) == 1


def test_evaluate_scores_a_predictions_file(data_dir: Path, tmp_path: Path, capsys) -> None:
    images = data_dir / "mpii" / "images"
    assert main(["predict", str(images), "--output", str(tmp_path / "pred"), "--backend", "onnxruntime"]) == 0
    code = main(["evaluate", "--dataset", "mpii", "--root", str(data_dir / "mpii"), "--split", "valid",
                 "--available-only", "--predictions", str(tmp_path / "pred" / "predictions.json"),
                 "--output", str(tmp_path / "ev")])
    assert code == 0
    report = json.loads((tmp_path / "ev" / "mpii-valid-predictions.json").read_text())
    assert report["scored_samples"] == 5 and report["missing_predictions"] == 0


def test_evaluate_compare_decoders_pairs_the_two_reports(data_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["evaluate", "--dataset", "lsp", "--root", str(data_dir / "lsp"), "--split", "train", "--limit", "60",
                 "--model", "rt", "--alpha", "0.1", "--compare-decoders", "--output", str(tmp_path),
                 "--backend", "onnxruntime"])
    out = capsys.readouterr().out
    assert code == 0
    refined, argmax = (json.loads((tmp_path / f"lsp-train-rt-{d}.json").read_text()) for d in ("refined", "argmax"))
    assert refined["alpha"] == argmax["alpha"] == 0.1 and refined["scored_samples"] == 60
    summary = out.strip().splitlines()[-1]
    found = re.search(r"Mean: refined ([\d.]+), argmax ([\d.]+) \(([-+][\d.]+) points\)\. Of (\d+) joints, (\d+) are "
                      r"right only with refined and (\d+) only with argmax; exact McNemar p = ([\d.e-]+)", summary)
    assert found, summary
    mean_refined, mean_argmax, diff, total, only_refined, only_argmax, p_value = map(float, found.groups())
    assert (mean_refined, mean_argmax) == (round(refined["mean"], 2), round(argmax["mean"], 2))
    assert total == 60 * 14
    # the discordant joints account exactly for the difference of the two pooled means
    assert 100 * (only_refined - only_argmax) / total == pytest.approx(refined["mean"] - argmax["mean"], abs=1e-9)
    assert diff == round(refined["mean"] - argmax["mean"], 2)
    assert only_refined + only_argmax > 0
    assert p_value == pytest.approx(mcnemar_p(int(only_refined), int(only_argmax)), rel=5e-3)


def test_evaluate_compare_decoders_refuses_a_predictions_file(data_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["evaluate", "--dataset", "lsp", "--root", str(data_dir / "lsp"), "--split", "train",
                 "--compare-decoders", "--predictions", str(tmp_path / "p.json"), "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--compare-decoders" in err and len(err.strip().splitlines()) == 1


def test_evaluate_compare_weights_pairs_our_lsp_weights_with_the_authors(data_dir: Path, tmp_path: Path,
                                                                         capsys) -> None:
    """A = the authors' RT, B = the shipped lsp weights, on validation images: each report is the one evaluate writes
    alone, and the paired line accounts for their difference."""
    args = ["evaluate", "--dataset", "lsp", "--root", str(data_dir / "lsp"), "--split", "train-b", "--limit", "40",
            "--model", "rt", "--alpha", "0.2", "--backend", "onnxruntime"]
    assert main([*args, "--compare-weights", "lsp", "--output", str(tmp_path)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    a, b = (json.loads((tmp_path / f"lsp-train-b-rt-{k}.json").read_text()) for k in ("a", "b"))
    assert main([*args, "--weights", "lsp", "--output", str(tmp_path / "alone")]) == 0
    alone = json.loads((tmp_path / "alone" / "lsp-train-b-rt.json").read_text())
    assert b["mean"] == alone["mean"] and a["mean"] != b["mean"]
    found = re.search(r"Mean: A \(the authors' weights\) ([\d.]+), B \(lsp\) ([\d.]+) \(([-+][\d.]+) points\)\. "
                      r"Of (\d+) joints, (\d+) are right only with A .* and (\d+) only with B", summary)
    assert found, summary
    mean_a, mean_b, diff, total, only_a, only_b = map(float, found.groups())
    assert (mean_a, mean_b) == (round(a["mean"], 2), round(b["mean"], 2)) and total == 40 * 14
    assert 100 * (only_a - only_b) / total == pytest.approx(a["mean"] - b["mean"], abs=1e-9)
    code = main([*args, "--compare-weights", "lsp", "--compare-decoders", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--compare-weights" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    code = main([*args, "--compare-weights", str(bad), "--output", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 1 and str(bad) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()  # A was scored, but nothing is written without B


def test_compare_lists_every_variant_and_openpose(capsys) -> None:
    assert main(["compare", "--no-latency"]) == 0
    table = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert {"RT", "I", "II", "III", "IV", "RT Lite", "I Lite", "II Lite", "OpenPose"} <= set(rows)
    assert "| 0.46M |" in rows["RT"] and "| 25.97M | 1.0x |" in rows["OpenPose"]
    assert "56.4x" in rows["RT"]  # parameter reduction against the measured OpenPose
    assert "published" in rows["RT"]


@pytest.fixture(scope="module")
def squats_analysis(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("analysis")
    assert main(["analyze", str(data_dir / "video" / "squats_front.mp4"), "--output", str(out),
                 "--backend", "onnxruntime"]) == 0
    return out


def test_analyze_counts_the_squats_seen_by_eye(squats_analysis: Path) -> None:
    reps = json.loads((squats_analysis / "summary.json").read_text())["repetitions"]
    assert reps["count"] == SQUATS_BY_EYE
    assert [abs(r["peak_frame"] - f) <= 2 for r, f in zip(reps["items"], (10, 34, 59), strict=True)] == [True] * 3
    assert [r["complete"] for r in reps["items"]] == [True, True, False]  # the clip ends mid-rise


def test_analyze_runs_the_pose_unsmoothed_and_says_how_it_filtered(squats_analysis: Path) -> None:
    summary = json.loads((squats_analysis / "summary.json").read_text())
    assert json.loads((squats_analysis / "squats_front.json").read_text())["smoothing"] == "none"
    filters = summary["filters"]
    assert filters["input_smoothing"] == "none"
    assert filters["cutoff_hz"] == 6.0 and filters["cutoff_hz_used"] == pytest.approx(2.0)  # 0.8 x 2.5 Hz Nyquist
    assert filters["max_gap_frames"] == 1 and not filters["variable_frame_rate"]
    html = (squats_analysis / "report.html").read_text()
    assert "Butterworth" in html and "Hampel" in html


def test_knee_flexion_is_much_larger_at_the_bottom_than_standing(squats_analysis: Path) -> None:
    with open(squats_analysis / "angles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 65  # one row per frame
    knee = np.array([[float(r[f"{s}_knee_flexion"] or "nan") for s in ("left", "right")] for r in rows])
    knee = np.nanmean(knee, axis=1)
    reps = json.loads((squats_analysis / "summary.json").read_text())["repetitions"]["items"]
    standing = np.nanmedian(knee[:3])
    for rep in reps:
        assert knee[rep["peak_frame"]] > standing + 50


def test_analyze_writes_plots_and_a_self_contained_report(squats_analysis: Path) -> None:
    pngs = sorted(p.name for p in squats_analysis.glob("*.png"))
    assert "knee_flexion.png" in pngs and len(pngs) >= 5
    html = (squats_analysis / "report.html").read_text()
    assert html.count("<img") >= len(pngs) and "data:image/png;base64," in html
