"""Temporal smoothing of keypoints in video: the One Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A first-order low-pass whose cutoff rises with speed: ``cutoff = min_cutoff + beta * |velocity|`` (Hz,
velocity in pixels/s, taken as the 2-D speed of each keypoint so x and y share one cutoff). The velocity is the
low-passed (``d_cutoff``) difference of consecutive raw positions, as in the authors' reference code. Slow motion is
smoothed hard (little jitter), fast motion lightly (little lag). Time stamps are real seconds, so variable
frame rates and dropped frames are handled.

Missing keypoints (score below ``min_score`` or non-finite coordinates) do not update their state; the
filter outputs the last filtered position (NaN if there is none yet). A keypoint that comes back after a
gap longer than ``reset_after`` seconds restarts from its new raw position instead of gliding from stale state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from efficientpose.errors import UsageError

__all__ = ["DEFAULT_SMOOTHING", "OneEuroFilter", "SmoothingParams", "smooth_sequence"]


@dataclass(frozen=True)
class SmoothingParams:
    """One-Euro filter parameters (Casiez et al. 2012) for video keypoints, in pixels and seconds: the defaults of
    the filter, the predict job and the CLI alike."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive number of Hz, got {value}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise UsageError(f"--beta must be a number >= 0, got {self.beta}")


DEFAULT_SMOOTHING = SmoothingParams()


def _alpha(dt: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
    """Smoothing factor of an exponential low-pass with the given cutoff (Hz) for a step of dt seconds."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter for K keypoints; call it once per frame with (K, 2) positions and a time stamp."""

    def __init__(self, min_cutoff: float = DEFAULT_SMOOTHING.min_cutoff, beta: float = DEFAULT_SMOOTHING.beta,
                 d_cutoff: float = DEFAULT_SMOOTHING.d_cutoff,
                 min_score: float = 0.0, reset_after: float = 0.5) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.min_score = float(min_score)
        self.reset_after = float(reset_after)
        self.reset()

    def reset(self) -> None:
        """Forget all state (e.g. at a scene cut or a new video)."""
        self._x: np.ndarray | None = None  # (K, 2) filtered positions
        self._raw: np.ndarray | None = None  # (K, 2) raw positions of the last update
        self._dx: np.ndarray | None = None  # (K, 2) filtered velocities (px/s)
        self._t: np.ndarray | None = None  # (K,) time of each keypoint's last update; NaN = never
        self._last_t: float | None = None

    def __call__(self, xy: np.ndarray, t: float, scores: np.ndarray | None = None) -> np.ndarray:
        """Filter one frame: ``xy`` (K, 2) pixels at time ``t`` seconds -> filtered (K, 2) float64."""
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"expected (K, 2) coordinates, got shape {xy.shape}")
        t = float(t)
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"time stamps must not decrease ({t} after {self._last_t})")
        k = xy.shape[0]
        if self._x is None:
            self._x = np.full((k, 2), np.nan)
            self._raw = np.full((k, 2), np.nan)
            self._dx = np.zeros((k, 2))
            self._t = np.full(k, np.nan)
        elif self._x.shape[0] != k:
            raise ValueError(f"expected {self._x.shape[0]} keypoints, got {k}")
        self._last_t = t

        seen = np.isfinite(xy).all(axis=1)
        if scores is not None:
            seen &= np.asarray(scores, dtype=np.float64) >= self.min_score
        dt = t - self._t  # NaN where never updated
        fresh = seen & ~(dt <= self.reset_after)  # first sighting or back after a long gap: restart
        step = seen & (dt > 0) & (dt <= self.reset_after)

        if fresh.any():
            self._x[fresh] = xy[fresh]
            self._raw[fresh] = xy[fresh]
            self._dx[fresh] = 0.0
            self._t[fresh] = t
        if step.any():
            dts = dt[step][:, None]
            prev = self._x[step]
            velocity = (xy[step] - self._raw[step]) / dts
            dx = self._dx[step] + _alpha(dts, np.full_like(dts, self.d_cutoff)) * (velocity - self._dx[step])
            cutoff = self.min_cutoff + self.beta * np.linalg.norm(dx, axis=1, keepdims=True)
            self._x[step] = prev + _alpha(dts, cutoff) * (xy[step] - prev)
            self._dx[step] = dx
            self._raw[step] = xy[step]
            self._t[step] = t
        return self._x.copy()


def smooth_sequence(xy: np.ndarray, times: np.ndarray, scores: np.ndarray | None = None,
                    **params: float) -> np.ndarray:
    """Run a fresh :class:`OneEuroFilter` over a whole track: (T, K, 2) positions at (T,) seconds."""
    filt = OneEuroFilter(**params)
    xy = np.asarray(xy, dtype=np.float64)
    out = np.empty_like(xy)
    for i in range(xy.shape[0]):
        out[i] = filt(xy[i], times[i], None if scores is None else scores[i])
    return out
