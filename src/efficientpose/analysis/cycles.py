"""Cycle normalisation: stretches of a signal (repetitions, gait cycles) resampled onto 0-100 %, mean and SD."""

from __future__ import annotations

import numpy as np

#: Cycle-normalised curves have this many points (0 to 100 %).
CURVE_POINTS = 101


def normalised_cycles(values: np.ndarray, times: np.ndarray, spans: list[tuple[int, int]],
                      points: int = CURVE_POINTS) -> dict:
    """``{"mean", "sd", "cycles"}`` of ``values`` over each (first, last) index span, each resampled in time onto
    ``points`` from 0 to 100 %. Spans with a gap or fewer than 3 samples are left out; mean and SD are None
    when none is left."""
    grid = np.linspace(0.0, 1.0, points)
    cycles = []
    for a, b in spans:
        seg, t = values[a:b + 1], times[a:b + 1]
        if seg.size >= 3 and np.isfinite(seg).all() and t[-1] > t[0]:
            cycles.append(np.interp(grid, (t - t[0]) / (t[-1] - t[0]), seg))
    if not cycles:
        return {"mean": None, "sd": None, "cycles": 0}
    c = np.stack(cycles)
    return {"mean": c.mean(0).tolist(), "sd": c.std(0).tolist(), "cycles": len(cycles)}


def percent_axis(points: int = CURVE_POINTS) -> list[float]:
    """The x axis of :func:`normalised_cycles`: 0 to 100 %."""
    return np.linspace(0.0, 100.0, points).tolist()
