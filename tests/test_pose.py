"""The result type: shape checked against the names, image size and region, and one strict-JSON serialiser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from efficientpose.errors import InputError, UsageError
from efficientpose.pose import Pose, json_number, json_safe
from efficientpose.skeleton import KEYPOINTS


def test_to_dict_is_strict_json_with_null_for_what_is_not_a_number() -> None:
    kp = np.tile([10.5, 20.25, 0.75], (16, 1))
    kp[3] = [np.nan, np.inf, -np.inf]
    data = Pose(kp).to_dict()
    assert list(data) == list(KEYPOINTS) and data["head_top"] == {"x": 10.5, "y": 20.25, "score": 0.75}
    assert data[KEYPOINTS[3]] == {"x": None, "y": None, "score": None}
    json.dumps(data, allow_nan=False)  # strict JSON


def test_shape_must_match_the_names_and_size_and_region_are_kept() -> None:
    with pytest.raises(ValueError, match="do not match 16 names"):
        Pose(np.zeros((17, 3)))
    with pytest.raises(ValueError):
        Pose(np.zeros((16, 2)))
    pose = Pose(np.tile([64.0, 24.0, 0.5], (16, 1)), image_size=(128, 48), roi=(0.0, 0.0, 64.0, 48.0))
    np.testing.assert_allclose(pose.xyn, np.tile([0.5, 0.5], (16, 1)))
    assert pose.mean_score == 0.5 and pose.roi == (0.0, 0.0, 64.0, 48.0)
    with pytest.raises(ValueError, match="image size"):
        _ = Pose(np.zeros((16, 3))).xyn


def test_json_helpers() -> None:
    assert [json_number(v) for v in (1, 2.5, np.float32(0.5), math.nan, math.inf, "x", None, True)] == [
        1.0, 2.5, 0.5, None, None, None, None, None]
    assert json_safe({"a": [np.int64(3), np.nan, (np.float64(1.5), "s")], "b": np.bool_(True)}) == {
        "a": [3, None, [1.5, "s"]], "b": True}


def test_package_errors_are_ordinary_value_errors() -> None:
    assert issubclass(UsageError, ValueError) and issubclass(InputError, ValueError)
