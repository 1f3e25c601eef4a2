"""Writing output files atomically: outputs appear whole or not at all (written to a temporary sibling,
then renamed), and inputs are never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from efficientpose.errors import UsageError, one_line
from efficientpose.io import PathLike

#: Longest suffix a temporary name keeps (writers pick formats by suffix: ".json", ".mp4", ".jpeg").
_MAX_TEMP_SUFFIX = 16


#: Temporary names handed out and not yet renamed or deleted: an interrupt that comes at an unlucky moment (say,
#: between a file's creation and its writer's bookkeeping) still leaves none behind (:func:`remove_temporaries`).
_PENDING: set[Path] = set()


def temp_sibling(path: Path) -> Path:
    """A fresh, short hidden name in ``path``'s folder that keeps its suffix (writers pick formats by suffix).
    Short whatever ``path``'s name, so that a legal output name never turns into an illegal temporary one."""
    suffix = path.suffix if len(path.suffix.encode("utf-8", "surrogateescape")) <= _MAX_TEMP_SUFFIX else ""
    temp = path.with_name(f".ep-{secrets.token_hex(4)}.tmp{suffix}")
    _PENDING.add(temp)
    return temp


def forget_temp(temp: Path) -> None:
    """``temp`` was renamed into place or deleted."""
    _PENDING.discard(temp)


def remove_temporaries() -> None:
    """Delete every temporary file of this process that is still there (called when a run is interrupted)."""
    for temp in list(_PENDING):
        with contextlib.suppress(OSError):
            temp.unlink()
        forget_temp(temp)


def named_os_error(exc: OSError, path: PathLike) -> OSError:
    """``exc`` told about the output ``path`` the user asked for (a temporary name means nothing to them)."""
    return OSError(exc.errno, exc.strerror or str(exc), os.fspath(path))


def check_writable_folder(folder: PathLike) -> None:
    """Raise OSError naming ``folder`` unless a file can be created in it (read-only, foreign or full of inodes)."""
    temp = temp_sibling(Path(folder) / "probe")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise named_os_error(exc, folder) from exc
    temp.unlink()


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_atomically(temp: Path, final: Path) -> None:
    """The one commit step of every writer: sync the finished temporary file to disk, then rename it onto
    ``final`` (readers see the old file or the new one, never a part, even after a crash)."""
    _fsync(temp)
    os.replace(temp, final)


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
        replace_atomically(temp, final)
    except OSError as exc:
        raise named_os_error(exc, final) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        forget_temp(temp)


class CloseOrAbort:
    """Context-manager protocol for output writers with ``close()`` (finish and commit) and ``abort()`` (discard):
    close on success, abort on any exception, KeyboardInterrupt included. What ``close()`` returned (the files
    written) is kept in :attr:`committed`."""

    committed: object = None

    def close(self) -> object:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.committed = self.close()
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
        try:
            fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise named_os_error(exc, self.path) from exc
        self.file: IO[Any] = os.fdopen(fd, self.mode, encoding=encoding, newline=newline)
        self.done = False

    def commit(self) -> Path:
        """Flush, sync and rename onto the final path."""
        if self.done:
            return self.path
        try:
            self.file.close()
            replace_atomically(self.temp, self.path)
            forget_temp(self.temp)
        except OSError as exc:  # a full disk, a lost folder: named by the output path, nothing left behind
            self.discard()
            raise named_os_error(exc, self.path) from exc
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
        forget_temp(self.temp)

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
