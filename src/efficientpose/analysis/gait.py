"""Gait from 2D keypoints (Stenum et al. 2021): events, passes and turns, temporal parameters, cadence, curves.

Heel strike is a peak of the horizontal ankle-to-pelvis distance in the walking direction (the foot farthest
ahead of the pelvis), toe off a peak of the distance behind it. The distance of the foot farthest ahead (and
farthest behind) is taken over both ankles, so a left/right label swap by the model does not move an event;
the side of each event comes from the (swap-repaired) labels, with the sides alternating step by step.
Turns (the pelvis stops or reverses) split the clip into straight passes, each analysed on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from efficientpose.analysis.cycles import normalised_cycles, percent_axis
from efficientpose.analysis.filters import FilterParams, clean, frame_interval, is_variable_rate, runs
from efficientpose.skeleton import KEYPOINTS

#: Frames where the pelvis moves slower than this fraction of its typical walking speed are turning or standing.
TURN_SPEED_FRACTION = 0.3
#: A straight pass must last at least this long (seconds) to be analysed.
MIN_PASS_S = 1.0
#: A heel strike stands out from the distance's troughs by at least this fraction of its range.
EVENT_PROMINENCE = 0.3
#: Two heel strikes (or toe offs) are at least this far apart in time (seconds): faster than any running step.
MIN_STEP_S = 0.2


@dataclass(frozen=True)
class GaitEvent:
    """One event: ``kind`` "heel_strike" or "toe_off", the side ("left"/"right"), frame index and time."""

    kind: str
    side: str
    index: int
    frame: int
    time: float
    pass_index: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "side": self.side, "frame": self.frame, "time": self.time,
                "pass": self.pass_index}


def walking_passes(pelvis_x: np.ndarray, times: np.ndarray, min_pass_s: float = MIN_PASS_S,
                   speed_fraction: float = TURN_SPEED_FRACTION) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """([(start, stop, direction), ...] straight passes, (T,) turning mask) from the pelvis's horizontal track.

    Direction is +1 toward the image's right, -1 toward its left. Frames where the pelvis moves slower than
    ``speed_fraction`` of its median walking speed, or has no position, belong to no pass (turns and stops).
    """
    x = np.asarray(pelvis_x, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    v = np.gradient(x, t) if x.size > 1 else np.zeros_like(x)
    speed = np.abs(v)
    moving = np.isfinite(v)
    typical = float(np.nanmedian(speed[moving])) if moving.any() else 0.0
    passes = []
    turning = np.ones(x.size, dtype=bool)
    if typical <= 0:
        return passes, turning
    for direction in (1, -1):
        along = moving & (np.sign(np.where(moving, v, 0.0)) == direction) & (speed >= speed_fraction * typical)
        for start, stop in runs(along):
            if t[stop - 1] - t[start] >= min_pass_s:
                passes.append((start, stop, direction))
                turning[start:stop] = False
    return sorted(passes), turning


def _alternate(votes: list[str]) -> list[str]:
    """Sides for a run of steps: alternating, starting with the side that agrees with more of the votes."""
    first = ["left" if i % 2 == 0 else "right" for i in range(len(votes))]
    second = ["right" if s == "left" else "left" for s in first]
    agree = sum(a == b for a, b in zip(first, votes, strict=True))
    return first if 2 * agree >= len(votes) else second


def detect_events(ankles_x: np.ndarray, pelvis_x: np.ndarray, times: np.ndarray, direction: int,
                  filters: FilterParams | None = None) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Heel strikes and toe offs of one straight pass: ([(index, side), ...], [(index, side), ...]).

    ``ankles_x`` is (T, 2) left and right ankle x (NaN = missing), ``pelvis_x`` (T,), ``direction`` +1/-1.
    """
    ahead = direction * (np.asarray(ankles_x, dtype=np.float64) - np.asarray(pelvis_x, dtype=np.float64)[:, None])
    filters = filters or FilterParams()
    with np.errstate(all="ignore"):
        front = clean(np.nanmax(np.where(np.isfinite(ahead), ahead, -np.inf), axis=1), times, filters).values
        back = clean(np.nanmax(np.where(np.isfinite(ahead), -ahead, -np.inf), axis=1), times, filters).values
    t = np.asarray(times, dtype=np.float64)
    # Peaks are found on a uniform time grid (the frames' own when the rate is constant), then put on the frame
    # nearest in time: with a variable rate, a distance in samples is no distance in time.
    grid = np.linspace(t[0], t[-1], max(t.size, int(np.ceil((t[-1] - t[0]) / frame_interval(t))) + 1)) \
        if is_variable_rate(t) else t
    dt = float(grid[1] - grid[0]) if grid.size > 1 else 1.0
    out = []
    for envelope, sign in ((front, 1.0), (back, -1.0)):
        env = np.where(np.isfinite(envelope), envelope, np.nan)
        ok = np.isfinite(env)
        if ok.sum() < 3:
            out.append([])
            continue
        lo, hi = np.nanpercentile(env, [5, 95])
        filled = np.interp(grid, t[ok], env[ok])
        found, _ = find_peaks(filled, prominence=EVENT_PROMINENCE * (hi - lo),
                              distance=max(1, int(round(MIN_STEP_S / dt))))
        nearest = [int(np.argmin(np.abs(t - grid[g]))) for g in found]
        peaks = [p for p in dict.fromkeys(nearest) if ok[p]]
        votes = []
        for p in peaks:
            window = sign * ahead[max(0, p - 2): p + 3]  # the left ankle leads (or trails) in most of these frames?
            lead = np.sign(window[:, 0] - window[:, 1])
            votes.append("left" if np.nansum(lead) >= 0 else "right")
        out.append(list(zip(peaks, _alternate(votes), strict=True)))
    return out[0], out[1]


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size)}


