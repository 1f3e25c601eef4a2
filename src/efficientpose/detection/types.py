"""What a person detector returns (:class:`Detection`) and what it is (:class:`Detector`), so that any detector
can be plugged in from Python: a callable from an RGB image to detections, best first."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

Box = tuple[float, float, float, float]  #: x0, y0, x1, y1 in original-image pixels (continuous, centres at +0.5)


@dataclass(frozen=True)
class Roi:
    """A rotated square region around a person: centre, side and rotation (radians, clockwise in the image as
    MediaPipe's ``NormalizedRect.rotation``; 0 for an upright person), in original-image pixels."""

    x: float
    y: float
    size: float
    rotation: float = 0.0

    def box(self) -> Box:
        """The axis-aligned square of side :attr:`size` around the centre (ignoring rotation)."""
        half = self.size / 2
        return (self.x - half, self.y - half, self.x + half, self.y + half)

    def shifted(self, dx: float, dy: float) -> Roi:
        """The same region ``dx``, ``dy`` pixels further right and down."""
        return replace(self, x=self.x + dx, y=self.y + dy)


@dataclass(frozen=True)
class Detection:
    """One person: ``box`` (x0, y0, x1, y1) around the whole person in original-image pixels, ``score`` in
    [0, 1], detector-specific ``keypoints`` (K, 2) in the same pixels, and optionally the ``roi`` the detector
    derives for the pose model and the detector's own raw box (for BlazePose: the face)."""

    box: Box
    score: float
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    roi: Roi | None = None
    face_box: Box | None = None

    def person_box(self) -> Box:
        """The box around the whole person (what output records call ``box``)."""
        return self.box

    def shifted(self, dx: float, dy: float) -> Detection:
        """The same detection ``dx``, ``dy`` pixels further right and down (from a crop back to its image)."""
        move = np.array([dx, dy, dx, dy])
        return replace(self, box=tuple(float(v) for v in np.add(self.box, move)),
                       keypoints=np.asarray(self.keypoints) + move[:2],
                       roi=None if self.roi is None else self.roi.shifted(dx, dy),
                       face_box=None if self.face_box is None else tuple(float(v) for v in np.add(self.face_box, move)))


@runtime_checkable
class Detector(Protocol):
    """Anything that finds people in an HxWx3 uint8 RGB image, best first. A detector may also have
    ``many(images) -> [detections of each]``, one batched run, which the window search then uses."""

    def __call__(self, image: np.ndarray) -> list[Detection]: ...
