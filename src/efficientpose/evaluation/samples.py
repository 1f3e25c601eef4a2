"""Run a model over dataset samples for evaluation: our estimator, or the authors' pipeline (their TFLite
model with their pre- and post-processing) on the very same images."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from efficientpose.codec.geometry import Box, crop, person_square, square_box
from efficientpose.data.sample import Sample
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.io.images import read_image
from efficientpose.pose import Pose
from efficientpose.skeleton import KEYPOINTS


def person_box(sample: Sample) -> Box | None:
    """The crop the model sees, by the codec's person-crop policy from the sample's box or MPII centre/scale;
    None = the whole image. The annotated joints are never used (they are what is being scored), so LSP and
    LSPET images, which have neither, are scored whole, as the benchmark protocol has it."""
    found = person_square((0, 0), box=sample.box, center=sample.center, scale=sample.scale) \
        if sample.box is not None or (sample.center is not None and sample.scale is not None) else None
    return None if found is None else square_box(*found)


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
