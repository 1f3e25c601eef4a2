"""The prediction files other tools read (docs/output-format.md): JSON and CSV writers and readers.

Writers stream records to hidden temporary files renamed on close, so memory stays bounded for long videos
and a failed run leaves no partial file. Floats are written in Python's shortest round-trip form (exact);
non-finite values are written as JSON null / an empty CSV cell and read back as NaN.
"""

from __future__ import annotations

import csv
import json
import math
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from efficientpose.errors import InputError, input_error
from efficientpose.io import PathLike
from efficientpose.io.atomic import AtomicFile, CloseOrAbort, named_os_error
from efficientpose.pose import Box, Pose, json_number
from efficientpose.skeleton import KEYPOINTS

#: File names of the image outputs inside the output folder.
#: The images' prediction files in the output folder (``predict`` writes one or both, as ``--format`` says).
IMAGE_JSON_NAME = "predictions.json"
IMAGE_CSV_NAME = "predictions.csv"

_FIELDS = ("x", "y", "score")


def keypoint_columns(names: Sequence[str] = KEYPOINTS) -> list[str]:
    """``<name>_x, <name>_y, <name>_score`` for each keypoint, in order."""
    return [f"{name}_{f}" for name in names for f in _FIELDS]


#: The last columns of predictions.csv when people were looked for (a detector or the window search).
PERSON_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1", "person_score")
#: The column before them with ``--people``: the person's rank in the image, from 0.
RANK_COLUMN = "person"


def image_csv_header(names: Sequence[str] = KEYPOINTS, *, detection: bool = False, ranked: bool = False) -> list[str]:
    """Columns of predictions.csv: file, size, keypoints; with ``detection`` then the person's box and score,
    preceded by its rank when ``ranked`` (``--people``)."""
    extra = [*([RANK_COLUMN] if ranked else []), *PERSON_COLUMNS] if detection or ranked else []
    return ["file", "width", "height", *keypoint_columns(names), *extra]


def video_csv_header(names: Sequence[str] = KEYPOINTS, *, detection: bool = False) -> list[str]:
    """Columns of <video stem>.csv: frame, time, keypoints; with ``detection`` then the subject's box and score."""
    return ["frame", "time", *keypoint_columns(names), *(PERSON_COLUMNS if detection else ())]


@dataclass(frozen=True)
class ImagePrediction:
    """One record of predictions.json: the image as given, its size, the model name and the pose; ``id`` is the
    optional sample id an evaluation file may carry (``efficientpose evaluate --predictions``), else None. A
    record whose ``keypoints`` is null or empty (no person found; ``predict`` never writes one) has pose None.
    ``person`` is the person's rank in its image (``predict --people``), else None; the person's ``box`` and
    ``person_score`` are on the pose."""

    file: str
    width: int
    height: int
    model: str | None
    pose: Pose | None
    id: str | None = None
    person: int | None = None


@dataclass
class VideoPredictions:
    """A video's predictions as arrays; metadata fields are None when read from CSV (which lacks them)."""

    file: str | None
    width: int | None
    height: int | None
    fps: float | None
    model: str | None
    frames: np.ndarray  #: (T,) int64 frame indices
    times: np.ndarray  #: (T,) float64 seconds
    keypoints: np.ndarray  #: (T, K, 3) float64 x, y, score
    names: tuple[str, ...] = field(default=KEYPOINTS)
    #: The optional "smoothing" field: "none" when predict ran without smoothing; None when not recorded.
    smoothing: str | None = None
    #: With a person detector: (T, 4) the subject's box per frame and (T,) its person score, NaN where the subject
    #: is not in view; None when the file has none (``--detector none``).
    boxes: np.ndarray | None = None
    person_scores: np.ndarray | None = None
    #: ``--people``: the subject's id, and per frame everyone's (id, pose with box and person_score); else None.
    subject: int | None = None
    people: list[list[tuple[int, Pose]]] | None = None

    def pose(self, i: int) -> Pose:
        """The i-th row as a Pose (with the subject's box and person score when the file has them)."""
        box = None if self.boxes is None or np.isnan(self.boxes[i]).any() else tuple(self.boxes[i])
        score = None if self.person_scores is None or np.isnan(self.person_scores[i]) else self.person_scores[i]
        return Pose(self.keypoints[i].copy(), self.names, box=box, person_score=score)


