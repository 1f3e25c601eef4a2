"""PoseEstimator: image in, Pose out.

Construction is apart from execution. :meth:`PoseEstimator.from_pretrained` finds the weights, exports, measures
and caches (today's ``PoseEstimator("rt")``); :meth:`PoseEstimator.from_onnx` runs an exported file from its own
metadata; either way the estimator itself only holds a ready runner and a small :class:`ModelSpec`, and runs one
direction: image -> codec geometry -> normalised input -> runner -> heatmaps -> codec decoding -> the original
image's pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image

from efficientpose.codec.geometry import Letterbox, letterbox_crop
from efficientpose.codec.heatmap import DECODERS, HeatmapCodec, flip_merge, upsample_x8
from efficientpose.codec.normalize import Normalization, to_input
from efficientpose.errors import UsageError, WeightsError
from efficientpose.inference.runtime.cache import CachedExport, cache_dir, file_identity, read_export
from efficientpose.inference.runtime.runners import Runner
from efficientpose.inference.runtime.select import (
    available,
    cached_runner,
    make_runner,
    onnx_runner,
    precision_backend,
    select_auto,
)
from efficientpose.io.images import check_image_shape, to_rgb_array
from efficientpose.models.variants import Variant, get_variant
from efficientpose.pose import Box, Pose
from efficientpose.skeleton import flip_index
from efficientpose.weights.files import local_weights

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose

ImageLike = str | os.PathLike | Image.Image | np.ndarray


@dataclass(frozen=True)
class ModelSpec:
    """What running a network's heatmaps needs besides the network: the variant, the keypoint names its channels
    hold, the input size and normalisation, and the stride of the heatmaps the runner returns (8: the network's
    own R/8 maps; 1: an export with the fixed upsampling inside)."""

    variant: str
    keypoints: tuple[str, ...]
    input_size: int
    normalization: Normalization
    stride: int = 8

    @classmethod
    def of(cls, variant: Variant, keypoints: Sequence[str] | None = None, stride: int = 8) -> ModelSpec:
        """The spec of ``variant`` (with its own keypoints unless others are given)."""
        names = tuple(keypoints) if keypoints is not None else variant.keypoints
        return cls(variant.name, names, variant.input_size, variant.normalization, stride)


class Prepared(NamedTuple):
    """One image made ready for the network (by :meth:`PoseEstimator.prepare`, which a reader thread can run ahead)."""

    input: np.ndarray  #: letterboxed uint8 (R, R, 3)
    geometry: Letterbox  #: maps input pixels back to the whole image's
    image_size: tuple[int, int]  #: (width, height) of the whole image
    roi: Box | None  #: the region the network sees, None for the whole image


class PoseEstimator:
    """Single-person pose estimation with an EfficientPose variant.

    ``PoseEstimator(runner, spec=spec)`` runs a ready :class:`~efficientpose.inference.runtime.runners.Runner`.
    ``PoseEstimator("rt", weights, backend=...)`` (a variant name or a network instead of a runner) is
    :meth:`from_pretrained`, kept as the short form the README shows.
    ``decoder`` is "refined" (arg-max + DARK sub-pixel refinement, the default) or "argmax" (the authors':
    Gaussian blur sigma 1, arg-max, pixel centre). ``flip`` averages with the mirrored image's heatmaps.
    Not safe to share across threads (runners keep per-call state).
    """

    def __init__(self, runner: Runner | str | EfficientPose = "rt", weights: str | os.PathLike | None = None, *,
                 spec: ModelSpec | None = None, backend: str = "auto", flip: bool = False, decoder: str = "refined",
                 threads: int | None = None, precision: str = "fp32",
                 calibration: str | os.PathLike | None = None) -> None:
        if decoder not in DECODERS:
            raise UsageError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
        self._model: EfficientPose | None = None
        self._source: tuple[str, str | os.PathLike | None] | None = None
        if spec is None:  # a variant name or a network: find, export, measure and cache
            runner, spec, self._model = _pretrained(runner, weights, backend, threads, precision, calibration)
            self._source = (spec.variant, weights)
        self.runner: Runner = runner
        self.spec = spec
        self.flip = flip
        self.decoder = decoder
        self.variant: Variant = get_variant(spec.variant)
        self.size = spec.input_size
        self.names = spec.keypoints
        self.normalization = spec.normalization
        self.codec = HeatmapCodec(self.size)
        self._flip_index = flip_index(self.names)

    @classmethod
    def from_pretrained(cls, model: str | EfficientPose = "rt", weights: str | os.PathLike | None = None, *,
                        backend: str = "auto", flip: bool = False, decoder: str = "refined",
                        threads: int | None = None, precision: str = "fp32",
                        calibration: str | os.PathLike | None = None) -> PoseEstimator:
        """A variant by name (weights resolved as documented, or ``weights``: a file, or named weights shipped in
        the package such as ``"lsp"``, docs/weights.md), or a network built in Python.

        ``backend`` is "auto" (the fastest installed backend whose heatmaps match torch's, measured once per
        weights and machine and cached), "torch", "onnxruntime" or "openvino". The ONNX export is cached beside
        the choice, keyed by the weights' digest; a later start with an ONNX Runtime or OpenVINO backend opens it
        without building the PyTorch network (or importing torch); :attr:`model` builds that on first use.
        ``precision`` is "fp32" (the default), "bf16" or "int8", both on OpenVINO: bf16 where the CPU has it (else
        fp32, said once), int8 quantised once with NNCF, calibrated on the photos in ``calibration`` (a folder;
        default ``$EFFICIENTPOSE_CALIBRATION_DIR``, else the int8 model cached for these weights). ``auto`` never
        picks a reduced precision by itself.
        """
        return cls(model, weights, backend=backend, flip=flip, decoder=decoder, threads=threads,
                   precision=precision, calibration=calibration)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, *, backend: str = "auto", flip: bool = False,
                  decoder: str = "refined", threads: int | None = None) -> PoseEstimator:
        """Run an ONNX file written by ``efficientpose export`` (or :func:`export_onnx`), configured from the
        metadata inside it (variant, keypoints, input size, heatmap stride). ``backend``: "onnxruntime",
        "openvino", or "auto" (ONNX Runtime if installed, else OpenVINO); never builds the network."""
        path = Path(path)
        try:
            export: CachedExport = read_export(path)
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise UsageError(f"{path}: not an efficientpose ONNX export ({exc})") from None
        if backend == "auto":
            backend = next((b for b in ("onnxruntime", "openvino") if available(b)), "onnxruntime")
        if backend not in ("onnxruntime", "openvino"):
            raise UsageError(f"an ONNX file runs on onnxruntime or openvino, not {backend!r}")
        spec = ModelSpec.of(get_variant(export.variant), export.keypoints, export.stride)
        if spec.input_size != export.input_size:
            raise UsageError(f"{path}: input size {export.input_size} is not {export.variant}'s {spec.input_size}")
        return cls(onnx_runner(backend, path, threads), spec=spec, flip=flip, decoder=decoder)

    @property
    def model(self) -> EfficientPose:
        """The PyTorch network (built on first use when the backend runs a cached export)."""
        if self._model is None:
            if self._source is None:
                raise UsageError("this estimator runs an exported file; it has no PyTorch network")
            from efficientpose.weights.hub import load_model

            self._model = load_model(self._source[0], weights=self._source[1])
        return self._model

    @property
    def weights(self) -> str | None:
        """The weights asked for, as given (named weights such as ``"lsp"``, or a file); None for the variant's
        default, the authors' weights, and for an exported file (what the prediction files record)."""
        if self._source is None or self._source[1] is None:
            return None
        return os.fspath(self._source[1])

    @property
    def backend(self) -> str:
        return self.runner.name

    @property
    def precision(self) -> str:
        """The precision the runner computes in: "fp32", "bf16" or "int8"."""
        return getattr(self.runner, "precision", "fp32")

    def prepare(self, image: ImageLike, roi: Box | None = None) -> Prepared:
        """The letterboxed input of the image (or of its part inside ``roi``) and how it maps back."""
        rgb = to_rgb_array(image)
        check_image_shape(image, rgb)  # a thin array would hold no person, and searching it would cost without bound
        boxed, geometry = letterbox_crop(rgb, self.size, roi)
        height, width = rgb.shape[:2]
        seen = None if (geometry.width, geometry.height) == (width, height) else (
            float(geometry.crop_x), float(geometry.crop_y), float(geometry.crop_x + geometry.width),
            float(geometry.crop_y + geometry.height))
        return Prepared(boxed, geometry, (width, height), seen)

    def heatmaps(self, batch: np.ndarray, full: bool = False, flip: bool | None = None) -> np.ndarray:
        """Heatmaps for letterboxed uint8 inputs (N, R, R, 3), flip-averaged if ``flip`` (default: the estimator's
        setting): the runner's own (the network's R/8 maps), or with ``full`` at R x R as the network's fixed
        bilinear layers upsample them."""
        x = to_input(batch, self.normalization)
        maps = self.runner(x)
        if self.flip if flip is None else flip:
            mirrored = self.runner(np.ascontiguousarray(x[..., ::-1]))
            maps = flip_merge(maps, mirrored, self._flip_index)
        return upsample_x8(maps) if full and maps.shape[-1] != self.size else maps

    def decode(self, maps: np.ndarray, decoder: str | None = None) -> np.ndarray:
        """Keypoints (N, K, 3) in input pixels from the runner's heatmaps, with ``decoder`` (default: the
        estimator's own); see :meth:`~efficientpose.codec.heatmap.HeatmapCodec.decode`."""
        return self.codec.decode(maps, decoder or self.decoder)

    def predict(self, image: ImageLike, roi: Box | None = None) -> Pose:
        """One image (a path, a PIL image or an HxWx3 uint8 RGB array) -> Pose in the image's pixels."""
        return self.predict_batch([image], None if roi is None else [roi])[0]

    def predict_batch(self, images: Sequence[ImageLike], rois: Sequence[Box | None] | None = None, *,
                      flip: bool | None = None) -> list[Pose]:
        """Several images in one batched forward pass; ``rois`` optionally crops each around a known person;
        ``flip`` overrides the estimator's flip setting for this call."""
        return self.predict_prepared([self.prepare(img, None if rois is None else rois[i])
                                      for i, img in enumerate(images)], flip=flip)

    def predict_prepared(self, prepared: Sequence[Prepared], *, flip: bool | None = None) -> list[Pose]:
        """Poses for outputs of :meth:`prepare` (which a reader thread can run ahead of the model)."""
        if not prepared:
            return []
        return self.poses(self.heatmaps(np.stack([p.input for p in prepared]), flip=flip), prepared)

    def poses(self, maps: np.ndarray, prepared: Sequence[Prepared], decoder: str | None = None) -> list[Pose]:
        """Decode the heatmaps of ``prepared`` inputs into poses in their images' pixels (one forward pass can
        so serve several decoders)."""
        keypoints = self.decode(maps, decoder)
        return [Pose(p.geometry.to_original(kp), self.names, p.image_size, p.roi)
                for p, kp in zip(prepared, keypoints, strict=True)]


