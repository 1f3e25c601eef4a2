"""PCK, PCKh and AUC on plain arrays, following the official MPII/LSP MATLAB evaluation (pure numpy).

Rules taken from ``evaluatePCKh.m``/``computePCK.m``: a joint is correct when its distance divided by the
normaliser is ``<= alpha``; joints without ground truth are ignored; a missing prediction is always wrong;
means pool every counted joint (not an average of per-joint percentages); table columns average the
left and right per-joint percentages, and "Head" averages head top and upper neck.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The alpha grid of the official curves and AUC (``range = 0:0.01:0.5``).
ALPHA_GRID = np.linspace(0.0, 0.5, 51)

#: The columns of the official tables, each averaging the per-joint percentages of its members.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Head", ("head_top", "upper_neck")),
    ("Shoulder", ("right_shoulder", "left_shoulder")),
    ("Elbow", ("right_elbow", "left_elbow")),
    ("Wrist", ("right_wrist", "left_wrist")),
    ("Hip", ("right_hip", "left_hip")),
    ("Knee", ("right_knee", "left_knee")),
    ("Ankle", ("right_ankle", "left_ankle")),
)
#: The official "UBody" column pools these joints.
UPPER_BODY = ("right_shoulder", "left_shoulder", "right_elbow", "left_elbow", "right_wrist", "left_wrist")
#: The official MPII "Total" uses 14 joints: every joint except these two.
MPII_MEAN_EXCLUDES = ("pelvis", "thorax")


def normalized_distances(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray,
                         norm_size: np.ndarray) -> np.ndarray:
    """(N, K) distance / normaliser: NaN where not annotated, inf where the prediction is missing (NaN)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    annotated, norm = np.asarray(annotated, dtype=bool), np.asarray(norm_size, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[2] != 2 or gt.shape != pred.shape:
        raise ValueError(f"pred and gt must both be (N, K, 2); got {pred.shape} and {gt.shape}")
    if annotated.shape != pred.shape[:2] or norm.shape != pred.shape[:1]:
        raise ValueError(f"annotated must be {pred.shape[:2]} and norm_size {pred.shape[:1]}; "
                         f"got {annotated.shape} and {norm.shape}")
    bad = np.flatnonzero(~(np.isfinite(norm) & (norm > 0)))
    if bad.size:
        raise ValueError(f"normaliser must be positive and finite: {bad.size} bad, first sample {bad[0]} "
                         f"= {norm[bad[0]]}")
    if not np.isfinite(gt[annotated]).all():
        raise ValueError("annotated ground-truth joints must have finite coordinates")
    with np.errstate(invalid="ignore"):
        dist = np.hypot(*np.moveaxis(pred - gt, 2, 0)) / norm[:, None]
    dist[np.isnan(dist)] = np.inf  # the official code sets missing predictions to inf
    dist[~annotated] = np.nan
    return dist


@dataclass(frozen=True)
class PCKResult:
    """Correct and counted joints at one alpha; percentages are derived from these counts."""

    alpha: float
    correct: np.ndarray  #: (K,) correct joints
    counts: np.ndarray  #: (K,) annotated (counted) joints

    @property
    def per_joint(self) -> np.ndarray:
        """(K,) percentage of correct joints; NaN for a joint that is never annotated."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, 100.0 * self.correct / np.maximum(self.counts, 1), np.nan)

    @property
    def mean(self) -> float:
        """Percentage pooled over every counted joint."""
        return self.mean_over(np.ones(len(self.counts), dtype=bool))

    def mean_over(self, joints: np.ndarray) -> float:
        """Percentage pooled over a (K,) boolean subset of joints; NaN when it counts nothing."""
        joints = np.asarray(joints, dtype=bool)
        total = int(self.counts[joints].sum())
        return 100.0 * float(self.correct[joints].sum()) / total if total else float("nan")


def pck_from_distances(dist: np.ndarray, alpha: float) -> PCKResult:
    """PCK at ``alpha`` from :func:`normalized_distances` (``dist <= alpha`` counts as correct)."""
    counted = ~np.isnan(dist)
    with np.errstate(invalid="ignore"):
        correct = (dist <= alpha) & counted
    return PCKResult(float(alpha), correct.sum(axis=0), counted.sum(axis=0))


@dataclass(frozen=True)
class PairedPCK:
    """Two predictors scored on the same joints at one alpha: the joints each alone gets right, and whether that
    difference is more than chance (exact two-sided McNemar test, the usual test for paired correct/wrong)."""

    alpha: float
    only_a: int  #: joints A gets right and B wrong
    only_b: int  #: joints B gets right and A wrong
    both: int
    neither: int

    @property
    def total(self) -> int:
        return self.only_a + self.only_b + self.both + self.neither

    @property
    def difference(self) -> float:
        """PCK of A minus PCK of B, in percentage points."""
        return 100.0 * (self.only_a - self.only_b) / self.total if self.total else float("nan")

    @property
    def p_value(self) -> float:
        """Chance of a split of the discordant joints at least this uneven if A and B were equally good."""
        return mcnemar_p(self.only_a, self.only_b)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: a binomial test of ``only_a`` successes in ``only_a + only_b`` at 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats is slow to import; only this needs it

    return float(binomtest(only_a, n, 0.5).pvalue)


def paired_pck(dist_a: np.ndarray, dist_b: np.ndarray, alpha: float, joints: np.ndarray | None = None) -> PairedPCK:
    """Compare two (N, K) :func:`normalized_distances` of the same samples at ``alpha``, pooled over the (K,)
    boolean ``joints`` (default all); joints without ground truth (NaN in both) are not counted."""
    dist_a, dist_b = np.asarray(dist_a, dtype=np.float64), np.asarray(dist_b, dtype=np.float64)
    if dist_a.shape != dist_b.shape or dist_a.ndim != 2:
        raise ValueError(f"paired distances must be two (N, K) arrays of one shape; got {dist_a.shape}, {dist_b.shape}")
    if not np.array_equal(np.isnan(dist_a), np.isnan(dist_b)):
        raise ValueError("paired distances must count the same joints (same ground truth)")
    use = ~np.isnan(dist_a)
    if joints is not None:
        use &= np.asarray(joints, dtype=bool)[None, :]
    with np.errstate(invalid="ignore"):
        a, b = (dist_a <= alpha)[use], (dist_b <= alpha)[use]
    return PairedPCK(float(alpha), int((a & ~b).sum()), int((b & ~a).sum()), int((a & b).sum()), int((~a & ~b).sum()))


def pck(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, norm_size: np.ndarray,
        alpha: float) -> PCKResult:
    """PCK (torso normaliser) or PCKh (head-size normaliser) at ``alpha``: per-joint and pooled percentages."""
    return pck_from_distances(normalized_distances(pred, gt, annotated, norm_size), alpha)


def pck_curves(dist: np.ndarray, alphas: np.ndarray = ALPHA_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Correct and counted joints per alpha: two (A, K) arrays."""
    counted = ~np.isnan(dist)
    with np.errstate(invalid="ignore"):
        correct = (dist[None] <= np.asarray(alphas, dtype=np.float64)[:, None, None]) & counted[None]
    hits = correct.sum(axis=1)
    return hits, np.broadcast_to(counted.sum(axis=0), hits.shape)


def auc(alphas: np.ndarray, values: np.ndarray) -> float:
    """Area under a PCK curve (trapezoids, as the official linear-interpolation quadrature), scaled to 0..100."""
    alphas, values = np.asarray(alphas, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if alphas.ndim != 1 or alphas.shape != values.shape or len(alphas) < 2 or np.any(np.diff(alphas) <= 0):
        raise ValueError("auc needs matching 1-D arrays of at least two increasing alphas")
    area = float(np.sum((values[1:] + values[:-1]) * np.diff(alphas)) / 2)  # np.trapezoid needs numpy 2
    return area / float(alphas[-1] - alphas[0])


def group_table(per_joint: Mapping[str, float], groups: Sequence[tuple[str, Sequence[str]]] = GROUPS,
                ) -> dict[str, float]:
    """Table columns: the mean of the members' percentages that exist and are not NaN (else NaN)."""
    table = {}
    for label, members in groups:
        values = [per_joint[m] for m in members if m in per_joint and not np.isnan(per_joint[m])]
        table[label] = float(np.mean(values)) if values else float("nan")
    return table