# --------------------------------------------------------------------------------------------- writing


def _cell(value: float) -> str:
    v = float(value)
    return repr(v) if math.isfinite(v) else ""


def _check_pose(pose: Pose, names: tuple[str, ...], where: str) -> None:
    kp = np.asarray(pose.keypoints)
    if tuple(pose.names) != names or kp.shape != (len(names), 3):
        raise ValueError(
            f"{where}: pose has keypoints {tuple(pose.names)} of shape {kp.shape}; expected {len(names)} in order "
            f"{names}"
        )


def utf8_text(value: object) -> str:
    """``str(value)`` writable as UTF-8: the bytes of a file name that are not UTF-8 (kept by Python as lone
    surrogates) are written as ``\\xNN`` escapes instead of failing the write."""
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _box_json(box: Any) -> list[float | None] | None:
    return None if box is None else [json_number(v) for v in box]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


class _StreamingWriter(CloseOrAbort):
    """A JSON file (opening text, one record per line, closing text) and optionally a CSV, both atomic."""

    def __init__(self, json_path: PathLike | None, csv_path: PathLike | None, header: list[str]) -> None:
        if json_path is None and csv_path is None:
            raise ValueError("nothing to write: give a JSON path, a CSV path or both")
        self._files: list[AtomicFile] = []
        self._aborted = False
        self._json: AtomicFile | None = None
        self._csv = None
        self.count = 0
        try:
            if json_path is not None:
                self._json = AtomicFile(Path(json_path), "w", newline="\n")
                self._files.append(self._json)
            if csv_path is not None:
                csv_file = AtomicFile(Path(csv_path), "w", newline="")
                self._files.append(csv_file)
                self._csv = csv.writer(csv_file.file, lineterminator="\n")
                self._csv.writerow(header)
        except BaseException:
            self.abort()
            raise

    def _write(self, json_record: dict[str, Any], csv_row: list[Any]) -> None:
        try:
            if self._json is not None:
                self._json.file.write(("\n" if self.count == 0 else ",\n") + _dumps(json_record))
            if self._csv is not None:
                self._csv.writerow(csv_row)
        except OSError as exc:  # a full disk: named by the output path
            raise named_os_error(exc, self._files[-1].path if self._json is None else self._json.path) from exc
        self.count += 1

    def _finish_json(self) -> str:
        raise NotImplementedError

    def close(self) -> list[Path]:
        """Complete the files and move them into place; returns their paths (none after :meth:`abort`)."""
        if self._aborted:
            return []
        try:
            if self._json is not None and not self._json.done:
                self._json.file.write(self._finish_json())
            return [f.commit() for f in self._files]
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Delete the temporary files; final paths are left untouched."""
        self._aborted = True
        for f in self._files:
            f.discard()


class ImagePredictionsWriter(_StreamingWriter):
    """Writes predictions.json (a list, one record per image, or per person with ``ranked``) and/or
    predictions.csv, one record at a time. With ``detection`` (people were looked for) each record also has the
    person's ``box`` and ``person_score``; with ``ranked`` (``--people``) its rank ``person`` too."""

    def __init__(
        self, json_path: PathLike | None, csv_path: PathLike | None = None, *, model: str | None = None,
        names: Sequence[str] = KEYPOINTS, detection: bool = False, ranked: bool = False, weights: str | None = None,
    ) -> None:
        self.names, self.model, self.weights = tuple(names), model, weights
        self.detection, self.ranked = detection or ranked, ranked
        super().__init__(json_path, csv_path, image_csv_header(self.names, detection=detection, ranked=ranked))
        if self._json is not None:
            self._json.file.write("[")

    def add(self, file: str, width: int, height: int, pose: Pose, model: str | None = None,
            person: int | None = None) -> None:
        """Append one record (``model`` defaults to the writer's; ``person``, the rank, is written when ranked)."""
        _check_pose(pose, self.names, str(file))
        file = utf8_text(file)
        record: dict[str, Any] = {"file": file, "width": int(width), "height": int(height),
                                  "model": model if model is not None else self.model}
        if self.weights is not None:  # optional: only when other weights than the authors' ran
            record["weights"] = utf8_text(self.weights)
        row: list[Any] = [file, int(width), int(height), *(_cell(v) for v in np.ravel(pose.keypoints))]
        if self.ranked:
            rank = _int(person if person is not None else 0, Path(file), "person")
            record["person"] = rank
            row.append(rank)
        if self.detection:
            record["box"] = _box_json(pose.box)
            record["person_score"] = json_number(pose.person_score)
            row += [*(_cell(v) for v in (pose.box or ("nan",) * 4)), _cell(pose.person_score if
                                                                            pose.person_score is not None else "nan")]
        record["keypoints"] = pose.to_dict()
        self._write(record, row)

    def _finish_json(self) -> str:
        return "\n]\n"