def analyse_gait(keypoints: np.ndarray, available: np.ndarray, times: np.ndarray, frames: np.ndarray,
                 angles: dict[str, np.ndarray], filters: FilterParams | None = None,
                 names: tuple[str, ...] = KEYPOINTS, metres_per_pixel: float | None = None,
                 raw_ankles: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The ``gait`` object of summary.json: passes, events, per-stride and per-side parameters, cadence and
    cycle-normalised hip and knee curves. ``keypoints`` are the (swap-repaired, cleaned) (T, K, 3). Step
    length and speed are in metres with ``metres_per_pixel``, else in pixels. ``raw_ankles`` ((T, K, 3)
    keypoints and (T, K) validity, swap-repaired but not cleaned) are used for the events when given: the
    distance of the foot ahead is cleaned as one signal, whichever ankle is ahead."""
    unit = metres_per_pixel or 1.0
    t = np.asarray(times, dtype=np.float64)
    index = {n: i for i, n in enumerate(names)}
    pel = np.where(available[:, index["pelvis"]], keypoints[:, index["pelvis"], 0], np.nan)
    src_kp, src_ok = raw_ankles if raw_ankles is not None else (keypoints, available)
    ankles = np.stack([np.where(src_ok[:, index[f"{s}_ankle"]], src_kp[:, index[f"{s}_ankle"], 0], np.nan)
                       for s in ("left", "right")], axis=1)
    passes, turning = walking_passes(pel, t)
    events: list[GaitEvent] = []
    cadences, weights = [], []
    pass_info = []
    for k, (start, stop, direction) in enumerate(passes):
        span = slice(start, stop)
        strikes, offs = detect_events(ankles[span], pel[span], t[span], direction, filters)
        for kind, found in (("heel_strike", strikes), ("toe_off", offs)):
            events += [GaitEvent(kind, side, start + i, int(frames[start + i]), float(t[start + i]), k)
                       for i, side in found]
        hs = [t[start + i] for i, _ in strikes]
        cadence = 60.0 * (len(hs) - 1) / (hs[-1] - hs[0]) if len(hs) >= 2 and hs[-1] > hs[0] else None
        if cadence is not None:
            cadences.append(cadence)
            weights.append(hs[-1] - hs[0])
        duration = float(t[stop - 1] - t[start])
        moved = pel[start:stop][np.isfinite(pel[start:stop])]
        pass_info.append({"index": k, "start_frame": int(frames[start]), "end_frame": int(frames[stop - 1]),
                          "direction": "right" if direction > 0 else "left", "duration": duration,
                          "heel_strikes": len(hs), "cadence_steps_per_min": cadence,
                          "speed": abs(float(moved[-1] - moved[0])) * unit / duration if moved.size > 1 else None})
    events.sort(key=lambda e: e.index)
    strides = _strides(events, t)
    for st in strides:  # step length: the feet's horizontal distance at this heel strike
        i = int(np.searchsorted(t, st["start_time"]))
        gap = abs(ankles[i, 0] - ankles[i, 1])
        st["step_length"] = float(gap * unit) if np.isfinite(gap) else None
    per_side = {}
    for side in ("left", "right"):
        mine = [s for s in strides if s["side"] == side]
        per_side[side] = {key: _stats([s[key] for s in mine if s[key] is not None])
                          for key in ("step_time", "stride_time", "stance_time", "swing_time", "double_support_time",
                                      "stance_percent", "swing_percent", "double_support_percent", "step_length")}
    step_l, step_r = per_side["left"]["step_time"]["mean"], per_side["right"]["step_time"]["mean"]
    return {
        "method": "Stenum et al. 2021: heel strike / toe off at peaks of the horizontal ankle-pelvis distance",
        "cadence_steps_per_min": float(np.average(cadences, weights=weights)) if cadences else None,
        "length_unit": "m" if metres_per_pixel else "px",
        "speed": _pooled_speed(pass_info),
        "steps": sum(1 for e in events if e.kind == "heel_strike"),
        "passes": pass_info,
        "turning_frames": int(turning.sum()),
        "turning_note": "frames where the pelvis turns, stops or is not seen belong to no pass and are left out",
        "events": [e.to_dict() for e in events],
        "strides": strides,
        "left": per_side["left"],
        "right": per_side["right"],
        "step_time_symmetry_index": 100.0 * (step_l - step_r) / ((step_l + step_r) / 2)
        if step_l and step_r else None,
        "curves": _curves(events, angles, t),
    }


def _pooled_speed(passes: list[dict]) -> float | None:
    """Gait speed (length unit per second) over all passes, weighted by their durations."""
    usable = [p for p in passes if p["speed"] is not None and p["duration"] > 0]
    if not usable:
        return None
    return float(np.average([p["speed"] for p in usable], weights=[p["duration"] for p in usable]))


def _next(events: list[GaitEvent], after: float, kind: str, side: str | None, before: float | None,
          pass_index: int) -> GaitEvent | None:
    for e in events:
        if (e.time > after and e.kind == kind and (side is None or e.side == side) and e.pass_index == pass_index
                and (before is None or e.time <= before)):
            return e
    return None


def _strides(events: list[GaitEvent], times: np.ndarray) -> list[dict]:
    """One record per stride (heel strike to the next heel strike of the same side, within one pass)."""
    strikes = [e for e in events if e.kind == "heel_strike"]
    out = []
    for i, hs in enumerate(strikes):
        nxt = _next(strikes, hs.time, "heel_strike", hs.side, None, hs.pass_index)
        prev_other = strikes[i - 1] if i > 0 and strikes[i - 1].pass_index == hs.pass_index \
            and strikes[i - 1].side != hs.side else None
        record = {"side": hs.side, "pass": hs.pass_index, "start_frame": hs.frame, "start_time": hs.time,
                  "end_frame": nxt.frame if nxt else None,
                  "step_time": hs.time - prev_other.time if prev_other else None,
                  "stride_time": nxt.time - hs.time if nxt else None,
                  "stance_time": None, "swing_time": None, "double_support_time": None,
                  "stance_percent": None, "swing_percent": None, "double_support_percent": None}
        if nxt is not None:
            stride = nxt.time - hs.time
            other = "right" if hs.side == "left" else "left"
            to = _next(events, hs.time, "toe_off", hs.side, nxt.time, hs.pass_index)
            to_other = _next(events, hs.time, "toe_off", other, nxt.time, hs.pass_index)
            hs_other = _next(strikes, hs.time, "heel_strike", other, nxt.time, hs.pass_index)
            if to is not None:
                record["stance_time"], record["swing_time"] = to.time - hs.time, nxt.time - to.time
                record["stance_percent"] = 100 * record["stance_time"] / stride
                record["swing_percent"] = 100 * record["swing_time"] / stride
            if to is not None and to_other is not None and hs_other is not None and to_other.time < hs_other.time \
                    < to.time:
                record["double_support_time"] = (to_other.time - hs.time) + (to.time - hs_other.time)
                record["double_support_percent"] = 100 * record["double_support_time"] / stride
            record["stride_complete"] = True
        else:
            record["stride_complete"] = False
        out.append(record)
    return [r for r in out if r["stride_complete"] or r["step_time"] is not None]


def _curves(events: list[GaitEvent], angles: dict[str, np.ndarray], times: np.ndarray) -> dict:
    """Hip and knee flexion over the gait cycle (0-100 %, heel strike to heel strike), mean and SD per side."""
    strikes = [e for e in events if e.kind == "heel_strike"]
    out: dict = {"percent": percent_axis()}
    for joint in ("hip_flexion", "knee_flexion"):
        out[joint] = {}
        for side in ("left", "right"):
            spans = []
            for hs in (e for e in strikes if e.side == side):
                nxt = _next(strikes, hs.time, "heel_strike", side, None, hs.pass_index)
                if nxt is not None:
                    spans.append((hs.index, nxt.index))
            values = angles.get(f"{side}_{joint}")
            out[joint][side] = normalised_cycles(values, times, spans) if values is not None else \
                {"mean": None, "sd": None, "cycles": 0}
    return out
