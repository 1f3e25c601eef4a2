"""Per-channel normalisation of uint8 images into the network's float input, as numbers (numpy only, so the
ONNX Runtime and OpenVINO paths never load torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Normalization:
    """Per-channel (RGB) normalisation ``(x / 255 - mean) / std`` of an image with values in [0, 255]; ``name`` is
    the Keras preprocessing mode it reproduces ("torch" or "tf"; empty for others)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = ""

    def scale_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias) with ``normalised = x_uint8 * scale + bias``, float64, one value per channel."""
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        return 1.0 / (255.0 * std), -mean / std


#: Keras 'torch' mode (ImageNet mean/std), used by the non-Lite models (architecture.md §6.1).
TORCH_MODE = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), name="torch")


#: Keras 'tf' mode, x / 127.5 - 1, used by the Lite models.
TF_MODE = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), name="tf")


def normalization_for(lite: bool) -> Normalization:
    """The input normalisation of a variant: Keras 'tf' mode for the Lite models, 'torch' mode for the others."""
    return TF_MODE if lite else TORCH_MODE


def to_input(batch: np.ndarray, normalization: Normalization) -> np.ndarray:
    """Images (N, R, R, 3) or (R, R, 3), uint8 or float32 in [0, 255] (training's augmented crops) -> normalised
    float32 array (N, 3, R, R), contiguous: the input every backend takes (numpy, so the ONNX Runtime and
    OpenVINO paths never load torch)."""
    if batch.dtype not in (np.uint8, np.float32) or batch.shape[-1] != 3 or batch.ndim not in (3, 4):
        raise ValueError(f"expected uint8 or float32 images (N, R, R, 3), got {batch.dtype} {batch.shape}")
    if batch.ndim == 3:
        batch = batch[None]
    scale, bias = normalization.scale_bias()
    out = np.empty((batch.shape[0], 3, *batch.shape[1:3]), dtype=np.float32)
    for c in range(3):  # per channel: one strided read, float32 multiply and add in place
        np.multiply(batch[..., c], np.float32(scale[c]), out=out[:, c], dtype=np.float32)
        out[:, c] += np.float32(bias[c])
    return out
