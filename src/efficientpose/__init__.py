"""efficientpose: fast single-person pose estimation (EfficientPose, Groos et al. 2021) in PyTorch.

The public API: ``load_model``, ``list_models``, ``PoseEstimator``, ``PersonTracker``, ``Pose``, ``KEYPOINTS``.
Heavy modules load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not imported from typing: the console script's entry imports this package first, and
# installs its interrupt handlers only after that (efficientpose.entry), so this module imports nothing.
if TYPE_CHECKING:
    from typing import Any

    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.inference.tracking import PersonTracker
    from efficientpose.pose import Pose
    from efficientpose.skeleton import KEYPOINTS
    from efficientpose.weights.hub import list_models, load_model

__all__ = ["KEYPOINTS", "PersonTracker", "Pose", "PoseEstimator", "list_models", "load_model"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Pose":
        from efficientpose.pose import Pose

        return Pose
    if name == "KEYPOINTS":
        from efficientpose.skeleton import KEYPOINTS

        return KEYPOINTS
    if name == "PoseEstimator":
        from efficientpose.inference.estimator import PoseEstimator

        return PoseEstimator
    if name == "PersonTracker":
        from efficientpose.inference.tracking import PersonTracker

        return PersonTracker
    if name in ("load_model", "list_models"):
        from efficientpose.weights import hub

        return getattr(hub, name)
    raise AttributeError(f"module 'efficientpose' has no attribute {name!r}")
