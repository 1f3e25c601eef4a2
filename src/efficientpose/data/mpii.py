"""MPII Human Pose readers: the common HDF5 split files (``annot/valid.h5``, ``annot/train.h5``) and the
official release ``mpii_human_pose_v1_u12_1.mat``.

Joints stay in :data:`MPII_DATASET_ORDER`; MATLAB 1-based coordinates are shifted by -0.5 (see ``lsp.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from efficientpose.data.lsp import MATLAB_OFFSET, check_images
from efficientpose.data.sample import Sample
from efficientpose.errors import DatasetError, UsageError
from efficientpose.skeleton import MPII_DATASET_ORDER

#: SC_BIAS of the official ``util_get_head_size.m``: PCKh head size = 0.6 x head-box diagonal.
HEAD_SIZE_FACTOR = 0.6
RELEASE_MAT = "mpii_human_pose_v1_u12_1.mat"
#: Where :func:`find_release` looks, relative to the dataset root (the official zip unpacks into the last).
RELEASE_DIRS = (".", "annot", "mpii_human_pose_v1_u12_2")
H5_SPLITS = ("valid", "train")
SPLITS = (*H5_SPLITS, "release")
_H5_FIELDS = ("imgname", "part", "visible", "normalize", "center", "scale", "person")


def read_mpii(root: Path, split: str = "valid", *, single_person: bool = False,
              require_images: bool = True) -> list[Sample]:
    """MPII by split: ``valid``/``train`` = ``root/annot/<split>.h5``; ``release`` = the official .mat (train
    images, every annotated person). ``single_person`` keeps the official "sufficiently separated" people."""
    root = Path(root)
    if split == "release":
        return read_mpii_release(find_release(root), root / "images", single_person=single_person,
                                 require_images=require_images)
    if split not in H5_SPLITS:
        raise UsageError(f"mpii: unknown split '{split}' (choose from {', '.join(SPLITS)})")
    keep = single_person_index(find_release(root)) if single_person else None
    return read_mpii_h5(root / "annot" / f"{split}.h5", root / "images", require_images=require_images,
                        single_person=keep)


def find_release(root: Path) -> Path:
    """The official annotation .mat under ``root``; DatasetError when absent (the single-person list lives there)."""
    for folder in RELEASE_DIRS:
        path = Path(root) / folder / RELEASE_MAT
        if path.is_file():
            return path
    raise DatasetError(f"{root}: {RELEASE_MAT} not found in {', '.join(RELEASE_DIRS)} (needed for this option)")


def _h5_names(raw: np.ndarray) -> list[str]:
    if raw.ndim == 2:  # some conversions store names as rows of character codes
        return ["".join(chr(int(c)) for c in row if c).strip() for row in raw]
    return [n.decode("ascii") if isinstance(n, bytes) else str(n) for n in raw]


def read_mpii_h5(path: Path, images_dir: Path, *, require_images: bool = True,
                 single_person: Mapping[str, set[int]] | None = None) -> list[Sample]:
    """Persons of one HDF5 split file; ``part == (0, 0)`` marks an unannotated joint. ``single_person`` maps
    image names to the 0-based person indices to keep (see :func:`single_person_index`)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with h5py.File(path, "r") as f:
            absent = [k for k in _H5_FIELDS if k not in f]
            if absent:
                raise DatasetError(f"{path}: missing field(s) {', '.join(absent)}")
            data = {k: np.asarray(f[k][()]) for k in _H5_FIELDS}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DatasetError(f"{path}: not a readable HDF5 annotation file ({type(exc).__name__})") from None
    n = len(data["part"])
    shapes = {"part": (n, 16, 2), "visible": (n, 16), "normalize": (n,), "center": (n, 2), "scale": (n,),
              "person": (n,)}
    for key, shape in shapes.items():
        if data[key].shape != shape or not np.issubdtype(data[key].dtype, np.number):
            raise DatasetError(f"{path}: '{key}' has shape {data[key].shape}, expected {shape} numbers")
    names = _h5_names(data["imgname"])
    if len(names) != n:
        raise DatasetError(f"{path}: 'imgname' has {len(names)} entries, expected {n}")
    head = data["normalize"].astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(head) & (head > 0)))
    if bad.size:
        raise DatasetError(f"{path}: non-positive head size (normalize) for {bad.size} person(s), first #{bad[0]}")
    part = data["part"].astype(np.float64)
    annotated = ~(part == 0).all(axis=2)
    visible = annotated & (data["visible"] > 0)
    joints = np.where(annotated[..., None], part - MATLAB_OFFSET, np.nan)
    persons = data["person"].astype(int)
    keep = [i for i in range(n) if single_person is None or persons[i] in single_person.get(names[i], ())]
    images = [Path(images_dir) / names[i] for i in keep]
    check_images(images, path, require_images)
    centers = data["center"].astype(np.float64) - MATLAB_OFFSET
    return [
        Sample(image=image, keypoints=MPII_DATASET_ORDER, joints=joints[i], annotated=annotated[i],
               visible=visible[i], norm_size=float(head[i]), center=centers[i], scale=float(data["scale"][i]),
               id=f"{names[i]}#{persons[i]}")
        for i, image in zip(keep, images, strict=True)
    ]


