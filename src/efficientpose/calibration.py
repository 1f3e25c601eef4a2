"""Real-image calibration batches for int8 quantisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from efficientpose.errors import UsageError
from efficientpose.io import expand_inputs, read_image
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.preprocess import TF_MODE, TORCH_MODE, letterbox, to_input


def calibration_batches(folder: Path | None, model: EfficientPose, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` images from ``folder``, letterboxed and normalised for ``model``, one (1, 3, R, R) each."""
    if folder is None:
        raise UsageError("--int8 needs --calibration DIR, a folder of real images to calibrate on")
    items = [i.path for i in expand_inputs([folder]).items if i.kind == "image"][:limit]
    if not items:
        raise UsageError(f"{folder}: no images to calibrate on")
    norm = TORCH_MODE if model.variant.normalization == "torch" else TF_MODE
    return [to_input(letterbox(read_image(p), model.input_size)[0], norm) for p in items]
