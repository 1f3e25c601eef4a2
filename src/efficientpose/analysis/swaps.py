"""Left/right swap repair: frames where the model exchanged a limb pair's labels, found and undone.

For each left/right pair (hips, knees, ankles, shoulders, elbows, wrists), every frame is either labelled
as predicted or swapped. The labelling of the whole clip is chosen by dynamic programming (Viterbi over the
labels of two consecutive frames) to minimise, in trunk lengths:
  * the acceleration of both points (a swap makes both jump and come back: smooth motion is cheap, and legs
    crossing in a side view keep their velocity through the crossing), and
  * the change of segment length to the (already repaired) parent joint against its median (a swapped ankle
    under an unswapped knee gives two wrong shank lengths),
plus a small price for every swapped frame, so ambiguous frames keep the model's labels.
"""

from __future__ import annotations

import numpy as np

from efficientpose.skeleton import KEYPOINTS

#: (left, right, parent on each side or None), proximal before distal so parents are repaired first.
PAIRS: tuple[tuple[str, str, str | None], ...] = (
    ("left_hip", "right_hip", None),
    ("left_knee", "right_knee", "hip"),
    ("left_ankle", "right_ankle", "knee"),
    ("left_shoulder", "right_shoulder", None),
    ("left_elbow", "right_elbow", "shoulder"),
    ("left_wrist", "right_wrist", "elbow"),
)

#: Price of labelling a frame swapped, in trunk lengths (keeps the model's labels where the evidence is even).
SWAP_PRICE = 0.05
#: Points closer than this (in trunk lengths) coincide: swapping them is no repair.
COINCIDENT = 0.05
#: Weight of the segment-length term against the acceleration term.
LENGTH_WEIGHT = 1.0


def _side(joint: str, side: str) -> str:
    return f"{side}_{joint}"


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis; 0 where either point is missing (no evidence either way)."""
    diff = a - b
    d = np.hypot(diff[..., 0], diff[..., 1])
    return np.where(np.isfinite(d), d, 0.0)


def best_labelling(points: np.ndarray, lengths: np.ndarray | None = None, scale: float = 1.0,
                   price: float = SWAP_PRICE) -> np.ndarray:
    """(T,) bool: which frames of a (T, 2, 2) left/right point pair (NaN = missing) to swap.

    ``lengths`` (T, 2, 2): the segment lengths (to each side's parent) as predicted [:, 0] and swapped [:, 1],
    NaN where unknown; their deviation from each side's median counts against a labelling.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = pts.shape[0]
    if n < 3:
        return np.zeros(n, dtype=bool)
    both = np.stack([pts, pts[:, ::-1]], axis=1)  # (T, label, side, 2)
    unary = np.zeros((n, 2))
    unary[:, 1] = price
    # Swapping where a point is missing would only move the gap to the other side (and its motion out of sight).
    unary[~np.isfinite(pts).all(axis=(1, 2)), 1] = np.inf
    if lengths is not None:
        median = np.nanmedian(lengths[:, 0], axis=0) if np.isfinite(lengths[:, 0]).any() else np.zeros(2)
        dev = np.abs(lengths - median[None, None, :]) / scale
        unary += LENGTH_WEIGHT * np.where(np.isfinite(dev), dev, 0.0).sum(axis=-1)
    # acc[t, a, b, c]: both points' acceleration at t - 1 with labels a, b, c at t - 2, t - 1, t.
    second = (both[2:, None, None, :] - 2 * both[1:-1, None, :, None] + both[:-2, :, None, None])
    acc = _distance(second, 0.0).sum(axis=-1) / scale  # (T - 2, a, b, c)
    # cost[a, b]: the best total with labels a at t-1 and b at t.
    cost = unary[0][:, None] + unary[1][None, :]
    back = np.zeros((n, 2, 2), dtype=np.int8)  # back[t, b, c] = best a for labels (b at t-1, c at t)
    for t in range(2, n):
        total = cost[:, :, None] + acc[t - 2]  # (a, b, c)
        back[t] = np.argmin(total, axis=0)
        cost = np.min(total, axis=0) + unary[t][None, :]
    labels = np.zeros(n, dtype=np.int8)
    b, c = np.unravel_index(int(np.argmin(cost)), cost.shape)
    labels[-2], labels[-1] = b, c
    for t in range(n - 1, 1, -1):
        labels[t - 2] = back[t, labels[t - 1], labels[t]]
    return labels.astype(bool)


def repair_swaps(keypoints: np.ndarray, valid: np.ndarray, scale: float,
                 names: tuple[str, ...] = KEYPOINTS) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(repaired keypoints, repaired validity, {pair name: (T,) swapped frames}) for (T, K, 3) keypoints.

    ``scale`` is the body's size in pixels (the trunk length); pair names are e.g. ``"knee"``.
    """
    kp = np.array(keypoints, dtype=np.float64)
    ok = np.array(valid, dtype=bool)
    index = {n: i for i, n in enumerate(names)}
    swapped: dict[str, np.ndarray] = {}
    scale = scale if scale > 0 else 1.0
    for left, right, parent in PAIRS:
        i, j = index[left], index[right]
        xy = np.where(ok[:, [i, j], None], kp[:, [i, j], :2], np.nan)
        lengths = None
        if parent is not None:
            p = [index[_side(parent, "left")], index[_side(parent, "right")]]
            pxy = np.where(ok[:, p, None], kp[:, p, :2], np.nan)
            lengths = np.stack([np.hypot(*(xy - pxy).transpose(2, 0, 1)),
                                np.hypot(*(xy[:, ::-1] - pxy).transpose(2, 0, 1))], axis=1)
        swap = best_labelling(xy, lengths, scale)
        # Where both points coincide (feet crossing, shoulders seen edge-on) a swap changes nothing: not flagged.
        separation = np.hypot(*(xy[:, 0] - xy[:, 1]).T)
        swap &= ~(separation <= COINCIDENT * scale)
        kp[np.ix_(swap, [i, j])] = kp[np.ix_(swap, [j, i])]
        ok[np.ix_(swap, [i, j])] = ok[np.ix_(swap, [j, i])]
        swapped[left.removeprefix("left_")] = swap
    return kp, ok, swapped
