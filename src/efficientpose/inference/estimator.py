"""PoseEstimator: image in, Pose out. Ties the stages together in one direction:
image -> letterbox -> tensor -> backend -> heatmaps -> decode -> coordinates in the original image."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from efficientpose.codec.geometry import Letterbox, letterbox
from efficientpose.codec.heatmap import decode_argmax, decode_refined, flip_merge
from efficientpose.codec.normalize import TF_MODE, TORCH_MODE, to_input
from efficientpose.errors import UsageError
from efficientpose.inference.runtime.cache import cache_dir, file_identity
from efficientpose.inference.runtime.runners import Runner
from efficientpose.inference.runtime.select import cached_runner, make_runner, precision_backend, select_auto
from efficientpose.io.images import to_rgb_array
from efficientpose.models.variants import Variant, get_variant
from efficientpose.pose import Pose
from efficientpose.skeleton import flip_index
from efficientpose.weights.files import local_weights

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose

ImageLike = str | os.PathLike | Image.Image | np.ndarray
Box = tuple[float, float, float, float]  #: x0, y0, x1, y1 in original pixels
#: A letterboxed uint8 input (R, R, 3), its geometry, and the (x, y) offset of its crop in the image.
Prepared = tuple[np.ndarray, Letterbox, tuple[int, int]]

DECODERS = ("refined", "argmax")


class PoseEstimator:
    """Single-person pose estimation with an EfficientPose variant.

    ``decoder`` is "refined" (arg-max + DARK sub-pixel refinement, the default) or "argmax" (the authors':
    Gaussian blur sigma 1, arg-max, pixel centre). ``flip`` averages with the mirrored image's heatmaps.
    ``backend`` is "auto" (fastest installed backend that matches torch), "torch", "onnxruntime" or "openvino".
    ``precision`` is "fp32" (the default), "bf16" or "int8", both on OpenVINO: bf16 where the CPU has it (else
    fp32, said once), int8 quantised once with NNCF, calibrated on the photos in ``calibration`` (a folder;
    default ``$EFFICIENTPOSE_CALIBRATION_DIR``, else the int8 model cached for these weights). ``auto`` never
    picks a reduced precision by itself.
    When an earlier start cached the ONNX export of the same weights file, an ONNX Runtime or OpenVINO backend
    starts from it without building the PyTorch network; :attr:`model` builds that on first use.
    """

    def __init__(self, model: str | EfficientPose = "rt", weights: str | os.PathLike | None = None, *,
                 backend: str = "auto", flip: bool = False, decoder: str = "refined",
                 threads: int | None = None, precision: str = "fp32",
                 calibration: str | os.PathLike | None = None) -> None:
        if decoder not in DECODERS:
            raise UsageError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
        self.flip = flip
        self.decoder = decoder
        self._weights = weights
        self._upsampler = None
        cache = cache_dir()
        identity = _identity(model, weights)
        backend = precision_backend(backend, precision)
        cached = cached_runner(identity, backend, cache, threads, precision, calibration) if identity else None
        if cached is not None:  # a cached export: the network (and torch) load only if asked for
            self.runner: Runner = cached[0]
            self._model = None
            self._name = model
            variant, names = get_variant(cached[1].variant), cached[1].keypoints
        else:
            if isinstance(model, str):
                from efficientpose.weights.hub import load_model

                self._model = load_model(model, weights=weights)
                identity = _identity(model, weights)  # loading may have written the converted cache
            else:
                self._model = model
            self._name = self._model.variant.name
            self.runner = (select_auto(self._model, cache, threads, identity=identity) if backend == "auto"
                           else make_runner(backend, self._model, cache, threads, identity, precision, calibration))
            variant, names = self._model.variant, tuple(self._model.keypoints)
        self.variant: Variant = variant
        self.size = variant.input_size
        self.names = names
        self.normalization = TORCH_MODE if variant.normalization == "torch" else TF_MODE
        self._flip_index = flip_index(self.names)

    @property
    def model(self) -> EfficientPose:
        """The PyTorch network (built on first use when the backend runs a cached export)."""
        if self._model is None:
            from efficientpose.weights.hub import load_model

            self._model = load_model(self._name, weights=self._weights)
        return self._model

    def _upsample(self, maps: np.ndarray) -> np.ndarray:
        """R/8 maps -> R x R through the model's own fixed bilinear layers (depthwise, as for inference)."""
        import torch

        if self._upsampler is None:
            from efficientpose.models.fuse import optimize_for_inference

            self._upsampler = optimize_for_inference(self.model.upsample)
        with torch.inference_mode():
            return self._upsampler(torch.from_numpy(np.ascontiguousarray(maps))).numpy()

    @property
    def backend(self) -> str:
        return self.runner.name

    @property
    def precision(self) -> str:
        """What the network runs in: "fp32", "bf16" or "int8" (bf16 asked on a CPU without it runs fp32)."""
        return getattr(self.runner, "precision", "fp32")

    def prepare(self, image: ImageLike, roi: Box | None = None) -> Prepared:
        """Letterboxed uint8 input (R, R, 3), its geometry, and the (x, y) offset of the crop in the image."""
        rgb, offset = crop(to_rgb_array(image), roi)
        boxed, geometry = letterbox(rgb, self.size)
        return boxed, geometry, offset

    def heatmaps(self, batch: np.ndarray, full: bool = False) -> np.ndarray:
        """Heatmaps for letterboxed uint8 inputs (N, R, R, 3), flip-averaged if enabled: the network's own
        (N, K, R/8, R/8), or with ``full`` upsampled to (N, K, R, R) by the model's fixed bilinear layers."""
        x = to_input(batch, self.normalization)
        maps = self.runner(x)
        if self.flip:
            mirrored = self.runner(np.ascontiguousarray(x[..., ::-1]))
            maps = flip_merge(maps, mirrored, self._flip_index)
        return self._upsample(maps) if full else maps

    def decode(self, maps: np.ndarray, decoder: str | None = None) -> np.ndarray:
        """Keypoints (N, K, 3) in input pixels from R/8 heatmaps (N, K, R/8, R/8), with ``decoder`` (default: the
        estimator's own).

        "refined": DARK sub-pixel refinement directly on the network's R/8 maps (the fixed bilinear upsampling
        adds no information, and decoding 64x fewer pixels is faster); "argmax": the authors' decoding of the
        upsampled maps (Gaussian blur sigma 1, arg-max, pixel centre).
        """
        if (decoder or self.decoder) == "refined":
            return decode_refined(maps, 0.0, stride=self.size / maps.shape[-1])
        return decode_argmax(self._upsample(maps), blur=1.0)

    def predict(self, image: ImageLike, roi: Box | None = None) -> Pose:
        """One image (a path, a PIL image or an HxWx3 uint8 RGB array) -> Pose in the image's pixels."""
        return self.predict_batch([image], None if roi is None else [roi])[0]

    def predict_batch(self, images: Sequence[ImageLike], rois: Sequence[Box | None] | None = None) -> list[Pose]:
        """Several images in one batched forward pass; ``rois`` optionally crops each around a known person."""
        return self.predict_prepared([self.prepare(img, None if rois is None else rois[i])
                                      for i, img in enumerate(images)])

    def predict_prepared(self, prepared: Sequence[Prepared]) -> list[Pose]:
        """Poses for outputs of :meth:`prepare` (which a reader thread can run ahead of the model)."""
        if not prepared:
            return []
        return self.poses(self.heatmaps(np.stack([p[0] for p in prepared])), prepared)

    def poses(self, maps: np.ndarray, prepared: Sequence[Prepared], decoder: str | None = None) -> list[Pose]:
        """Decode the heatmaps of ``prepared`` inputs into poses in their images' pixels (one forward pass can
        so serve several decoders)."""
        keypoints = self.decode(maps, decoder)
        poses = []
        for (_, geometry, (ox, oy)), kp in zip(prepared, keypoints, strict=True):
            out = geometry.to_original(kp)
            out[:, 0] += ox
            out[:, 1] += oy
            poses.append(Pose(out, self.names))
        return poses


def crop(image: np.ndarray, box: Box | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of ``image`` inside ``box`` (clipped to the image; the whole image if that leaves < 8 px) and its
    top-left offset in the image."""
    if box is None:
        return image, (0, 0)
    h, w = image.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return image, (0, 0)
    return image[y0:y1, x0:x1], (x0, y0)


def _identity(model: str | EfficientPose, weights: str | os.PathLike | None) -> str | None:
    """The runtime-cache identity of a model named ``model``: its variant and the digest of the file its weights
    load from (explicit, else the resolution order's local file). None for a model built in Python (identified
    by its state dict instead) or weights not on disk yet."""
    if not isinstance(model, str):
        return None
    variant = get_variant(model)
    source = Path(weights) if weights is not None else local_weights(variant)
    return file_identity(variant.name, source) if source is not None and source.is_file() else None
