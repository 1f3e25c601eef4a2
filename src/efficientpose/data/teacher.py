"""Teacher keypoints for distillation: a strong model (the authors' II, flip-averaged) runs once over every
training image, on the very crop training takes before augmentation (:func:`person_frame`), and its 16 keypoints
are cached outside the repository. :func:`merge_teacher` then fills the joints the ground truth lacks.

Cache folder: ``manifest.json`` (teacher variant, weights digest, crop policy, code version) and one ``.npz``
shard per ``shard_size`` samples, ``<dataset>-<split>/<first index>.npz``, holding ``ids``, ``keypoints``
(n, 16, 3: x, y in original image pixels, continuous convention, and score) and ``frames`` (n, 3: crop centre
x, y and side). Shards are written atomically; a rerun skips the shards already there, so the job resumes.

Run: ``python -m efficientpose.train.teacher --config configs/rt-lsp.toml`` (docs/training.md, "Distillation").
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from efficientpose.codec.geometry import affine_matrix, invert_points, warp
from efficientpose.data.dataset import read_rgb
from efficientpose.data.sample import Sample
from efficientpose.data.transforms import AugmentConfig, person_frame
from efficientpose.errors import DatasetError, UsageError
from efficientpose.io.atomic import atomic_write_bytes, atomic_write_text
from efficientpose.skeleton import KEYPOINTS, remap

log = logging.getLogger("efficientpose.teacher")

#: Version of the cache layout below; a different one is refused.
CACHE_FORMAT = 1
MANIFEST = "manifest.json"
#: Settings that must agree for a cache to be resumed or used: the teacher and its crop policy.
IDENTITY_KEYS = ("format", "teacher", "crop", "keypoints")

#: The crop policy: the un-augmented training crop (joints' bounding box x margin, at least min_side).
CROP = AugmentConfig(train=False)


@dataclass(frozen=True)
class Teacher:
    """What the cache was made with: the estimator (any object with ``heatmaps``/``decode``/``size``) and the
    identity that goes into the manifest."""

    estimator: Any  #: a PoseEstimator (flip set on it)
    variant: str
    flip: bool
    backend: str
    weights: str  #: the weights file's name
    weights_sha256: str
    decoder: str = "refined"

    def identity(self) -> dict[str, Any]:
        return {"variant": self.variant, "flip": self.flip, "decoder": self.decoder, "backend": self.backend,
                "weights": self.weights, "weights_sha256": self.weights_sha256}


def load_teacher(variant: str = "ii", weights: str | None = None, *, flip: bool = True, backend: str = "openvino",
                 threads: int | None = 1) -> Teacher:
    """The teacher: ``PoseEstimator(variant, weights)`` with flip test-time augmentation and the refined decoder."""
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.models.variants import get_variant
    from efficientpose.weights.files import local_weights, sha256

    estimator = PoseEstimator(variant, weights, backend=backend, flip=flip, threads=threads)
    source = Path(weights) if weights is not None else local_weights(get_variant(variant))
    if source is None or not source.is_file():
        raise UsageError(f"teacher {variant}: no local weights file to record (set EFFICIENTPOSE_WEIGHTS_DIR)")
    return Teacher(estimator, estimator.variant.name, flip, estimator.backend, source.name, sha256(source))


def code_version() -> str:
    """The package version plus a digest of its Python sources (a frozen copy has no git)."""
    from efficientpose import __version__

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+src.{digest.hexdigest()[:12]}"


def crop_frame(sample: Sample, image_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Centre and side of the un-augmented training crop of ``sample`` (what :class:`PoseDataset` takes)."""
    if sample.box is not None and sample.center is None:
        raise UsageError(f"{sample.id or sample.image}: the teacher cache supports joint- or centre-framed samples "
                         "(LSP, LSPET, MPII), not box-framed ones")
    return person_frame(sample.joints, sample.annotated, image_size, CROP, sample.center, sample.scale)


