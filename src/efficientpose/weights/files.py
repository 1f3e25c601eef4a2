"""Where weight files are: the cache folder, the authors' folder named by ``$EFFICIENTPOSE_WEIGHTS_DIR``, and a
checksummed download. Pure file handling, no torch, so a cached model can be found without loading a network."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from efficientpose.errors import WeightsError
from efficientpose.models.variants import Variant, WeightFile


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
    if file.sha256 is not None:
        actual = sha256(path)
        if actual != file.sha256:
            raise WeightsError(f"{path}: SHA-256 {actual[:16]}… does not match the pinned {file.sha256[:16]}… "
                               f"of the authors' {file.relpath}")


def url_of(file: WeightFile) -> str:
    """Where ``file`` is downloaded from: ``$EFFICIENTPOSE_WEIGHTS_URL`` if set, else the authors' repository."""
    base = os.environ.get("EFFICIENTPOSE_WEIGHTS_URL")
    return f"{base.rstrip('/')}/{file.relpath}" if base else file.url


def download(file: WeightFile) -> Path:
    """Fetch ``file`` from the authors' repository (or ``$EFFICIENTPOSE_WEIGHTS_URL``) and verify its checksum."""
    url = url_of(file)
    dest = home() / "downloads" / file.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
            shutil.copyfileobj(response, out)
        verify(Path(tmp), file)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def local_weights(variant: Variant) -> Path | None:
    """The local file the resolution order would use for ``variant`` (cache or weights folder), if any."""
    if cache_path(variant).is_file():
        return cache_path(variant)
    folder = os.environ.get("EFFICIENTPOSE_WEIGHTS_DIR")
    for file in variant.files if folder else ():
        if (Path(folder) / file.relpath).is_file():
            return Path(folder) / file.relpath
    return None
