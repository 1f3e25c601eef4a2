"""The one place where the app meets the analysis: the presets it offers, one job's analysis with the user's
settings and every export, and the comparison of two sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from efficientpose import analysis
from efficientpose.analysis.compare import write_compare

#: Files for other tools that every job writes, and the labels the result page gives them.
EXPORTS = {"trc": "TRC (OpenSim markers)", "mot": "MOT (OpenSim angles)", "c3d": "C3D"}


def activities() -> list[str]:
    """The analysis presets the user may choose, ``auto`` first."""
    return ["auto", *[a for a in analysis.ACTIVITIES if a != "auto"]]


def run(predictions: dict, output: Path, video: Path | None, activity: str, height: float | None,
        ) -> tuple[dict[str, Path], dict[str, Any], list[str]]:
    """Analyse one video's raw keypoints into ``output`` (the analysis filters them itself): (files written by
    name, summary, notes on the settings for the result page)."""
    result = analysis.analyze(predictions, output, video=video, activity=activity, height_m=height,
                              export=tuple(EXPORTS))
    notes = [] if height is not None else ["no height given: lengths are in pixels"]
    return {key: Path(path) for key, path in result.outputs.items()}, result.summary, notes


def compare(analyses: tuple[Path, Path], output: Path) -> Path:
    """The analysis's comparison page of two sessions (their analysis folders), written into ``output``."""
    return write_compare(analyses[0], analyses[1], output)
