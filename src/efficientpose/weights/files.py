"""Where weight files are, in the one documented order (:func:`find_weights`): an explicit file or named weights
shipped in the package, the converted cache, ``$EFFICIENTPOSE_WEIGHTS_DIR`` (laid out like the authors' ``models/``
folder), then a checksummed download. Pure file handling, no torch, so a cached model can be found without loading
a network."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from efficientpose.errors import WeightsError
from efficientpose.io.atomic import AtomicFile
from efficientpose.models.variants import VARIANTS, Variant, WeightFile

__all__ = ["WeightFile", "WeightsSource", "cache_path", "download", "find_weights", "home", "local_weights",
           "packaged_path", "sha256", "url_of", "verify"]

#: Where weights shipped inside the package are (package data, see pyproject.toml).
PACKAGED = Path(__file__).resolve().parent / "data"


def home() -> Path:
    """The cache folder: ``$EFFICIENTPOSE_HOME`` or ``~/.cache/efficientpose``."""
    return Path(os.environ.get("EFFICIENTPOSE_HOME") or Path.home() / ".cache" / "efficientpose")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(variant: Variant) -> Path:
    """The converted (safetensors) weights of ``variant`` in the cache folder."""
    return home() / f"efficientpose-{variant.name}.safetensors"


def verify(path: Path, file: WeightFile) -> None:
    """WeightsError unless ``path`` has ``file``'s pinned SHA-256 (files without a pinned checksum pass)."""
    if file.sha256 is not None:
        actual = sha256(path)
        if actual != file.sha256:
            raise WeightsError(f"{path}: SHA-256 {actual[:16]}… does not match the pinned {file.sha256[:16]}… "
                               f"of {file.relpath}")


def packaged_path(file: WeightFile) -> Path:
    """Where the package holds a ``packaged`` weights entry."""
    return PACKAGED / file.relpath


def url_of(file: WeightFile) -> str:
    """Where ``file`` is downloaded from: ``$EFFICIENTPOSE_WEIGHTS_URL`` if set, else where it is published."""
    base = os.environ.get("EFFICIENTPOSE_WEIGHTS_URL")
    return f"{base.rstrip('/')}/{file.relpath}" if base else file.url


def download(file: WeightFile) -> Path:
    """Fetch ``file`` (into the cache's ``downloads/``, atomically) and verify its checksum."""
    dest = home() / "downloads" / file.relpath
    target = AtomicFile(dest, "wb")
    with target as out, urllib.request.urlopen(url_of(file), timeout=30) as response:  # noqa: S310
        shutil.copyfileobj(response, out)
        out.flush()
        verify(target.temp, file)
    return dest


@dataclass(frozen=True)
class WeightsSource:
    """Where :func:`find_weights` found a file: its path, which step of the order found it, and the entry it is
    (None for an explicit file or the converted cache)."""

    path: Path
    origin: Literal["explicit", "packaged", "cache", "weights_dir", "download"]
    file: WeightFile | None = None


def find_weights(files: Sequence[WeightFile], *, explicit: str | os.PathLike | None = None,
                 named: Mapping[str, WeightFile] | None = None, cached: Path | None = None,
                 what: str = "these weights", fetch: bool = True, check: bool = True) -> WeightsSource | None:
    """The documented resolution order, for any weights entries (``files``, preferred first):

    1. ``explicit``, a file the caller names (``weights=``, ``--weights``), or the name of one of ``named``, the
       weights shipped in the package (checked against its pinned SHA-256 with ``check``); an existing file of
       that name wins, with a warning;
    2. ``cached``, the converted cache file, if the caller keeps one;
    3. ``$EFFICIENTPOSE_WEIGHTS_DIR/<relpath>`` of each entry (checked against its pinned SHA-256 with ``check``);
    4. with ``fetch``, a download of each entry that has a pinned SHA-256.

    Without ``fetch``, None when nothing local exists; otherwise one WeightsError saying where it looked.
    """
    if explicit is not None:
        return _explicit(explicit, named or {}, check)
    looked = []
    if cached is not None:
        if cached.is_file():
            return WeightsSource(cached, "cache")
        looked.append(str(cached))
    folder = os.environ.get("EFFICIENTPOSE_WEIGHTS_DIR")
    if folder:
        for file in files:
            candidate = Path(folder) / file.relpath
            looked.append(str(candidate))
            if candidate.is_file():
                if check:
                    verify(candidate, file)
                return WeightsSource(candidate, "weights_dir", file)
    else:
        looked.append("$EFFICIENTPOSE_WEIGHTS_DIR (not set)")
    if not fetch:
        return None
    failures = []
    for file in files:
        if file.sha256 is None:
            continue  # never download what cannot be verified
        try:
            return WeightsSource(download(file), "download", file)
        except WeightsError:
            raise
        except Exception as exc:  # noqa: BLE001 - network errors of every kind, reported together below
            failures.append(f"{url_of(file)} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    how = ("download failed: " + "; ".join(failures)) if failures else "no published file with a pinned checksum"
    raise WeightsError(
        f"no weights for {what}: looked in {', '.join(looked)}; {how}. Pass weights=FILE (--weights FILE) or set "
        f"EFFICIENTPOSE_WEIGHTS_DIR to a folder with {' or '.join(f.relpath for f in files)}"
    )


def _explicit(explicit: str | os.PathLike, named: Mapping[str, WeightFile], check: bool) -> WeightsSource:
    """Step 1 of :func:`find_weights`: the file ``explicit`` names, else the packaged weights of that name."""
    path = Path(explicit)
    entry = named.get(os.fspath(explicit))
    if path.is_file():
        if entry is not None:
            warnings.warn(f"{path}: using this file, not the named weights {os.fspath(explicit)!r} of the same name "
                          f"(rename or move the file to use those)", UserWarning, stacklevel=1)
        return WeightsSource(path, "explicit")
    if entry is None:
        elsewhere = [v.title for v in VARIANTS.values() if os.fspath(explicit) in v.named]
        hint = (f" (named weights {os.fspath(explicit)!r} exist for EfficientPose {', '.join(elsewhere)} only)"
                if elsewhere else f"; named weights here: {', '.join(named)}" if named else "")
        raise WeightsError(f"{path}: weight file not found{hint}")
    packaged = packaged_path(entry)
    if not packaged.is_file():
        raise WeightsError(f"{packaged}: the packaged weights {os.fspath(explicit)!r} are missing from this "
                           f"installation; reinstall efficientpose")
    if check:
        try:
            verify(packaged, entry)
        except WeightsError as exc:
            raise WeightsError(f"corrupted packaged weights {os.fspath(explicit)!r}, refused: {exc}; reinstall "
                               f"efficientpose") from None
    return WeightsSource(packaged, "packaged", entry)


def local_weights(variant: Variant, weights: str | os.PathLike | None = None) -> Path | None:
    """The local file the resolution order would use for ``variant`` (``weights``: a file or a name; else the
    cache or weights folder), if any; nothing is downloaded or verified (this only names the file)."""
    found = find_weights(variant.files, explicit=weights, named=variant.named, cached=cache_path(variant),
                         fetch=False, check=False)
    return None if found is None else found.path
