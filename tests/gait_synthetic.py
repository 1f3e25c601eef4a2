"""A synthetic side-view walker with known gait events, for the gait and swap tests."""

from __future__ import annotations

import numpy as np

from efficientpose.skeleton import KEYPOINTS

FPS = 30.0
STRIDE_S = 1.1  #: heel strike to heel strike of the same foot
STANCE = 0.6  #: stance share of the stride (so 10 % double support at each end)
SPEED = 150.0  #: pelvis speed, px/s
RAMP = 0.1  #: share of the swing spent speeding up and slowing down (feet land with a quick deceleration)


def _swing(fraction: np.ndarray) -> np.ndarray:
    """Share of the swing distance covered at ``fraction`` of the swing time: a trapezoidal speed profile."""
    f = np.clip(fraction, 0.0, 1.0)
    top = 1.0 / (1.0 - RAMP)  # plateau speed (distance 1 over time 1)
    up = 0.5 * top * f ** 2 / RAMP
    mid = 0.5 * top * RAMP + top * (f - RAMP)
    down = 1.0 - 0.5 * top * (1.0 - f) ** 2 / RAMP
    return np.where(f < RAMP, up, np.where(f > 1.0 - RAMP, down, mid))


def walker(passes: tuple[tuple[float, int], ...] = ((4.4, 1),), turn_s: float = 1.5,
           fps: float = FPS) -> tuple[dict, dict[str, list[float]]]:
    """(predictions dict, {"left_hs", "right_hs", "left_to", "right_to", "turning"}: true event times).

    ``passes`` are (duration, direction) of straight walks separated by turns of ``turn_s`` on the spot (the
    pelvis slows down, stops and starts the other way; both feet stand)."""
    stride_len = SPEED * STRIDE_S
    t_all, px_all, feet_all = [], [], []
    truth: dict[str, list[float]] = {"left_hs": [], "right_hs": [], "left_to": [], "right_to": [], "turning": []}
    t0, x0 = 0.0, 300.0
    for k, (duration, direction) in enumerate(passes):
        if k:
            n = int(round(turn_s * fps))
            tt = t0 + np.arange(n) / fps
            t_all.append(tt)
            px_all.append(np.full(n, x0))
            feet_all.append(np.stack([np.full(n, x0 - 10.0), np.full(n, x0 + 10.0)], axis=1))
            truth["turning"] += [tt[0], tt[-1]]
            t0 = tt[-1] + 1 / fps
        n = int(round(duration * fps))
        tt = np.arange(n) / fps  # time within the pass
        pel = x0 + direction * SPEED * tt
        feet = np.empty((n, 2))
        for s, side in enumerate(("left", "right")):
            offset = 0.0 if side == "left" else STRIDE_S / 2
            strikes = np.arange(-2, duration / STRIDE_S + 2) * STRIDE_S + offset + 0.3
            for hs in strikes:
                place = x0 + direction * (SPEED * hs + 0.3 * stride_len)
                to = hs + STANCE * STRIDE_S
                nxt = hs + STRIDE_S
                stance = (tt >= hs) & (tt < to)
                swing = (tt >= to) & (tt < nxt)
                feet[stance, s] = place
                feet[swing, s] = place + direction * stride_len * _swing((tt[swing] - to) / (nxt - to))
                if 0.5 <= hs <= duration - 0.5:
                    truth[f"{side}_hs"].append(t0 + hs)
                if 0.5 <= to <= duration - 0.5:
                    truth[f"{side}_to"].append(t0 + to)
        t_all.append(t0 + tt)
        px_all.append(pel)
        feet_all.append(feet)
        t0, x0 = t0 + tt[-1] + 1 / fps, pel[-1]
    times = np.concatenate(t_all)
    return _predictions(times, np.concatenate(px_all), np.concatenate(feet_all), fps), truth


def _predictions(times: np.ndarray, pelvis_x: np.ndarray, feet_x: np.ndarray, fps: float) -> dict:
    """Whole skeletons around the pelvis and feet tracks (side view, upright trunk, knees slightly bent)."""
    frames = []
    ground, hip_y = 800.0, 560.0
    for i, t in enumerate(times):
        px = pelvis_x[i]
        p = {"pelvis": (px, hip_y), "thorax": (px, 380.0), "upper_neck": (px, 350.0), "head_top": (px, 290.0)}
        for s, side in enumerate(("left", "right")):
            ax = feet_x[i, s]
            p[f"{side}_hip"] = (px + (2 if side == "left" else -2), hip_y)
            p[f"{side}_ankle"] = (ax, ground)
            p[f"{side}_knee"] = ((px + ax) / 2 + 15.0, (hip_y + ground) / 2)
            p[f"{side}_shoulder"] = (px, 390.0)
            p[f"{side}_elbow"] = (px + (5 if side == "left" else -5), 470.0)
            p[f"{side}_wrist"] = (px + (10 if side == "left" else -10), 540.0)
        frames.append({"frame": i, "time": float(t),
                       "keypoints": {n: {"x": float(p[n][0]), "y": float(p[n][1]), "score": 0.9} for n in KEYPOINTS}})
    return {"file": "synthetic_walk.mp4", "width": 1920, "height": 1080, "fps": fps, "model": "synthetic",
            "frames": frames}
