"""MediaPipe's BlazePose person detector (``pose_detection.tflite``) without TensorFlow, decoded as MediaPipe's
graph ``mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt`` does.

Options implemented, from that graph (google-ai-edge/mediapipe):

* ImageToTensorCalculator: 224 x 224, keep_aspect_ratio (letterbox, zero border), float range [-1, 1];
* SsdAnchorsCalculator: num_layers 5, min_scale 0.1484375, max_scale 0.75, input 224 x 224, anchor_offset 0.5,
  strides 8, 16, 32, 32, 32, aspect_ratios 1.0, fixed_anchor_size true (2254 anchors);
* TensorsToDetectionsCalculator: num_boxes 2254, num_coords 12, box_coord_offset 0, keypoint_coord_offset 4,
  num_keypoints 4, sigmoid_score, score_clipping_thresh 100, reverse_output_order, x/y/w/h_scale 224,
  min_score_thresh 0.2 (boxes with negative width or height are dropped, as the calculator does);
* NonMaxSuppressionCalculator: min_suppression_threshold 0.3, INTERSECTION_OVER_UNION, WEIGHTED;
* DetectionLetterboxRemovalCalculator: back to the original image (here through :class:`Letterbox`, in the
  package's continuous pixel convention).

The full-body region (``mediapipe/modules/pose_landmark/pose_detection_to_roi.pbtxt``): AlignmentPointsRects
with rotation_vector_start_keypoint_index 0 (mid-hip, the centre), end index 1 (its distance is the radius;
the square's side is twice that), target angle 90 degrees; then RectTransformation scale 1.25, square_long.

The network runs from an ONNX export made once per file (PyTorch builds it from the TFLite graph,
:mod:`efficientpose.detection.graph`) and cached in ``$EFFICIENTPOSE_HOME/runtime``; later starts use OpenVINO,
ONNX Runtime or OpenCV's DNN module, whichever is installed first in that order, and never import torch.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from efficientpose.codec.geometry import Letterbox, letterbox
from efficientpose.codec.normalize import TF_MODE, to_input
from efficientpose.detection.anchors import (
    AnchorOptions,
    DecodeOptions,
    decode_boxes,
    scores,
    ssd_anchors,
    weighted_nms,
)
from efficientpose.detection.types import Detection, Roi
from efficientpose.detection.weights import resolve_detector
from efficientpose.errors import UsageError, WeightsError
from efficientpose.inference.runtime.cache import cache_dir
from efficientpose.inference.runtime.runners import OnnxRuntimeRunner, OpenVinoRunner
from efficientpose.io.images import to_rgb_array
from efficientpose.weights.files import sha256

log = logging.getLogger(__name__)

INPUT_SIZE = 224
ANCHORS = AnchorOptions(input_size=INPUT_SIZE, min_scale=0.1484375, max_scale=0.75, strides=(8, 16, 32, 32, 32),
                        aspect_ratios=(1.0,), anchor_offset=0.5, fixed_anchor_size=True)
DECODING = DecodeOptions(num_keypoints=4, scale=float(INPUT_SIZE), reverse_output_order=True,
                         score_clipping_thresh=100.0, min_score_thresh=0.2, min_suppression_threshold=0.3)
#: The detector's keypoints, in its output order.
KEYPOINTS = ("mid_hip", "full_body_radius", "mid_shoulder", "upper_body_radius")
#: pose_detection_to_roi.pbtxt: RectTransformation scale_x = scale_y.
ROI_SCALE = 1.25
BACKENDS = ("openvino", "onnxruntime", "opencv")


class OpenCvRunner:
    """OpenCV's DNN module on an ONNX file: always installed (OpenCV is a dependency), torch-free."""

    name = "opencv"

    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        import cv2

        if threads:
            cv2.setNumThreads(threads)
        self.net = cv2.dnn.readNetFromONNX(str(onnx_path))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.net.setInput(np.ascontiguousarray(batch, dtype=np.float32))
        return np.asarray(self.net.forward())


def _installed(backend: str) -> bool:
    return backend == "opencv" or importlib.util.find_spec(backend) is not None


def export_detector(tflite: Path, onnx: Path) -> Path:
    """Build the TFLite graph in PyTorch and write it as ONNX (input 'image' (N, 3, 224, 224) in [-1, 1], output
    'raw' (N, 2254, 13): 12 regressors, then the score logit); atomic."""
    import torch

    from efficientpose.detection.graph import TFLiteNet

    net = TFLiteNet(tflite).eval()
    onnx.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{onnx.name}.", suffix=".tmp", dir=onnx.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), tmp, dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["raw"],
                              dynamic_axes={"image": {0: "batch"}, "raw": {0: "batch"}})
        os.replace(tmp, onnx)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return onnx


def _runner(backend: str, onnx: Path, threads: int | None):  # noqa: ANN202 - one of the runner classes
    cls = {"openvino": OpenVinoRunner, "onnxruntime": OnnxRuntimeRunner, "opencv": OpenCvRunner}[backend]
    return cls(onnx, threads)


