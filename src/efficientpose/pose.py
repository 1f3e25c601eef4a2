"""The result type: one person's keypoints in the original image's pixels, with the image size and the region the
network saw, and its one serialiser (strict JSON: a value that is not a finite number is null)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from efficientpose.skeleton import KEYPOINTS

#: Keypoints scoring below this are treated as not seen: not drawn, not tracked from, gaps in analysis.
DEFAULT_THRESHOLD = 0.3

Box = tuple[float, float, float, float]  #: x0, y0, x1, y1 in original pixels


def json_number(value: Any) -> float | None:
    """``value`` as a float for strict JSON: None (null) for NaN, infinities and anything that is not a number."""
    if isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def json_safe(value: Any) -> Any:
    """Nested dicts, lists and arrays as strict-JSON values: numpy scalars become Python ones, NaN and infinities
    None (null); strings and other values pass unchanged."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return json_number(value)
    return value


@dataclass(frozen=True)
class Pose:
    """Keypoints (K, 3) = x, y in the original image's pixels (pixel centres at +0.5), then score in [0, 1].

    ``image_size`` is the original image's (width, height) and ``roi`` the region (x0, y0, x1, y1) the network
    saw, None for the whole image; both None when unknown (a pose read back from a file, or built by hand).

    When a person was looked for (a detector, the window search), ``box`` is the person's region (x0, y0, x1, y1,
    original-image pixels, the package's continuous convention, x0 <= x1, y0 <= y1) and ``person_score`` in
    [0, 1] how sure the pose model is that it is a person; both None when nobody was found or nobody looked.
    """

    keypoints: np.ndarray
    names: tuple[str, ...] = KEYPOINTS
    image_size: tuple[int, int] | None = None
    roi: Box | None = None
    box: Box | None = None
    person_score: float | None = None

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints)
        if kp.ndim != 2 or kp.shape[1] != 3 or kp.shape[0] != len(self.names):
            raise ValueError(f"keypoints of shape {kp.shape} do not match {len(self.names)} names "
                             f"(expected ({len(self.names)}, 3))")
        object.__setattr__(self, "names", tuple(self.names))
        if self.box is not None:
            box = tuple(float(v) for v in np.asarray(self.box, dtype=np.float64).reshape(-1))
            if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"box must be 4 finite numbers x0, y0, x1, y1 with x0 <= x1 and y0 <= y1, "
                                 f"got {self.box!r}")
            object.__setattr__(self, "box", box)
        if self.person_score is not None:
            score = json_number(self.person_score)
            if score is None or not 0.0 <= score <= 1.0:
                raise ValueError(f"person_score must be a number in [0, 1], got {self.person_score!r}")
            object.__setattr__(self, "person_score", score)

    @property
    def xy(self) -> np.ndarray:
        """(K, 2) coordinates."""
        return self.keypoints[:, :2]

    @property
    def scores(self) -> np.ndarray:
        """(K,) per-keypoint confidence in [0, 1]."""
        return self.keypoints[:, 2]

    @property
    def mean_score(self) -> float:
        """The mean keypoint score: how sure the network is of the whole pose (what tracking compares)."""
        return float(self.scores.mean())

    @property
    def xyn(self) -> np.ndarray:
        """(K, 2) coordinates divided by the image's width and height (needs ``image_size``)."""
        if self.image_size is None:
            raise ValueError("this pose does not know its image size")
        return self.xy / np.asarray(self.image_size, dtype=np.float64)

    def to_dict(self) -> dict[str, dict[str, float | None]]:
        """``{name: {"x": …, "y": …, "score": …}}`` in output order: strict JSON (null where not a number), the
        form of the ``keypoints`` field of the prediction files."""
        return {
            name: {"x": json_number(x), "y": json_number(y), "score": json_number(s)}
            for name, (x, y, s) in zip(self.names, self.keypoints, strict=True)
        }
