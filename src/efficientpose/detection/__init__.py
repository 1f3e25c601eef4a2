"""Finding people before the pose model: a small :class:`Detector` protocol, its :class:`Detection`, MediaPipe's
BlazePose person detector run without TensorFlow, and the crop the pose model is given from a detection."""

from efficientpose.detection.blazepose import BlazePoseDetector
from efficientpose.detection.types import Box, Detection, Detector, Roi

__all__ = ["BlazePoseDetector", "Box", "Detection", "Detector", "Roi"]
