"""Error types. The CLI turns each into a one-line message and an exit code."""

from __future__ import annotations


class EfficientPoseError(Exception):
    """Base class for every error this package raises on purpose."""


class WeightsError(EfficientPoseError):
    """A weight file is missing, corrupt, for the wrong variant or has a tensor of the wrong shape."""


class InputError(EfficientPoseError):
    """A user's input file (image, video, predictions) cannot be read; the message names the file."""


class DatasetError(EfficientPoseError):
    """An annotation file or dataset folder is malformed or incomplete."""


class UsageError(EfficientPoseError):
    """Wrong arguments: an unknown model name, an impossible option combination."""
