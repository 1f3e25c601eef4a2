"""PoseEstimator: image in, Pose out. Ties the stages together in one direction:
image -> letterbox -> tensor -> backend -> heatmaps -> decode -> coordinates in the original image."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from efficientpose.decode import decode_argmax, decode_refined, flip_merge
from efficientpose.errors import UsageError
from efficientpose.io import to_rgb_array
from efficientpose.models.builders import load_model
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.fuse import optimize_for_inference
from efficientpose.pose import Pose
from efficientpose.preprocess import TF_MODE, TORCH_MODE, Letterbox, letterbox, to_tensor
from efficientpose.runtime import Runner, make_runner, select_auto
from efficientpose.skeleton import flip_index
from efficientpose.weights.store import home

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
    """

    def __init__(self, model: str | EfficientPose = "rt", weights: str | os.PathLike | None = None, *,
                 backend: str = "auto", flip: bool = False, decoder: str = "refined",
                 threads: int | None = None) -> None:
        if decoder not in DECODERS:
            raise UsageError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
        self.model = model if isinstance(model, EfficientPose) else load_model(model, weights=weights)
        self.variant = self.model.variant
        self.size = self.model.input_size
        self.names = tuple(self.model.keypoints)
        self.normalization = TORCH_MODE if self.variant.normalization == "torch" else TF_MODE
        self.flip = flip
        self.decoder = decoder
        self._flip_index = flip_index(self.names)
        self._upsample = optimize_for_inference(self.model.upsample)  # only the fixed upsampler, depthwise
        cache = home() / "runtime"
        self.runner: Runner = (select_auto(self.model, cache, threads) if backend == "auto"
                               else make_runner(backend, self.model, cache, threads))

    @property
    def backend(self) -> str:
        return self.runner.name

    def prepare(self, image: ImageLike, roi: Box | None = None) -> Prepared:
        """Letterboxed uint8 input (R, R, 3), its geometry, and the (x, y) offset of the crop in the image."""
        rgb, offset = crop(to_rgb_array(image), roi)
        boxed, geometry = letterbox(rgb, self.size)
        return boxed, geometry, offset

    def heatmaps(self, batch: np.ndarray, full: bool = False) -> np.ndarray:
        """Heatmaps for letterboxed uint8 inputs (N, R, R, 3), flip-averaged if enabled: the network's own
        (N, K, R/8, R/8), or with ``full`` upsampled to (N, K, R, R) by the model's fixed bilinear layers."""
        tensor = to_tensor(batch, self.normalization)
        maps = self.runner(tensor)
        if self.flip:
            mirrored = self.runner(tensor.flip(-1).contiguous())
            maps = flip_merge(maps, mirrored, self._flip_index)
        if full:
            with torch.inference_mode():
                maps = self._upsample(torch.from_numpy(np.ascontiguousarray(maps))).numpy()
        return maps

    def decode(self, maps: np.ndarray) -> np.ndarray:
        """Keypoints (N, K, 3) in input pixels from R/8 heatmaps (N, K, R/8, R/8).

        "refined": DARK sub-pixel refinement directly on the network's R/8 maps (the fixed bilinear upsampling
        adds no information, and decoding 64x fewer pixels is faster); "argmax": the authors' decoding of the
        upsampled maps (Gaussian blur sigma 1, arg-max, pixel centre).
        """
        if self.decoder == "refined":
            return decode_refined(maps, 0.0, stride=self.size / maps.shape[-1])
        with torch.inference_mode():
            full = self._upsample(torch.from_numpy(np.ascontiguousarray(maps))).numpy()
        return decode_argmax(full, blur=1.0)

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
        maps = self.heatmaps(np.stack([p[0] for p in prepared]))
        keypoints = self.decode(maps)
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
