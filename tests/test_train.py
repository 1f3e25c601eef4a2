"""Training: config and flags, loss, schedule, initialisation for new keypoint sets, checkpoints, exact resume,
NaN and bad-data handling, a real over-fit on LSP images and a two-process DDP run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from efficientpose.codec.heatmap import decode_refined, flip_back
from efficientpose.data.sample import Sample
from efficientpose.errors import UsageError, WeightsError
from efficientpose.models import get_variant
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.skeleton import KEYPOINTS, LSP_KEYPOINTS, PAF_LIMBS, SKELETONS
from efficientpose.train import NonFiniteLossError, TrainConfig, load_config, train
from efficientpose.train import loop as train_loop
from efficientpose.train.build import (
    HEAD_PREFIXES,
    init_weights,
    load_samples,
    new_model,
    read_keypoint_file,
    resolve_keypoints,
    training_set,
)
from efficientpose.train.checkpoints import flatten_optimizer, unflatten_optimizer
from efficientpose.train.cli_args import config_from_args, main
from efficientpose.train.config import save_config
from efficientpose.train.distributed import state_hash
from efficientpose.train.losses import flip_consistency, masked_mse, pose_loss
from efficientpose.train.schedule import lr_at
from efficientpose.weights.hub import load_model
from efficientpose.weights.store import model_metadata, resolve_state_dict, save_weights

torch.set_num_threads(2)
RT = get_variant("rt")


@pytest.fixture(scope="module")
def lsp(data_dir: Path) -> Path:
    return data_dir / "lsp"


def small(lsp: Path, out: Path, **overrides) -> TrainConfig:
    """A few-step CPU run on real LSP images (batch 2, no validation unless asked)."""
    base = TrainConfig(dataset="lsp", root=str(lsp), train_limit=6, batch_size=2, max_steps=3, init="scratch",
                       seed=5, warmup_steps=2, lr=2e-3, val_every=0, ckpt_every=0, threads=2, output=str(out))
    return replace(base, **overrides)


def train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"]


# ---- configuration and command line ----

def test_config_file_flags_and_saved_config_round_trip(tmp_path: Path) -> None:
    file = tmp_path / "run.toml"
    file.write_text('dataset = "lspet"\nroot = "data/lspet"\nlr = 0.002\nema = true\n\n'
                    '[augmentation]\nrotation = 15.0\nflip_prob = 0.0\n')
    config = config_from_args(["--config", str(file), "--lr", "5e-4", "--batch-size", "4",
                               "--set", "loss_pafs=0.5", "--set", "augmentation.scale=0.1", "--no-augment"])
    assert (config.dataset, config.root, config.ema) == ("lspet", "data/lspet", True)
    assert config.lr == 5e-4 and config.batch_size == 4 and config.loss_pafs == 0.5 and config.augment is False
    assert config.augment_options == {"rotation": 15.0, "flip_prob": 0.0, "scale": 0.1}
    config.validate()
    assert config.augment_config().rotation == 15.0 and not config.augment_config().train
    save_config(config, tmp_path / "saved.toml")
    assert load_config(tmp_path / "saved.toml") == config

    # A resumed run starts from its saved config; flags still override.
    save_config(replace(config, output=str(tmp_path)), tmp_path / "config.toml")
    resumed = config_from_args(["--resume", str(tmp_path), "--max-steps", "9"])
    assert resumed.resume == str(tmp_path) and resumed.max_steps == 9 and resumed.lr == 5e-4

    file.write_text('dataset = "lsp"\nlearning_rate = 1.0\n')
    with pytest.raises(UsageError, match="learning_rate"):
        config_from_args(["--config", str(file)])
    with pytest.raises(UsageError, match="batch_size"):
        replace(config, batch_size=0).validate()
    assert main(["--max-steps", "2"]) == 2  # no dataset: a usage error, exit code 2


def test_learning_rate_warms_up_then_decays() -> None:
    config = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10)
    lrs = [lr_at(step, 110, config) for step in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] == pytest.approx(1e-5)
    steps = replace(config, schedule="step", step_every=50, step_gamma=0.1)
    assert lr_at(10, 110, steps) == pytest.approx(1e-3) and lr_at(60, 110, steps) == pytest.approx(1e-4)


# ---- loss ----

def test_loss_is_masked_and_covers_every_supervised_output() -> None:
    torch.manual_seed(0)
    target = torch.rand(2, 3, 4, 4)
    pred = target.clone()
    pred[0, 1] += 5.0  # a wrong but unannotated channel
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    assert masked_mse(pred, target, mask).item() == 0.0
    pred[1, 2] += 1.0
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0 / 5)

    n, k, limbs = 2, 16, len(PAF_LIMBS)
    batch = {"heatmaps": torch.rand(n, k, 16, 16), "heatmaps_low": torch.rand(n, k, 2, 2),
             "pafs": torch.rand(n, 2 * limbs, 2, 2), "keypoint_mask": torch.ones(n, k),
             "limb_mask": torch.ones(n, limbs)}
    outputs = {"heatmaps": batch["heatmaps"].clone(), "heatmaps_1": batch["heatmaps_low"] + 1.0,
               "heatmaps_2": batch["heatmaps_low"].clone(), "pafs": batch["pafs"].clone()}
    outputs["pafs"][:, 3] += 2.0  # limb 1, y channel
    batch["limb_mask"][:, 1] = 0.0
    weights = {"heatmaps": 1.0, "heatmaps_1": 0.5, "heatmaps_2": 1.0, "pafs": 1.0}
    total, terms = pose_loss(outputs, batch, weights)
    assert set(terms) == {"heatmaps", "heatmaps_1", "heatmaps_2", "pafs"}
    assert terms["pafs"].item() == 0.0 and terms["heatmaps_1"].item() == pytest.approx(1.0)
    assert total.item() == pytest.approx(0.5)


# ---- keypoint sets and initialisation ----

@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_new_keypoint_set_reinitialises_only_the_heads(tmp_path: Path) -> None:
    authors = resolve_state_dict(EfficientPose(RT, side_heads=True))
    keypoints = resolve_keypoints("lsp14", RT)
    model = new_model(RT, keypoints)
    init_weights(model, "authors", keypoints)
    state = model.state_dict()
    body = [k for k in state if not k.startswith(HEAD_PREFIXES)]
    assert len(body) > 300 and all(torch.equal(state[k], authors[k]) for k in body)
    assert state["confs_head.weight"].shape[0] == 14 and state["pafs_head.weight"].shape[0] == 28
    assert not torch.equal(state["pafs_head.weight"], authors["pafs_head.weight"])  # same shape, new meaning

    # A user keypoint file (names or indices for limbs); the saved weights rebuild with those keypoints.
    file = tmp_path / "arms.toml"
    file.write_text('name = "arms"\nkeypoints = ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder",'
                    ' "left_elbow", "left_wrist"]\nlimbs = [["right_shoulder", "right_elbow"], [1, 2],'
                    ' ["left_shoulder", "left_elbow"], [4, 5], ["right_shoulder", "left_shoulder"]]\n')
    arms = read_keypoint_file(file)
    model = new_model(RT, arms)
    assert "authors" in init_weights(model, "authors", arms)
    weights = tmp_path / "arms.safetensors"
    save_weights(weights, model.state_dict(), model_metadata(model, limbs=json.dumps(arms.limb_names())))
    loaded = load_model("rt", weights=weights)
    assert loaded.keypoints == arms.names and loaded(torch.zeros(1, 3, 224, 224)).shape == (1, 6, 224, 224)
    # ...and initialise a run on the same keypoints with their heads kept.
    again = new_model(RT, arms)
    assert "re-initialised" not in init_weights(again, str(weights), arms)
    assert torch.equal(again.state_dict()["pafs_head.weight"], model.state_dict()["pafs_head.weight"])

    file.write_text('keypoints = ["a", "b"]\nlimbs = [["a", "c"]]\n')
    with pytest.raises(UsageError, match="'c'"):
        read_keypoint_file(file)


@pytest.mark.data  # the authors' weights, through EFFICIENTPOSE_WEIGHTS_DIR
def test_backbone_file_initialises_only_the_feature_extractor(tmp_path: Path) -> None:
    authors = resolve_state_dict(EfficientPose(RT, side_heads=True))
    backbone = {k: v for k, v in authors.items() if k.startswith("res1.")}
    backbone["res1.stages.3.0.dwconv.weight"] = torch.zeros(3)  # a deeper stage we do not use: ignored
    path = tmp_path / "efficientnet-b0.safetensors"
    save_weights(path, backbone, {})
    keypoints = resolve_keypoints(None, RT)
    model = new_model(RT, keypoints)
    assert "backbone" in init_weights(model, str(path), keypoints)
    state = model.state_dict()
    assert all(torch.equal(state[k], authors[k]) for k in state if k.startswith("res1."))
    assert not torch.equal(state["skeleton.blocks.0.mbconv1.conv1.weight"],
                           authors["skeleton.blocks.0.mbconv1.conv1.weight"])
    del backbone["res1.stem.conv.weight"]
    save_weights(path, backbone, {})
    with pytest.raises(WeightsError, match="missing"):
        init_weights(new_model(RT, keypoints), str(path), keypoints)


def test_lsp_joints_map_onto_the_mpii_model_with_thorax_and_pelvis_masked(lsp: Path) -> None:
    config = TrainConfig(dataset="lsp", root=str(lsp))
    keypoints = resolve_keypoints(None, RT)
    data = training_set(config, load_samples("lsp", str(lsp), None, 2, train=True), keypoints, 1)
    item = data[0]
    mask = item["keypoint_mask"].numpy().astype(bool)
    assert mask.shape == (16,) and mask.sum() <= 14
    assert not mask[KEYPOINTS.index("thorax")] and not mask[KEYPOINTS.index("pelvis")]
    touching = [i for i, (a, b) in enumerate(PAF_LIMBS) if {KEYPOINTS[a], KEYPOINTS[b]} & {"thorax", "pelvis"}]
    assert not item["limb_mask"][touching].any()


# ---- checkpoints and exact resume ----

def test_optimizer_state_round_trips_without_pickle() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    model(torch.randn(2, 2, 5, 5)).square().mean().backward()
    opt.step()
    tensors, data = flatten_optimizer(opt.state_dict())
    restored = unflatten_optimizer(tensors, json.loads(json.dumps(data)))
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(restored)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][p][k], b["state"][p][k]) for p in a["state"] for k in a["state"][p])


def test_resume_continues_exactly(lsp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 6 samples at batch 2 = 3 steps per epoch; interrupted during step 5, the run resumes from the checkpoint
    # of step 4, in the middle of epoch 1 (so the data order must skip the batch already used).
    common = {"max_steps": 6, "ema": True, "ckpt_every": 2, "train_limit": 6}
    straight = train(small(lsp, tmp_path / "straight", **common))
    assert straight.steps == 6

    real_step = train_loop.Trainer._train_step
    calls = {"n": 0}

    def interrupted(self, batch, lr):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # like Ctrl-C during step 5: the last checkpoint is step 4
        return real_step(self, batch, lr)

    monkeypatch.setattr(train_loop.Trainer, "_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(small(lsp, tmp_path / "split", **common))
    monkeypatch.setattr(train_loop.Trainer, "_train_step", real_step)
    assert json.loads((tmp_path / "split" / "last.state.json").read_text())["step"] == 4

    argv = ["--resume", str(tmp_path / "split")]
    resumed = train(config_from_args(argv))
    assert resumed.steps == 6

    a, b = train_rows(tmp_path / "straight"), train_rows(tmp_path / "split")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "loss_heatmaps", "loss_heatmaps_1", "loss_heatmaps_2", "loss_pafs", "lr"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6, abs=1e-9), (ra["step"], key)
    for name in ("last.safetensors", "last.state.safetensors"):
        wa, wb = load_file(str(tmp_path / "straight" / name)), load_file(str(tmp_path / "split" / name))
        assert wa.keys() == wb.keys()
        for key in wa:
            if key.startswith("rng."):
                continue
            assert torch.allclose(wa[key].double(), wb[key].double(), rtol=0, atol=1e-6), key

    with pytest.raises(UsageError, match="already holds a run"):
        train(small(lsp, tmp_path / "straight"))


# ---- failures ----

def test_nan_loss_stops_with_a_clear_error_and_a_usable_checkpoint(lsp: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_loss = train_loop.pose_loss
    calls = {"n": 0}

    def poisoned(outputs, batch, weights):
        calls["n"] += 1
        total, terms = real_loss(outputs, batch, weights)
        return (total * math.nan, terms) if calls["n"] == 3 else (total, terms)

    monkeypatch.setattr(train_loop, "pose_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 3: non-finite loss") as info:
        train(small(lsp, tmp_path / "run", max_steps=5))
    assert "holds step 2" in str(info.value)
    assert json.loads((tmp_path / "run" / "last.state.json").read_text())["step"] == 2
    model = load_model("rt", weights=tmp_path / "run" / "last.safetensors")
    with torch.no_grad():
        assert torch.isfinite(model(torch.zeros(1, 3, 224, 224))).all()


def test_unreadable_images_and_bad_annotations_are_skipped(lsp: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    good = load_samples("lsp", str(lsp), None, 2, train=True)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    nan_joints = good[0].joints.copy()
    nan_joints[3] = np.nan
    samples = [good[0],
               replace(good[1], image=corrupt, id="corrupt"),
               replace(good[1], image=tmp_path / "missing.jpg", id="missing"),
               Sample(good[0].image, LSP_KEYPOINTS, nan_joints, good[0].annotated, good[0].visible,
                      good[0].norm_size, id="nan"),
               good[1]]
    monkeypatch.setattr(train_loop, "training_samples", lambda *args, **kwargs: samples)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(small(lsp, tmp_path / "run", batch_size=1, max_steps=3))
    messages = "\n".join(str(w.message) for w in caught)
    assert "skipped 2 sample(s)" in messages and "missing: missing image" in messages
    assert "nan: non-finite joint coordinates" in messages
    assert "without readable samples was skipped" in messages
    state = json.loads((tmp_path / "run" / "last.state.json").read_text())
    assert result.steps == 3 and state["skipped_batches"] == 1 and len(train_rows(tmp_path / "run")) == 2


def test_flip_consistency_is_zero_only_for_mirror_images_of_each_other() -> None:
    flip = SKELETONS["mpii16"].flip_index
    maps = torch.rand(2, 16, 8, 8)
    assert flip_consistency(maps, flip_back(maps, flip), flip).item() == 0.0  # flip_back is its own inverse
    assert flip_consistency(maps, maps, flip).item() > 0  # the same maps, not mirrored: inconsistent
    np.testing.assert_array_equal(flip_back(maps.numpy(), flip), flip_back(maps, flip).numpy())


def test_flip_consistency_trains_the_mirrored_batch_in_the_same_pass(lsp: Path, tmp_path: Path) -> None:
    """With only the flip term, the authors' RT becomes more consistent with its own mirror image on real LSP
    crops; the term is logged (log.jsonl) and off by default."""
    config = small(lsp, tmp_path / "run", train_limit=4, batch_size=4, max_steps=6, init="authors", augment=False,
                   lr=1e-3, schedule="constant", warmup_steps=0, loss_heatmaps=0.0, loss_heatmaps_1=0.0,
                   loss_heatmaps_2=0.0, loss_pafs=0.0, loss_flip=1.0)
    rows = train_rows(Path(train(config).run_dir))
    flips = [r["loss_flip"] for r in rows]
    assert len(flips) == 6 and all(r["loss"] == pytest.approx(r["loss_flip"], rel=1e-6) for r in rows)
    assert flips[-1] < 0.8 * flips[0], flips
    plain = small(lsp, tmp_path / "plain", train_limit=4, batch_size=4, max_steps=1, init="authors")
    assert "loss_flip" not in train_rows(Path(train(plain).run_dir))[0]


# ---- real learning ----

@pytest.mark.slow
def test_overfits_four_lsp_images_and_finds_their_keypoints(lsp: Path, tmp_path: Path) -> None:
    """New 14-keypoint heads on the authors' RT: the loss falls by > 90 % and the keypoints are found."""
    config = small(lsp, tmp_path / "run", train_limit=4, batch_size=4, max_steps=32, keypoints="lsp14",
                   init="authors", augment=False, lr=3e-3, schedule="constant", bn_momentum=0.1, clip_grad=0.0,
                   sigma_full_start=9.0, sigma_full_end=9.0, sigma_low_start=1.0, sigma_low_end=1.0,
                   val_dataset="lsp", val_root=str(lsp), val_split="train", val_limit=4)
    result = train(config)
    losses = [r["loss"] for r in result.log if r["kind"] == "train"]
    assert len(losses) == 32 and np.mean(losses[-3:]) < 0.1 * losses[0]

    # The saved model, in eval mode, on the training crops: keypoints within a few pixels.
    model = load_model("rt", weights=result.last)
    assert model.keypoints == LSP_KEYPOINTS
    data = training_set(config, load_samples("lsp", str(lsp), None, 4, train=True), resolve_keypoints("lsp14", RT), 1)
    items = [data[i] for i in range(4)]
    with torch.no_grad():
        found = decode_refined(model(torch.stack([it["image"] for it in items])))[..., :2]
    truth = np.stack([it["joints"].numpy() for it in items])
    annotated = np.stack([it["keypoint_mask"].numpy() for it in items]) > 0
    error = np.linalg.norm(found - truth, axis=-1)[annotated]
    torso = np.linalg.norm(truth[:, LSP_KEYPOINTS.index("left_shoulder")] - truth[:, LSP_KEYPOINTS.index("right_hip")],
                           axis=-1)
    pck = (np.linalg.norm(found - truth, axis=-1) <= 0.2 * torso[:, None])[annotated].mean()
    assert error.mean() < 3.0 and pck >= 0.95, (error.mean(), pck)
    # Validation ran with the evaluate protocol (whole LSP images) and kept the best weights.
    assert result.best is not None and result.metrics["val_pck"] >= 85, result.metrics
    png = (tmp_path / "run" / "convergence.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0]
    assert header.startswith("kind,step,epoch,lr,loss,loss_heatmaps")


# ---- two processes ----

@pytest.mark.fresh_process
def test_two_process_ddp_run_ends_with_identical_weights(lsp: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "efficientpose.train.cli_args", "--dataset", "lsp", "--root", str(lsp), "--train-limit", "8",
           "--batch-size", "2", "--max-steps", "3", "--init", "scratch", "--ema", "--output", str(run),
           "--val-every", "0", "--threads", "1", "--debug-hashes"]
    # own session: torchrun signals its process group when workers end, which must not reach pytest
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [(run / f"rank{r}.sha256").read_text().strip() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert state_hash(load_file(str(run / "last.safetensors"))) == digests[0]
    rows = train_rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3]  # only rank 0 logs
    assert "1 process" not in done.stderr and "2 process(es)" in done.stderr
