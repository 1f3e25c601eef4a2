"""efficientpose: fast single-person pose estimation (EfficientPose, Groos et al. 2021) in PyTorch."""

from efficientpose.skeleton import KEYPOINTS

__all__ = ["KEYPOINTS"]
__version__ = "0.1.0"
