"""Files other movement tools read: OpenSim's .trc (markers) and .mot (angles), and .c3d.

Axes follow OpenSim: +X to the image's right, +Y up (image y flipped, measured from the picture's bottom
edge), Z = 0. Lengths are metres when the analysis has a scale, else pixels (C3D: millimetres or pixels);
the unit is written in every file's header. Missing values are empty cells (.trc), NaN (.mot) and
residual -1 (.c3d).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from efficientpose.analysis.angles import ANGLE_NAMES
from efficientpose.errors import UsageError
from efficientpose.io.atomic import atomic_write_bytes
from efficientpose.skeleton import KEYPOINTS

if TYPE_CHECKING:
    from efficientpose.analysis.core import Analysis

#: --export names and the files they write.
EXPORTS = {"trc": "keypoints.trc", "mot": "angles.mot", "c3d": "keypoints.c3d"}


def marker_positions(analysis: Analysis) -> tuple[np.ndarray, str]:
    """((T, K, 3) X, Y, Z in OpenSim axes, NaN where missing; unit "m" or "px") of the cleaned keypoints."""
    scale = analysis.summary.get("scale") or {}
    f = scale.get("metres_per_pixel")
    height = analysis.summary.get("height")
    xy = np.where(analysis.valid[..., None], analysis.keypoints[..., :2], np.nan)
    bottom = float(height) if height else float(np.nanmax(xy[..., 1])) if np.isfinite(xy).any() else 0.0
    out = np.zeros(xy.shape[:2] + (3,))
    out[..., 0] = xy[..., 0]
    out[..., 1] = bottom - xy[..., 1]
    out[..., 2] = np.where(np.isfinite(xy[..., 0]), 0.0, np.nan)
    return (out * f, "m") if f else (out, "px")


def _rate(times: np.ndarray) -> float:
    return float((times.size - 1) / (times[-1] - times[0])) if times.size > 1 and times[-1] > times[0] else 1.0


def _num(v: float) -> str:
    return f"{v:.6f}" if np.isfinite(v) else ""


def trc_bytes(analysis: Analysis, file_name: str = EXPORTS["trc"]) -> bytes:
    """OpenSim's marker file (TRCFileAdapter layout): 5 header lines, a blank line, rows from Frame# 1."""
    pos, unit = marker_positions(analysis)
    n, k = pos.shape[:2]
    rate = _rate(analysis.times)
    lines = [
        f"PathFileType\t4\t(X/Y/Z)\t{file_name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:.6f}\t{rate:.6f}\t{n}\t{k}\t{unit}\t{rate:.6f}\t1\t{n}",
        "Frame#\tTime\t" + "\t".join(f"{name}\t\t" for name in KEYPOINTS),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, k + 1)),
        "",
    ]
    for t in range(n):
        cells = [_num(v) for v in pos[t].ravel()]
        lines.append(f"{t + 1}\t{analysis.times[t]:.6f}\t" + "\t".join(cells))
    return ("\n".join(lines) + "\n").encode("ascii")


def mot_bytes(analysis: Analysis) -> bytes:
    """The angles (degrees) as an OpenSim motion file: nColumns counts time; names have no spaces."""
    n = analysis.times.size
    head = [
        "Coordinates", "version=1", f"nRows={n}", f"nColumns={1 + len(ANGLE_NAMES)}", "inDegrees=yes", "",
        "Units are S.I. units (second, meters, Newtons, ...)",
        "If the header above contains a line with 'inDegrees', this indicates whether rotational values are in "
        "degrees (yes) or radians (no).",
        "", "endheader", "time\t" + "\t".join(ANGLE_NAMES),
    ]
    rows = []
    for t in range(n):
        values = [analysis.angles[a][t] for a in ANGLE_NAMES]
        rows.append(f"{analysis.times[t]:.6f}\t" + "\t".join(f"{v:.6f}" if np.isfinite(v) else "NaN" for v in values))
    return ("\n".join(head + rows) + "\n").encode("ascii")


# --------------------------------------------------------------------------------------------- C3D
# The C3D file format (c3d.org, "The C3D File Format User Guide"): 512-byte blocks; a header block, parameter
# blocks (groups and parameters), then the data as little-endian floats (processor type Intel).

_BLOCK = 512


