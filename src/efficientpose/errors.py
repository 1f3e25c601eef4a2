"""Error types. The CLI turns each into a one-line message and an exit code."""

from __future__ import annotations


class EfficientPoseError(Exception):
    """Base class for every error this package raises on purpose."""


class WeightsError(EfficientPoseError):
    """A weight file is missing, corrupt, for the wrong variant or has a tensor of the wrong shape."""


class InputError(EfficientPoseError, ValueError):
    """A user's input file (image, video, predictions) cannot be read; the message names the file. A ValueError,
    so that ordinary ``except ValueError`` clauses catch it (most are about a file's content)."""


class DatasetError(EfficientPoseError):
    """An annotation file or dataset folder is malformed or incomplete."""


class UsageError(EfficientPoseError, ValueError):
    """Wrong arguments: an unknown model name, an impossible option combination. A ValueError."""


def exit_code(exc: EfficientPoseError) -> int:
    """The command-line exit code of ``exc``: 2 for usage errors, else 1."""
    return 2 if isinstance(exc, UsageError) else 1


def one_line(text: object) -> str:
    """Collapse a message onto one line (error messages of this package are single lines)."""
    return " ".join(str(text).split())


def input_error(path: object, reason: object) -> InputError:
    """The package's error for an unreadable input: ``"<path>: <reason>"`` on one line."""
    return InputError(one_line(f"{path}: {reason}"))