def _pretrained(model: str | EfficientPose, weights: str | os.PathLike | None, backend: str,
                threads: int | None, precision: str = "fp32", calibration: str | os.PathLike | None = None,
                ) -> tuple[Runner, ModelSpec, EfficientPose | None]:
    """Runner, spec and (when it was built) the network for a variant name or a network built in Python: a cached
    export when there is one for these weights, else load, export and choose (:meth:`PoseEstimator.from_pretrained`)."""
    cache = cache_dir()
    identity = _identity(model, weights)
    backend = precision_backend(backend, precision)
    cached = cached_runner(identity, backend, cache, threads, precision, calibration) if identity else None
    if cached is not None:  # a cached export: the network (and torch) load only if asked for
        runner, export = cached
        return runner, ModelSpec.of(get_variant(export.variant), export.keypoints), None
    if isinstance(model, str):
        from efficientpose.weights.hub import load_model

        model = load_model(model, weights=weights)
        identity = _identity(model.variant.name, weights)  # loading may have written the converted cache
    runner = (select_auto(model, cache, threads, identity=identity) if backend == "auto"
              else make_runner(backend, model, cache, threads, identity, precision, calibration))
    return runner, ModelSpec.of(model.variant, model.keypoints), model


def _identity(model: str | EfficientPose, weights: str | os.PathLike | None) -> str | None:
    """The runtime-cache identity of a model named ``model``: its variant and the digest of the file its weights
    load from (explicit, else the resolution order's local file). None for a model built in Python (identified
    by its state dict instead) or weights not on disk yet."""
    if not isinstance(model, str):
        return None
    variant = get_variant(model)
    try:
        source = local_weights(variant, weights)
    except WeightsError:
        return None  # loading the weights says what is wrong
    return file_identity(variant.name, source) if source is not None else None
