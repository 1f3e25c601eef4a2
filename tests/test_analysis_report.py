"""The analysis outputs on the real squats clip: angles.csv, summary.json, plots, report.html, and a browser check."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import cv2
import pytest
from test_analysis_reps import SQUATS_BY_EYE, blazepose_to_predictions

from efficientpose.analysis import Analysis, analyze
from efficientpose.analysis.report import PLOTS
from efficientpose.skeleton import KEYPOINTS

CHROMIUM = os.environ.get("EFFICIENTPOSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module", params=["blazepose"])
def squats_predictions(request: pytest.FixtureRequest, data_dir: Path) -> dict:
    """Predictions for squats_front.mp4 in the predict JSON format; one param per prediction source."""
    if request.param == "blazepose":
        return blazepose_to_predictions(data_dir / "video" / "squats_front.blazepose-full-2d.json")
    raise AssertionError(request.param)


@pytest.fixture(scope="module")
def report(squats_predictions: dict, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, Path]:
    out = tmp_path_factory.mktemp("analysis")
    json_path = out / "squats_front.json"
    json_path.write_text(json.dumps(squats_predictions))
    analysis = analyze(json_path, out / "report", video=data_dir / "video" / "squats_front.mp4")
    return analysis, out / "report"


def test_writes_every_output_and_nothing_half_written(report: tuple[Analysis, Path]) -> None:
    analysis, out = report
    signal = analysis.summary["repetitions"]["signal"]
    expected = {"angles.csv", "summary.json", "report.html", f"repetition_{signal}.png"} | {f"{p}.png" for p in PLOTS}
    assert {p.name for p in out.iterdir()} == expected  # no temporary files left behind
    assert {p.name for p in analysis.outputs.values()} == expected


def test_csv_has_one_row_per_frame(report: tuple[Analysis, Path]) -> None:
    analysis, out = report
    with open(out / "angles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 65
    assert [int(r["frame"]) for r in rows] == list(range(65))
    assert float(rows[10]["left_knee_flexion"]) > 60  # the bottom of the first squat
    assert {r["left_knee_flexion_flag"] for r in rows} == {"ok"}
    assert list(rows[0])[:5] == ["frame", "time", "left_elbow_flexion", "left_elbow_flexion_velocity",
                                 "left_elbow_flexion_flag"]


def test_summary_json_is_strict_and_matches(report: tuple[Analysis, Path]) -> None:
    analysis, out = report
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert summary["repetitions"]["count"] == SQUATS_BY_EYE
    assert summary["frames"] == 65 and summary["fps"] == 5.0
    assert summary["missing"]["frames_with_missing_angles"] == 0
    assert summary == json.loads(json.dumps(analysis.summary))


def test_plots_are_real_pngs(report: tuple[Analysis, Path]) -> None:
    _, out = report
    for plot in PLOTS:
        image = cv2.imread(str(out / f"{plot}.png"))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 400, plot
        assert image.std() > 10, plot


def test_html_is_self_contained(report: tuple[Analysis, Path]) -> None:
    _, out = report
    page = (out / "report.html").read_text(encoding="utf-8")
    # Base64 payloads can spell anything by chance, so scan the page with them removed.
    text = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "data:", page)
    assert "http" not in text.lower()
    assert "//" not in text  # no protocol-relative URLs either
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:") for s in sources)
    assert len(re.findall(r"<img ", page)) >= len(PLOTS) + 2  # the plots and some key frames
    assert "Repetitions" in page and "Missing data" in page


def test_report_without_video_draws_on_white(squats_predictions: dict, tmp_path: Path) -> None:
    analysis = analyze(squats_predictions, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Key frames" in page and "repetition 3 at its peak" in page
    assert analysis.outputs["html"] == tmp_path / "report.html"


def test_a_clip_with_nothing_measured_still_reports_what_is_missing(tmp_path: Path) -> None:
    empty = {"x": None, "y": None, "score": None}  # how the predict JSON writes a missing keypoint
    data = {"file": "<b>odd</b>.mp4", "fps": 10.0,
            "frames": [{"frame": i, "time": i / 10, "keypoints": dict.fromkeys(KEYPOINTS, empty)} for i in range(4)]}
    analysis = analyze(data, tmp_path)
    assert analysis.summary["missing"]["frames_with_missing_angles"] == 4
    assert analysis.summary["repetitions"]["count"] == 0
    assert analysis.summary["angles"]["left_knee_flexion"]["max"] is None
    with open(tmp_path / "angles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]["left_knee_flexion"] == "" and rows[0]["left_knee_flexion_flag"] == "gap"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "4 of 4 frames" in page and "&lt;b&gt;odd&lt;/b&gt;.mp4" in page and "<b>odd</b>" not in page


def _std(png: Path) -> float:
    """Grey-level spread of an image: about 0 for a blank page."""
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return float(image.std())


def _render(html_file: Path, screenshot: Path) -> tuple[list[str], list[list], list[str]]:
    """Open a page in headless Chromium: (console errors, [complete, naturalWidth, naturalHeight, alt] per <img>,
    URLs requested). Any request that is not file: or data: is recorded and aborted, never sent."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
            page.goto(html_file.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.alt])"
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return errors, images, requests


