"""The EfficientPose networks, their variant table and builders."""

from efficientpose.models.builders import load_model
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import VARIANTS, Variant, get_variant

__all__ = ["VARIANTS", "EfficientPose", "Variant", "get_variant", "load_model"]
