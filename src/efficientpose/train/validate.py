"""Validation during training: the same protocol as ``efficientpose evaluate`` (person crop or whole image,
letterbox, DARK-refined decoding, coordinates mapped back to the image, PCKh/PCK from ``evaluate``)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from efficientpose.data.sample import Sample
from efficientpose.evaluation.evaluate import evaluate
from efficientpose.evaluation.metrics import normalized_distances
from efficientpose.evaluation.samples import predict_samples
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.skeleton import remap


def mean_error(samples: Sequence[Sample], predictions: dict, names: tuple[str, ...]) -> float:
    """Mean distance / normaliser (head size or torso) over every scored, annotated joint; NaN if none."""
    rows = [s for s in samples if math.isfinite(s.norm_size) and s.norm_size > 0 and s.id in predictions]
    if not rows:
        return math.nan
    keypoints = rows[0].keypoints
    scored = np.array([k in names for k in keypoints])
    pred = np.stack([remap(predictions[s.id].xy, tuple(predictions[s.id].names), keypoints) for s in rows])
    gt = np.stack([s.joints for s in rows])
    annotated = np.stack([s.annotated for s in rows]) & scored
    dist = normalized_distances(pred, gt, annotated, np.array([s.norm_size for s in rows]))
    values = dist[annotated]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def validate(model: EfficientPose, samples: Sequence[Sample], dataset: str, batch_size: int = 8) -> dict[str, float]:
    """``val_pck`` (PCKh@0.5 for MPII, PCK@0.2 otherwise, %), ``val_auc`` and ``val_error`` of ``model``.

    Runs on a CPU copy in eval mode, so the training model (its mode, device and batch-norm statistics) is
    untouched.
    """
    if not samples:
        return {}
    cpu = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    estimator = PoseEstimator(cpu, backend="torch", decoder="refined")
    predictions = predict_samples(list(samples), estimator, batch_size=batch_size, progress=False)
    report = evaluate(samples, predictions, names=tuple(model.keypoints), dataset=dataset)
    return {"val_pck": float(report.mean), "val_auc": float(report.auc),
            "val_error": mean_error(samples, predictions, tuple(model.keypoints))}
