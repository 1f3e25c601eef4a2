"""Fuzzing tier (issue 14): random and mutated image bytes, video bytes and prediction JSON through the real readers
and the real commands. The property every time: a clear one-line error naming the file, or a valid result; never
a traceback. Seeded (derandomized) so that CI repeats it, and short."""

from __future__ import annotations

import io as stdio
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers_cli import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from efficientpose.analysis import compute
from efficientpose.analysis import load_predictions as analysis_load
from efficientpose.errors import InputError
from efficientpose.evaluation.evaluate import load_predictions as evaluation_load
from efficientpose.io.images import MIN_SIDE, read_image
from efficientpose.io.predictions import read_image_predictions, read_predictions, read_video_predictions
from efficientpose.io.video import VideoReader, VideoWriter
from efficientpose.skeleton import KEYPOINTS


def fuzz(examples: int) -> settings:
    """Seeded (derandomized, no example database) and short: the same examples in every run."""
    return settings(derandomize=True, deadline=None, database=None, max_examples=examples,
                    suppress_health_check=list(HealthCheck))


def image_seeds() -> dict[str, bytes]:
    """Small valid files of each format we read (the mutations start from these)."""
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 255, (24, 20, 3), np.uint8))
    seeds = {}
    for suffix, fmt, extra in ((".png", "PNG", {}), (".jpg", "JPEG", {}), (".tif", "TIFF", {}), (".gif", "GIF", {}),
                               (".bmp", "BMP", {}), (".webp", "WEBP", {"quality": 80})):
        buffer = stdio.BytesIO()
        pixels.save(buffer, fmt, **extra)
        seeds[suffix] = buffer.getvalue()
    return seeds


IMAGE_SEEDS = image_seeds()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few byte-level mutations: overwrite, truncate, insert, duplicate a span."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(("overwrite", "truncate", "insert", "duplicate")))
        at = draw(st.integers(0, len(data) - 1))
        if op == "overwrite":
            data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def image_bytes() -> st.SearchStrategy[tuple[str, bytes]]:
    random = st.tuples(st.sampled_from(sorted(IMAGE_SEEDS)), st.binary(max_size=600))
    mutations = st.sampled_from(sorted(IMAGE_SEEDS)).flatmap(lambda s: st.tuples(st.just(s), mutated(IMAGE_SEEDS[s])))
    return st.one_of(random, mutations)


def check_refusal(exc: InputError, path: Path) -> None:
    message = str(exc)
    assert "\n" not in message and message.startswith(f"{path}: ") and len(message) < 2000, message


