"""Evaluation core: match predictions to a dataset's samples, score PCKh/PCK and report the result.

Knows nothing of models: predictions arrive as poses (a ``predict`` JSON file or a mapping built in memory).
The protocol is described in docs/evaluation.md.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from efficientpose.data.sample import Sample
from efficientpose.errors import DatasetError, InputError, UsageError
from efficientpose.evaluation import metrics
from efficientpose.io.atomic import atomic_write_bytes
from efficientpose.io.predictions import read_image_predictions
from efficientpose.pose import Pose, json_safe
from efficientpose.skeleton import KEYPOINTS, MPII_DATASET_ORDER, remap

#: Default alpha per metric: PCKh@0.5 (MPII), PCK@0.2 (LSP convention).
DEFAULT_ALPHA = {"pckh": 0.5, "pck": 0.2}


METRIC_LABEL = {"pckh": "PCKh", "pck": "PCK"}


#: Per-joint table rows: part names in this order, then any other joint of the dataset.
_PART_ORDER = ("head_top", "upper_neck", "thorax", "pelvis", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")


PoseLike = Pose | np.ndarray


def load_predictions(path: Path) -> dict[str, Pose]:
    """Poses of a ``predict`` file (JSON or CSV, read by :func:`efficientpose.io.predictions.read_image_predictions`,
    the one reader) keyed by each record's ``id`` if it has one, else its ``file``; a key may appear once, and a
    record without keypoints (no person found) is left out, so its sample counts as missed."""
    out: dict[str, Pose] = {}
    missed: set[str] = set()
    for i, record in enumerate(read_image_predictions(path)):
        key = record.id if record.id is not None else record.file
        if key in out or key in missed:
            raise InputError(f"{path}: record {i} repeats '{key}'")
        if record.pose is None:  # no person found: the sample counts as missed
            missed.add(key)
        else:
            out[key] = record.pose
    return out


def _key_parts(key: str) -> tuple[str, ...]:
    """Path components of a prediction key, keeping what follows the last anchor or '..'."""
    kept: list[str] = []
    for part in PurePosixPath(key.replace("\\", "/")).parts:
        if part in ("/", "..") or part.endswith(":"):
            kept = []
        elif part != ".":
            kept.append(part)
    return tuple(kept)


def match_predictions(samples: Sequence[Sample], predictions: Mapping[str, PoseLike]) -> list[str | None]:
    """For each sample, the key of its prediction: the sample id, else the longest path whose components end
    the image path (a path relative to the dataset root, the current folder, or just the file name)."""
    by_name: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for key in predictions:
        parts = _key_parts(str(key))
        if parts:
            by_name.setdefault(parts[-1], []).append((parts, key))
    matched: list[str | None] = []
    for sample in samples:
        if sample.id in predictions:
            matched.append(sample.id)
            continue
        image = Path(os.path.abspath(sample.image)).parts
        hits = [(len(parts), key) for parts, key in by_name.get(image[-1], []) if image[-len(parts):] == parts]
        hits.sort(key=lambda hit: -hit[0])
        if len(hits) > 1 and hits[0][0] == hits[1][0]:
            raise InputError(f"predictions: '{hits[0][1]}' and '{hits[1][1]}' both name {sample.image}")
        matched.append(hits[0][1] if hits else None)
    return matched


def _as_xy(prediction: PoseLike, names: tuple[str, ...], target: tuple[str, ...]) -> np.ndarray:
    """(K_target, 2) coordinates in the dataset's joint order; NaN where the prediction has no such joint."""
    if isinstance(prediction, Pose):
        array, names = np.asarray(prediction.keypoints, dtype=np.float64), tuple(prediction.names)
    else:
        array = np.asarray(prediction, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != len(names) or array.shape[1] not in (2, 3):
        raise UsageError(f"a prediction must be ({len(names)}, 2 or 3) in the order of its names; got {array.shape}")
    return remap(array[:, :2], names, target)


def _fmt(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1f}"


@dataclass
class Report:
    """The result of :func:`evaluate`: per-joint percentages, table columns, means, AUC and the alpha curve."""

    metric: str  #: "pckh" or "pck"
    alpha: float
    dataset: str
    keypoints: tuple[str, ...]  #: the dataset's joints
    scored: tuple[str, ...]  #: the joints the model emits (the others are not scored)
    per_joint: dict[str, float]  #: percentage per dataset joint (NaN: not scored or never annotated)
    counts: dict[str, int]  #: counted (annotated) instances per joint
    groups: dict[str, float]  #: Head, Shoulder, ... as in the official tables
    upper_body: float
    mean: float  #: pooled over ``mean_joints`` (MPII: the official 14-joint "Total")
    mean_joints: tuple[str, ...]
    mean_all: float  #: pooled over every scored joint (MPII: with pelvis and thorax)
    auc: float  #: area under the ``mean`` curve over alpha in [0, 0.5], 0..100
    curve_alpha: np.ndarray
    curve: dict[str, np.ndarray]  #: "Mean" and each group, percentage per alpha
    n_samples: int
    n_scored: int  #: samples that entered the metric
    missing_predictions: int  #: scored samples without a prediction (every joint counted wrong)
    shared_predictions: int  #: scored samples whose image-level prediction also served another person
    unmatched_predictions: int  #: predictions that matched no sample
    skipped: dict[str, int] = field(default_factory=dict)  #: reason -> samples left out of the metric
    #: ids of the scored samples, and their (n_scored, K) distance / normaliser (NaN: no ground truth)
    sample_ids: tuple[str, ...] = field(default=(), repr=False)
    distances: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    @property
    def title(self) -> str:
        """E.g. ``PCKh@0.5 on mpii/valid``."""
        name = f"{METRIC_LABEL[self.metric]}@{self.alpha:g}"
        return f"{name} on {self.dataset}" if self.dataset else name

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (NaN becomes null)."""
        return json_safe({
            "metric": METRIC_LABEL[self.metric], "alpha": self.alpha, "dataset": self.dataset,
            "samples": self.n_samples, "scored_samples": self.n_scored,
            "missing_predictions": self.missing_predictions, "shared_predictions": self.shared_predictions,
            "unmatched_predictions": self.unmatched_predictions, "skipped": self.skipped,
            "per_joint": {k: {"pck": self.per_joint[k], "count": self.counts[k], "scored": k in self.scored}
                          for k in self.keypoints},
            "groups": self.groups, "upper_body": self.upper_body, "mean": self.mean,
            "mean_joints": list(self.mean_joints), "mean_all": self.mean_all, "auc": self.auc,
            "curve": {"alpha": self.curve_alpha, **self.curve},
        })

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def write_json(self, path: Path) -> None:
        """Write :meth:`to_json` atomically."""
        atomic_write_bytes(Path(path), (self.to_json() + "\n").encode("utf-8"))

    def to_text(self) -> str:
        """Markdown tables: the official columns, then every joint split into right and left."""
        label = METRIC_LABEL[self.metric]
        lines = [f"{self.title}: {self.n_scored} of {self.n_samples} samples scored, "
                 f"{self.missing_predictions} without a prediction", ""]
        head = [*self.groups, "UBody", "Mean", "Mean (all)", "AUC"]
        values = [*self.groups.values(), self.upper_body, self.mean, self.mean_all, self.auc]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                  "| " + " | ".join(_fmt(v) for v in values) + " |", ""]
        lines += ["| Joint | Right | Left | Both | n |", "|---|---|---|---|---|"]
        for part, joints in self._parts():
            right, left = joints.get("right_"), joints.get("left_")
            both = joints.get("")
            cells = [_fmt(self.per_joint[j]) if j else "" for j in (right, left, both)]
            pair = [self.per_joint[j] for j in (right, left) if j and math.isfinite(self.per_joint[j])]
            if right and left:
                cells[2] = _fmt(float(np.mean(pair)) if pair else math.nan)
            n = sum(self.counts[j] for j in joints.values())
            scored = any(j in self.scored for j in joints.values())
            lines.append(f"| {part.replace('_', ' ')} | " + " | ".join(cells) + f" | {n if scored else 'not scored'} |")
        notes = [f"Mean pools {len(self.mean_joints)} joints"
                 + (" (official MPII Total: without pelvis and thorax)" if self.metric == "pckh" else "")
                 + f"; Mean (all) pools all {len(self.scored)} scored joints; AUC of {label} over alpha 0..0.5."]
        for reason, n in self.skipped.items():
            notes.append(f"{n} samples skipped: {reason}.")
        if self.shared_predictions:
            notes.append(f"{self.shared_predictions} samples share a per-image prediction with another person.")
        if self.unmatched_predictions:
            notes.append(f"{self.unmatched_predictions} predictions matched no sample.")
        return "\n".join([*lines, "", *notes])

    def __str__(self) -> str:
        return self.to_text()

    def _parts(self) -> list[tuple[str, dict[str, str]]]:
        parts: dict[str, dict[str, str]] = {}
        for name in self.keypoints:
            side = next((s for s in ("right_", "left_") if name.startswith(s)), "")
            parts.setdefault(name[len(side):], {})[side] = name
        order = {p: i for i, p in enumerate(_PART_ORDER)}
        return sorted(parts.items(), key=lambda item: order.get(item[0], len(order)))

    def plot_curve(self, path: Path) -> None:
        """Write the PCK-vs-alpha curves (mean bold, table columns thin) as a PNG, atomically."""
        from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

        fig = Figure(figsize=(6.4, 4.8), dpi=100)
        ax = fig.add_subplot()
        for name, values in self.curve.items():
            if name != "Mean" and np.isfinite(values).any():
                ax.plot(self.curve_alpha, values, linewidth=1, label=name)
        ax.plot(self.curve_alpha, self.curve["Mean"], color="black", linewidth=2.5,
                label=f"Mean (AUC {_fmt(self.auc)})")
        ax.axvline(self.alpha, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="alpha (fraction of the normaliser)", ylabel=f"{METRIC_LABEL[self.metric]} (%)",
               title=self.title, xlim=(0, float(self.curve_alpha[-1])), ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        atomic_write_bytes(Path(path), buffer.getvalue())


def _metric_for(keypoints: tuple[str, ...], metric: str | None) -> str:
    kind = "pckh" if keypoints == MPII_DATASET_ORDER else "pck"  # MPII samples carry head sizes, others torso
    if metric is not None and metric not in METRIC_LABEL:
        raise UsageError(f"unknown metric '{metric}' (choose from pckh, pck)")
    if metric is not None and metric != kind:
        have = "head sizes (MPII)" if kind == "pckh" else "torso sizes (LSP, LSPET, COCO)"
        raise UsageError(f"metric '{metric}' does not fit these samples: they carry {have}, use '{kind}'")
    return kind


def evaluate(samples: Sequence[Sample], predictions: Mapping[str, PoseLike], *, alpha: float | None = None,
             metric: str | None = None, names: tuple[str, ...] = KEYPOINTS, dataset: str = "") -> Report:
    """Score predictions (Pose, or (K, 2|3) arrays in ``names`` order) against samples of one dataset.

    Predictions are found by sample id or image path (:func:`match_predictions`); a sample without one counts
    every joint wrong. Only dataset joints the model emits (``names``) are scored. ``metric`` None picks PCKh
    for MPII samples and PCK otherwise; samples without a normaliser (no torso) are skipped and counted.
    """
    samples = list(samples)
    if not samples:
        raise UsageError("nothing to evaluate: no samples")
    keypoints = samples[0].keypoints
    if any(s.keypoints != keypoints for s in samples):
        raise UsageError("samples of different keypoint sets cannot be evaluated together")
    kind = _metric_for(keypoints, metric)
    alpha = DEFAULT_ALPHA[kind] if alpha is None else float(alpha)
    scored = tuple(k for k in keypoints if k in names)

    keys = match_predictions(samples, predictions)
    norm = np.array([s.norm_size for s in samples], dtype=np.float64)
    bad = [s.id for s, v in zip(samples, norm, strict=True) if np.isfinite(v) and v <= 0]
    if bad:
        raise DatasetError(f"sample {bad[0]}: non-positive normaliser ({len(bad)} samples)")
    keep = np.flatnonzero(np.isfinite(norm))
    skipped = {}
    if len(keep) < len(samples):
        reason = "no head size" if kind == "pckh" else "no torso size (both shoulder-hip diagonals unannotated)"
        skipped[reason] = len(samples) - len(keep)

    pred = np.full((len(keep), len(keypoints), 2), np.nan)
    for row, i in enumerate(keep):
        if keys[i] is not None:
            pred[row] = _as_xy(predictions[keys[i]], names, keypoints)
    uses = Counter(keys[i] for i in keep if keys[i] is not None)
    is_scored = np.array([k in scored for k in keypoints])
    kept = [samples[i] for i in keep]
    gt = np.stack([s.joints for s in kept]) if kept else np.zeros(pred.shape)
    annotated = (np.stack([s.annotated for s in kept]) if kept else np.zeros(pred.shape[:2], dtype=bool)) & is_scored
    dist = metrics.normalized_distances(pred, gt, annotated, norm[keep])
    result = metrics.pck_from_distances(dist, alpha)

    in_mean = is_scored & ~np.isin(keypoints, metrics.MPII_MEAN_EXCLUDES if kind == "pckh" else ())
    per_joint = dict(zip(keypoints, (float(v) for v in result.per_joint), strict=True))
    hits, counts = metrics.pck_curves(dist)
    with np.errstate(invalid="ignore", divide="ignore"):
        joint_curves = np.where(counts > 0, 100.0 * hits / np.maximum(counts, 1), np.nan)
    mean_total = counts[:, in_mean].sum(axis=1)
    mean_curve = np.where(mean_total > 0, 100.0 * hits[:, in_mean].sum(axis=1) / np.maximum(mean_total, 1), np.nan)
    rows = [metrics.group_table(dict(zip(keypoints, row, strict=True))) for row in joint_curves]
    curve = {"Mean": mean_curve, **{label: np.array([r[label] for r in rows]) for label, _ in metrics.GROUPS}}
    return Report(
        metric=kind, alpha=alpha, dataset=dataset, keypoints=keypoints, scored=scored, per_joint=per_joint,
        counts=dict(zip(keypoints, (int(c) for c in result.counts), strict=True)),
        groups=metrics.group_table(per_joint), upper_body=result.mean_over(np.isin(keypoints, metrics.UPPER_BODY)),
        mean=result.mean_over(in_mean), mean_joints=tuple(k for k, m in zip(keypoints, in_mean, strict=True) if m),
        mean_all=result.mean_over(is_scored),
        auc=metrics.auc(metrics.ALPHA_GRID, mean_curve) if np.isfinite(mean_curve).all() else math.nan,
        curve_alpha=metrics.ALPHA_GRID.copy(), curve=curve, n_samples=len(samples), n_scored=len(keep),
        missing_predictions=sum(keys[i] is None for i in keep),
        shared_predictions=sum(n for n in uses.values() if n > 1),
        unmatched_predictions=len(set(predictions) - set(k for k in keys if k is not None)),
        skipped=skipped, sample_ids=tuple(s.id for s in kept), distances=dist,
    )


def compare_reports(a: Report, b: Report) -> metrics.PairedPCK:
    """Joint-by-joint comparison of two reports on the same samples and alpha, pooled over the joints of
    ``Mean``: is A's difference from B more than chance?"""
    if (a.metric, a.alpha, a.keypoints, a.mean_joints) != (b.metric, b.alpha, b.keypoints, b.mean_joints):
        raise UsageError(f"cannot compare {a.title} with {b.title}: different metric, alpha or joints")
    if a.sample_ids != b.sample_ids:
        raise UsageError(f"cannot compare {a.title} with {b.title}: different scored samples")
    joints = np.isin(a.keypoints, a.mean_joints)
    return metrics.paired_pck(a.distances, b.distances, a.alpha, joints)
