"""A torch ``Dataset`` turning :class:`Sample` lists into augmented network inputs and training targets.

Randomness comes only from ``np.random.SeedSequence([seed, epoch, index])``, so a DataLoader gives the
same batches whatever its number of workers. Bad samples are skipped and reported in a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from efficientpose.codec.heatmap import HeatmapCodec
from efficientpose.codec.normalize import Normalization, to_input
from efficientpose.data.sample import Sample
from efficientpose.data.targets import SigmaSchedule, keypoint_mask, limb_mask, paf_targets
from efficientpose.data.transforms import AugmentConfig, augment_detailed
from efficientpose.errors import InputError
from efficientpose.io.images import read_image
from efficientpose.skeleton import PAF_LIMBS, Skeleton, remap

#: How many skipped samples a warning names before summarising the rest.
_WARN_LIST = 20


def read_rgb(path: Path) -> np.ndarray | None:
    """The image as (H, W, 3) uint8 RGB, upright per its EXIF orientation (annotations refer to the image as
    shown, and evaluation and inference read it the same way), or None when unreadable."""
    try:
        return read_image(path)
    except InputError:
        return None


def default_limbs(skeleton: Skeleton) -> tuple[tuple[int, int], ...]:
    """The PAF limb list: the 14 :data:`PAF_LIMBS` for mpii16 (28 channels), else the skeleton's limbs."""
    return PAF_LIMBS if skeleton.name == "mpii16" else skeleton.limbs


def _problem(sample: Sample, joints: np.ndarray, annotated: np.ndarray) -> str | None:
    """Why a sample cannot be used, or None."""
    if not Path(sample.image).is_file():
        return "missing image"
    if not annotated.any():
        return "no annotated joints"
    if not np.isfinite(joints[annotated]).all():
        return "non-finite joint coordinates"
    if sample.center is not None and not np.isfinite(np.asarray(sample.center, dtype=np.float64)).all():
        return "non-finite centre"
    if sample.scale is not None and not (np.isfinite(sample.scale) and sample.scale > 0):
        return "invalid scale"
    return None


def _warn_skipped(skipped: list[tuple[int, str, str]], what: str) -> None:
    lines = [f"  #{i} {name}: {reason}" for i, name, reason in skipped[:_WARN_LIST]]
    more = len(skipped) - _WARN_LIST
    if more > 0:
        lines.append(f"  ... and {more} more")
    warnings.warn(f"{what}: skipped {len(skipped)} sample(s)\n" + "\n".join(lines), stacklevel=3)


