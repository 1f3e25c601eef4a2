"""The one place where the app meets the analysis API.

Today's :func:`efficientpose.analysis.analyze` has no activity presets, real units, OpenSim exports or session
comparison; newer versions do. Each is feature-detected here (a keyword argument of ``analyze``, a module
attribute), passed through when present and reported as not applied when absent, so the rest of the app never
needs to know which version it runs on.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

from efficientpose import analysis

#: Files of a newer analysis that the result page offers for download when they exist (name -> label).
EXPORTS = {"trc": "TRC (OpenSim markers)", "mot": "MOT (OpenSim angles)", "c3d": "C3D"}


def activities() -> list[str]:
    """The analysis presets the user may choose; ``["auto"]`` where the analysis has none."""
    presets = getattr(analysis, "ACTIVITIES", None)
    return ["auto", *[a for a in presets if a != "auto"]] if presets else ["auto"]


def smooth_keypoints() -> bool:
    """Whether predict should One-Euro smooth a video's keypoints: yes, unless the analysis filters the raw
    keypoints itself (as ``analyze`` on a video does once ``analysis.filters`` exists)."""
    return importlib.util.find_spec("efficientpose.analysis.filters") is None


def _parameters() -> set[str]:
    return set(inspect.signature(analysis.analyze).parameters)


def run(predictions: dict, output: Path, video: Path | None, activity: str, height: float | None,
        ) -> tuple[dict[str, Path], dict[str, Any], list[str]]:
    """Analyse one video's predictions into ``output``: (files written by name, summary, notes on settings this
    version of the analysis could not apply)."""
    params, kwargs, notes = _parameters(), {}, []
    if "activity" in params:
        kwargs["activity"] = activity
    elif activity != "auto":
        notes.append(f"activity '{activity}' not applied: this version of the analysis has no presets")
    if height is not None:
        if "height" in params:
            kwargs["height"] = height
        else:
            notes.append("the subject's height is not used by this version of the analysis: lengths are in pixels")
    for name in ("exports", "export"):
        if name in params:
            kwargs[name] = tuple(EXPORTS)
            break
    result = analysis.analyze(predictions, output, video=video, **kwargs)
    files = {key: Path(path) for key, path in result.outputs.items()}
    for suffix in EXPORTS:  # exports a newer analysis writes beside the report, whatever key it files them under
        found = sorted(output.glob(f"*.{suffix}"))
        if found:
            files[suffix] = found[0]
    return files, result.summary, notes


def compare(analyses: tuple[Path, Path], output: Path) -> Path | None:
    """The analysis's own comparison report of two sessions (their analysis folders; written to ``output``), or
    None where the analysis has none and the app shows its side-by-side table instead."""
    fn = getattr(analysis, "compare", None) or getattr(analysis, "compare_sessions", None)
    if fn is None:
        return None
    written = fn(*analyses, output)
    return Path(written) if isinstance(written, (str, Path)) else output / "report.html"