def _c3d_param(name: str, group_id: int, kind: int, dims: tuple[int, ...], data: bytes) -> bytes:
    """One parameter record; its 'offset to next' is filled in by the caller."""
    tail = struct.pack("<bB", kind, len(dims)) + bytes(dims) + data + b"\x00"  # no description
    return struct.pack("<bb", len(name), group_id) + name.encode("ascii") + struct.pack("<h", len(tail) + 2) + tail


def _c3d_group(name: str, group_id: int) -> bytes:
    return struct.pack("<bb", len(name), -group_id) + name.encode("ascii") + struct.pack("<h", 3) + b"\x00"


def _chars(values: list[str], width: int) -> bytes:
    return b"".join(v.ljust(width)[:width].encode("ascii") for v in values)


def c3d_bytes(analysis: Analysis) -> bytes:
    """The keypoints as C3D points (float format; mm when scaled, else px); missing points have residual -1."""
    pos, unit = marker_positions(analysis)
    if unit == "m":
        pos, unit = pos * 1000.0, "mm"
    n, k = pos.shape[:2]
    if n > 65535:
        raise UsageError(f"--export c3d: {n} frames; a C3D file holds at most 65535 (export trc instead)")
    rate = _rate(analysis.times)
    label_width = max(len(name) for name in KEYPOINTS)
    records = [
        _c3d_group("POINT", 1),
        _c3d_param("USED", 1, 2, (), struct.pack("<h", k)),
        _c3d_param("FRAMES", 1, 2, (), struct.pack("<H", n)),  # read as unsigned beyond 32767
        _c3d_param("SCALE", 1, 4, (), struct.pack("<f", -1.0)),
        _c3d_param("RATE", 1, 4, (), struct.pack("<f", rate)),
        None,  # DATA_START, once the parameter size is known
        _c3d_param("UNITS", 1, -1, (len(unit),), unit.encode("ascii")),
        _c3d_param("LABELS", 1, -1, (label_width, k), _chars(list(KEYPOINTS), label_width)),
        _c3d_param("DESCRIPTIONS", 1, -1, (label_width, k), _chars(list(KEYPOINTS), label_width)),
        _c3d_group("ANALOG", 2),
        _c3d_param("USED", 2, 2, (), struct.pack("<h", 0)),
        _c3d_param("RATE", 2, 4, (), struct.pack("<f", 0.0)),  # no analog channels: 0 analog samples per frame
    ]
    size = 4 + sum(len(r) for r in records if r is not None) + len(_c3d_param("DATA_START", 1, 2, (), b"\0\0"))
    param_blocks = -(-size // _BLOCK)
    data_start = 2 + param_blocks
    records[5] = _c3d_param("DATA_START", 1, 2, (), struct.pack("<h", data_start))
    body = b"".join(records)
    last = body.rfind(struct.pack("<bb", len("RATE"), 2) + b"RATE")  # the last record ends the list: offset 0
    body = body[: last + 6] + struct.pack("<h", 0) + body[last + 8:]
    params = (struct.pack("<BBBB", 1, 0x50, param_blocks, 84) + body).ljust(param_blocks * _BLOCK, b"\0")

    header = bytearray(_BLOCK)
    struct.pack_into("<BBhhhHhfhhf", header, 0, 2, 0x50, k, 0, 1, n, 0, -1.0, data_start, 0, rate)

    points = np.zeros((n, k, 4), dtype="<f4")
    missing = ~np.isfinite(pos).all(axis=-1)
    points[..., :3] = np.where(missing[..., None], 0.0, pos)
    points[..., 3] = np.where(missing, -1.0, 0.0)  # residual: -1 = invalid point, 0 = computed, no camera info
    data = points.tobytes()
    data = data.ljust(-(-len(data) // _BLOCK) * _BLOCK, b"\0")
    return bytes(header) + params + data


def write_exports(analysis: Analysis, output_dir: str | Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """Write the requested files (keys of :data:`EXPORTS`) atomically; returns {format: path}."""
    out = Path(output_dir)
    writers = {"trc": trc_bytes, "mot": mot_bytes, "c3d": c3d_bytes}
    return {fmt: atomic_write_bytes(out / EXPORTS[fmt], writers[fmt](analysis)) for fmt in formats}
