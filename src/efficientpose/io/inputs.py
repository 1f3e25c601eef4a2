"""Command-line paths -> image and video items: suffix classification and recursive folder expansion."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple

from efficientpose.errors import InputError, input_error
from efficientpose.io import PathLike

#: Suffixes (lower case) classified as images and videos; matching is case-insensitive.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}
)


VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm"})


class InputItem(NamedTuple):
    """One file to process and whether it is an image or a video."""

    path: Path
    kind: Literal["image", "video"]


class ExpandedInputs(NamedTuple):
    """What :func:`expand_inputs` found: files to process, and per-argument problems (processing goes on)."""

    items: list[InputItem]
    errors: list[InputError]


def classify(path: PathLike) -> Literal["image", "video"] | None:
    """'image' or 'video' by suffix (case-insensitive), None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def expand_inputs(paths: Iterable[PathLike]) -> ExpandedInputs:
    """Turn command-line paths into image/video items: files as given, folders walked recursively.

    Folder contents come in natural order ("im2" before "im10"); hidden files and folders (names starting
    with ".") and files of other types inside folders are skipped. A missing path, a file of an unknown type,
    or a folder with nothing to process is reported in ``errors`` instead of aborting. Duplicates are dropped.
    """
    items: list[InputItem] = []
    errors: list[InputError] = []
    seen: set[Path] = set()

    def add(path: Path, kind: Literal["image", "video"]) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            items.append(InputItem(path, kind))

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            problems: list[InputError] = []
            found = [(p, k) for p in _walk_files(path, problems) if (k := classify(p)) is not None]
            errors.extend(problems)
            if not found and not problems:
                errors.append(input_error(path, "folder contains no images or videos"))
            for p, k in found:
                add(p, k)
        elif path.is_file():
            kind = classify(path)
            if kind is None:
                exts = " ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
                errors.append(input_error(path, f"not an image or video by its suffix (known: {exts})"))
            else:
                add(path, kind)
        elif path.exists() or path.is_symlink():
            errors.append(input_error(path, _not_a_file(path)))
        else:
            errors.append(input_error(path, "no such file or folder"))
    return ExpandedInputs(items, errors)


def _natural_key(path: Path, root: Path) -> list[tuple[int, int | str]]:
    key: list[tuple[int, int | str]] = []
    for part in path.relative_to(root).parts:
        for token in re.split(r"(\d+)", part):
            if token:
                key.append((0, int(token)) if token.isdigit() else (1, token.lower()))
        key.append((-1, ""))  # a folder boundary sorts before any continuation of the name
    return key


def _not_a_file(path: Path) -> str:
    """Why ``path``, which exists as a name, is not a file we can read."""
    if path.is_symlink() and not path.exists():
        return "broken symbolic link (its target is missing, or the links form a loop)"
    return "not a regular file or folder"


def _walk_files(root: Path, errors: list[InputError]) -> list[Path]:
    """Regular files under ``root`` (symlinked folders are not entered, so link loops end). Entries that look like
    images or videos but are not readable files (dangling links, loops) and folders that cannot be listed are
    added to ``errors``."""
    files = []

    def unreadable(exc: OSError) -> None:
        errors.append(input_error(exc.filename or root, f"folder cannot be read ({exc.strerror or exc})"))

    for folder, dirs, names in os.walk(root, onerror=unreadable, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(folder) / n for n in names if not n.startswith("."))
    kept = []
    for f in files:
        if f.is_file():
            kept.append(f)
        elif classify(f) is not None:
            errors.append(input_error(f, _not_a_file(f)))
    return sorted(kept, key=lambda p: _natural_key(p, root))
