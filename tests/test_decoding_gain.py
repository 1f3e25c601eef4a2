"""Refined (DARK on the network's R/8 maps) vs the authors' decoding (blurred full-resolution arg-max) on the
LSP training half, scored with the package's evaluator. Same network outputs, only the decoding differs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from efficientpose.data.registry import open_dataset
from efficientpose.evaluation.evaluate import evaluate
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.io.images import read_image
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS, LSP_KEYPOINTS, remap


def _mcnemar_p(only_a: int, only_b: int) -> float:
    """One-sided exact McNemar p-value of seeing at least ``only_a`` of the discordant pairs on side A by chance."""
    n = only_a + only_b
    return sum(math.comb(n, k) for k in range(only_a, n + 1)) / 2**n if n else 1.0


@pytest.fixture(scope="module")
def decoded(data_dir):
    samples = open_dataset("lsp", data_dir / "lsp", "train")
    est = PoseEstimator("rt")
    refined, authors = {}, {}
    for start in range(0, len(samples), 16):
        chunk = samples[start:start + 16]
        prepared = [est.prepare(read_image(s.image)) for s in chunk]
        maps = est.heatmaps(np.stack([p[0] for p in prepared]))
        for decoder, out in (("refined", refined), ("argmax", authors)):
            est.decoder = decoder
            for s, p, kp in zip(chunk, prepared, est.decode(maps), strict=True):
                out[s.id] = Pose(p.geometry.to_original(kp))
    return samples, refined, authors


def _correct(samples, poses, alpha):
    rows = []
    for s in samples:
        xy = remap(poses[s.id].xy, KEYPOINTS, LSP_KEYPOINTS)
        rows.append(np.linalg.norm(xy - s.joints, axis=1) / s.norm_size <= alpha)
    return np.array(rows)


def test_refined_better_at_pck_01(decoded):
    samples, refined, authors = decoded
    r, a = evaluate(samples, refined, alpha=0.1), evaluate(samples, authors, alpha=0.1)
    print(f"PCK@0.1 refined {r.mean:.2f} authors {a.mean:.2f}")
    assert r.mean > a.mean
    # and the gain is not chance: significantly more joints fixed than broken
    cr, ca = _correct(samples, refined, 0.1), _correct(samples, authors, 0.1)
    assert _mcnemar_p(int((cr & ~ca).sum()), int((ca & ~cr).sum())) < 0.05


def test_refined_not_worse_at_pck_02(decoded):
    samples, refined, authors = decoded
    r, a = evaluate(samples, refined, alpha=0.2), evaluate(samples, authors, alpha=0.2)
    print(f"PCK@0.2 refined {r.mean:.2f} authors {a.mean:.2f}")
    cr, ca = _correct(samples, refined, 0.2), _correct(samples, authors, 0.2)
    # "Not worse": no significant excess of joints the refined decoder loses (one-sided exact McNemar, 5%),
    # and the pooled difference stays within a tenth of a point.
    assert _mcnemar_p(int((ca & ~cr).sum()), int((cr & ~ca).sum())) > 0.05
    assert r.mean >= a.mean - 0.1
