"""Training targets: part-affinity fields, loss masks, the sigma schedule and flips (the Gaussian heatmaps are the
codec's: :func:`efficientpose.codec.heatmap.gaussian_heatmaps`).

A target map of H x W pixels at ``stride`` s covers the input: output pixel (i, j) has its centre at
input coordinates ((i + 0.5) s, (j + 0.5) s), so decoding is "arg-max, + 0.5, x stride". Sigma and PAF
width are given in output pixels of the map they describe. See ``docs/training-targets.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from efficientpose.codec.heatmap import pixel_centres


def _size_hw(size_out: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size_out, int | np.integer):
        return int(size_out), int(size_out)
    h, w = size_out
    return int(h), int(w)


def paf_targets(
    joints: np.ndarray,
    annotated: np.ndarray,
    limbs: tuple[tuple[int, int], ...],
    size_out: int | tuple[int, int],
    stride: float,
    width: float,
) -> np.ndarray:
    """(2L, H, W) float32 part-affinity fields: limb i's unit vector (x at 2i, y at 2i + 1) on pixels whose
    centre lies within ``width`` output pixels of the limb segment, zero elsewhere.

    Limbs with an end not annotated, or of zero length, are all zero.
    """
    h, w = _size_hw(size_out)
    out = np.zeros((2 * len(limbs), h, w), dtype=np.float32)
    p = np.asarray(joints, dtype=np.float64).reshape(-1, 2) / float(stride)
    ok = np.asarray(annotated, dtype=bool) & np.isfinite(p).all(axis=1)
    xs = pixel_centres(w)[None, :]
    ys = pixel_centres(h)[:, None]
    for i, (a, b) in enumerate(limbs):
        if not (ok[a] and ok[b]):
            continue
        d = p[b] - p[a]
        length = float(np.hypot(*d))
        if length < 1e-6:
            continue
        v = d / length
        along = np.clip((xs - p[a, 0]) * v[0] + (ys - p[a, 1]) * v[1], 0.0, length)
        dist2 = (xs - (p[a, 0] + along * v[0])) ** 2 + (ys - (p[a, 1] + along * v[1])) ** 2
        on = dist2 <= width**2
        out[2 * i][on] = v[0]
        out[2 * i + 1][on] = v[1]
    return out


def keypoint_mask(annotated: np.ndarray) -> np.ndarray:
    """(K,) float32 loss weight per heatmap channel: 1 where the joint is annotated."""
    return np.asarray(annotated, dtype=bool).astype(np.float32)


def limb_mask(annotated: np.ndarray, limbs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(L,) float32 loss weight per limb (both PAF channels): 1 where both ends are annotated."""
    ann = np.asarray(annotated, dtype=bool)
    return np.array([ann[a] and ann[b] for a, b in limbs], dtype=np.float32).reshape(len(limbs))


def sigma_at(progress: float, start: float, end: float) -> float:
    """Gaussian sigma at training ``progress`` in [0, 1]: linear from ``start`` to ``end`` (clipped)."""
    t = min(max(float(progress), 0.0), 1.0)
    return float(start + (end - start) * t)


@dataclass(frozen=True)
class SigmaSchedule:
    """Heatmap sigmas (output pixels of each head) decreasing linearly over training."""

    full_start: float = 8.0  #: full-resolution head (stride 1) at the start
    full_end: float = 3.0  #: ... and at the end
    low_start: float = 1.5  #: 1/8-resolution head (stride 8) at the start
    low_end: float = 1.0  #: ... and at the end

    def at(self, progress: float) -> tuple[float, float]:
        """(full, low) sigma at ``progress`` in [0, 1]."""
        return sigma_at(progress, self.full_start, self.full_end), sigma_at(progress, self.low_start, self.low_end)


def flip_heatmaps(heatmaps: np.ndarray, flip_index: np.ndarray) -> np.ndarray:
    """Heatmaps of the mirrored image: mirror the last axis and swap left/right channels."""
    return np.ascontiguousarray(np.asarray(heatmaps)[np.asarray(flip_index)][..., ::-1])


def paf_flip_index(limbs: tuple[tuple[int, int], ...], flip_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each limb, the limb it mirrors from and +1/-1 if that limb runs the same/opposite way.

    Raises ``ValueError`` when the limb list is not closed under the left/right swap.
    """
    flip = np.asarray(flip_index)
    lookup = {tuple(limb): i for i, limb in enumerate(limbs)}
    source, sign = [], []
    for a, b in limbs:
        fa, fb = int(flip[a]), int(flip[b])
        if (fa, fb) in lookup:
            source.append(lookup[(fa, fb)])
            sign.append(1.0)
        elif (fb, fa) in lookup:
            source.append(lookup[(fb, fa)])
            sign.append(-1.0)
        else:
            raise ValueError(f"limb ({a}, {b}) has no mirror image ({fa}, {fb}) in the limb list")
    return np.asarray(source, dtype=np.int64), np.asarray(sign, dtype=np.float32)


def flip_pafs(pafs: np.ndarray, limbs: tuple[tuple[int, int], ...], flip_index: np.ndarray) -> np.ndarray:
    """PAFs of the mirrored image: mirror the last axis, take each limb's mirror limb, negate x (and both
    components when the mirror limb runs the other way)."""
    source, sign = paf_flip_index(limbs, flip_index)
    p = np.asarray(pafs)
    out = np.empty_like(p)
    out[0::2] = -sign[:, None, None] * p[2 * source][..., ::-1]
    out[1::2] = sign[:, None, None] * p[2 * source + 1][..., ::-1]
    return out
