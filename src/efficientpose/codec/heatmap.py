"""Keypoints <-> heatmaps: Gaussian targets (encode), arg-max and DARK sub-pixel decoding, the network's fixed x8
upsampling, flip test-time augmentation; :class:`HeatmapCodec` states the stride contract once.

Heatmaps are channels-first ``(N, K, H, W)`` (or ``(K, H, W)``), numpy or torch. Results are ``(N, K, 3)``
(or ``(K, 3)``): x, y in the continuous pixel convention of the network input (heatmap pixel (i, j) has its
centre at ((i + 0.5) * stride, (j + 0.5) * stride)), then a score in [0, 1].

Score: the raw, unblurred heatmap value at the chosen peak pixel, clipped to [0, 1]. The networks are trained
towards unit-height Gaussians, so this is the network's own (monotone) confidence; confident peaks of the
published models are ~0.5-0.7 and background ~0. It is the quantity the authors threshold (0.3) in their
real-time mode, so thresholds stay comparable. See docs/decoding.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["DECODERS", "HeatmapCodec", "decode_argmax", "decode_refined", "flip_merge", "gaussian_blur",
           "gaussian_heatmaps", "upsample_x8"]

#: Largest sub-pixel correction (heatmap pixels) DARK may apply per axis; a larger Newton step means the
#: neighbourhood is not log-quadratic and is clamped.
MAX_OFFSET = 1.0
_LOG_FLOOR = 1e-10


def _is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch (a tensor means torch is loaded already)."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(value, torch_module.Tensor)


def _as_maps(heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, bool]:
    """(N, K, H, W) float32 numpy view/copy, and whether the input had no batch axis."""
    if _is_tensor(heatmaps):
        heatmaps = heatmaps.detach().float().cpu().numpy()
    maps = np.asarray(heatmaps, dtype=np.float32)
    if maps.ndim == 3:
        return maps[None], True
    if maps.ndim != 4:
        raise ValueError(f"expected heatmaps (N, K, H, W) or (K, H, W), got shape {maps.shape}")
    return maps, False


def gaussian_blur(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the last two axes with a Gaussian (radius 4 sigma, edge-reflecting like scipy's 'reflect').

    Same result as ``scipy.ndimage.gaussian_filter(maps, (0, .., sigma, sigma))`` to float32 rounding,
    several times faster (OpenCV separable filter per map).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if sigma <= 0:
        return maps.copy()
    radius = int(4.0 * sigma + 0.5)
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_32F)
    flat = np.ascontiguousarray(maps).reshape(-1, *maps.shape[-2:])
    out = np.empty_like(flat)
    for i in range(flat.shape[0]):  # one vectorised OpenCV call per map
        cv2.sepFilter2D(flat[i], -1, kernel, kernel, dst=out[i], borderType=cv2.BORDER_REFLECT)
    return out.reshape(maps.shape)


def _peaks(located: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-major first maximum of each map of (M, H, W): (rows, cols) int arrays of shape (M,)."""
    m, h, w = located.shape
    index = np.argmax(located.reshape(m, h * w), axis=1)
    return index // w, index % w


def _finish(x: np.ndarray, y: np.ndarray, score: np.ndarray, shape: tuple[int, int], stride: float,
            squeeze: bool) -> np.ndarray:
    out = np.stack([x * stride, y * stride, np.clip(score, 0.0, 1.0)], axis=-1).reshape(*shape, 3)
    return out[0] if squeeze else out


def decode_argmax(heatmaps: np.ndarray | torch.Tensor, blur: float = 0.0, stride: float = 1.0) -> np.ndarray:
    """The authors' decoding: per-channel arg-max (optionally of a Gaussian-blurred map), pixel centre +0.5.

    ``blur`` is the Gaussian sigma (the authors use 1.0 in non-real-time mode, none in real time);
    ``stride`` converts heatmap pixels to input pixels. Returns (N, K, 3) float64 x, y, score.
    """
    maps, squeeze = _as_maps(heatmaps)
    n, k, h, w = maps.shape
    raw = maps.reshape(n * k, h, w)
    rows, cols = _peaks(gaussian_blur(raw, blur) if blur > 0 else raw)
    score = raw[np.arange(n * k), rows, cols].astype(np.float64)
    return _finish(cols + 0.5, rows + 0.5, score, (n, k), stride, squeeze)


