"""Reading users' images and input lists, and writing output files atomically.

Every unreadable input raises :class:`~efficientpose.errors.InputError` with a one-line message
``"<path>: <reason>"``; outputs appear whole or not at all (written to a temporary sibling, then renamed).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, Self

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from efficientpose.errors import InputError, UsageError

#: Suffixes (lower case) classified as images and videos; matching is case-insensitive.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm", ".pnm"}
)
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm"})

#: Images with more pixels than this are refused before decoding (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 100_000_000

PathLike = str | os.PathLike[str]


def one_line(text: object) -> str:
    """Collapse a message onto one line (error messages of this package are single lines)."""
    return " ".join(str(text).split())


def input_error(path: PathLike | str, reason: object) -> InputError:
    """The package's error for an unreadable input: ``"<path>: <reason>"`` on one line."""
    return InputError(one_line(f"{path}: {reason}"))


# --------------------------------------------------------------------------------------------- images


def read_image(path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    Multi-frame files (GIF, TIFF) give their first frame. ``max_pixels`` (None: no limit of ours) refuses
    huge images before decoding; Pillow's own hard ceiling (2 x ``PIL.Image.MAX_IMAGE_PIXELS``) still applies.
    """
    path = Path(path)
    check_readable_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if max_pixels is not None and img.width * img.height > max_pixels:
                    raise input_error(
                        path, f"image is {img.width}x{img.height} = {img.width * img.height} pixels, more than "
                        f"the limit of {max_pixels} (possible decompression bomb; raise max_pixels to allow it)"
                    )
                img.load()  # force the full decode so truncated files fail here
                return _pil_to_rgb(img, str(path))
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise input_error(path, f"image too large (possible decompression bomb): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise input_error(path, "not an image, or an unsupported image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise input_error(path, f"corrupt or truncated image ({exc})") from exc


def to_rgb_array(image: PathLike | Image.Image | np.ndarray) -> np.ndarray:
    """Any accepted image (path, PIL image, array) as an (H, W, 3) uint8 RGB array.

    Arrays must be uint8: (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha composited on black).
    A contiguous (H, W, 3) uint8 array is returned as is (shared, not copied).
    """
    if isinstance(image, str | os.PathLike):
        return read_image(image)
    if isinstance(image, Image.Image):
        try:
            return _pil_to_rgb(image, "<PIL image>")
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise input_error("<PIL image>", f"cannot be decoded ({exc})") from exc
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise input_error("<image>", f"expected a path, a PIL image or a numpy array, got {type(image).__name__}")


def check_readable_file(path: Path) -> None:
    """Raise InputError unless ``path`` is an existing, non-empty, readable regular file."""
    if not path.exists():
        raise input_error(path, "no such file")
    if path.is_dir():
        raise input_error(path, "is a directory, not a file")
    if path.stat().st_size == 0:
        raise input_error(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise input_error(path, "permission denied")


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """Upright (EXIF), 8-bit RGB; alpha is composited on black; 16-bit and float images are rescaled."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not make a readable image unreadable
        pass
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _high_depth_to_uint8(np.asarray(img), mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return _composite_on_black(rgba)
    try:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as exc:
        raise input_error(name, f"unsupported colour mode {mode!r}") from exc


def _high_depth_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Rescale 16-bit (x 255/65535), or int/float images by their range: [0, 1] floats, [0, 255], [0, 65535],
    else min-max. Never clips."""
    v = values.astype(np.float64)
    if mode.startswith("I;16"):
        scale_max = 65535.0
    else:
        finite = v[np.isfinite(v)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if mode == "F" and lo >= 0.0 and hi <= 1.0:
            scale_max = 1.0
        elif lo >= 0.0 and hi <= 255.0:
            scale_max = 255.0
        elif lo >= 0.0 and hi <= 65535.0:
            scale_max = 65535.0
        else:
            v = v - lo
            scale_max = max(hi - lo, 1e-12)
    v = np.nan_to_num(v, nan=0.0)
    return np.rint(v * (255.0 / scale_max)).clip(0, 255).astype(np.uint8)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """RGB x alpha (i.e. the image over a black background), rounded."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise input_error("<array>", f"dtype {array.dtype} is not supported; pass uint8 RGB")
    if array.size == 0:
        raise input_error("<array>", f"empty image of shape {array.shape}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        return _composite_on_black(array)
    raise input_error("<array>", f"shape {array.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)")


# --------------------------------------------------------------------------------------------- input lists


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


# --------------------------------------------------------------------------------------------- atomic writes


def temp_sibling(path: Path) -> Path:
    """A fresh hidden name in ``path``'s folder that keeps its suffix (writers pick formats by suffix)."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to be written by any writer (OpenCV, matplotlib, Pillow);
    it replaces ``path`` when the block succeeds and is deleted when it raises. Parent folders are created."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_sibling(final)
    try:
        yield temp
        if not temp.exists():
            raise OSError(f"{final}: nothing was written")
        _fsync(temp)
        os.replace(temp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


class CloseOrAbort:
    """Context-manager protocol for output writers with ``close()`` (finish and commit) and ``abort()`` (discard):
    close on success, abort on any exception, KeyboardInterrupt included."""

    def close(self) -> object:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class AtomicFile:
    """An open temporary file that becomes ``path`` on :meth:`commit` and vanishes on :meth:`discard`.

    For files written over time (a long video's predictions); as a context manager it commits on success
    and discards on any exception, including KeyboardInterrupt.
    """

    path: Path
    mode: str = "w"
    encoding: str | None = "utf-8"
    newline: str | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = temp_sibling(self.path)
        encoding = None if "b" in self.mode else self.encoding
        newline = None if "b" in self.mode else self.newline
        # O_EXCL: never clobber; 0o666 lets the umask decide permissions like a normal open() would.
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.file: IO[Any] = os.fdopen(fd, self.mode, encoding=encoding, newline=newline)
        self.done = False

    def commit(self) -> Path:
        """Flush, sync and rename onto the final path."""
        if self.done:
            return self.path
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise
        self.done = True
        return self.path

    def discard(self) -> None:
        """Close and delete the temporary file; the final path is left untouched."""
        if self.done:
            return
        self.done = True
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()

    def __enter__(self) -> IO[Any]:
        return self.file

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new one, never a part)."""
    with AtomicFile(Path(path), "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (newlines written as given)."""
    with AtomicFile(Path(path), "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (through symlinks, hard links, ``..`` or case-folding)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_not_input(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Raise UsageError if writing ``output`` would overwrite one of ``inputs``."""
    for item in inputs:
        if same_file(output, item):
            raise UsageError(one_line(f"{output}: refusing to overwrite the input file {item}"))
