"""PoseDataset: shapes and consistency of items, determinism across DataLoader workers, bad data skipped."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torch.utils.data import DataLoader

from efficientpose.codec.geometry import transform_points
from efficientpose.codec.normalize import TF_MODE, TORCH_MODE
from efficientpose.data.dataset import PoseDataset, collate_skip_none
from efficientpose.data.sample import Sample
from efficientpose.data.targets import SigmaSchedule
from efficientpose.skeleton import KEYPOINTS, LSP_KEYPOINTS, SKELETONS, remap

MPII = SKELETONS["mpii16"]
R = 256
IMAGENET = {"mean": TORCH_MODE.mean, "std": TORCH_MODE.std}  # non-Lite normalisation


def lsp_samples(data_dir: Path, count: int) -> list[Sample]:
    """The first ``count`` LSP training images as Samples (LSP order, all joints annotated)."""
    mat = scipy.io.loadmat(str(data_dir / "lsp" / "joints.mat"))["joints"]
    samples = []
    for n in range(count):
        joints = mat[:2, :, n].T.astype(np.float64) - 0.5
        samples.append(Sample(image=data_dir / "lsp" / "images" / f"im{n + 1:04d}.jpg", keypoints=LSP_KEYPOINTS,
                              joints=joints, annotated=np.ones(14, bool), visible=mat[2, :, n] == 0,
                              norm_size=1.0, id=f"im{n + 1:04d}"))
    return samples


def decode(heatmaps: torch.Tensor, stride: float) -> np.ndarray:
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1).argmax(dim=1).numpy()
    return (np.stack([flat % w, flat // w], axis=1) + 0.5) * stride


def test_items_have_the_training_layout_and_consistent_targets(data_dir: Path) -> None:
    samples = lsp_samples(data_dir, 6)
    data = PoseDataset(samples, MPII, R, train=True, seed=3, **IMAGENET)
    assert len(data) == 6 and data.low_size == 32
    flips = 0
    for position in range(len(data)):
        item = data[position]
        assert item["image"].shape == (3, R, R) and item["image"].dtype == torch.float32
        assert item["heatmaps"].shape == (16, R, R) and item["heatmaps_low"].shape == (16, 32, 32)
        assert item["pafs"].shape == (28, 32, 32)
        assert item["keypoint_mask"].shape == (16,) and item["limb_mask"].shape == (14,)
        assert item["joints"].shape == (16, 2) and int(item["index"]) == position
        mask = item["keypoint_mask"].numpy().astype(bool)
        # LSP has no thorax or pelvis: those channels and the limbs touching them carry no loss.
        assert not mask[KEYPOINTS.index("thorax")] and not mask[KEYPOINTS.index("pelvis")]
        assert item["limb_mask"].sum() <= 14 - 5 and not item["heatmaps"][~torch.from_numpy(mask)].any()
        # Heatmaps decode to the joints; joints are the sample's joints through the returned affine.
        joints = item["joints"].numpy()
        assert (np.abs(decode(item["heatmaps"], 1)[mask] - joints[mask]) <= 0.5 + 1e-4).all()
        assert (np.abs(decode(item["heatmaps_low"], 8)[mask] - joints[mask]) <= 4.0 + 1e-4).all()
        source = remap(samples[position].joints, LSP_KEYPOINTS, KEYPOINTS)
        expected = transform_points(source, item["affine"].numpy().astype(np.float64))
        if item["flipped"]:
            expected = expected[MPII.flip_index]
            flips += 1
        np.testing.assert_allclose(joints[mask], expected[mask], atol=2e-3)
    assert 0 < flips < 6


def test_eval_items_are_normalised_and_fixed(data_dir: Path) -> None:
    samples = lsp_samples(data_dir, 2)
    data = PoseDataset(samples, SKELETONS["lsp14"], R, train=False, seed=0, mean=TF_MODE.mean,
                       std=TF_MODE.std)
    a, b = data[0], data[0]
    data.set_epoch(5)
    c = data[0]
    for key in a:  # the epoch moves only the sigma schedule of an evaluation set
        assert torch.equal(a[key], b[key]), key
        assert torch.equal(a[key], c[key]) == (key not in ("heatmaps", "heatmaps_low")), key
    assert not a["flipped"] and a["pafs"].shape == (2 * 14, 32, 32)
    # Lite normalisation maps [0, 255] to [-1, 1]; the letterbox border of the tall LSP crop is exactly -1.
    assert a["image"].min() >= -1.0 and a["image"].max() <= 1.0
    assert (a["image"][:, :, 0] == -1.0).all()
    assert a["keypoint_mask"].all()


def test_seed_epoch_and_sigma_schedule(data_dir: Path) -> None:
    samples = lsp_samples(data_dir, 3)
    data = PoseDataset(samples, MPII, R, train=True, seed=1, epochs=5, sigma=SigmaSchedule(8.0, 2.0, 2.0, 1.0),
                       **IMAGENET)
    first = data[1]
    assert torch.equal(first["image"], data[1]["image"])
    assert data.sigmas == (8.0, 2.0)
    data.set_epoch(4)
    assert data.sigmas == (2.0, 1.0)
    later = data[1]
    assert not torch.equal(first["image"], later["image"])
    other_seed = PoseDataset(samples, MPII, R, train=True, seed=2, **IMAGENET)
    assert not torch.equal(first["image"], other_seed[1]["image"])
    # A smaller sigma gives a narrower blob: fewer pixels above half maximum.
    k = int(torch.argmax(later["keypoint_mask"]))
    assert (later["heatmaps"][k] > 0.5).sum() < (first["heatmaps"][k] > 0.5).sum()


def test_data_loader_batches_do_not_depend_on_worker_count(data_dir: Path) -> None:
    data = PoseDataset(lsp_samples(data_dir, 8), MPII, R, train=True, seed=11, **IMAGENET)
    data.set_epoch(2)

    def batches(workers: int) -> list[dict]:
        loader = DataLoader(data, batch_size=3, shuffle=False, num_workers=workers, collate_fn=collate_skip_none)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_bad_samples_are_skipped_and_reported(data_dir: Path, tmp_path: Path) -> None:
    good, second = lsp_samples(data_dir, 2)
    copy = tmp_path / "good.jpg"
    shutil.copyfile(good.image, copy)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    nan_joints = second.joints.copy()
    nan_joints[3] = np.nan
    samples = [
        Sample(**{**good.__dict__, "image": copy, "id": "good"}),
        Sample(**{**good.__dict__, "image": corrupt, "id": "corrupt"}),
        Sample(**{**good.__dict__, "image": tmp_path / "missing.jpg", "id": "missing"}),
        Sample(**{**second.__dict__, "joints": nan_joints, "id": "nan"}),
    ]
    with pytest.warns(UserWarning, match="skipped 2 sample") as record:
        data = PoseDataset(samples, MPII, R, train=True, seed=0, **IMAGENET)
    message = str(record[0].message)
    assert "missing: missing image" in message and "nan: non-finite joint coordinates" in message
    assert len(data) == 2 and data.kept == [0, 1] and [s[0] for s in data.skipped] == [2, 3]
    with pytest.warns(UserWarning, match="unreadable image"):
        assert data[1] is None
    loader = DataLoader(data, batch_size=2, num_workers=0, collate_fn=collate_skip_none)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (batch,) = list(loader)
    assert any("dropped 1 unreadable" in str(w.message) for w in caught)
    assert batch["image"].shape == (1, 3, R, R) and batch["index"].tolist() == [0]
    with pytest.warns(UserWarning, match="dropped 2"):
        assert collate_skip_none([None, None]) is None