def test_report_renders_in_headless_chromium(report: tuple[Analysis, Path], tmp_path: Path) -> None:
    _, out = report
    errors, images, requests = _render(out / "report.html", tmp_path / "report.png")
    assert errors == []
    assert len(images) >= len(PLOTS) + 2
    broken = [alt for complete, w, h, alt in images if not (complete and w > 0 and h > 0)]
    assert broken == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # nothing fetched from a network
    assert _std(tmp_path / "report.png") > 20


def test_report_v2_quality_panel_curves_keyframes_and_print_pages(report: tuple[Analysis, Path]) -> None:
    analysis, out = report
    page = (out / "report.html").read_text()
    assert page.count("<section>") >= 6 and "@media print" in page and "break-after:page" in page
    assert "<h2>Data quality</h2>" in page and "outliers (%)" in page and "swaps repaired" in page
    # a front-view squat bends the thighs toward the camera: the report warns that it is not in the image plane
    quality = analysis.summary["quality"]
    assert quality["warning"] and "thigh" in " ".join(quality["out_of_plane_segments"])
    assert 'class="warn"' in page and "not in the image plane" in page
    assert "Cycle-normalised curves" in page and "over each repetition" not in page  # the title is in the PNG
    assert page.count('alt="repetition_') == 1
    assert page.count("at its peak") >= analysis.summary["repetitions"]["count"]  # key frames at the peaks
    assert "L/R ratio" in page


def test_compare_two_sessions_side_by_side(report: tuple[Analysis, Path], squats_predictions: dict,
                                           tmp_path: Path) -> None:
    from efficientpose.cli import main

    _, before = report
    after = tmp_path / "after"
    shallower = json.loads(json.dumps(squats_predictions))
    shallower["frames"] = shallower["frames"][:45]  # the same session cut short: two squats
    analyze(shallower, after)
    assert main(["analyze", "--compare", str(before), str(after), "--output", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "<b>A</b> (before)" in page and "B &minus; A" in page
    assert "<td>repetitions</td><td>3</td><td>2</td><td>-1</td>" in page.replace(".0", "")
    errors, images, requests = _render(tmp_path / "cmp" / "compare.html", tmp_path / "compare.png")
    assert errors == [] and all(u.startswith(("file:", "data:")) for u in requests)
    assert len(images) >= 2 * len(PLOTS)
    assert [alt for complete, w, h, alt in images if not (complete and w > 0 and h > 0)] == []
    assert main(["analyze", "--compare", str(before), str(tmp_path / "nothing"), "--output", str(tmp_path)]) == 1


def test_gait_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from gait_synthetic import walker

    predictions, _ = walker(((4.4, 1),))
    analyze(predictions, tmp_path, activity="gait")
    errors, images, _ = _render(tmp_path / "report.html", tmp_path / "gait.png")
    assert errors == [] and len(images) >= len(PLOTS) + 2
    assert [alt for complete, w, h, alt in images if not (complete and w > 0 and h > 0)] == []


def test_browser_check_catches_broken_pages(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                    '<img src="missing.png" alt="gone"><script>undefinedFunction()</script></body></html>')
    errors, images, _ = _render(page, tmp_path / "broken.png")
    assert errors  # the script error and the failed image load
    assert [alt for complete, w, h, alt in images if w == 0] == ["gone"]
    assert _std(tmp_path / "broken.png") < 5  # and the page is (nearly) blank
