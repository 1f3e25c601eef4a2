"""The teacher cache (resume, atomic shards, identity) and the distillation merge rule, on real LSP/LSPET samples."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from efficientpose.data import teacher as teacher_module
from efficientpose.data.dataset import PoseDataset
from efficientpose.data.lsp import read_lsp, read_lspet
from efficientpose.data.teacher import (
    MANIFEST,
    build_cache,
    load_teacher,
    merge_teacher,
    read_cache,
    read_shard,
    run_teacher,
)
from efficientpose.errors import DatasetError, UsageError
from efficientpose.evaluation.metrics import normalized_distances
from efficientpose.skeleton import KEYPOINTS, SKELETONS, remap
from efficientpose.train.build import training_samples
from efficientpose.train.config import TrainConfig, load_config


@pytest.fixture(scope="module")
def lspet(data_dir: Path) -> list:
    """Real LSP-extended samples with some joints unlabelled (flag 0)."""
    samples = read_lspet(data_dir / "lspet")
    partial = [s for s in samples if 0 < s.annotated.sum() < 14]
    assert len(partial) > 100
    return partial[:4]


@pytest.fixture(scope="module")
def rt_teacher() -> teacher_module.Teacher:
    """The authors' RT on torch as a cheap stand-in for the II teacher (same code path)."""
    return load_teacher("rt", flip=False, backend="torch", threads=1)


def _fake_teacher(samples: list, score: float) -> dict[str, np.ndarray]:
    """Teacher points 3 px from each joint's label (at the labels' centre where there is none)."""
    out = {}
    for i, s in enumerate(samples):
        xy = remap(np.asarray(s.joints), s.keypoints, KEYPOINTS)
        xy = np.where(np.isfinite(xy), xy + 3.0, np.nanmean(xy, axis=0))
        scores = np.full(16, score)
        scores[i % 16] = 0.1  # one unconfident joint per sample
        out[s.id] = np.column_stack([xy, scores])
    return out


def test_merge_keeps_labels_and_fills_only_unlabelled_confident_joints(lspet: list) -> None:
    cached = _fake_teacher(lspet, 0.9)
    merged = merge_teacher(lspet, cached, threshold=0.5)
    for s, m in zip(lspet, merged, strict=True):
        assert m.keypoints == KEYPOINTS and m.id == s.id and m.image == s.image
        labelled = remap(s.annotated, s.keypoints, KEYPOINTS, fill=0.0).astype(bool)
        labels = remap(s.joints, s.keypoints, KEYPOINTS)
        points = cached[s.id]
        confident = points[:, 2] >= 0.5
        # ground truth wins wherever a joint is labelled, whatever the teacher's score
        np.testing.assert_array_equal(m.joints[labelled], labels[labelled])
        # the teacher fills exactly the unlabelled joints where it is confident ...
        np.testing.assert_array_equal(m.annotated, labelled | confident)
        filled = ~labelled & confident
        np.testing.assert_array_equal(m.joints[filled], points[filled, :2])
        # ... among them thorax and pelvis, which LSP never labels; filled joints are not "visible"
        for name in ("thorax", "pelvis"):
            k = KEYPOINTS.index(name)
            assert not labelled[k] and m.annotated[k] == confident[k]
        assert not m.visible[filled].any()
        assert np.isnan(m.joints[~m.annotated]).all()