def decode_refined(heatmaps: np.ndarray | torch.Tensor, blur: float = 1.0, stride: float = 1.0) -> np.ndarray:
    """Sub-pixel decoding with DARK (Zhang et al. 2020), vectorised over all N x K maps.

    Blur with a Gaussian of sigma ``blur`` (0 = none), take the arg-max, then one Newton step on the log of
    the blurred map (second-order Taylor expansion from central differences of the 3 x 3 neighbourhood),
    clamped to +-``MAX_OFFSET``.
    Falls back to the arg-max per axis at the border, and wherever the neighbourhood is not a proper
    maximum (flat, zero or negative maps): never NaN. Score as in :func:`decode_argmax`.
    """
    maps, squeeze = _as_maps(heatmaps)
    n, k, h, w = maps.shape
    m = n * k
    raw = maps.reshape(m, h, w)
    smooth = gaussian_blur(raw, blur) if blur > 0 else raw
    rows, cols = _peaks(smooth)
    # 3 x 3 neighbourhood of every peak (indices clamped at the border; such axes are not refined).
    r = np.clip(rows[:, None] + np.array([-1, 0, 1]), 0, h - 1)
    c = np.clip(cols[:, None] + np.array([-1, 0, 1]), 0, w - 1)
    patch = smooth[np.arange(m)[:, None, None], r[:, :, None], c[:, None, :]].astype(np.float64)
    centre_ok = patch[:, 1, 1] > _LOG_FLOOR
    logp = np.log(np.maximum(patch, _LOG_FLOOR))
    dx = 0.5 * (logp[:, 1, 2] - logp[:, 1, 0])
    dy = 0.5 * (logp[:, 2, 1] - logp[:, 0, 1])
    dxx = logp[:, 1, 2] - 2.0 * logp[:, 1, 1] + logp[:, 1, 0]
    dyy = logp[:, 2, 1] - 2.0 * logp[:, 1, 1] + logp[:, 0, 1]
    dxy = 0.25 * (logp[:, 2, 2] - logp[:, 2, 0] - logp[:, 0, 2] + logp[:, 0, 0])
    in_x = (cols > 0) & (cols < w - 1) & centre_ok
    in_y = (rows > 0) & (rows < h - 1) & centre_ok
    det = dxx * dyy - dxy * dxy
    # Full 2-D Newton step where the Hessian is negative definite, else 1-D steps along usable axes.
    both = in_x & in_y & (dxx < 0) & (det > 0)
    safe_det = np.where(both, det, 1.0)
    off_x2 = -(dyy * dx - dxy * dy) / safe_det
    off_y2 = -(dxx * dy - dxy * dx) / safe_det
    ok_x1 = in_x & (dxx < 0)
    ok_y1 = in_y & (dyy < 0)
    off_x1 = np.where(ok_x1, -dx / np.where(ok_x1, dxx, -1.0), 0.0)
    off_y1 = np.where(ok_y1, -dy / np.where(ok_y1, dyy, -1.0), 0.0)
    off_x = np.clip(np.where(both, off_x2, off_x1), -MAX_OFFSET, MAX_OFFSET)
    off_y = np.clip(np.where(both, off_y2, off_y1), -MAX_OFFSET, MAX_OFFSET)
    score = raw[np.arange(m), rows, cols].astype(np.float64)
    return _finish(cols + 0.5 + off_x, rows + 0.5 + off_y, score, (n, k), stride, squeeze)


def flip_merge(heatmaps: np.ndarray | torch.Tensor, flipped_heatmaps: np.ndarray | torch.Tensor,
               flip_index: np.ndarray) -> np.ndarray | torch.Tensor:
    """Average heatmaps with those of the horizontally flipped image, flipped back and left/right swapped.

    Both (..., K, H, W) of the same type (numpy or torch). Mirroring column j to W - 1 - j maps the
    continuous x to W - x exactly, so the merge is exact in the package's pixel convention; ``flip_index``
    (e.g. ``SKELETONS['mpii16'].flip_index``) says which channel of the flipped image holds each keypoint.
    """
    back = flip_back(flipped_heatmaps, flip_index)
    return (heatmaps + back) * 0.5 if _is_tensor(heatmaps) else (np.asarray(heatmaps) + back) * 0.5


def flip_back(flipped_heatmaps: np.ndarray | torch.Tensor, flip_index: np.ndarray) -> np.ndarray | torch.Tensor:
    """Heatmaps (..., K, H, W) of the horizontally flipped image mirrored back and left/right swapped: the maps the
    unflipped image should have (``flip_index``: which channel of the flipped image holds each keypoint)."""
    index = np.asarray(flip_index, dtype=np.int64)
    if _is_tensor(flipped_heatmaps):
        back = flipped_heatmaps.flip(-1)
        return back.index_select(-3, sys.modules["torch"].as_tensor(index, device=back.device))
    return np.asarray(flipped_heatmaps)[..., index, :, ::-1]


# --------------------------------------------------------------------------------------------- encode


def pixel_centres(n: int) -> np.ndarray:
    """Pixel centres of a length-n axis in output-pixel units (input coordinates / stride)."""
    return np.arange(n, dtype=np.float64) + 0.5