def run_teacher(teacher: Teacher, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (n, 16, 3) in original pixels and crop frames (n, 3) for ``samples``, in one batch.

    Each image is warped exactly as training warps it before augmentation (same affine, same zero border), the
    teacher's heatmaps are decoded in that input, and the points are mapped back through the inverse affine.
    An unreadable image gives NaN keypoints.
    """
    est = teacher.estimator
    size = est.size
    keypoints = np.full((len(samples), len(KEYPOINTS), 3), np.nan)
    frames = np.full((len(samples), 3), np.nan)
    crops, matrices, rows = [], [], []
    for i, sample in enumerate(samples):
        image = read_rgb(Path(sample.image))
        if image is None:
            log.warning("%s: unreadable image, no teacher keypoints", sample.image)
            continue
        centre, side = crop_frame(sample, (image.shape[1], image.shape[0]))
        matrix = affine_matrix(centre, side, size)
        crops.append(warp(np.ascontiguousarray(image), matrix, size))
        matrices.append(matrix)
        rows.append(i)
        frames[i] = (centre[0], centre[1], side)
    if not rows:
        return keypoints, frames
    decoded = est.decode(est.heatmaps(np.stack(crops)))
    names = tuple(est.names)
    for row, matrix, kp in zip(rows, matrices, decoded, strict=True):
        xy = invert_points(kp[:, :2], matrix)
        keypoints[row] = remap(np.column_stack([xy, kp[:, 2]]), names, KEYPOINTS)
    return keypoints, frames


# ---- the cache ----

def _shard_dir(folder: Path, dataset: str, split: str) -> Path:
    return folder / f"{dataset}-{split}"


def write_shard(path: Path, ids: Sequence[str], keypoints: np.ndarray, frames: np.ndarray, version: str) -> None:
    """One shard, atomically (a reader sees the whole file or none)."""
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.asarray(list(ids), dtype=str), keypoints=keypoints.astype(np.float32),
             frames=frames.astype(np.float64), code_version=np.asarray(version))
    atomic_write_bytes(path, buffer.getvalue())


def read_shard(path: Path) -> dict[str, np.ndarray]:
    """A shard's arrays (no pickle); a damaged file is a one-line DatasetError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in ("ids", "keypoints", "frames")}
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{path}: not a readable teacher shard ({type(exc).__name__}); "
                           "delete it to recompute") from None
    if out["keypoints"].shape != (len(out["ids"]), len(KEYPOINTS), 3):
        raise DatasetError(f"{path}: keypoints of shape {out['keypoints'].shape}, expected ({len(out['ids'])}, 16, 3)")
    return out


def _manifest(teacher: Teacher, size: int) -> dict[str, Any]:
    crop = {"policy": "person_frame", "margin": CROP.margin, "min_side": CROP.min_side, "input_size": size,
            "warp": "codec.geometry.warp (area-averaged when shrinking, else bilinear; zero border)"}
    return {"format": CACHE_FORMAT, "teacher": teacher.identity(), "crop": crop, "keypoints": list(KEYPOINTS),
            "coordinates": "original image pixels, continuous (top-left corner 0, pixel centres +0.5)"}


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{folder}: no teacher cache here ({MANIFEST} missing)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({type(exc).__name__})") from None


