"""OpenSim .trc/.mot and .c3d exports, read back by OpenSim's own readers and C3D libraries, same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_analysis_reps import blazepose_to_predictions

from efficientpose.analysis import ANGLE_NAMES, analyze
from efficientpose.analysis.exports import marker_positions
from efficientpose.cli import main
from efficientpose.skeleton import KEYPOINTS


@pytest.fixture(scope="module", params=["pixels", "metres"])
def exported(request: pytest.FixtureRequest, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The squats clip's analysis with every export, uncalibrated and calibrated; a few keypoints hidden."""
    predictions = blazepose_to_predictions(data_dir / "video" / "squats_front.blazepose-full-2d.json")
    for frame in predictions["frames"][20:30]:  # a long gap: stays missing
        frame["keypoints"]["left_wrist"]["score"] = 0.0
    out = tmp_path_factory.mktemp(request.param)
    height = 1.65 if request.param == "metres" else None
    analysis = analyze(predictions, out, export=("trc", "mot", "c3d"), height_m=height)
    return analysis, out


def test_every_export_is_written(exported: tuple) -> None:
    analysis, out = exported
    for name in ("keypoints.trc", "angles.mot", "keypoints.c3d"):
        assert (out / name).stat().st_size > 0
    assert {"trc", "mot", "c3d"} <= set(analysis.outputs)


def test_trc_header_is_opensims(exported: tuple) -> None:
    analysis, out = exported
    lines = (out / "keypoints.trc").read_text().split("\n")
    assert lines[0].split("\t")[:3] == ["PathFileType", "4", "(X/Y/Z)"]
    assert lines[1].split("\t") == ["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                                    "OrigDataStartFrame", "OrigNumFrames"]
    values = lines[2].split("\t")
    assert len(values) == 8 and values[2] == str(len(analysis.times)) and values[3] == "16"
    assert values[4] == ("m" if analysis.summary["scale"]["metres_per_pixel"] else "px")
    assert [t for t in lines[3].split("\t") if t] == ["Frame#", "Time", *KEYPOINTS]
    assert lines[5] == "" and lines[6].startswith("1\t")  # a blank line, then Frame# from 1
    assert all(len(row.split("\t")) == 2 + 3 * 16 for row in lines[6:-1])


def test_trc_reads_back_in_opensim_with_the_same_values(exported: tuple) -> None:
    osim = pytest.importorskip("opensim")
    analysis, out = exported
    assert list(osim.TRCFileAdapter().read(str(out / "keypoints.trc")).keys()) == ["markers"]
    table = osim.TimeSeriesTableVec3(str(out / "keypoints.trc"))  # OpenSim picks TRCFileAdapter by the suffix
    assert table.getNumRows() == len(analysis.times) and table.getNumColumns() == 16
    assert list(table.getColumnLabels()) == list(KEYPOINTS)
    assert table.getTableMetaDataString("Units") == ("m" if analysis.summary["scale"]["metres_per_pixel"] else "px")
    expected, _ = marker_positions(analysis)
    got = np.array([[[table.getDependentColumnAtIndex(k)[t].get(d) for d in range(3)] for k in range(16)]
                    for t in range(table.getNumRows())])
    np.testing.assert_allclose(np.asarray(table.getIndependentColumn()), analysis.times, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))  # missing markers read as NaN
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], atol=2e-6)
    wrist = KEYPOINTS.index("left_wrist")
    assert np.isnan(got[22:28, wrist]).all()
    # +Y up: the head is above the ankles
    assert (got[:, KEYPOINTS.index("head_top"), 1] > got[:, KEYPOINTS.index("left_ankle"), 1]).all()
    assert (got[..., 2][np.isfinite(got[..., 2])] == 0).all()


def test_mot_reads_back_in_opensim_with_the_same_values(exported: tuple) -> None:
    osim = pytest.importorskip("opensim")
    analysis, out = exported
    text = (out / "angles.mot").read_text()
    assert f"nColumns={1 + len(ANGLE_NAMES)}" in text and "inDegrees=yes" in text
    assert not any(" " in label for label in text.split("endheader\n")[1].split("\n")[0].split("\t"))
    table = osim.TimeSeriesTable(str(out / "angles.mot"))  # read by OpenSim's STO/MOT file adapter
    assert list(table.getColumnLabels()) == list(ANGLE_NAMES)
    assert table.getTableMetaDataString("inDegrees") == "yes"
    got = np.array([np.asarray(table.getDependentColumn(name).to_numpy()) for name in ANGLE_NAMES]).T
    expected = np.array([analysis.angles[name] for name in ANGLE_NAMES]).T
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], atol=1e-6)


def test_c3d_reads_back_in_ezc3d_and_c3d_with_the_same_values_and_missing_marked(exported: tuple) -> None:
    analysis, out = exported
    expected, unit = marker_positions(analysis)
    if unit == "m":
        expected = expected * 1000
    missing = ~np.isfinite(expected).all(axis=-1)
    ezc3d = pytest.importorskip("ezc3d")
    c = ezc3d.c3d(str(out / "keypoints.c3d"))
    assert c["parameters"]["POINT"]["LABELS"]["value"] == list(KEYPOINTS)
    assert c["parameters"]["POINT"]["UNITS"]["value"] == ["mm" if unit == "m" else "px"]
    assert c["parameters"]["POINT"]["RATE"]["value"][0] == pytest.approx(5.0, rel=1e-4)
    points = c["data"]["points"]  # (4, K, T); missing points read as NaN
    assert points.shape == (4, 16, len(analysis.times))
    got = points[:3].transpose(2, 1, 0)
    np.testing.assert_array_equal(np.isnan(got).any(axis=-1), missing)
    np.testing.assert_allclose(got[~missing], expected[~missing], rtol=1e-6, atol=1e-3)
    c3d = pytest.importorskip("c3d")
    with open(out / "keypoints.c3d", "rb") as f:
        frames = list(c3d.Reader(f).read_frames())
    assert len(frames) == len(analysis.times)
    for t, (_, pts, _) in enumerate(frames):
        assert ((pts[:, 3] < 0) == missing[t]).all()  # residual -1 marks a missing point
        np.testing.assert_allclose(pts[~missing[t], :3], expected[t, ~missing[t]], rtol=1e-6, atol=1e-3)


def test_cli_export_flag(exported: tuple, tmp_path: Path) -> None:
    analysis, out = exported
    json_path = tmp_path / "squats.json"
    # the analysis of a predictions file: only the requested export
    import json

    from test_analysis_angles import predictions

    poses = [analysis.raw_keypoints[t] for t in range(len(analysis.times))]
    json_path.write_text(json.dumps(predictions(poses, fps=5.0)))
    assert main(["analyze", str(json_path), "--output", str(tmp_path / "a"), "--export", "mot"]) == 0
    assert (tmp_path / "a" / "angles.mot").is_file() and not (tmp_path / "a" / "keypoints.trc").exists()
    assert main(["analyze", str(json_path), "--output", str(tmp_path / "b"), "--export", "bvh"]) == 2
