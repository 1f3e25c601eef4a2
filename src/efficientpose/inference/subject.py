"""Whose pose a clip's default output is: the subject. By default the person tracked longest and largest (the sum
over the clip of their height); ``--person X,Y[@SECONDS]`` picks whoever is at that point instead."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from efficientpose.errors import UsageError
from efficientpose.inference.tracks import Track


@dataclass(frozen=True)
class PersonPoint:
    """A point (x, y) in frame pixels and, optionally, the time (seconds) at which the subject stands there."""

    x: float
    y: float
    time: float | None = None

    @classmethod
    def parse(cls, text: str) -> PersonPoint:
        """``X,Y`` or ``X,Y@SECONDS`` (non-negative finite numbers); UsageError (exit 2) otherwise."""
        match = re.fullmatch(r"\s*([^,@\s]+)\s*,\s*([^,@\s]+)\s*(?:@\s*([^,@\s]+)\s*)?", text)
        values = []
        for part in match.groups() if match else ():
            if part is None:
                values.append(None)
                continue
            try:
                v = float(part)
            except ValueError:
                v = math.nan
            values.append(v)
        if not match or any(v is not None and not (math.isfinite(v) and v >= 0) for v in values):
            raise UsageError(f"--person {text!r}: give X,Y or X,Y@SECONDS, non-negative numbers (pixels, seconds)")
        return cls(*values)


#: With ``X,Y@SECONDS``, frames up to this many seconds from the time are looked at (nearest first).
POINT_WINDOW = 1.0


def choose_subject(tracks: Sequence[Track], point: PersonPoint | None = None) -> Track | None:
    """The subject among ``tracks``: with no ``point``, the largest :meth:`Track.size` (tracked longest and
    largest); with one, whoever's box holds the point in the frame nearest its time (within
    :data:`POINT_WINDOW`; without a time, the first frame where anyone's box does); of several, the nearest box
    centre. None if nobody qualifies."""
    tracks = [t for t in tracks if t.people]
    if not tracks:
        return None
    if point is None:
        return max(tracks, key=lambda t: (t.size(), -t.id))
    frames = sorted({i for t in tracks for i in t.people})
    if point.time is not None:
        times = {i: t.times[i] for t in tracks for i in t.people}
        frames = sorted((i for i in frames if abs(times[i] - point.time) <= POINT_WINDOW),
                        key=lambda i: (abs(times[i] - point.time), i))
    xy = np.array([point.x, point.y])
    for index in frames:
        holding = [t for t in tracks if index in t.people and _holds(t.people[index].box, xy)]
        if holding:
            return min(holding, key=lambda t: float(np.hypot(*(_centre(t.people[index].box) - xy))))
    return None


def _holds(box: tuple[float, float, float, float], xy: np.ndarray) -> bool:
    return box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3]


def _centre(box: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
