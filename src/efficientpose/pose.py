"""The result type: one person's keypoints in the original image's pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from efficientpose.skeleton import KEYPOINTS


@dataclass
class Pose:
    """Keypoints (K, 3) = x, y in the original image's pixels (pixel centres at +0.5), then score in [0, 1]."""

    keypoints: np.ndarray
    names: tuple[str, ...] = KEYPOINTS

    @property
    def xy(self) -> np.ndarray:
        """(K, 2) coordinates."""
        return self.keypoints[:, :2]

    @property
    def scores(self) -> np.ndarray:
        """(K,) per-keypoint confidence in [0, 1]."""
        return self.keypoints[:, 2]

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{name: {"x": …, "y": …, "score": …}}`` in output order, for JSON."""
        return {
            name: {"x": float(x), "y": float(y), "score": float(s)}
            for name, (x, y, s) in zip(self.names, self.keypoints, strict=True)
        }

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, float]]) -> Pose:
        """Inverse of :meth:`to_dict`."""
        names = tuple(data)
        kp = np.array([[data[n]["x"], data[n]["y"], data[n]["score"]] for n in names], dtype=np.float64)
        return cls(kp, names)