@fuzz(60)
@given(case=image_bytes())
def test_image_bytes_decode_or_are_refused(case: tuple[str, bytes], tmp_path_factory: pytest.TempPathFactory,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    suffix, data = case
    path = tmp_path_factory.mktemp("img") / f"fuzz{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        try:
            image = read_image(path)
        except InputError as exc:
            check_refusal(exc, path)
        else:
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert min(image.shape[:2]) >= MIN_SIDE
    assert not raw, [str(w.message) for w in raw]  # decoder warnings never escape
    assert capfd.readouterr() == ("", "")  # nor do C decoders' lines on file descriptors 1 and 2 (libtiff's)


@pytest.fixture(scope="module")
def video_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("video-seeds")
    rng = np.random.default_rng(1)
    seeds = {}
    for suffix in (".avi", ".mp4"):
        with VideoWriter(folder / f"seed{suffix}", 10.0) as writer:
            for _ in range(4):
                writer.write(rng.integers(0, 255, (32, 48, 3), np.uint8))
        seeds[suffix] = (folder / f"seed{suffix}").read_bytes()
    return seeds


@fuzz(25)
@given(data=st.data())
def test_video_bytes_decode_or_are_refused(data: st.DataObject, video_seeds: dict[str, bytes],
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    suffix = data.draw(st.sampled_from(sorted(video_seeds)))
    content = data.draw(st.one_of(mutated(video_seeds[suffix]), st.binary(max_size=400)))
    path = tmp_path_factory.mktemp("vid") / f"fuzz{suffix}"
    path.write_bytes(content)
    try:
        reader = VideoReader(path)
        frames = [frame for _, frame in zip(range(50), reader, strict=False)]
    except InputError as exc:
        check_refusal(exc, path)
    else:
        assert frames and all(f.image.shape == (reader.height, reader.width, 3) for f in frames)
        times = [f.time for f in frames]
        assert all(math.isfinite(t) for t in times) and all(b > a for a, b in zip(times, times[1:], strict=False))


def valid_video_json(n: int = 6) -> dict:
    kp = {name: {"x": 100.0 + 7 * i, "y": 40.0 + 11 * i, "score": 0.8} for i, name in enumerate(KEYPOINTS)}
    return {"file": "clip.mp4", "width": 640, "height": 480, "fps": 5.0, "model": "rt",
            "frames": [{"frame": i, "time": i / 5, "keypoints": json.loads(json.dumps(kp))} for i in range(n)]}


HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([10**400, -(10**30), 2**63, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.just([]), st.just({}),
)
JSON_VALUES = st.recursive(HOSTILE, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(["file", "frames", "time", "frame", "keypoints", "x",
                                                              "y", "score", "fps", "width"]) | st.text(max_size=8),
                                             inner, max_size=5), max_leaves=20)


def places(node: object) -> list[tuple[object, object]]:
    """Every (container, key) of a JSON document, depth first."""
    found: list[tuple[object, object]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found.append((node, key))
        found.extend(places(child))
    return found


@st.composite
def mutated_predictions(draw: st.DrawFn) -> object:
    """A valid video document with a few values (or whole parts) replaced by hostile ones."""
    doc = valid_video_json(draw(st.integers(0, 6)))
    for _ in range(draw(st.integers(1, 3))):
        spots = places(doc)
        container, key = spots[draw(st.integers(0, len(spots) - 1))]
        container[key] = draw(JSON_VALUES)  # type: ignore[index]
    return doc


def json_text(value: object) -> str:
    try:
        return json.dumps(value)  # NaN and Infinity as Python writes them
    except ValueError:  # an integer too long to print
        return "[1" + "0" * 5000 + "]"


@fuzz(80)
@given(doc=st.one_of(mutated_predictions(), JSON_VALUES))
def test_prediction_json_is_read_or_refused_by_every_reader(doc: object,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("json") / "predictions.json"
    path.write_text(json_text(doc))
    for read in (read_video_predictions, read_image_predictions, read_predictions, evaluation_load, analysis_load):
        try:
            result = read(path)
        except InputError as exc:
            check_refusal(exc, path)
            continue
        if read is analysis_load:  # a file the reader accepts is one the analysis can use
            analysis = compute(result)
            assert len(analysis.times) == len(result.frames)
        if read is read_video_predictions:
            assert np.isfinite(result.times).all() and (np.diff(result.times) > 0).all()
            finite = result.keypoints[np.isfinite(result.keypoints)]
            assert (np.abs(finite) <= 1e9).all()


# --------------------------------------------------------------------------------------------- the real commands


@fuzz(2)
@given(images=st.lists(image_bytes(), min_size=10, max_size=10), data=st.data())
def test_predict_on_a_folder_of_fuzzed_files(images: list[tuple[str, bytes]], data: st.DataObject,
                                             video_seeds: dict[str, bytes], data_dir: Path,
                                             tmp_path_factory: pytest.TempPathFactory,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path_factory.mktemp("fuzzed")
    folder = root / "in"
    folder.mkdir()
    (folder / "good.jpg").write_bytes((data_dir / "lsp" / "images" / "im0001.jpg").read_bytes())
    for i, (suffix, content) in enumerate(images):
        (folder / f"image{i}{suffix}").write_bytes(content)
    for i in range(3):
        suffix = data.draw(st.sampled_from(sorted(video_seeds)))
        (folder / f"video{i}{suffix}").write_bytes(data.draw(mutated(video_seeds[suffix])))
    out = root / "out"
    code, stdout, err = run_cli(["predict", str(folder), "--format", "both", "--draw", "--output", str(out),
                                 "--backend", "onnxruntime"], capfd)  # what C code writes to fd 2 counts too
    assert code in (0, 1) and "Traceback" not in err and "Warning" not in err, err
    assert all(line.startswith("  ") for line in err.splitlines()[1:]), err  # the summary, then one line per file
    failed = [line[2:].split(": ", 1)[0] for line in err.splitlines() if line.startswith("  ")]
    assert all(name.startswith(str(folder)) for name in failed), err
    records = {r.file for r in read_image_predictions(out / "predictions.json")}
    images_given = {str(p) for p in folder.iterdir() if p.name.startswith(("image", "good"))}
    assert str(folder / "good.jpg") in records and records | (set(failed) & images_given) == images_given
    for video in folder.glob("video*"):
        if str(video) not in failed:
            assert len(read_video_predictions(out / f"{video.stem}.json").frames) >= 1
    assert not list(out.glob(".*"))  # no temporary file left


@fuzz(3)
@given(doc=mutated_predictions())
def test_analyze_on_fuzzed_predictions(doc: object, tmp_path_factory: pytest.TempPathFactory,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path_factory.mktemp("analyze")
    given_path = root / "given.json"
    given_path.write_text(json_text(doc))
    code, _, err = run_cli(["analyze", str(given_path), "--output", str(root / "out")], capsys)
    assert code in (0, 1) and "Traceback" not in err, err
    if code == 1:
        assert err.startswith(f"efficientpose analyze: error: {given_path}: ") and len(err.splitlines()) == 1, err
    else:
        assert (root / "out" / "report.html").is_file()
