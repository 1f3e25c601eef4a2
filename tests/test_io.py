"""Reading users' images (all the odd kinds) and input lists, and writing outputs atomically."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from efficientpose.errors import InputError, UsageError
from efficientpose.io.atomic import AtomicFile, atomic_path, atomic_write_bytes, atomic_write_text, check_not_input
from efficientpose.io.images import read_image, to_rgb_array
from efficientpose.io.inputs import IMAGE_SUFFIXES, VIDEO_SUFFIXES, expand_inputs


@pytest.fixture(scope="module")
def photo_path(data_dir: Path) -> Path:
    return data_dir / "lsp" / "images" / "im0001.jpg"


@pytest.fixture(scope="module")
def photo(photo_path: Path) -> np.ndarray:
    with Image.open(photo_path) as img:
        return np.asarray(img.convert("RGB"))


def assert_one_line_naming(exc: pytest.ExceptionInfo[InputError], path: Path | str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")


# --------------------------------------------------------------------------------------------- read_image


def test_reads_jpeg_as_rgb_uint8(photo_path: Path, photo: np.ndarray) -> None:
    image = read_image(photo_path)
    assert image.dtype == np.uint8 and image.shape == (160, 70, 3)
    np.testing.assert_array_equal(image, photo)
    image[0, 0] = 0  # a fresh, writable array


@pytest.mark.parametrize(("orientation", "k"), [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path: Path, photo: np.ndarray, orientation: int, k: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.png"  # lossless, so the comparison is exact
    Image.fromarray(photo).save(path, exif=exif)
    np.testing.assert_array_equal(read_image(path), np.rot90(photo, k))


def test_grey_palette_and_bilevel_images_become_rgb(tmp_path: Path, photo: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png"), np.repeat(grey[:, :, None], 3, axis=2))

    palette = Image.fromarray(photo).quantize(64)
    palette.save(tmp_path / "palette.gif")
    np.testing.assert_array_equal(read_image(tmp_path / "palette.gif"), np.asarray(palette.convert("RGB")))

    Image.fromarray(grey > 128).save(tmp_path / "bilevel.png")
    bilevel = read_image(tmp_path / "bilevel.png")
    assert set(np.unique(bilevel)) == {0, 255}
    np.testing.assert_array_equal(bilevel[:, :, 0] == 255, grey > 128)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path, photo: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    path = tmp_path / "deep.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)  # the same picture spread over 0..65535
    with Image.open(path) as img:
        assert img.mode.startswith("I;16")
    np.testing.assert_array_equal(read_image(path)[:, :, 1], grey)


def test_alpha_is_composited_on_black(tmp_path: Path, photo: np.ndarray) -> None:
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[:, : photo.shape[1] // 2] = 255  # left half opaque, right half transparent
    alpha[0] = 128
    rgba = np.dstack([photo, alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    image = read_image(tmp_path / "cutout.png")
    np.testing.assert_array_equal(image[1:, : photo.shape[1] // 2], photo[1:, : photo.shape[1] // 2])
    assert (image[1:, photo.shape[1] // 2 :] == 0).all()
    np.testing.assert_allclose(image[0].astype(float), photo[0].astype(float) * 128 / 255, atol=0.51)


def test_cmyk_is_converted(tmp_path: Path, photo: np.ndarray) -> None:
    cmyk = Image.fromarray(photo).convert("CMYK")
    cmyk.save(tmp_path / "print.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "print.tif"), np.asarray(cmyk.convert("RGB")))


def test_pixel_limit_refuses_huge_images_before_decoding(tmp_path: Path, photo_path: Path) -> None:
    with pytest.raises(InputError, match="more than the limit of 10000") as exc:
        read_image(photo_path, max_pixels=10_000)  # 70 x 160 = 11200 pixels
    assert_one_line_naming(exc, photo_path)
    assert read_image(photo_path, max_pixels=11_200).shape == (160, 70, 3)
    assert read_image(photo_path, max_pixels=None).shape == (160, 70, 3)


@pytest.mark.parametrize(("width", "height", "reason"), [
    (12_000, 10_000, "120000000 pixels, more than the limit of 100000000"),  # our default limit
    (100_000, 100_000, "possible decompression bomb"),  # Pillow's own ceiling, also an InputError
])
def test_decompression_bombs_are_refused(tmp_path: Path, photo: np.ndarray, width: int, height: int,
                                         reason: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # the header claims a huge image; pixels never decoded
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=reason) as exc:
        read_image(path)
    assert_one_line_naming(exc, path)


def test_truncated_jpeg_is_an_input_error(tmp_path: Path, photo_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(photo_path.read_bytes()[: photo_path.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as exc:
        read_image(path)
    assert_one_line_naming(exc, path)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [("empty.jpg", b"", "empty file"), ("notes.jpg", b"just some text\nover two lines\n", "not an image")],
)
def test_bad_files_are_input_errors(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as exc:
        read_image(path)
    assert_one_line_naming(exc, path)


def test_missing_file_and_folder_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as exc:
        read_image(tmp_path / "nowhere.jpg")
    assert_one_line_naming(exc, tmp_path / "nowhere.jpg")
    with pytest.raises(InputError, match="is a directory"):
        read_image(tmp_path)


# --------------------------------------------------------------------------------------------- to_rgb_array


def test_to_rgb_array_accepts_paths_pil_images_and_arrays(photo_path: Path, photo: np.ndarray) -> None:
    np.testing.assert_array_equal(to_rgb_array(photo_path), photo)
    np.testing.assert_array_equal(to_rgb_array(str(photo_path)), photo)
    with Image.open(photo_path) as img:
        np.testing.assert_array_equal(to_rgb_array(img), photo)
    assert to_rgb_array(photo) is photo or np.shares_memory(to_rgb_array(photo), photo)
    grey = photo[:, :, 0]
    np.testing.assert_array_equal(to_rgb_array(grey), np.dstack([grey] * 3))
    np.testing.assert_array_equal(to_rgb_array(grey[:, :, None]), np.dstack([grey] * 3))
    opaque = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(to_rgb_array(opaque), photo)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((2, 4, 4, 3), np.uint8),
     np.zeros((0, 4, 3), np.uint8), [[0, 1], [2, 3]]],
)
def test_to_rgb_array_rejects_what_is_not_an_image(bad: object) -> None:
    with pytest.raises(InputError) as exc:
        to_rgb_array(bad)  # type: ignore[arg-type]
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------------------------- expand_inputs


def test_expand_inputs_walks_folders_classifies_and_reports(tmp_path: Path, photo_path: Path) -> None:
    shoot = tmp_path / "shoot"
    for rel in ["im10.jpg", "im2.JPG", "im1.png", "clip.MP4", "notes.txt", ".hidden.jpg", "sub/im3.jpeg",
                ".cache/im4.jpg", "sub/deeper/run.webm"]:
        (shoot / rel).parent.mkdir(parents=True, exist_ok=True)
        (shoot / rel).write_bytes(b"x")  # classification is by suffix; decoding comes later
    (tmp_path / "empty").mkdir()
    (tmp_path / "readme.md").write_text("hello")

    items, errors = expand_inputs([photo_path, shoot, tmp_path / "missing.jpg", tmp_path / "empty",
                                   tmp_path / "readme.md", shoot / "im1.png"])

    assert [(p.relative_to(shoot).as_posix() if p.is_relative_to(shoot) else p, k) for p, k in items] == [
        (photo_path, "image"),
        ("clip.MP4", "video"), ("im1.png", "image"), ("im2.JPG", "image"), ("im10.jpg", "image"),
        ("sub/deeper/run.webm", "video"), ("sub/im3.jpeg", "image"),
    ]  # natural order inside folders, hidden and unknown files skipped, the duplicate im1.png dropped
    assert [str(e).split(": ", 1)[0] for e in errors] == [
        str(tmp_path / "missing.jpg"), str(tmp_path / "empty"), str(tmp_path / "readme.md")]
    assert all("\n" not in str(e) for e in errors)


def test_suffix_tables() -> None:
    assert {".jpg", ".jpeg", ".png"} <= IMAGE_SUFFIXES
    assert {".mp4", ".avi", ".mov", ".mkv", ".webm"} <= VIDEO_SUFFIXES
    assert not IMAGE_SUFFIXES & VIDEO_SUFFIXES


# --------------------------------------------------------------------------------------------- atomic writes


def test_atomic_writes_create_replace_and_use_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.txt"
    atomic_write_text(target, "first\r\n")
    assert target.read_bytes() == b"first\r\n"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(target.parent) == ["result.txt"]


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".png" and temp != target
        temp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["result.png"]

    with pytest.raises(KeyboardInterrupt), AtomicFile(target, "w") as f:
        f.write("partial")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["result.png"]


def test_atomic_path_publishes_what_a_writer_made(tmp_path: Path, photo: np.ndarray) -> None:
    target = tmp_path / "copy.png"
    with atomic_path(target) as temp:
        Image.fromarray(photo).save(temp)  # Pillow picks PNG from the temp name's suffix
    np.testing.assert_array_equal(read_image(target), photo)
    assert os.listdir(tmp_path) == ["copy.png"]


def test_check_not_input_refuses_to_overwrite_inputs(tmp_path: Path, photo_path: Path) -> None:
    (tmp_path / "link.jpg").symlink_to(photo_path)
    with pytest.raises(UsageError, match="refusing to overwrite"):
        check_not_input(tmp_path / "link.jpg", [photo_path])
    with pytest.raises(UsageError):
        check_not_input(photo_path.parent / ".." / "images" / photo_path.name, [photo_path])
    check_not_input(tmp_path / "im0001.jpg", [photo_path])