def test_merge_keeps_the_training_crop_of_the_labels(lspet: list) -> None:
    """The merged sample is framed by its labelled joints only, so the teacher's crop and training's agree."""
    merged = merge_teacher(lspet, _fake_teacher(lspet, 0.9), threshold=0.5)
    skeleton = SKELETONS["mpii16"]
    kwargs = {"mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2)}
    before = PoseDataset(lspet, skeleton, 64, train=False, **kwargs)
    after = PoseDataset(merged, skeleton, 64, train=False, **kwargs)
    for i in range(len(lspet)):
        np.testing.assert_allclose(after[i]["affine"], before[i]["affine"], atol=1e-5)
        assert after[i]["keypoint_mask"].sum() > before[i]["keypoint_mask"].sum()


def test_merge_without_teacher_points_only_reorders(lspet: list) -> None:
    merged = merge_teacher(lspet, {}, threshold=0.5)
    for s, m in zip(lspet, merged, strict=True):
        np.testing.assert_array_equal(m.annotated, remap(s.annotated, s.keypoints, KEYPOINTS, fill=0.0) > 0)
        assert m.box is None


def test_teacher_keypoints_are_in_original_image_pixels(data_dir: Path, rt_teacher) -> None:
    """Run on the training crop and mapped back: close to LSP's labels (torso-normalised), in image pixels."""
    samples = read_lsp(data_dir / "lsp", "train-a")[:8]
    keypoints, frames = run_teacher(rt_teacher, samples)
    assert keypoints.shape == (8, 16, 3) and np.isfinite(keypoints).all() and np.isfinite(frames).all()
    pred = np.stack([remap(k[:, :2], KEYPOINTS, s.keypoints) for k, s in zip(keypoints, samples, strict=True)])
    gt = np.stack([s.joints for s in samples])
    body = np.array([k != "head_top" for k in samples[0].keypoints])  # LSP's head top is not MPII's
    scored = np.stack([s.annotated for s in samples]) & body
    dist = normalized_distances(pred, gt, scored, np.array([s.norm_size for s in samples]))[scored]
    assert np.median(dist) < 0.12 and np.mean(dist <= 0.2) > 0.6  # two of the 8 are upside-down poses RT misses


def test_cache_resumes_skips_written_shards_and_leaves_no_partial_file(
        tmp_path: Path, data_dir: Path, rt_teacher, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = read_lsp(data_dir / "lsp", "train-a")[:5]
    groups = [("lsp", "train-a", samples)]
    real = teacher_module.run_teacher
    calls = []

    def failing(teacher, chunk):
        calls.append([s.id for s in chunk])
        if len(calls) == 2:
            raise RuntimeError("stopped")
        return real(teacher, chunk)

    monkeypatch.setattr(teacher_module, "run_teacher", failing)
    with pytest.raises(RuntimeError):
        build_cache(tmp_path, rt_teacher, groups, shard_size=2, batch_size=2)
    shards = tmp_path / "lsp-train-a"
    assert sorted(p.name for p in shards.iterdir()) == ["00000.npz"]  # no temporary or partial file
    assert json.loads((tmp_path / MANIFEST).read_text())["complete"] is False
    first = (shards / "00000.npz").stat().st_mtime_ns

    monkeypatch.setattr(teacher_module, "run_teacher", real)
    seen = []
    manifest = build_cache(tmp_path, rt_teacher, groups, shard_size=2, batch_size=2,
                           on_shard=lambda name, done, total, s: seen.append((name, done, total)))
    assert seen == [("lsp-train-a", 2, 3), ("lsp-train-a", 3, 3)]  # shard 1 was skipped
    assert (shards / "00000.npz").stat().st_mtime_ns == first
    assert manifest["complete"] and manifest["teacher"]["variant"] == "rt"
    assert manifest["crop"]["policy"] == "person_frame" and manifest["crop"]["margin"] == 1.25
    assert len(manifest["teacher"]["weights_sha256"]) == 64 and manifest["code_versions"]
    cached = read_cache(tmp_path, "lsp")
    assert list(cached) == [s.id for s in samples]
    np.testing.assert_allclose(cached["im0003"], real(rt_teacher, samples[2:3])[0][0], atol=1e-4)

    # a rerun with nothing to do writes no shard; another shard size or teacher is refused
    seen.clear()
    build_cache(tmp_path, rt_teacher, groups, shard_size=2, on_shard=lambda *a: seen.append(a))
    assert seen == []
    with pytest.raises(UsageError, match="shard"):
        build_cache(tmp_path, rt_teacher, groups, shard_size=3)
    with pytest.raises(UsageError, match="teacher"):
        build_cache(tmp_path, replace(rt_teacher, flip=True), groups, shard_size=2)


def test_damaged_shard_is_a_one_line_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "00000.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="00000.npz: not a readable teacher shard"):
        read_shard(path)


def test_training_samples_merge_the_cache_into_both_training_sets(tmp_path: Path, data_dir: Path) -> None:
    """TrainConfig.teacher: LSPET + LSP train-a, both remapped to MPII-16, the cached ones with a pelvis."""
    lspet_samples = read_lspet(data_dir / "lspet")[:3]
    lsp_samples = read_lsp(data_dir / "lsp", "train-a")[:2]
    points = {**_fake_teacher(lspet_samples, 0.9), **_fake_teacher(lsp_samples, 0.9)}
    for dataset, split, part in (("lspet", "all", lspet_samples), ("lsp", "train-a", lsp_samples)):
        teacher_module.write_shard(tmp_path / f"{dataset}-{split}" / "00000.npz", [s.id for s in part],
                                   np.stack([points[s.id] for s in part]), np.zeros((len(part), 3)), "test")
    manifest = {"format": teacher_module.CACHE_FORMAT, "keypoints": list(KEYPOINTS)}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    config = TrainConfig(dataset="lspet", root=str(data_dir / "lspet"), extra_dataset="lsp",
                         extra_root=str(data_dir / "lsp"), extra_split="train-a", teacher=str(tmp_path),
                         teacher_threshold=0.5)
    samples = training_samples(config)
    assert len(samples) == 10500 and all(s.keypoints == KEYPOINTS for s in samples)
    pelvis = KEYPOINTS.index("pelvis")
    with_pelvis = [s.id for s in samples if s.annotated[pelvis]]
    assert with_pelvis == [s.id for s in lspet_samples + lsp_samples]
    assert samples[10000].id == "im0001"


def test_the_recipe_config_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "rt-lsp.toml")
    config.validate()
    assert (config.dataset, config.extra_dataset, config.extra_split, config.val_split) == (
        "lspet", "lsp", "train-a", "train-b")
    assert config.teacher and config.ema and config.val_every == 1000 and config.ckpt_every == 250