# ---- the official release .mat (loaded with squeeze_me: 1x1 structs become objects, empty fields arrays) ----

def _items(value: Any) -> list[Any]:
    """A MATLAB struct array / cell / vector as a list; empty or absent -> []."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _number(value: Any) -> float | None:
    items = _items(value)
    if len(items) != 1:
        return None
    try:
        return float(items[0])
    except (TypeError, ValueError):
        return None


def _is_visible(value: Any) -> bool:
    """``is_visible`` is 0/1, '0'/'1' or empty; absent means "not marked occluded"."""
    items = _items(value)
    if not items:
        return True
    flag = items[0]
    if isinstance(flag, str):
        return flag.strip().lower() not in ("0", "false")
    return bool(flag)


def _load_release(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, MatReadError... on bad files
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(exc).__name__})") from None
    release = mat.get("RELEASE")
    for field in ("annolist", "img_train", "single_person"):
        if release is None or not hasattr(release, field):
            raise DatasetError(f"{path}: no RELEASE.{field} (not the official MPII annotation file)")
    if len(_items(release.annolist)) != len(_items(release.img_train)):
        raise DatasetError(f"{path}: RELEASE.annolist and RELEASE.img_train differ in length")
    return release


def _separated(release: Any, index: int) -> set[int]:
    people = _items(release.single_person)
    return {int(r) - 1 for r in _items(people[index])} if index < len(people) else set()


def single_person_index(path: Path) -> dict[str, set[int]]:
    """Image name -> 0-based indices of its "sufficiently separated" people (``RELEASE.single_person``)."""
    path = Path(path)
    release = _load_release(path)
    try:
        return {str(img.image.name): _separated(release, i) for i, img in enumerate(_items(release.annolist))}
    except (AttributeError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: unexpected RELEASE structure ({type(exc).__name__})") from None


def _release_sample(rect: Any, name: str, r: int, images_dir: Path, where: str) -> Sample | None:
    points = _items(getattr(getattr(rect, "annopoints", None), "point", None))
    if not points:
        return None  # a person without joint annotations (test image, or unannotated in training)
    box = [_number(getattr(rect, k, None)) for k in ("x1", "y1", "x2", "y2")]
    if any(v is None for v in box):
        raise DatasetError(f"{where}: {name} person {r} has joints but no head box")
    head = HEAD_SIZE_FACTOR * float(np.hypot(box[2] - box[0], box[3] - box[1]))
    if not head > 0:
        raise DatasetError(f"{where}: {name} person {r} has an empty head box")
    joints = np.full((16, 2), np.nan)
    annotated = np.zeros(16, dtype=bool)
    visible = np.zeros(16, dtype=bool)
    for point in points:
        jid, x, y = (_number(getattr(point, k, None)) for k in ("id", "x", "y"))
        if jid is None or x is None or y is None or not 0 <= jid < 16 or jid != int(jid):
            raise DatasetError(f"{where}: {name} person {r} has a malformed joint")
        j = int(jid)
        joints[j] = (x - MATLAB_OFFSET, y - MATLAB_OFFSET)
        annotated[j] = True
        visible[j] = _is_visible(getattr(point, "is_visible", None))
    objpos = getattr(rect, "objpos", None)
    cx, cy = _number(getattr(objpos, "x", None)), _number(getattr(objpos, "y", None))
    center = None if cx is None or cy is None else np.array([cx, cy]) - MATLAB_OFFSET
    return Sample(image=images_dir / name, keypoints=MPII_DATASET_ORDER, joints=joints, annotated=annotated,
                  visible=visible, norm_size=head, center=center, scale=_number(getattr(rect, "scale", None)),
                  id=f"{name}#{r}")


def read_mpii_release(path: Path, images_dir: Path, *, split: str = "train", single_person: bool = False,
                      require_images: bool = True) -> list[Sample]:
    """Every person with joints in the release's training images (the test joints are withheld by MPII)."""
    path = Path(path)
    if split != "train":
        raise UsageError(f"mpii release: unknown split '{split}' (only 'train' has joint annotations)")
    release = _load_release(path)
    samples: list[Sample] = []
    try:
        train = _items(release.img_train)
        for i, img in enumerate(_items(release.annolist)):
            if not _number(train[i]):
                continue
            name = str(img.image.name)
            keep = _separated(release, i) if single_person else None
            for r, rect in enumerate(_items(getattr(img, "annorect", None))):
                if keep is None or r in keep:
                    sample = _release_sample(rect, name, r, Path(images_dir), str(path))
                    if sample is not None:
                        samples.append(sample)
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise DatasetError(f"{path}: unexpected RELEASE structure ({type(exc).__name__})") from None
    check_images([s.image for s in samples], path, require_images)
    return samples
