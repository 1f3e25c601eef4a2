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
            found = [(p, k) for p in _walk_files(path) if (k := classify(p)) is not None]
            if not found:
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
        elif path.exists():
            errors.append(input_error(path, "not a regular file or folder"))
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


def _walk_files(root: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(Path(folder) / n for n in names if not n.startswith("."))
    return sorted((f for f in files if f.is_file()), key=lambda p: _natural_key(p, root))