class VideoPredictionsWriter(_StreamingWriter):
    """Writes ``<stem>.json`` (metadata and a frame list) and/or ``<stem>.csv``, one frame at a time. The frame's
    pose is the subject's. With ``detection`` each frame also has the subject's ``box`` and ``person_score``
    (null where the subject is not in view); with ``people`` (``--people``) the JSON also names the ``subject``'s
    id and lists everyone in each frame (``people``: id, box, person_score, keypoints); the CSV holds the subject."""

    def __init__(
        self, json_path: PathLike | None, csv_path: PathLike | None = None, *, file: str, width: int, height: int,
        fps: float, model: str | None, names: Sequence[str] = KEYPOINTS, smoothing: str | None = None,
        detection: bool = False, people: bool = False, subject: int | None = None, weights: str | None = None,
    ) -> None:
        self.names = tuple(names)
        self.detection, self.people = detection or people, people
        super().__init__(json_path, csv_path, video_csv_header(self.names, detection=self.detection))
        if self._json is not None:
            meta = {"file": utf8_text(file), "width": int(width), "height": int(height), "fps": json_number(fps),
                    "model": model}
            if weights is not None:  # optional: only when other weights than the authors' ran
                meta["weights"] = utf8_text(weights)
            if smoothing is not None:  # optional: written only when given (predict: "none" with --no-smooth)
                meta["smoothing"] = smoothing
            if people:
                meta["subject"] = subject
            head = _dumps({**meta, "frames": []})
            self._json.file.write(head[: -len("[]}")] + "[")

    def add(self, frame: int, time: float, pose: Pose, people: Sequence[tuple[int, Pose]] = ()) -> None:
        """Append one frame's record: the subject's ``pose`` and, when the writer lists people, ``people`` as
        (id, pose) pairs."""
        _check_pose(pose, self.names, f"frame {frame}")
        record: dict[str, Any] = {"frame": int(frame), "time": json_number(time)}
        row: list[Any] = [int(frame), _cell(time), *(_cell(v) for v in np.ravel(pose.keypoints))]
        if self.detection:
            record["box"] = _box_json(pose.box)
            record["person_score"] = json_number(pose.person_score)
            row += [*(_cell(v) for v in (pose.box or ("nan",) * 4)),
                    _cell(pose.person_score if pose.person_score is not None else "nan")]
        record["keypoints"] = pose.to_dict()
        if self.people:
            for _, other in people:
                _check_pose(other, self.names, f"frame {frame}")
            record["people"] = [{"id": int(i), "box": _box_json(p.box), "person_score": json_number(p.person_score),
                                 "keypoints": p.to_dict()} for i, p in people]
        self._write(record, row)

    def _finish_json(self) -> str:
        return "\n]}\n"


