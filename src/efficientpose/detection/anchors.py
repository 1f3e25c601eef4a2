"""SSD anchors and MediaPipe's decoding of an SSD detector's raw tensors: score, threshold, weighted
non-maximum suppression. Pure numpy; the options are data (:mod:`efficientpose.detection.blazepose` gives
the pose detector's)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from efficientpose.codec.geometry import box_iou as iou


@dataclass(frozen=True)
class AnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that an SSD anchor grid needs."""

    input_size: int
    min_scale: float
    max_scale: float
    strides: tuple[int, ...]
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset: float = 0.5
    fixed_anchor_size: bool = False
    interpolated_scale_aspect_ratio: float = 1.0


def _scale(opts: AnchorOptions, index: int) -> float:
    n = len(opts.strides)
    return (opts.min_scale + opts.max_scale) / 2 if n == 1 else \
        opts.min_scale + (opts.max_scale - opts.min_scale) * index / (n - 1)


def ssd_anchors(opts: AnchorOptions) -> np.ndarray:
    """Anchors (N, 4): x centre, y centre, width, height, normalised to the input, in MediaPipe's order (layers
    with the same stride share one grid; per grid: rows, then columns, then the anchors of a cell)."""
    anchors: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < len(opts.strides):
        sizes: list[tuple[float, float]] = []  # (width, height) of each anchor of a cell
        last = layer
        while last < len(opts.strides) and opts.strides[last] == opts.strides[layer]:
            scale = _scale(opts, last)
            for ratio in opts.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if opts.interpolated_scale_aspect_ratio > 0:
                following = 1.0 if last == len(opts.strides) - 1 else _scale(opts, last + 1)
                s, r = math.sqrt(scale * following), opts.interpolated_scale_aspect_ratio
                sizes.append((s * math.sqrt(r), s / math.sqrt(r)))
            last += 1
        grid = math.ceil(opts.input_size / opts.strides[layer])
        for y in range(grid):
            for x in range(grid):
                for w, h in sizes:
                    anchors.append(((x + opts.anchor_offset) / grid, (y + opts.anchor_offset) / grid,
                                    1.0 if opts.fixed_anchor_size else w, 1.0 if opts.fixed_anchor_size else h))
        layer = last
    return np.asarray(anchors, dtype=np.float64)


@dataclass(frozen=True)
class DecodeOptions:
    """The fields of MediaPipe's ``TensorsToDetectionsCalculatorOptions`` and ``NonMaxSuppressionCalculatorOptions``
    (IoU overlap, WEIGHTED algorithm) that decoding needs."""

    num_keypoints: int
    scale: float  #: x_scale = y_scale = w_scale = h_scale
    reverse_output_order: bool = True  #: x before y, w before h
    box_coord_offset: int = 0
    keypoint_coord_offset: int = 4
    sigmoid_score: bool = True
    score_clipping_thresh: float = 100.0
    min_score_thresh: float = 0.5
    min_suppression_threshold: float = 0.3


def scores(logits: np.ndarray, opts: DecodeOptions) -> np.ndarray:
    """Scores in [0, 1] from raw logits: clipped to +-``score_clipping_thresh``, then the sigmoid."""
    x = np.asarray(logits, dtype=np.float64)
    if not opts.sigmoid_score:
        return x
    return 1.0 / (1.0 + np.exp(-np.clip(x, -opts.score_clipping_thresh, opts.score_clipping_thresh)))


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, opts: DecodeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors (N, C) -> boxes (N, 4) as x0, y0, x1, y1 and keypoints (N, K, 2), normalised to the input
    (``DecodeBoxes`` without exponential box sizes)."""
    raw = np.asarray(raw, dtype=np.float64)
    o = opts.box_coord_offset
    first, second = (0, 1) if opts.reverse_output_order else (1, 0)
    ax, ay, aw, ah = anchors.T
    cx = raw[:, o + first] / opts.scale * aw + ax
    cy = raw[:, o + second] / opts.scale * ah + ay
    w = raw[:, o + 2 + first] / opts.scale * aw
    h = raw[:, o + 2 + second] / opts.scale * ah
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    k = raw[:, opts.keypoint_coord_offset:opts.keypoint_coord_offset + 2 * opts.num_keypoints]
    k = k.reshape(len(raw), opts.num_keypoints, 2)
    if not opts.reverse_output_order:
        k = k[..., ::-1]
    keypoints = k / opts.scale * np.stack([aw, ah], axis=1)[:, None] + np.stack([ax, ay], axis=1)[:, None]
    return boxes, keypoints


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, score: np.ndarray,
                 threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-maximum suppression: take the best remaining detection, gather every remaining one
    whose IoU with it exceeds ``threshold`` (itself included), and output the score-weighted mean of their boxes and
    keypoints with the best one's score; repeat on the rest. Returns (box, keypoints, score), best first."""
    order = np.argsort(-score, kind="stable")
    out = []
    while len(order):
        best = order[0]
        overlap = iou(boxes[best], boxes[order]) > threshold
        overlap[0] = True  # a degenerate (empty) best box still takes itself
        group, order = order[overlap], order[~overlap]
        weights = score[group] / score[group].sum()
        out.append((weights @ boxes[group], np.tensordot(weights, keypoints[group], axes=1), float(score[best])))
    return out