def gaussian_heatmaps(
    joints: np.ndarray,
    annotated: np.ndarray,
    size_out: int | tuple[int, int],
    stride: float,
    sigma: float,
) -> np.ndarray:
    """(K, H, W) float32 maps exp(-d^2 / 2 sigma^2), d = distance (output pixels) of a pixel centre to the joint.

    The continuous peak is 1 at the joint (the sampled maximum is 1 only for a joint on a pixel centre);
    channels of joints that are not annotated (or not finite) are all zero. Separable, so O(K (H + W)) exps.
    """
    if isinstance(size_out, int | np.integer):
        h, w = int(size_out), int(size_out)
    else:
        h, w = (int(v) for v in size_out)
    p = np.asarray(joints, dtype=np.float64).reshape(-1, 2) / float(stride)
    ok = np.asarray(annotated, dtype=bool) & np.isfinite(p).all(axis=1)
    p = np.where(ok[:, None], p, 0.0)
    gx = np.exp(-((pixel_centres(w)[None, :] - p[:, :1]) ** 2) / (2.0 * sigma**2))
    gy = np.exp(-((pixel_centres(h)[None, :] - p[:, 1:]) ** 2) / (2.0 * sigma**2))
    gx *= ok[:, None]
    return (gy.astype(np.float32)[:, :, None] * gx.astype(np.float32)[:, None, :])


# --------------------------------------------------------------------------------------------- x8 upsampling


def _upsample2_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """x2 along ``axis`` exactly as a bilinear ConvTranspose (kernel 4, stride 2, padding 1, zero padding):
    out[2i] = 0.75 x[i] + 0.25 x[i - 1], out[2i + 1] = 0.75 x[i] + 0.25 x[i + 1], with x[-1] = x[n] = 0."""
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    padded = np.zeros((*x.shape[:-1], n + 2), dtype=np.float32)
    padded[..., 1:-1] = x
    out = np.empty((*x.shape[:-1], 2 * n), dtype=np.float32)
    out[..., 0::2] = np.float32(0.75) * x + np.float32(0.25) * padded[..., :-2]
    out[..., 1::2] = np.float32(0.75) * x + np.float32(0.25) * padded[..., 2:]
    return np.moveaxis(out, -1, axis)


def upsample_x8(heatmaps: np.ndarray) -> np.ndarray:
    """The network's fixed x8 upsampling (three bilinear x2 transposed convolutions, architecture.md §5) in numpy:
    (..., H, W) -> (..., 8H, 8W) float32, so the authors' arg-max decoding needs no torch."""
    out = np.asarray(heatmaps, dtype=np.float32)
    for _ in range(3):
        out = _upsample2_axis(_upsample2_axis(out, -1), -2)
    return out


# --------------------------------------------------------------------------------------------- the codec

#: The decoders :meth:`HeatmapCodec.decode` offers: DARK-refined on the R/8 maps, or the authors' arg-max.
DECODERS = ("refined", "argmax")


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints <-> heatmaps for an R x R input whose network heatmaps are R/``stride`` (the contract between
    training targets and inference decoding, stated once).

    ``encode`` draws the Gaussian targets at any stride (1: full resolution, ``stride``: the network's own);
    ``decode`` turns the network's R/``stride`` maps into (N, K, 3) keypoints in input pixels.
    """

    input_size: int
    stride: int = 8
    argmax_blur: float = 1.0  #: the authors' Gaussian blur before the arg-max (non-real-time mode)

    @property
    def low_size(self) -> int:
        """Side of the network's own heatmaps, ceil(R / stride)."""
        return -(-self.input_size // self.stride)

    def encode(self, joints: np.ndarray, annotated: np.ndarray, sigma: float, stride: int | None = None) -> np.ndarray:
        """(K, R/s, R/s) Gaussian targets for joints in input pixels, at ``stride`` s (default: the network's)."""
        s = self.stride if stride is None else int(stride)
        return gaussian_heatmaps(joints, annotated, -(-self.input_size // s), s, sigma)

    def decode(self, heatmaps: np.ndarray, decoder: str = "refined") -> np.ndarray:
        """Keypoints (N, K, 3) in input pixels from the network's maps (N, K, R/s, R/s).

        "refined": DARK sub-pixel refinement directly on the R/s maps (the fixed bilinear upsampling adds no
        information, and decoding 64x fewer pixels is faster); "argmax": the authors' decoding of the
        upsampled maps (Gaussian blur, arg-max, pixel centre).
        """
        if decoder == "refined":
            return decode_refined(heatmaps, 0.0, stride=self.input_size / np.shape(heatmaps)[-1])
        if decoder == "argmax":
            full = np.shape(heatmaps)[-1] == self.input_size  # an export with the upsampling inside
            return decode_argmax(heatmaps if full else upsample_x8(heatmaps), blur=self.argmax_blur)
        raise ValueError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