def write_image_predictions(
    json_path: PathLike | None, predictions: Iterable[ImagePrediction], csv_path: PathLike | None = None, *,
    detection: bool | None = None,
) -> list[Path]:
    """Write a whole list of image predictions (JSON and/or CSV) atomically; returns the paths written.
    ``detection`` (write ``box`` and ``person_score``) defaults to whether any record has either; records with a
    ``person`` rank are written ranked."""
    predictions = list(predictions)
    names = tuple(predictions[0].pose.names) if predictions else KEYPOINTS
    ranked = any(p.person is not None for p in predictions)
    if detection is None:
        detection = any(p.pose.box is not None or p.pose.person_score is not None for p in predictions)
    with ImagePredictionsWriter(json_path, csv_path, names=names, detection=detection, ranked=ranked) as writer:
        for p in predictions:
            writer.add(p.file, p.width, p.height, p.pose, model=p.model, person=p.person)
    return writer.committed


# --------------------------------------------------------------------------------------------- reading


#: Limits of the prediction files we read; anything beyond them is refused with one line naming the file.
MAX_PREDICTIONS_BYTES = 1 << 30  #: 1 GiB: about 800,000 frame records (7 hours at 30 fps)
MAX_MAGNITUDE = 1e9  #: |coordinate|, |score|, |time| (seconds) and fps; NaN and null stand for "missing"
MAX_INDEX = 2**31 - 1  #: frame numbers, widths and heights
MIN_TIME_STEP = 1e-6  #: seconds between consecutive frames (a million frames per second)


