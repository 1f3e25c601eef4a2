"""Run a model over dataset samples for evaluation: our estimator, or the authors' pipeline (their TFLite
model with their pre- and post-processing) on the very same images."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from efficientpose.data.sample import Sample
from efficientpose.inference.estimator import Box, PoseEstimator, crop
from efficientpose.io.images import read_image
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS

#: Margin around a person box (COCO bbox, MPII scale) before cropping: the standard 1.25.
CROP_MARGIN = 1.25


def person_box(sample: Sample) -> Box | None:
    """The crop the model sees: the sample's box or MPII centre/scale with a margin; None = the whole image
    (LSP and LSPET images are already person-centred)."""
    if sample.box is not None:
        x0, y0, x1, y1 = (float(v) for v in sample.box)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * CROP_MARGIN / 2
        return cx - half, cy - half, cx + half, cy + half
    if sample.center is not None and sample.scale is not None:
        cx, cy = (float(v) for v in sample.center)
        half = 200.0 * float(sample.scale) * CROP_MARGIN / 2
        return cx - half, cy - half, cx + half, cy + half
    return None


def predict_samples(samples: Sequence[Sample], estimator: PoseEstimator, batch_size: int = 8,
                    progress: bool | None = None) -> dict[str, Pose]:
    """Pose per sample id, each sample cropped by :func:`person_box` and run in batches."""
    decoder = estimator.decoder
    return predict_samples_by_decoder(samples, estimator, (decoder,), batch_size, progress)[decoder]


def predict_samples_by_decoder(samples: Sequence[Sample], estimator: PoseEstimator, decoders: Sequence[str],
                               batch_size: int = 8, progress: bool | None = None) -> dict[str, dict[str, Pose]]:
    """Decoder -> pose per sample id, as :func:`predict_samples`, every decoder reading the same forward pass."""
    out: dict[str, dict[str, Pose]] = {d: {} for d in decoders}
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(samples), desc="evaluate", disable=not show, leave=False)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        prepared = [estimator.prepare(read_image(s.image), person_box(s)) for s in chunk]
        maps = estimator.heatmaps(np.stack([p[0] for p in prepared]))
        for decoder in decoders:
            poses = estimator.poses(maps, prepared, decoder)
            out[decoder].update({s.id: p for s, p in zip(chunk, poses, strict=True)})
        bar.update(len(chunk))
    bar.close()
    return out


def predict_samples_authors(samples: Sequence[Sample], tflite: Path, normalization: str,
                            num_threads: int | None = None) -> dict[str, Pose]:
    """The authors' pipeline per sample: whole-image skimage-style rescale, their TFLite model, Gaussian blur and
    arg-max (``track.py`` on a photo). Keypoints they mark missing (negative) become NaN."""
    from efficientpose.reference.authors import TFLiteModel, authors_predict

    model = TFLiteModel(tflite, num_threads=num_threads)
    out: dict[str, Pose] = {}
    for s in samples:
        image, (ox, oy) = crop(read_image(s.image), person_box(s))
        xy = authors_predict(image, model, normalization, real_time=False)
        xy = np.where(xy < 0, np.nan, xy + (ox, oy))
        out[s.id] = Pose(np.column_stack([xy, np.ones(len(xy))]), KEYPOINTS)
    return out
