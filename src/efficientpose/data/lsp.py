"""Leeds Sports Pose (LSP) and LSP-extended readers, plus the helpers the other readers share.

Both ``joints.mat`` files hold MATLAB 1-based pixel coordinates: pixel k's centre is at k, which is k - 0.5
in this package's convention (top-left image corner = 0), so every coordinate is shifted by -0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io

from efficientpose.data.sample import Sample
from efficientpose.errors import DatasetError, UsageError
from efficientpose.skeleton import LSP_KEYPOINTS

#: Subtracted from MATLAB 1-based pixel coordinates (MPII, LSP, LSPET) to reach the package convention.
MATLAB_OFFSET = 0.5

#: LSP: im0001-im1000 train, im1001-im2000 test (Johnson & Everingham 2010). The training half's two halves,
#: train-a (im0001-im0500) and train-b (im0501-im1000), let one train and the other choose checkpoints.
LSP_SPLITS: dict[str, range] = {"train": range(0, 1000), "test": range(1000, 2000), "all": range(0, 2000),
                                "train-a": range(0, 500), "train-b": range(500, 1000)}
#: LSP-extended is a training set; "all" is its only split.
LSPET_SPLITS: dict[str, range] = {"all": range(0, 10000)}

#: Torso diameter, as the official LSP evaluation: |left shoulder - right hip|, else the other diagonal.
TORSO_DIAGONALS: tuple[tuple[str, str], ...] = (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip"))


def torso_size(joints: np.ndarray, annotated: np.ndarray, names: Sequence[str]) -> float:
    """PCK normaliser: the first torso diagonal with both ends annotated and non-zero length, else NaN."""
    for a, b in TORSO_DIAGONALS:
        if a in names and b in names:
            i, j = names.index(a), names.index(b)
            if annotated[i] and annotated[j]:
                size = float(np.hypot(*(joints[i] - joints[j])))
                if size > 0:
                    return size
    return float("nan")


def check_images(images: Sequence[Path], source: Path, require: bool) -> None:
    """Raise a one-line DatasetError when ``require`` and any image file is absent (never a silent subset)."""
    if not require:
        return
    missing = [p for p in dict.fromkeys(images) if not p.is_file()]
    if missing:
        total = len(dict.fromkeys(images))
        raise DatasetError(
            f"{source}: {len(missing)} of {total} images missing under {missing[0].parent} "
            f"(first: {missing[0].name}); read annotations only with require_images=False"
        )


def load_mat(path: Path, key: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Read one float array of an exact shape from a MATLAB file; any problem is a one-line DatasetError."""
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, MatReadError... on bad files
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(exc).__name__})") from None
    if key not in mat:
        raise DatasetError(f"{path}: no '{key}' variable")
    array = np.asarray(mat[key])
    if array.shape != shape or not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path}: '{key}' has shape {array.shape} ({array.dtype}), expected {shape} numbers")
    return array.astype(np.float64)


def _samples(root: Path, names: list[str], xy: np.ndarray, annotated: np.ndarray, visible: np.ndarray,
             require_images: bool) -> list[Sample]:
    images = [root / "images" / name for name in names]
    check_images(images, root / "joints.mat", require_images)
    out = []
    for image, name, pts, ann, vis in zip(images, names, xy, annotated, visible, strict=True):
        pts = np.where(ann[:, None], pts - MATLAB_OFFSET, np.nan)
        out.append(Sample(
            image=image, keypoints=LSP_KEYPOINTS, joints=pts, annotated=ann.copy(), visible=vis & ann,
            norm_size=torso_size(pts, ann, LSP_KEYPOINTS), id=Path(name).stem,
        ))
    return out


def _split(split: str, splits: dict[str, range], dataset: str) -> range:
    if split not in splits:
        raise UsageError(f"{dataset}: unknown split '{split}' (choose from {', '.join(splits)})")
    return splits[split]


def read_lsp(root: Path, split: str = "test", *, require_images: bool = True) -> list[Sample]:
    """LSP (``root/joints.mat`` 3x14x2000, person-centric, flag 1 = occluded; ``root/images/im0001.jpg``)."""
    root = Path(root)
    index = _split(split, LSP_SPLITS, "lsp")
    joints = load_mat(root / "joints.mat", "joints", (3, 14, 2000))[:, :, index.start:index.stop]
    xy = joints[:2].transpose(2, 1, 0)  # (N, 14, 2)
    flag = joints[2].T  # (N, 14): 0 visible, 1 occluded; every joint is annotated
    if not np.isin(flag, (0, 1)).all():
        raise DatasetError(f"{root / 'joints.mat'}: visibility flags other than 0/1")
    names = [f"im{i + 1:04d}.jpg" for i in index]
    annotated = np.ones(flag.shape, dtype=bool)
    return _samples(root, names, xy, annotated, flag == 0, require_images)


def read_lspet(root: Path, split: str = "all", *, require_images: bool = True) -> list[Sample]:
    """LSP-extended (``root/joints.mat`` 14x3x10000, flag 1 = visible, 0 = not annotated)."""
    root = Path(root)
    index = _split(split, LSPET_SPLITS, "lspet")
    joints = load_mat(root / "joints.mat", "joints", (14, 3, 10000))[:, :, index.start:index.stop]
    xy = joints[:, :2].transpose(2, 0, 1)  # (N, 14, 2)
    flag = joints[:, 2].T
    if not np.isin(flag, (0, 1)).all():
        raise DatasetError(f"{root / 'joints.mat'}: visibility flags other than 0/1")
    names = [f"im{i + 1:05d}.jpg" for i in index]
    annotated = flag == 1  # flag-0 coordinates are meaningless: masked out
    return _samples(root, names, xy, annotated, annotated, require_images)