def load_json(path: PathLike) -> Any:
    """The parsed content of a JSON prediction file, refusing files too large or nested too deeply to read
    safely; InputError naming ``path`` for every problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PREDICTIONS_BYTES:
            raise input_error(path, f"{size} bytes, more than the limit of {MAX_PREDICTIONS_BYTES} for a "
                                    f"predictions file")
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except InputError:  # ours, above (a ValueError too)
        raise
    except FileNotFoundError as exc:
        raise input_error(path, "no such file") from exc
    except json.JSONDecodeError as exc:
        raise input_error(path, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    except RecursionError:
        raise input_error(path, "JSON nested too deeply to be a predictions file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise input_error(path, f"cannot be read ({exc})") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise input_error(path, f"not a predictions file ({exc})") from None



def _int(value: Any, path: Path, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise input_error(path, f"{where}: expected an integer, got {_short(value)}")
    if not 0 <= value <= MAX_INDEX:
        raise input_error(path, f"{where}: {_short(value)} is out of range (0 to {MAX_INDEX})")
    return value


def number(value: Any, path: PathLike, where: str, *, nullable: bool = True) -> float:
    """``value`` as a float: a number of magnitude at most :data:`MAX_MAGNITUDE`, or NaN (null, when
    ``nullable``); InputError naming ``path`` and ``where`` otherwise."""
    if value is None and nullable:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise input_error(path, f"{where}: expected a number, got {_short(value)}")
    if isinstance(value, float) and math.isnan(value):
        if nullable:
            return math.nan
        raise input_error(path, f"{where}: expected a number, got NaN")
    if not abs(value) <= MAX_MAGNITUDE:
        raise input_error(path, f"{where}: {_short(value)} is out of range (magnitude above {MAX_MAGNITUDE:g})")
    return float(value)



def _short(value: Any) -> str:
    """A short ``repr`` of a value read from a file (a hostile file's values can be huge or deeply nested)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return reprlib.repr(value)


def check_times(frames: np.ndarray, times: np.ndarray, path: PathLike) -> None:
    """Raise InputError naming ``path`` unless the frame times are numbers that increase by at least
    :data:`MIN_TIME_STEP` and the frame numbers increase."""
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size:
        raise input_error(path, f"frame record {bad[0]}: time is not a number")
    steps = np.diff(times)
    if steps.size and (i := int(np.argmin(steps))) is not None and not steps[i] >= MIN_TIME_STEP:
        raise input_error(path, f"frame record {i + 1}: time {times[i + 1]!r} does not follow {times[i]!r} by at "
                                f"least {MIN_TIME_STEP:g} s (times must increase)")
    if frames.size > 1 and not (np.diff(frames) > 0).all():
        i = int(np.flatnonzero(np.diff(frames) <= 0)[0])
        raise input_error(path, f"frame record {i + 1}: frame number {frames[i + 1]} does not follow {frames[i]}")


def _str(value: Any, path: Path, where: str, *, nullable: bool = False) -> str | None:
    if (value is None and nullable) or isinstance(value, str):
        return value
    raise input_error(path, f"{where}: expected a string, got {_short(value)}")


def _field(record: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(record, dict):
        raise input_error(path, f"{where}: expected an object, got {type(record).__name__}")
    if key not in record:
        raise input_error(path, f"{where}: missing {key!r}")
    return record[key]


def _keypoints_from_json(data: Any, path: Path, where: str) -> tuple[tuple[str, ...], np.ndarray]:
    if not isinstance(data, dict) or not data:
        raise input_error(path, f"{where}: 'keypoints' must be a non-empty object of name -> {{x, y, score}}")
    names = tuple(data)
    kp = np.array(
        [[number(_field(data[n], f, path, f"{where} {n}"), path, f"{where} {n}.{f}") for f in _FIELDS] for n in names],
        dtype=np.float64,
    )
    return names, kp


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError as exc:
        raise input_error(path, "no such file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise input_error(path, f"cannot be read as CSV ({exc})") from exc
    if not rows:
        raise input_error(path, "empty CSV file (no header)")
    return rows[0], rows[1:]


def _names_from_columns(columns: list[str], path: Path) -> tuple[str, ...]:
    if not columns or len(columns) % 3:
        raise input_error(path, "keypoint columns must come in <name>_x, <name>_y, <name>_score triples")
    names = []
    for i in range(0, len(columns), 3):
        name = columns[i][:-2] if columns[i].endswith("_x") else None
        if name is None or columns[i : i + 3] != [f"{name}_{f}" for f in _FIELDS]:
            raise input_error(path, f"unexpected keypoint columns {columns[i : i + 3]}; expected <name>_x, _y, _score")
        names.append(name)
    return tuple(names)


def _csv_float(cell: str, path: Path, where: str) -> float:
    if cell == "":
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise input_error(path, f"{where}: not a number: {_short(cell)}") from None
    return number(value, path, where)


def _csv_int(cell: str, path: Path, where: str) -> int:
    try:
        value = int(cell)
    except ValueError:
        raise input_error(path, f"{where}: not an integer: {_short(cell)}") from None
    return _int(value, path, where)


def _trailing(header: list[str]) -> int:
    """How many of the header's last columns are the person's (rank, box, score) rather than keypoints."""
    if tuple(header[-len(PERSON_COLUMNS):]) != PERSON_COLUMNS:
        return 0
    return len(PERSON_COLUMNS) + (header[-len(PERSON_COLUMNS) - 1:-len(PERSON_COLUMNS)] == [RANK_COLUMN])


def _csv_table(path: Path, lead: list[str], trail: int = 0) -> tuple[tuple[str, ...], list[list[str]], np.ndarray]:
    header, rows = _read_csv(path)
    if header[: len(lead)] != lead:
        raise input_error(path, f"CSV header must start with {','.join(lead)}; found {','.join(header[: len(lead)])}")
    end = len(header) - trail
    names = _names_from_columns(header[len(lead):end], path)
    kp = np.empty((len(rows), len(names), 3), dtype=np.float64)
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise input_error(path, f"row {r + 2}: {len(row)} cells, expected {len(header)}")
        values = [_csv_float(c, path, f"row {r + 2} column {header[len(lead) + j]}")
                  for j, c in enumerate(row[len(lead):end])]
        kp[r] = np.asarray(values, dtype=np.float64).reshape(len(names), 3)
    return names, rows, kp


def _box(value: Any, path: Path, where: str) -> Box | None:
    """A record's ``box``: null, or 4 numbers x0, y0, x1, y1 with x0 <= x1 and y0 <= y1."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise input_error(path, f"{where}: box must be null or [x0, y0, x1, y1], got {_short(value)}")
    box = tuple(number(v, path, f"{where}[{i}]", nullable=False) for i, v in enumerate(value))
    if not (box[0] <= box[2] and box[1] <= box[3]):
        raise input_error(path, f"{where}: box {_short(value)} has x1 < x0 or y1 < y0")
    return box


def _person_score(value: Any, path: Path, where: str) -> float | None:
    score = number(value, path, where)
    if math.isnan(score):
        return None
    if not 0.0 <= score <= 1.0:
        raise input_error(path, f"{where}: {_short(value)} is not a score in [0, 1]")
    return score


def _person_from_csv(row: list[str], trail: int, path: Path, r: int) -> tuple[int | None, Box | None, float | None]:
    """(rank, box, person_score) from a CSV row's last ``trail`` cells."""
    if not trail:
        return None, None, None
    cells = row[-trail:]
    rank = _csv_int(cells[0], path, f"row {r + 2} person") if trail > len(PERSON_COLUMNS) else None
    corners = cells[-len(PERSON_COLUMNS):-1]
    box = None if all(c == "" for c in corners) else _box(
        [_csv_float(c, path, f"row {r + 2} {n}") for c, n in zip(corners, PERSON_COLUMNS, strict=False)],
        path, f"row {r + 2} box")
    return rank, box, _person_score(_csv_float(cells[-1], path, f"row {r + 2} person_score"), path,
                                    f"row {r + 2} person_score")


def read_image_predictions(path: PathLike) -> list[ImagePrediction]:
    """Read predictions.json or predictions.csv (by suffix); model is None for CSV. InputError if malformed."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        trail = _trailing(_read_csv(path)[0])
        names, rows, kp = _csv_table(path, ["file", "width", "height"], trail)
        out = []
        for r, row in enumerate(rows):
            size = _csv_int(row[1], path, f"row {r + 2} width"), _csv_int(row[2], path, f"row {r + 2} height")
            rank, box, score = _person_from_csv(row, trail, path, r)
            out.append(ImagePrediction(row[0], *size, None, Pose(kp[r], names, size, box=box, person_score=score),
                                       person=rank))
        return out
    data = load_json(path)
    if not isinstance(data, list):
        raise input_error(path, "expected a JSON list of image records (is this a video's predictions?)")
    out = []
    for i, record in enumerate(data):
        where = f"record {i}"
        keypoints = _field(record, "keypoints", path, where)
        found = keypoints is not None and keypoints != {}
        names, kp = _keypoints_from_json(keypoints, path, where) if found else ((), None)
        width = _int(_field(record, "width", path, where), path, f"{where} width")
        height = _int(_field(record, "height", path, where), path, f"{where} height")
        box = _box(record.get("box"), path, f"{where} box")
        score = _person_score(record.get("person_score"), path, f"{where} person_score")
        rank = record.get("person")
        out.append(ImagePrediction(
            file=_str(_field(record, "file", path, where), path, f"{where} file"),
            width=width,
            height=height,
            model=_str(record.get("model"), path, f"{where} model", nullable=True),
            pose=Pose(kp, names, (width, height), box=box, person_score=score) if found else None,
            id=_str(record.get("id"), path, f"{where} id", nullable=True),
            person=None if rank is None else _int(rank, path, f"{where} person"),
        ))
    return out


def read_video_predictions(path: PathLike) -> VideoPredictions:
    """Read ``<stem>.json`` or ``<stem>.csv`` (by suffix) into arrays. InputError if malformed."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header = _read_csv(path)[0]
        trail = len(PERSON_COLUMNS) if tuple(header[-len(PERSON_COLUMNS):]) == PERSON_COLUMNS else 0
        names, rows, kp = _csv_table(path, ["frame", "time"], trail)
        frames = np.array([_csv_int(row[0], path, f"row {r + 2} frame") for r, row in enumerate(rows)], np.int64)
        times = np.array([_csv_float(row[1], path, f"row {r + 2} time") for r, row in enumerate(rows)], np.float64)
        check_times(frames, times, path)
        boxes = scores = None
        if trail:
            persons = [_person_from_csv(row, trail, path, r)[1:] for r, row in enumerate(rows)]
            boxes, scores = _box_arrays(persons)
        return VideoPredictions(None, None, None, None, None, frames, times, kp, names, boxes=boxes,
                                person_scores=scores)
    return video_predictions_from_json(load_json(path), path)


def video_predictions_from_json(data: Any, path: PathLike) -> VideoPredictions:
    """A video's predictions from the already-parsed JSON object (``path`` names it in errors)."""
    path = Path(path)
    if not isinstance(data, dict):
        raise input_error(path, "expected a JSON object with a 'frames' list (is this an image predictions file?)")
    records = _field(data, "frames", path, "top level")
    if not isinstance(records, list):
        raise input_error(path, "'frames' must be a list")
    frames, times, rows, persons, people = [], [], [], [], []
    names: tuple[str, ...] = KEYPOINTS
    detection = listed = False
    for i, record in enumerate(records):
        where = f"frame record {i}"
        frame_names, kp = _keypoints_from_json(_field(record, "keypoints", path, where), path, where)
        if i == 0:
            names = frame_names
            detection, listed = "box" in record, "people" in record
        elif frame_names != names:
            raise input_error(path, f"{where}: keypoint names differ from the first frame's")
        frames.append(_int(_field(record, "frame", path, where), path, f"{where} frame"))
        times.append(number(_field(record, "time", path, where), path, f"{where} time"))
        rows.append(kp)
        if detection:
            persons.append((_box(record.get("box"), path, f"{where} box"),
                            _person_score(record.get("person_score"), path, f"{where} person_score")))
        if listed:
            people.append(_people_from_json(_field(record, "people", path, where), names, path, where))
    fps = data.get("fps")
    if fps is not None and not number(fps, path, "fps", nullable=False) > 0:
        raise input_error(path, f"fps: must be positive, got {_short(fps)}")
    check_times(np.asarray(frames, dtype=np.int64), np.asarray(times, dtype=np.float64), path)
    return VideoPredictions(
        file=_str(data.get("file"), path, "file", nullable=True),
        width=None if data.get("width") is None else _int(data["width"], path, "width"),
        height=None if data.get("height") is None else _int(data["height"], path, "height"),
        fps=None if fps is None else number(fps, path, "fps"),
        model=_str(data.get("model"), path, "model", nullable=True),
        frames=np.asarray(frames, dtype=np.int64),
        times=np.asarray(times, dtype=np.float64),
        keypoints=np.stack(rows) if rows else np.empty((0, len(names), 3), dtype=np.float64),
        names=names,
        smoothing=_str(data.get("smoothing"), path, "smoothing", nullable=True),
        boxes=_box_arrays(persons)[0] if detection else None,
        person_scores=_box_arrays(persons)[1] if detection else None,
        subject=None if data.get("subject") is None else _int(data["subject"], path, "subject"),
        people=people if listed else None,
    )


def _box_arrays(persons: Sequence[tuple[Box | None, float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """(T, 4) boxes and (T,) person scores, NaN where missing."""
    boxes = np.array([b if b is not None else (math.nan,) * 4 for b, _ in persons], np.float64).reshape(-1, 4)
    scores = np.array([math.nan if s is None else s for _, s in persons], np.float64)
    return boxes, scores


def _people_from_json(data: Any, names: tuple[str, ...], path: Path, where: str) -> list[tuple[int, Pose]]:
    """A frame record's ``people``: (id, pose with box and person_score) for each entry."""
    if not isinstance(data, list):
        raise input_error(path, f"{where}: 'people' must be a list")
    out = []
    for j, entry in enumerate(data):
        at = f"{where} people[{j}]"
        entry_names, kp = _keypoints_from_json(_field(entry, "keypoints", path, at), path, at)
        if entry_names != names:
            raise input_error(path, f"{at}: keypoint names differ from the frame's")
        out.append((_int(_field(entry, "id", path, at), path, f"{at} id"),
                    Pose(kp, names, box=_box(entry.get("box"), path, f"{at} box"),
                         person_score=_person_score(entry.get("person_score"), path, f"{at} person_score"))))
    return out


def read_predictions(path: PathLike) -> list[ImagePrediction] | VideoPredictions:
    """Read any prediction file, telling image from video files by content (JSON list / ``file`` column)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        header, _ = _read_csv(path)
        return read_image_predictions(path) if header[:1] == ["file"] else read_video_predictions(path)
    if path.suffix.lower() != ".json":
        raise input_error(path, "prediction files end in .json or .csv")
    return read_image_predictions(path) if isinstance(load_json(path), list) else read_video_predictions(path)

