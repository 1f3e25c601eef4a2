"""The EfficientPose networks, their variant table and builders.

The variant table imports without torch; the networks and builders load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from efficientpose.models.variants import VARIANTS, Variant, get_variant

if TYPE_CHECKING:
    from efficientpose.models.builders import load_model
    from efficientpose.models.efficientpose import EfficientPose

__all__ = ["VARIANTS", "EfficientPose", "Variant", "get_variant", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from efficientpose.models.builders import load_model

        return load_model
    if name == "EfficientPose":
        from efficientpose.models.efficientpose import EfficientPose

        return EfficientPose
    raise AttributeError(f"module 'efficientpose.models' has no attribute {name!r}")
