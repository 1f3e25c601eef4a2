"""Movement analysis of one video's keypoints: clean trajectories, joint angles, velocities, range of motion,
symmetry, repetitions and a report.

``analyze(predictions, output_dir)`` reads the predict command's per-video JSON or CSV (or the JSON's dict)
and writes angles.csv, summary.json, PNG plots and a self-contained report.html; the returned
:class:`Analysis` holds plain numpy arrays and dicts. Definitions and sign conventions: docs/analysis.md.
"""

from efficientpose.analysis.activity import ACTIVITIES, PRESETS
from efficientpose.analysis.angles import ANGLE_NAMES, ANGLES, PAIRS, Flag, angular_velocity, compute_angles
from efficientpose.analysis.core import SCORE_THRESHOLD, Analysis, analyze, compute, load_predictions
from efficientpose.analysis.filters import FilterParams
from efficientpose.analysis.reps import count_repetitions

__all__ = [
    "ACTIVITIES", "ANGLES", "ANGLE_NAMES", "PAIRS", "PRESETS", "SCORE_THRESHOLD", "Analysis", "FilterParams", "Flag",
    "analyze", "angular_velocity", "compute", "compute_angles", "count_repetitions", "load_predictions",
]