def _reraise_interrupt(exc: BaseException) -> None:
    """Raise the Ctrl-C or SIGTERM behind ``exc`` (a library's import can turn one into an ImportError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            raise seen
        seen = seen.__cause__ or seen.__context__


def detector_runner(tflite: Path, backend: str = "auto", threads: int | None = None):  # noqa: ANN201
    """A runner for the detector file: its cached ONNX export (made on first use) on ``backend``, or with "auto"
    the first installed of :data:`BACKENDS`. A damaged cached export is exported again."""
    if backend != "auto" and backend not in BACKENDS:
        raise UsageError(f"unknown detector backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}")
    chosen = next(b for b in BACKENDS if _installed(b)) if backend == "auto" else backend
    if not _installed(chosen):
        raise UsageError(f"detector backend {chosen!r} is not installed")
    onnx = cache_dir() / f"pose_detection-{sha256(tflite)[:16]}.onnx"
    if onnx.is_file():
        try:
            return _runner(chosen, onnx, threads)
        except Exception as exc:  # noqa: BLE001 - any damage: export again
            _reraise_interrupt(exc)
            log.warning("ignoring the unreadable cached export %s (%s)", onnx, type(exc).__name__)
            onnx.unlink(missing_ok=True)
    export_detector(tflite, onnx)
    return _runner(chosen, onnx, threads)


def roi_from_keypoints(keypoints: np.ndarray) -> Roi:
    """MediaPipe's full-body region from the detector's keypoints in pixels: centre at the mid-hip, side 2 x the
    distance to the full-body point x :data:`ROI_SCALE`, rotation that turns hip -> that point upright."""
    (x0, y0), (x1, y1) = keypoints[0], keypoints[1]
    side = 2.0 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
    angle = math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0)
    rotation = angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
    return Roi(float(x0), float(y0), side, rotation)


def full_body_box(keypoints: np.ndarray) -> tuple[float, float, float, float]:
    """The square around the full-body circle (centre mid-hip, radius to the full-body point), in pixels."""
    (x0, y0), (x1, y1) = keypoints[0], keypoints[1]
    r = math.hypot(x1 - x0, y1 - y0)
    return (float(x0 - r), float(y0 - r), float(x0 + r), float(y0 + r))


def decode(raw: np.ndarray, geometry: Letterbox, anchors: np.ndarray | None = None) -> list[Detection]:
    """One image's raw output (2254, 13) -> detections in original-image pixels, best first."""
    anchors = ssd_anchors(ANCHORS) if anchors is None else anchors
    score = scores(raw[:, 12], DECODING)
    boxes, keypoints = decode_boxes(raw[:, :12], anchors, DECODING)
    keep = (score >= DECODING.min_score_thresh) & (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])
    detections = []
    for box, kps, s in weighted_nms(boxes[keep], keypoints[keep], score[keep], DECODING.min_suppression_threshold):
        face = geometry.to_original(box.reshape(2, 2) * INPUT_SIZE).reshape(4)
        kps = geometry.to_original(kps * INPUT_SIZE)
        detections.append(Detection(box=full_body_box(kps), score=s, keypoints=kps, roi=roi_from_keypoints(kps),
                                    face_box=tuple(float(v) for v in face)))
    return detections


class BlazePoseDetector:
    """MediaPipe's BlazePose person detector: ``detector(image)`` -> list of :class:`Detection`, best first.

    ``path`` is the ``pose_detection.tflite`` file (default: resolved by :func:`resolve_detector`); ``backend``
    is "auto", "openvino", "onnxruntime" or "opencv"."""

    def __init__(self, path: str | os.PathLike | None = None, *, backend: str = "auto",
                 threads: int | None = None) -> None:
        self.path = resolve_detector(path)
        try:
            self.runner = detector_runner(self.path, backend, threads)
        except (WeightsError, UsageError):
            raise
        except Exception as exc:  # noqa: BLE001 - an unreadable file: one line naming it
            _reraise_interrupt(exc)
            raise WeightsError(f"{self.path}: cannot load the person detector ({type(exc).__name__})") from None
        self.anchors = ssd_anchors(ANCHORS)

    @property
    def backend(self) -> str:
        return self.runner.name

    def raw(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """The network's raw output (N, 2254, 13) for RGB images, and each image's letterbox geometry. The images
        are letterboxed one at a time: views of a huge photo (its windows) are copied only one at a time."""
        boxed = [letterbox(to_rgb_array(image), INPUT_SIZE) for image in images]
        out = self.runner(to_input(np.stack([b[0] for b in boxed]), TF_MODE))
        return np.asarray(out).reshape(len(images), len(self.anchors), 13), [b[1] for b in boxed]

    def __call__(self, image: np.ndarray) -> list[Detection]:
        return self.many([image])[0]

    def many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Detections in each of several RGB images from one batched run (a photo's overlapping windows), whose
        requests the runtime spreads over the cores."""
        if not images:
            return []
        raw, geometries = self.raw(list(images))
        return [decode(r, g, self.anchors) for r, g in zip(raw, geometries, strict=True)]
