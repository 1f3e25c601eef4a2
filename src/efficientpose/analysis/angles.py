"""Joint angles, inclinations and angular velocities from 2D keypoints, with gaps kept as flagged NaN.

Every angle is the angle between two image-plane vectors (see docs/analysis.md for sketches and signs).
A value is NaN exactly when its flag is not ``OK``: ``GAP`` (a keypoint is missing or scored below the
threshold) or ``UNDEFINED`` (two of its points coincide, so no direction exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from efficientpose.skeleton import KEYPOINTS


class Flag(IntEnum):
    """Why an angle value is (not) available."""

    OK = 0
    GAP = 1
    UNDEFINED = 2


@dataclass(frozen=True)
class AngleDef:
    """An angle between vector ``u`` and vector ``v`` (each a (from, to) keypoint pair).

    With ``v`` set: the unsigned angle in [0, 180] between ``u`` and ``v``. Without: the signed inclination
    of ``u`` from image up, in (-180, 180], positive when ``u`` leans toward the image's right.
    """

    name: str
    u: tuple[str, str]
    v: tuple[str, str] | None = None

    @property
    def signed(self) -> bool:
        return self.v is None

    @property
    def points(self) -> tuple[str, ...]:
        """The keypoints this angle reads, without repeats."""
        return tuple(dict.fromkeys(self.u + (self.v or ())))


def _side(side: str) -> tuple[AngleDef, ...]:
    s = side
    return (
        AngleDef(f"{s}_elbow_flexion", (f"{s}_shoulder", f"{s}_elbow"), (f"{s}_elbow", f"{s}_wrist")),
        AngleDef(f"{s}_shoulder_elevation", ("thorax", "pelvis"), (f"{s}_shoulder", f"{s}_elbow")),
        AngleDef(f"{s}_hip_flexion", ("thorax", "pelvis"), (f"{s}_hip", f"{s}_knee")),
        AngleDef(f"{s}_knee_flexion", (f"{s}_hip", f"{s}_knee"), (f"{s}_knee", f"{s}_ankle")),
    )


#: Every angle this module measures, in output (CSV column) order.
ANGLES: tuple[AngleDef, ...] = (
    *_side("left"),
    *_side("right"),
    AngleDef("trunk_inclination", ("pelvis", "thorax")),
    AngleDef("neck_inclination", ("upper_neck", "head_top")),
)
ANGLE_NAMES: tuple[str, ...] = tuple(a.name for a in ANGLES)

#: Left/right pairs by joint: ``{"knee_flexion": ("left_knee_flexion", "right_knee_flexion"), ...}``.
PAIRS: dict[str, tuple[str, str]] = {
    a.name[len("left_"):]: (a.name, "right_" + a.name[len("left_"):]) for a in ANGLES if a.name.startswith("left_")
}

#: Segments shorter than this many pixels count as coincident points: their direction is undefined.
MIN_SEGMENT_PX = 1e-3


def keypoint_validity(keypoints: np.ndarray, score_threshold: float = 0.0) -> np.ndarray:
    """(..., K) mask of keypoints usable for angles: finite x, y, score and score >= ``score_threshold``."""
    kp = np.asarray(keypoints, dtype=np.float64)
    finite = np.isfinite(kp).all(axis=-1)
    return finite & (np.where(finite, kp[..., 2], -np.inf) >= score_threshold)


def vector_angle(u: np.ndarray, v: np.ndarray, min_length: float = MIN_SEGMENT_PX) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned angle in degrees between (..., 2) vectors and a mask of where it is defined (both long enough)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    defined = (np.hypot(u[..., 0], u[..., 1]) >= min_length) & (np.hypot(v[..., 0], v[..., 1]) >= min_length)
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(axis=-1)
    angle = np.degrees(np.arctan2(np.abs(cross), dot))  # atan2 is exact near 0 and 180, unlike arccos
    return np.where(defined, angle, np.nan), defined


def inclination(u: np.ndarray, min_length: float = MIN_SEGMENT_PX) -> tuple[np.ndarray, np.ndarray]:
    """Signed angle in degrees of (..., 2) image vectors from image up (positive = toward image right), and mask."""
    u = np.asarray(u, dtype=np.float64)
    defined = np.hypot(u[..., 0], u[..., 1]) >= min_length
    angle = np.degrees(np.arctan2(u[..., 0], -u[..., 1]))  # image y points down, so "up" is -y
    return np.where(defined, angle, np.nan), defined


def compute_angles(
    keypoints: np.ndarray,
    score_threshold: float = 0.0,
    names: tuple[str, ...] = KEYPOINTS,
    min_length: float = MIN_SEGMENT_PX,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every angle of :data:`ANGLES` for (T, K, 3) or (K, 3) keypoints: (values in degrees, :class:`Flag` codes).

    Values are NaN exactly where the flag is GAP (a keypoint missing or below ``score_threshold``) or
    UNDEFINED (coincident points); GAP wins when both apply.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim < 2 or kp.shape[-2:] != (len(names), 3):
        raise ValueError(f"keypoints must have shape (..., {len(names)}, 3), got {kp.shape}")
    valid = keypoint_validity(kp, score_threshold)
    xy = np.where(valid[..., None], kp[..., :2], 0.0)  # placeholders keep the maths warning-free; masked below
    index = {name: i for i, name in enumerate(names)}

    def vec(pair: tuple[str, str]) -> np.ndarray:
        return xy[..., index[pair[1]], :] - xy[..., index[pair[0]], :]

    values: dict[str, np.ndarray] = {}
    flags: dict[str, np.ndarray] = {}
    for angle in ANGLES:
        present = np.all([valid[..., index[p]] for p in angle.points], axis=0)
        if angle.v is None:
            value, defined = inclination(vec(angle.u), min_length)
        else:
            value, defined = vector_angle(vec(angle.u), vec(angle.v), min_length)
        flag = np.full(present.shape, Flag.OK, dtype=np.uint8)
        flag[~defined] = Flag.UNDEFINED
        flag[~present] = Flag.GAP
        values[angle.name] = np.where(flag == Flag.OK, value, np.nan)
        flags[angle.name] = flag
    return values, flags


def angular_velocity(values: np.ndarray, times: np.ndarray, periodic: bool = False) -> np.ndarray:
    """Angular velocity in degrees per second: central differences, one-sided beside gaps, NaN where unknown.

    A frame gets a velocity only if its own angle is known and at least one neighbour's is. ``periodic``
    wraps differences into [-180, 180) (for signed inclinations).
    """
    a = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    if a.size < 2:
        return out
    ok = np.isfinite(a)

    def rate(i0: np.ndarray, i1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dt = t[i1] - t[i0]
        usable = ok[i0] & ok[i1] & (dt > 0)
        da = np.where(usable, a[i1] - a[i0], 0.0)
        if periodic:
            da = (da + 180.0) % 360.0 - 180.0
        return np.where(usable, da / np.where(usable, dt, 1.0), np.nan), usable

    idx = np.arange(a.size)
    prev, nxt = np.clip(idx - 1, 0, a.size - 1), np.clip(idx + 1, 0, a.size - 1)
    for i0, i1 in ((prev, nxt), (idx, nxt), (prev, idx)):  # central first, then forward, then backward
        r, usable = rate(i0, i1)
        fill = ok & usable & np.isnan(out)
        out[fill] = r[fill]
    return out
