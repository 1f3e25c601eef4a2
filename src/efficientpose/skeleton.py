"""Keypoint sets (names, limbs, left/right pairs) and the mappings between them: one place for each fact.

Names are person-centric: ``right_*`` is the person's right side, which appears on the image's left for
a person facing the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A keypoint set: names in channel order, limbs as index pairs, and the left/right swap."""

    name: str
    keypoints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]

    @property
    def flip_index(self) -> np.ndarray:
        """Index array that swaps left and right keypoints (for horizontal flips)."""
        return flip_index(self.keypoints)

    def __len__(self) -> int:
        return len(self.keypoints)


def flip_index(names: tuple[str, ...]) -> np.ndarray:
    """For each keypoint, the index of its mirror image (``left_*`` <-> ``right_*``; others map to themselves)."""
    index = []
    for kp in names:
        if kp.startswith("left_"):
            mate = "right_" + kp[5:]
        elif kp.startswith("right_"):
            mate = "left_" + kp[6:]
        else:
            mate = kp
        index.append(names.index(mate) if mate in names else names.index(kp))
    return np.asarray(index, dtype=np.int64)


def _limbs(names: tuple[str, ...], pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in pairs)


#: The 16 keypoints in the order the EfficientPose networks emit them (architecture.md §6.4).
KEYPOINTS: tuple[str, ...] = (
    "head_top", "upper_neck", "right_shoulder", "right_elbow", "right_wrist", "thorax",
    "left_shoulder", "left_elbow", "left_wrist", "pelvis", "right_hip", "right_knee",
    "right_ankle", "left_hip", "left_knee", "left_ankle",
)

#: The authors' drawing skeleton (15 bones) over :data:`KEYPOINTS`.
MPII_LIMBS = _limbs(KEYPOINTS, (
    ("head_top", "upper_neck"), ("upper_neck", "thorax"), ("thorax", "right_shoulder"),
    ("thorax", "left_shoulder"), ("thorax", "pelvis"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("pelvis", "right_hip"), ("pelvis", "left_hip"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
))

#: The 14 limbs whose part-affinity fields the skeleton pass predicts (28 channels: limb i -> x at 2i,
#: y at 2i + 1). The drawing skeleton without upper_neck-thorax, which nearly coincide in MPII.
PAF_LIMBS = tuple(limb for limb in MPII_LIMBS if limb != (1, 5))

#: Joint order of the MPII annotation files (``part`` in annot/*.h5 and the official .mat).
MPII_DATASET_ORDER: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
    "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist",
)

#: LSP / LSP-extended joint order. LSP's "neck" is the MPII upper neck.
LSP_KEYPOINTS: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "upper_neck", "head_top",
)

#: COCO person keypoints.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

SKELETONS: dict[str, Skeleton] = {
    "mpii16": Skeleton("mpii16", KEYPOINTS, MPII_LIMBS),
    "lsp14": Skeleton("lsp14", LSP_KEYPOINTS, _limbs(LSP_KEYPOINTS, (
        ("head_top", "upper_neck"), ("upper_neck", "right_shoulder"), ("upper_neck", "left_shoulder"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"), ("right_shoulder", "right_hip"), ("left_shoulder", "left_hip"),
        ("right_hip", "left_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
        ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ))),
    "coco17": Skeleton("coco17", COCO_KEYPOINTS, _limbs(COCO_KEYPOINTS, (
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
        ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"), ("left_hip", "right_hip"), ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ))),
}


def remap_index(source: tuple[str, ...], target: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Where each ``target`` keypoint sits in ``source``: (indices into source, mask of targets found)."""
    found = np.array([name in source for name in target], dtype=bool)
    index = np.array([source.index(name) if name in source else 0 for name in target], dtype=np.int64)
    return index, found


def remap(values: np.ndarray, source: tuple[str, ...], target: tuple[str, ...], fill: float = np.nan) -> np.ndarray:
    """Reorder per-keypoint rows (first axis) from ``source`` names to ``target`` names; absent rows get ``fill``."""
    index, found = remap_index(source, target)
    values = np.asarray(values)
    out = values[index].astype(np.result_type(values.dtype, np.float32), copy=True)
    out[~found] = fill
    return out