class PoseDataset(Dataset):
    """Augmented image, heatmaps (full and 1/8), PAFs and masks for each valid sample.

    Samples are remapped by keypoint name to ``skeleton`` (names the sample lacks are not annotated).
    Items are dicts of tensors: ``image`` (3, R, R) normalised as (x / 255 - mean) / std; ``heatmaps``
    (K, R, R); ``heatmaps_low`` (K, R/8, R/8); ``pafs`` (2L, R/8, R/8); ``keypoint_mask`` (K,);
    ``limb_mask`` (L,); ``joints`` (K, 2) input pixels (0 where not annotated); ``affine`` (2, 3)
    source -> input pixels; ``flipped``; ``index`` into the original ``samples``. An unreadable image
    gives None: load with :func:`collate_skip_none`.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        skeleton: Skeleton,
        size: int,
        train: bool,
        *,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        cfg: AugmentConfig | None = None,
        seed: int = 0,
        sigma: SigmaSchedule | None = None,
        epochs: int = 1,
        limbs: tuple[tuple[int, int], ...] | None = None,
        paf_width: float = 1.0,
    ) -> None:
        self.samples = list(samples)
        self.skeleton = skeleton
        self.size = int(size)
        self.codec = HeatmapCodec(self.size)
        self.low_size = self.codec.low_size
        self.cfg = cfg if cfg is not None else AugmentConfig(train=train)
        if not train and self.cfg.train:
            self.cfg = replace(self.cfg, train=False)
        self.train = train
        self.seed = int(seed)
        self.sigma = sigma if sigma is not None else SigmaSchedule()
        self.epochs = max(int(epochs), 1)
        self.epoch = 0
        self.limbs = tuple(limbs) if limbs is not None else default_limbs(skeleton)
        self.paf_width = float(paf_width)
        self.normalization = Normalization(tuple(mean), tuple(std))
        self._flip_index = skeleton.flip_index
        self._joints: list[np.ndarray] = []
        self._annotated: list[np.ndarray] = []
        self.kept: list[int] = []
        self.skipped: list[tuple[int, str, str]] = []  #: (index, id or image, reason)
        for i, s in enumerate(self.samples):
            joints = remap(np.asarray(s.joints, dtype=np.float64), tuple(s.keypoints), skeleton.keypoints)
            annotated = remap(np.asarray(s.annotated, dtype=bool), tuple(s.keypoints), skeleton.keypoints,
                              fill=0.0).astype(bool)
            reason = _problem(s, joints, annotated)
            if reason is not None:
                self.skipped.append((i, s.id or str(s.image), reason))
                continue
            self.kept.append(i)
            self._joints.append(joints)
            self._annotated.append(annotated)
        if self.skipped:
            _warn_skipped(self.skipped, "PoseDataset")

    def __len__(self) -> int:
        return len(self.kept)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: reseeds augmentation and moves the sigma schedule (progress = epoch / (epochs - 1))."""
        self.epoch = int(epoch)

    @property
    def sigmas(self) -> tuple[float, float]:
        """(full, low) heatmap sigma of the current epoch, in output pixels of each head."""
        return self.sigma.at(self.epoch / max(self.epochs - 1, 1))

    def rng(self, position: int) -> np.random.Generator:
        """The generator of one item: a function of (seed, epoch, original sample index) only."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, self.kept[position]]))

    def __getitem__(self, position: int) -> dict[str, Any] | None:
        index = self.kept[position]
        sample = self.samples[index]
        image = read_rgb(Path(sample.image))
        if image is None:
            warnings.warn(f"PoseDataset: skipping sample #{index}, unreadable image {sample.image}", stacklevel=2)
            return None
        box = sample.box if sample.center is None else None
        result = augment_detailed(image, self._joints[position], self._annotated[position],
                                  self.rng(position) if self.train else None, self.cfg, self.size,
                                  self._flip_index, sample.center, sample.scale, box)
        joints, annotated = result.joints, result.annotated
        sigma_full, sigma_low = self.sigmas
        stride = self.codec.stride
        return {
            "image": torch.from_numpy(to_input(result.image, self.normalization)[0]),
            "heatmaps": torch.from_numpy(self.codec.encode(joints, annotated, sigma_full, stride=1)),
            "heatmaps_low": torch.from_numpy(self.codec.encode(joints, annotated, sigma_low)),
            "pafs": torch.from_numpy(
                paf_targets(joints, annotated, self.limbs, self.low_size, stride, self.paf_width)),
            "keypoint_mask": torch.from_numpy(keypoint_mask(annotated)),
            "limb_mask": torch.from_numpy(limb_mask(annotated, self.limbs)),
            "joints": torch.from_numpy(np.where(annotated[:, None], joints, 0.0).astype(np.float32)),
            "affine": torch.from_numpy(result.matrix.astype(np.float32)),
            "flipped": torch.tensor(result.flipped),
            "index": torch.tensor(index, dtype=torch.int64),
        }


def collate_skip_none(batch: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """``default_collate`` without the None items of unreadable images (warns); None if nothing is left."""
    kept = [item for item in batch if item is not None]
    if len(kept) < len(batch):
        warnings.warn(f"collate_skip_none: dropped {len(batch) - len(kept)} unreadable sample(s) from a batch",
                      stacklevel=2)
    return default_collate(kept) if kept else None