def build_cache(folder: Path, teacher: Teacher, groups: Sequence[tuple[str, str, Sequence[Sample]]], *,
                shard_size: int = 250, batch_size: int = 8, version: str | None = None,
                on_shard: Callable[[str, int, int, float], None] | None = None) -> dict[str, Any]:
    """Run ``teacher`` over every (dataset, split, samples) group into ``folder``; returns the final manifest.

    Shards already written are skipped (the job resumes). A manifest from a different teacher or crop policy
    is refused. ``on_shard(name, done, total, seconds)`` is called after each new shard.
    """
    folder = Path(folder)
    version = version or code_version()
    manifest = _manifest(teacher, teacher.estimator.size)
    if (folder / MANIFEST).is_file():
        old = read_manifest(folder)
        differ = [k for k in IDENTITY_KEYS if old.get(k) != manifest[k]]
        if differ:
            raise UsageError(f"{folder}: holds a teacher cache made differently ({', '.join(differ)}); "
                             "use another folder or delete it")
        manifest["code_versions"] = list(dict.fromkeys([*old.get("code_versions", []), version]))
    else:
        old, manifest["code_versions"] = {}, [version]
    manifest["datasets"] = dict(old.get("datasets", {}))
    for name, split, samples in groups:
        entry = {"count": len(samples), "shard_size": shard_size}
        if manifest["datasets"].get(f"{name}-{split}", entry) != entry:
            raise UsageError(f"{folder}: {name}-{split} was cached as {manifest['datasets'][f'{name}-{split}']}, "
                             f"not {entry}; use the same --shard-size and data, or another folder")
        manifest["datasets"][f"{name}-{split}"] = entry
    manifest["complete"] = False
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for name, split, samples in groups:
        shards = _shard_dir(folder, name, split)
        starts = range(0, len(samples), shard_size)
        for done, start in enumerate(starts, 1):
            path = shards / f"{start:05d}.npz"
            if path.is_file():
                continue
            t0 = time.perf_counter()
            chunk = samples[start:start + shard_size]
            parts = [run_teacher(teacher, chunk[i:i + batch_size]) for i in range(0, len(chunk), batch_size)]
            write_shard(path, [s.id for s in chunk], np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), version)
            if on_shard is not None:
                on_shard(f"{name}-{split}", done, len(starts), time.perf_counter() - t0)
    manifest["complete"] = True
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_cache(folder: Path, dataset: str) -> dict[str, np.ndarray]:
    """Sample id -> teacher keypoints (16, 3) of every cached sample of ``dataset`` (all its splits)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("format") != CACHE_FORMAT or manifest.get("keypoints") != list(KEYPOINTS):
        raise DatasetError(f"{folder}: teacher cache format {manifest.get('format')}, expected {CACHE_FORMAT}")
    out: dict[str, np.ndarray] = {}
    for shard_dir in sorted(p for p in folder.glob(f"{dataset}-*") if p.is_dir()):
        for path in sorted(shard_dir.glob("*.npz")):
            data = read_shard(path)
            out.update(zip((str(i) for i in data["ids"]), data["keypoints"].astype(np.float64), strict=True))
    return out


# ---- distillation ----

def merge_teacher(samples: Sequence[Sample], teacher: Mapping[str, np.ndarray], threshold: float) -> list[Sample]:
    """Samples in MPII-16 order with the teacher's confident keypoints filling the joints the labels lack.

    A labelled joint keeps its label (LSP's head top is not MPII's); an unlabelled one (LSPET flag 0, and thorax
    and pelvis, which LSP never labels) takes the teacher's point when its score is at least ``threshold``.
    Filled joints are annotated but not visible. The crop stays the labels' one: a joint-framed sample gets
    ``box`` = its labelled joints' bounding box, which frames :class:`PoseDataset`'s crop exactly as before.
    Samples without teacher keypoints or without any label are only reordered.
    """
    out = []
    for s in samples:
        joints = remap(np.asarray(s.joints, dtype=np.float64), tuple(s.keypoints), KEYPOINTS)
        annotated = remap(np.asarray(s.annotated), tuple(s.keypoints), KEYPOINTS, fill=0.0).astype(bool)
        visible = remap(np.asarray(s.visible), tuple(s.keypoints), KEYPOINTS, fill=0.0).astype(bool)
        box = s.box
        points = teacher.get(s.id)
        if points is not None and annotated.any():
            fill = ~annotated & (points[:, 2] >= threshold) & np.isfinite(points[:, :2]).all(axis=1)
            if box is None and s.center is None:
                pts = joints[annotated]
                box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
            joints = np.where(fill[:, None], points[:, :2], joints)
            annotated = annotated | fill
        out.append(replace(s, keypoints=KEYPOINTS, joints=joints, annotated=annotated, visible=visible & annotated,
                           box=box))
    return out
