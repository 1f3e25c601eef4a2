"""Decoding users' images: any accepted image (path, PIL image, array) as an upright RGB uint8 array.

Every unreadable input raises :class:`~efficientpose.errors.InputError` with a one-line message
``"<path>: <reason>"``.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from efficientpose.errors import InputError, input_error
from efficientpose.io import PathLike

#: Images with more pixels than this are refused before decoding (decompression-bomb guard); video frames too.
DEFAULT_MAX_PIXELS = 100_000_000
#: Images and video frames narrower or shorter than this many pixels are refused before any model runs: they
#: hold no person, and searching their length for one would cost without bound.
MIN_SIDE = 8


def check_image_size(name: object, width: int, height: int, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     what: str = "image") -> None:
    """Raise InputError unless a ``width`` x ``height`` image (or video frame) is within the size limits."""
    if max_pixels is not None and width * height > max_pixels:
        raise input_error(
            name, f"{what} is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels} "
            f"(possible decompression bomb; raise max_pixels to allow it)"
        )
    if min(width, height) < MIN_SIDE:
        raise input_error(name, f"{what} is {width}x{height} pixels, thinner than the minimum of {MIN_SIDE} pixels")


def read_image(path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    Multi-frame files (GIF, TIFF) give their first frame. ``max_pixels`` (None: no limit of ours) refuses
    huge images before decoding; Pillow's own hard ceiling (2 x ``PIL.Image.MAX_IMAGE_PIXELS``) still applies.
    """
    path = Path(path)
    check_readable_file(path)
    # Pillow's warnings (a corrupt TIFF tag, odd EXIF) and libtiff's lines on the C-level stderr are never printed:
    # they join our message if decoding fails.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _libtiff_lines(path) as said:
            try:
                with Image.open(path) as img:
                    check_image_size(path, img.width, img.height, max_pixels)
                    img.load()  # force the full decode so truncated files fail here
                    return _pil_to_rgb(img, str(path))
            except InputError:
                raise
            except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError, struct.error,
                    MemoryError) as exc:
                failure = exc
    notes = list(dict.fromkeys([str(w.message) for w in caught] + said))
    noted = f"; the decoder warned: {'; '.join(notes)}" if notes else ""
    if isinstance(failure, Image.DecompressionBombError):
        raise input_error(path, f"image too large (possible decompression bomb): {failure}") from failure
    if isinstance(failure, UnidentifiedImageError):
        raise input_error(path, "not an image, or an unsupported image format" + noted) from failure
    raise input_error(path, f"corrupt or truncated image ({failure}){noted}") from failure


#: The first bytes of TIFF files (classic and BigTIFF, either byte order).
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_STDERR = threading.Lock()  # one capture of file descriptor 2 at a time


@contextlib.contextmanager
def _libtiff_lines(path: Path) -> Iterator[list[str]]:
    """While a TIFF decodes, file descriptor 2 (where libtiff and Pillow's TIFF decoder write their warnings and
    errors) goes to a temporary file; at the end its lines are put in the yielded list, except a progress bar's
    (another thread's, redrawn with carriage returns), which are passed on to the real stderr. Other formats decode
    as they are: their decoders never write there."""
    said: list[str] = []
    try:
        with open(path, "rb") as f:
            is_tiff = f.read(4) in _TIFF_MAGIC
    except OSError:
        is_tiff = False
    if not is_tiff:
        yield said
        return
    with _STDERR, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            others = []
            for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True):
                if "\r" in line:
                    others.append(line)
                elif line.strip():
                    said.append(line.replace("tempfile.tif: ", "").strip().rstrip("."))  # Pillow's name for any file
            if others:
                os.write(2, "".join(others).encode())


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
        except InputError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise input_error("<PIL image>", f"cannot be decoded ({exc})") from exc
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise input_error("<image>", f"expected a path, a PIL image or a numpy array, got {type(image).__name__}")


def check_image_shape(image: PathLike | Image.Image | np.ndarray, rgb: np.ndarray) -> None:
    """Raise InputError if ``rgb`` (``image`` decoded) is thinner than :data:`MIN_SIDE`: arrays and PIL images given
    in memory are refused like files are, before any model runs."""
    name = image if isinstance(image, str | os.PathLike) else (
        "<PIL image>" if isinstance(image, Image.Image) else "<array>")
    check_image_size(name, rgb.shape[1], rgb.shape[0], max_pixels=None)


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
        return _rgb_array(img)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _high_depth_to_uint8(np.asarray(img), mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if "A" in mode or "a" in mode or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return _composite_on_black(rgba)
    try:
        return _rgb_array(img)
    except (ValueError, OSError) as exc:
        raise input_error(name, f"unsupported colour mode {mode!r}") from exc


def _rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 of a PIL image, converted to RGB a band of rows at a time: converting a large image whole
    would hold two more copies of it (Pillow's RGB image and its bytes) besides the array."""
    out = np.empty((img.height, img.width, 3), dtype=np.uint8)
    step = max(1, (16 << 20) // max(1, 4 * img.width))  # about 16 MB of Pillow's 4-byte pixels per band
    for y in range(0, img.height, step):
        band = img.crop((0, y, img.width, min(img.height, y + step)))
        out[y : y + band.height] = np.asarray(band if band.mode == "RGB" else band.convert("RGB"))
    return out


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
