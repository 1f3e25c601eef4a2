"""Real units: metres per pixel from the subject's height or a known length in the picture.

Height: the body's length in pixels is the chain shoulder midpoint -> hip midpoint -> knee -> ankle (the mean
of the two legs), which does not change as joints bend and avoids the head, whose top and neck the model
places least surely (a back view put them 34 and 20 px off in a 540 px person). Its 90th percentile over the
clip (frames where the body is seen at full length) is taken as shoulder-to-ankle height, 77.9 % of standing
height (shoulder 0.818 H and ankle joint 0.039 H above the floor: Winter, Biomechanics and Motor Control of
Human Movement, 2009). Both scales assume the movement is in a plane parallel to the picture at the subject's
distance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from efficientpose.errors import UsageError
from efficientpose.skeleton import KEYPOINTS

#: Shoulder to ankle as a share of standing height (shoulder 0.818 H, ankle joint 0.039 H; Winter 2009).
SHOULDER_TO_ANKLE_SHARE = 0.818 - 0.039
#: Percentile of the per-frame body length taken as the full length.
LENGTH_PERCENTILE = 90


@dataclass(frozen=True)
class Scale:
    """Metres per pixel and how they were found (``source``: "height" or "calibration")."""

    metres_per_pixel: float
    source: str
    detail: dict

    def to_dict(self) -> dict:
        return {"metres_per_pixel": self.metres_per_pixel, "source": self.source, **self.detail}


def body_length_px(keypoints: np.ndarray, available: np.ndarray, names: tuple[str, ...] = KEYPOINTS) -> np.ndarray:
    """(T,) shoulder midpoint -> hip midpoint -> knee -> ankle length in pixels, the legs averaged (one leg where
    the other is unmeasured); NaN where unmeasured."""
    i = {n: k for k, n in enumerate(names)}
    xy = np.where(available[..., None], keypoints[..., :2], np.nan)

    def seg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.hypot(*(a - b).T)

    shoulders = (xy[:, i["left_shoulder"]] + xy[:, i["right_shoulder"]]) / 2
    hips = (xy[:, i["left_hip"]] + xy[:, i["right_hip"]]) / 2
    legs = np.stack([seg(xy[:, i[f"{s}_hip"]], xy[:, i[f"{s}_knee"]]) + seg(xy[:, i[f"{s}_knee"]],
                                                                          xy[:, i[f"{s}_ankle"]])
                     for s in ("left", "right")])
    counted = np.isfinite(legs).sum(axis=0)
    leg = np.where(counted > 0, np.where(np.isfinite(legs), legs, 0.0).sum(axis=0) / np.maximum(counted, 1), np.nan)
    return seg(shoulders, hips) + leg


def scale_from_height(keypoints: np.ndarray, available: np.ndarray, height_m: float) -> Scale:
    """The scale that makes the subject ``height_m`` metres tall (see the module docstring)."""
    if not height_m > 0:
        raise UsageError(f"--height must be a positive number of metres, got {height_m}")
    lengths = body_length_px(keypoints, available)
    finite = lengths[np.isfinite(lengths)]
    if finite.size == 0:
        raise UsageError("--height: the body's length is never measured (shoulders, hips, knees and ankles "
                         "are never all seen); use --calibrate instead")
    height_px = float(np.percentile(finite, LENGTH_PERCENTILE)) / SHOULDER_TO_ANKLE_SHARE
    return Scale(height_m / height_px, "height", {"height_m": height_m, "height_px": height_px,
                                                  "frames_measured": int(finite.size)})


def parse_calibration(text: str) -> tuple[tuple[float, float, float, float], float]:
    """``"X1,Y1,X2,Y2=METRES"`` -> ((x1, y1, x2, y2), metres); UsageError naming the problem."""
    m = re.fullmatch(r"\s*([^,=]+),([^,=]+),([^,=]+),([^,=]+)=\s*([^=]+?)\s*m?\s*", text)
    try:
        if m is None:
            raise ValueError
        points = tuple(float(v) for v in m.groups()[:4])
        metres = float(m.group(5))
    except ValueError:
        raise UsageError(f"--calibrate {text!r}: expected X1,Y1,X2,Y2=METRES (pixels, then the length in metres)") \
            from None
    return points, metres  # type: ignore[return-value]


def scale_from_calibration(points: tuple[float, float, float, float], metres: float) -> Scale:
    """The scale from two image points (pixels) a known distance (metres) apart."""
    x1, y1, x2, y2 = points
    px = float(np.hypot(x2 - x1, y2 - y1))
    if not (px > 0 and metres > 0):
        raise UsageError("--calibrate: the two points must differ and the length must be positive")
    return Scale(metres / px, "calibration", {"points_px": list(points), "length_m": metres, "length_px": px})


def displacement(keypoints: np.ndarray, available: np.ndarray, times: np.ndarray, scale: Scale | None,
                 names: tuple[str, ...] = KEYPOINTS) -> dict:
    """The pelvis's net displacement (first to last measured frame) and path length, in metres when scaled
    (+y up, as OpenSim; x to the image's right), else pixels (image y down)."""
    p = names.index("pelvis")
    ok = available[:, p]
    unit = "m" if scale else "px"
    if ok.sum() < 2:
        return {"unit": unit, "dx": None, "dy": None, "distance": None, "path": None}
    xy = keypoints[ok, p, :2]
    f = scale.metres_per_pixel if scale else 1.0
    flip = -1.0 if scale else 1.0
    d = xy[-1] - xy[0]
    return {"unit": unit, "dx": float(d[0] * f), "dy": float(flip * d[1] * f), "distance": float(np.hypot(*d) * f),
            "path": float(np.hypot(*np.diff(xy, axis=0).T).sum() * f),
            "from_time": float(times[ok][0]), "to_time": float(times[ok][-1])}
