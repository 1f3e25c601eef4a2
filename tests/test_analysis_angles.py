"""Angle maths on constructed poses with known angles (including degenerate ones), velocities, gaps, the loader."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efficientpose.analysis import FilterParams, Flag, angular_velocity, compute, compute_angles
from efficientpose.analysis.angles import ANGLE_NAMES
from efficientpose.analysis.core import load_predictions, mpii_keypoints
from efficientpose.analysis.summary import range_of_motion, symmetry
from efficientpose.errors import InputError
from efficientpose.skeleton import KEYPOINTS

# A person standing straight and facing the camera, arms hanging: every angle is 0. Image y points down and the
# person's right side is on the image's left.
STANDING = {
    "head_top": (0, 0), "upper_neck": (0, 30), "thorax": (0, 50), "pelvis": (0, 150),
    "right_shoulder": (-20, 50), "right_elbow": (-20, 100), "right_wrist": (-20, 150),
    "left_shoulder": (20, 50), "left_elbow": (20, 100), "left_wrist": (20, 150),
    "right_hip": (-10, 150), "right_knee": (-10, 220), "right_ankle": (-10, 290),
    "left_hip": (10, 150), "left_knee": (10, 220), "left_ankle": (10, 290),
}


def pose(**moved: tuple[float, float]) -> np.ndarray:
    """(16, 3) keypoints: the standing pose with some points moved, all scored 1."""
    points = STANDING | moved
    return np.array([[*points[name], 1.0] for name in KEYPOINTS], dtype=np.float64)


def at(origin: str, length: float, degrees_from_down: float) -> tuple[float, float]:
    """A point ``length`` from ``origin``, ``degrees_from_down`` counter-clockwise (on screen) from straight down."""
    x, y = STANDING[origin]
    a = math.radians(degrees_from_down)
    return x + length * math.sin(a), y + length * math.cos(a)


def angles_of(kp: np.ndarray, **kw: float) -> tuple[dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may escape, degenerate or not
        return compute_angles(kp, **kw)


def test_standing_pose_is_all_zero() -> None:
    values, flags = angles_of(pose())
    for name in ANGLE_NAMES:
        assert values[name] == pytest.approx(0.0, abs=1e-9), name
        assert flags[name] == Flag.OK


@pytest.mark.parametrize("bend", [0.0, 30.0, 45.0, 90.0, 135.0, 180.0])
def test_knee_and_elbow_flexion_grow_with_bending(bend: float) -> None:
    # Shank/forearm rotated by ``bend`` from the straight-on continuation of the thigh/upper arm.
    values, _ = angles_of(pose(left_ankle=at("left_knee", 70, bend), right_wrist=at("right_elbow", 50, -bend)))
    assert values["left_knee_flexion"] == pytest.approx(bend, abs=1e-9)
    assert values["right_elbow_flexion"] == pytest.approx(bend, abs=1e-9)
    assert values["right_knee_flexion"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("elbow", "expected"), [
    (at("left_shoulder", 50, 90), 90.0),     # arm out horizontally
    (at("left_shoulder", 50, 180), 180.0),   # arm straight overhead
    (at("left_shoulder", 50, -45), 45.0),    # arm across the body: unsigned
])
def test_shoulder_elevation_against_the_trunk(elbow: tuple[float, float], expected: float) -> None:
    values, _ = angles_of(pose(left_elbow=elbow))
    assert values["left_shoulder_elevation"] == pytest.approx(expected, abs=1e-9)


def test_hip_flexion_is_thigh_against_trunk_axis() -> None:
    values, _ = angles_of(pose(right_knee=at("right_hip", 70, 90)))  # thigh forward horizontally (side view)
    assert values["right_hip_flexion"] == pytest.approx(90.0, abs=1e-9)
    # A trunk leaning 30 deg with an unchanged thigh is 30 deg of hip flexion.
    leaning = pose(thorax=(100 * math.sin(math.radians(30)), 150 - 100 * math.cos(math.radians(30))))
    values, _ = angles_of(leaning)
    assert values["left_hip_flexion"] == pytest.approx(30.0, abs=1e-9)
    assert values["trunk_inclination"] == pytest.approx(30.0, abs=1e-9)


@pytest.mark.parametrize("lean", [-120.0, -30.0, 0.0, 15.0, 90.0, 180.0])
def test_inclinations_are_signed_positive_toward_image_right(lean: float) -> None:
    a = math.radians(lean)
    thorax = (100 * math.sin(a), 150 - 100 * math.cos(a))  # pelvis at (0, 150); y down, so "up" is -y
    head_top = (30 * math.sin(a), 30 - 30 * math.cos(a))  # upper_neck at (0, 30)
    values, _ = angles_of(pose(thorax=thorax, head_top=head_top))
    assert values["trunk_inclination"] == pytest.approx(lean, abs=1e-9)
    assert values["neck_inclination"] == pytest.approx(lean, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    bend=st.floats(0, 180),
    thigh=st.floats(1, 500),
    shank=st.floats(1, 500),
    rotation=st.floats(-180, 180),
    shift=st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
)
def test_flexion_is_invariant_to_rotation_scale_and_shift(bend: float, thigh: float, shank: float, rotation: float,
                                                          shift: tuple[float, float]) -> None:
    # hip -> knee points along ``rotation``; knee -> ankle turns a further ``bend``.
    r, b = math.radians(rotation), math.radians(rotation + bend)
    hip = np.array(shift)
    knee = hip + thigh * np.array([math.cos(r), math.sin(r)])
    ankle = knee + shank * np.array([math.cos(b), math.sin(b)])
    values, flags = angles_of(pose(left_hip=tuple(hip), left_knee=tuple(knee), left_ankle=tuple(ankle)))
    assert flags["left_knee_flexion"] == Flag.OK
    assert values["left_knee_flexion"] == pytest.approx(bend, abs=1e-6)


def test_coincident_points_are_undefined_not_nan_silently() -> None:
    kp = pose(left_ankle=STANDING["left_knee"], pelvis=STANDING["thorax"])
    values, flags = angles_of(kp)
    assert flags["left_knee_flexion"] == Flag.UNDEFINED and np.isnan(values["left_knee_flexion"])
    for name in ("trunk_inclination", "left_shoulder_elevation", "right_hip_flexion"):  # all read thorax->pelvis
        assert flags[name] == Flag.UNDEFINED and np.isnan(values[name]), name
    assert flags["right_knee_flexion"] == Flag.OK and values["right_knee_flexion"] == pytest.approx(0.0)
    # Everything in one point: every angle undefined, still no crash or warning.
    values, flags = angles_of(np.tile([5.0, 5.0, 1.0], (16, 1)))
    assert all(flags[n] == Flag.UNDEFINED and np.isnan(values[n]) for n in ANGLE_NAMES)


def test_nearly_coincident_points_still_measure_an_angle() -> None:
    knee = STANDING["left_knee"]
    values, flags = angles_of(pose(left_ankle=(knee[0] + 0.01, knee[1])))
    assert flags["left_knee_flexion"] == Flag.OK
    assert values["left_knee_flexion"] == pytest.approx(90.0)


def test_low_scores_and_missing_points_are_gaps_and_gap_wins_over_undefined() -> None:
    kp = pose(left_ankle=STANDING["left_knee"])
    kp[KEYPOINTS.index("left_ankle"), 2] = 0.1  # coincident and low-scored: a gap
    kp[KEYPOINTS.index("right_wrist")] = np.nan
    values, flags = angles_of(kp, score_threshold=0.5)
    assert flags["left_knee_flexion"] == Flag.GAP and np.isnan(values["left_knee_flexion"])
    assert flags["right_elbow_flexion"] == Flag.GAP and np.isnan(values["right_elbow_flexion"])
    assert flags["left_hip_flexion"] == Flag.OK  # does not read the ankle
    values, flags = angles_of(kp, score_threshold=0.0)  # below-threshold is the only gap reason for a finite point
    assert flags["left_knee_flexion"] == Flag.UNDEFINED


def test_sequences_and_shape_checks() -> None:
    seq = np.stack([pose(), pose(left_ankle=at("left_knee", 70, 90)), np.full((16, 3), np.nan)])
    values, flags = angles_of(seq)
    np.testing.assert_allclose(values["left_knee_flexion"][:2], [0.0, 90.0], atol=1e-9)
    assert flags["left_knee_flexion"].tolist() == [Flag.OK, Flag.OK, Flag.GAP]
    with pytest.raises(ValueError, match="shape"):
        compute_angles(np.zeros((3, 14, 3)))


def test_angular_velocity_central_one_sided_and_gaps() -> None:
    t = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    a = 10.0 * t * 10  # 100 deg/s
    a[4] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = angular_velocity(a, t)
    assert np.isnan(v[4])  # no velocity where the angle is unknown
    np.testing.assert_allclose(v[[0, 1, 2, 3, 5, 6]], 100.0)  # one-sided beside the gap and at the ends
    assert np.isnan(angular_velocity(np.array([1.0, np.nan, 3.0]), np.arange(3.0))).all()
    assert angular_velocity(np.array([5.0]), np.array([0.0])).tolist() == [pytest.approx(np.nan, nan_ok=True)]


def test_angular_velocity_wraps_signed_inclinations() -> None:
    t = np.arange(3.0)
    a = np.array([178.0, -180.0, -178.0])  # +2 deg per second through the +-180 seam
    np.testing.assert_allclose(angular_velocity(a, t, periodic=True), 2.0)
    assert angular_velocity(a, t)[0] == pytest.approx(-358.0)


def test_range_of_motion_and_symmetry() -> None:
    values = np.array([10.0, np.nan, 50.0, 5.0, 50.0])
    rom = range_of_motion(values, np.arange(5) * 0.5, np.arange(5) + 7)
    assert rom["min"] == 5.0 and rom["min_frame"] == 10 and rom["min_time"] == 1.5
    assert rom["max"] == 50.0 and rom["max_frame"] == 9  # first occurrence
    assert rom["mean"] == pytest.approx(28.75) and rom["range"] == 45.0 and rom["valid_frames"] == 4
    assert range_of_motion(np.full(3, np.nan), np.arange(3.0), np.arange(3))["min"] is None
    sym = symmetry(np.array([0.0, 40.0, np.nan]), np.array([10.0, 30.0, 20.0]))
    assert sym["left_range"] == 40.0 and sym["right_range"] == 20.0
    assert sym["symmetry_index"] == pytest.approx(100 * 20 / 30)
    assert sym["mean_abs_difference"] == pytest.approx(10.0) and sym["frames_compared"] == 2
    assert symmetry(np.zeros(3), np.zeros(3))["symmetry_index"] is None


# ---------------------------------------------------------------------------------------------------------------
# The predict JSON, the Analysis object and to_dataframe().
# ---------------------------------------------------------------------------------------------------------------


def predictions(poses: list[np.ndarray], fps: float = 10.0) -> dict:
    frames = [{"frame": i, "time": i / fps,
               "keypoints": {n: {"x": float(x), "y": float(y), "score": float(s)} for n, (x, y, s) in zip(
                   KEYPOINTS, p, strict=True)}} for i, p in enumerate(poses)]
    return {"file": "constructed.mp4", "width": 200, "height": 320, "fps": fps, "model": "rt", "frames": frames}


def test_predictions_are_read_by_name_and_missing_points_are_nan() -> None:
    data = predictions([pose(), pose(left_ankle=at("left_knee", 70, 90))])
    data["frames"][1]["keypoints"]["head_top"] = {"x": None, "y": None, "score": None}
    loaded = load_predictions(data)
    kps = mpii_keypoints(loaded)
    assert kps.shape == (2, 16, 3) and loaded.frames.tolist() == [0, 1]
    np.testing.assert_array_equal(kps[0], pose())
    assert np.isnan(kps[1, KEYPOINTS.index("head_top")]).all()
    assert compute(data, filters=FilterParams.off()).times.tolist() == [0.0, 0.1]


def test_other_skeletons_are_matched_by_name_not_read_as_gaps() -> None:
    """A model with COCO-like names: pelvis and thorax come from the hip and shoulder midpoints; keypoints that
    cannot be derived are named in the error instead of silently becoming gaps."""
    data = predictions([pose(left_ankle=at("left_knee", 70, 10 * i)) for i in range(3)])
    for frame in data["frames"]:
        kp = frame["keypoints"]
        frame["keypoints"] = {"nose": kp["head_top"]} | {n: v for n, v in kp.items() if n not in ("pelvis", "thorax")}
    analysis = compute(data, filters=FilterParams.off())
    assert analysis.angles["left_knee_flexion"] == pytest.approx([0, 10, 20])
    assert np.isfinite(analysis.angles["trunk_inclination"]).all()
    for frame in data["frames"]:
        del frame["keypoints"]["head_top"]
    with pytest.raises(InputError, match="head_top"):
        compute(data)


def test_summary_reports_missing_and_undefined() -> None:
    poses = [pose(left_ankle=at("left_knee", 70, 10 * i)) for i in range(10)]
    poses[3] = pose(left_ankle=STANDING["left_knee"])  # undefined
    poses[5][KEYPOINTS.index("left_knee"), 2] = 0.0  # gap
    analysis = compute(predictions(poses), filters=FilterParams.off())
    miss = analysis.summary["missing"]
    assert miss["angles"]["left_knee_flexion"] == {"gap": 1, "undefined": 1, "fraction_missing": 0.2}
    assert miss["keypoints_below_threshold"]["left_knee"] == pytest.approx(0.1)
    assert miss["frames_with_missing_angles"] == 2
    rom = analysis.summary["angles"]["left_knee_flexion"]
    assert rom["max"] == pytest.approx(90.0) and rom["max_frame"] == 9 and rom["valid_frames"] == 8
    assert rom["max_speed"] == pytest.approx(100.0)  # 10 deg per 0.1 s
    table = analysis.table()
    assert table["left_knee_flexion_flag"][[3, 5]].tolist() == ["undefined", "gap"]
    json.dumps(analysis.summary, allow_nan=False)  # strict JSON: undefined values are None, never NaN


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"frames": []}', '{"frames": [{"keypoints": 3}]}'])
def test_bad_prediction_files_name_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(InputError, match="broken.json"):
        compute(path)


def test_missing_file_and_unordered_times(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothere.json"):
        compute(tmp_path / "nothere.json")
    data = predictions([pose(), pose()])
    data["frames"][1]["time"] = 0.0
    with pytest.raises(InputError, match="times must increase"):
        compute(data)
    data["frames"][1]["time"] = None  # a frame without a time is refused by the one reader, not guessed
    with pytest.raises(InputError, match="time is not a number"):
        compute(data)


def test_to_dataframe_with_pandas() -> None:
    pd = pytest.importorskip("pandas")
    analysis = compute(predictions([pose(left_ankle=at("left_knee", 70, 9 * i)) for i in range(5)]),
                       filters=FilterParams.off())
    df = analysis.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 5 and df.index.name == "frame"
    assert df["left_knee_flexion"].tolist() == pytest.approx([0, 9, 18, 27, 36])
    assert set(df["left_knee_flexion_flag"]) == {"ok"}


def test_to_dataframe_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes "import pandas" raise ImportError
    analysis = compute(predictions([pose(), pose()]))
    with pytest.raises(ImportError, match=r"pip install 'efficientpose\[pandas\]'"):
        analysis.to_dataframe()


# Every angle's sign convention, one row per angle (docs/analysis.md, "Sign conventions"): a pose and the value
# it must give. Flexion and elevation are unsigned (bending either way is positive); inclinations are signed,
# positive toward the image's right.
SIGNS = [
    ("left_elbow_flexion", {"left_wrist": at("left_elbow", 50, 90)}, 90.0),
    ("right_elbow_flexion", {"right_wrist": at("right_elbow", 50, 90)}, 90.0),  # bent the other way: still +
    ("left_shoulder_elevation", {"left_elbow": at("left_shoulder", 50, 90)}, 90.0),
    ("right_shoulder_elevation", {"right_elbow": at("right_shoulder", 50, -90)}, 90.0),
    ("left_hip_flexion", {"left_knee": at("left_hip", 70, 60)}, 60.0),
    ("right_hip_flexion", {"right_knee": at("right_hip", 70, -60)}, 60.0),
    ("left_knee_flexion", {"left_ankle": at("left_knee", 70, -45)}, 45.0),
    ("right_knee_flexion", {"right_ankle": at("right_knee", 70, 45)}, 45.0),
    ("trunk_inclination", {"thorax": (50.0, 150 - 50 * math.sqrt(3))}, 30.0),  # leaning to the image's right
    ("trunk_inclination", {"thorax": (-50.0, 150 - 50 * math.sqrt(3))}, -30.0),  # and to its left
    ("neck_inclination", {"head_top": (-15.0, 30 - 15 * math.sqrt(3))}, -30.0),
    ("neck_inclination", {"head_top": (0.0, 60.0)}, 180.0),  # upside down
]


@pytest.mark.parametrize(("name", "moved", "expected"), SIGNS, ids=[f"{n}={v:g}" for n, _, v in SIGNS])
def test_each_angle_sign_is_pinned(name: str, moved: dict, expected: float) -> None:
    values, _ = angles_of(pose(**moved))
    assert values[name] == pytest.approx(expected, abs=1e-9)


def test_every_angle_has_a_pinned_sign() -> None:
    assert {name for name, _, _ in SIGNS} == set(ANGLE_NAMES)
