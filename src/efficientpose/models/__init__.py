"""The EfficientPose networks and their variant table (``load_model`` lives in :mod:`efficientpose.weights.hub`).

The variant table imports without torch; the networks load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from efficientpose.models.variants import VARIANTS, Variant, get_variant

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose

__all__ = ["VARIANTS", "EfficientPose", "Variant", "get_variant"]


def __getattr__(name: str) -> Any:
    if name == "EfficientPose":
        from efficientpose.models.efficientpose import EfficientPose

        return EfficientPose
    raise AttributeError(f"module 'efficientpose.models' has no attribute {name!r}")
