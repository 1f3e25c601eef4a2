"""The training loop: data order from the step counter, intermediate-supervision loss, AdamW with warm-up and
cosine decay, gradient clipping, optional AMP and EMA, periodic validation and checkpoints, DDP when run
under torchrun. Everything a resumed run needs is in the checkpoint, so interrupting changes nothing."""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from efficientpose.data.dataset import PoseDataset, collate_skip_none
from efficientpose.errors import DatasetError, EfficientPoseError, UsageError
from efficientpose.io.atomic import atomic_write_text
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import get_variant
from efficientpose.train import distributed
from efficientpose.train.build import (
    init_weights,
    load_samples,
    new_model,
    resolve_keypoints,
    training_samples,
    training_set,
)
from efficientpose.train.checkpoints import (
    BEST,
    LAST,
    CheckpointError,
    Progress,
    has_checkpoint,
    load_checkpoint,
    save_best,
    save_checkpoint,
)
from efficientpose.train.config import TrainConfig, save_config
from efficientpose.train.logging import RunLogger, is_tty
from efficientpose.train.losses import TARGETS, flip_consistency, pose_loss
from efficientpose.train.schedule import EMA, lr_at
from efficientpose.train.validate import validate
from efficientpose.weights.store import model_metadata

log = logging.getLogger("efficientpose.train")


class NonFiniteLossError(EfficientPoseError):
    """The loss became NaN or infinite; the run stopped and the last checkpoint predates it."""


@dataclass
class RunResult:
    """What a call to :func:`train` did."""

    run_dir: Path
    steps: int  #: completed steps (batches per process) of the whole run, resumed parts included
    total_steps: int
    steps_per_epoch: int
    last: Path  #: RUN_DIR/last.safetensors
    best: Path | None  #: RUN_DIR/best.safetensors, if validation ran
    best_metric: float | None
    best_step: int | None
    metrics: dict[str, float] = field(default_factory=dict)  #: the final validation
    seconds_per_step: float | None = None  #: mean wall time of this call's training steps (no validation)
    log: list[dict[str, Any]] = field(default_factory=list)  #: every logged row of the run (main rank)


class _AllOutputs(nn.Module):
    """``forward`` = ``forward_all``, so DDP's gradient hooks see the side heads."""

    def __init__(self, model: EfficientPose) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_all(x)


class _SkipSampler(Sampler[int]):
    """The first ``skip`` indices of ``base`` left out: where an interrupted epoch continues."""

    def __init__(self, base: Sampler[int], skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)  # type: ignore[arg-type]


def _finite(tensors: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point())


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolved(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The config as saved in the run folder: absolute paths (so --resume works from any folder), no resume."""
    paths = {}
    for name in ("root", "val_root", "extra_root", "teacher", "init", "keypoints"):
        value = getattr(config, name)
        if value is not None and (name.endswith("root") or name == "teacher" or Path(value).is_file()):
            paths[name] = str(Path(value).resolve())
    return replace(config, output=str(run_dir.resolve()), resume=None, **paths)


class Trainer:
    """One run; construct on every rank, then :meth:`run`."""

    def __init__(self, config: TrainConfig, info: distributed.DistInfo, device: torch.device) -> None:
        self.config, self.info, self.device = config, info, device
        self.run_dir = self._run_dir()
        if config.threads:
            torch.set_num_threads(config.threads)
        _seed_everything(config.seed)
        self.variant = get_variant(config.model)
        self.keypoints = resolve_keypoints(config.keypoints, self.variant)
        self.model = new_model(self.variant, self.keypoints)
        self.init_note = "resumed" if config.resume else init_weights(self.model, config.init, self.keypoints)
        if config.bn_momentum is not None:
            for module in self.model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = config.bn_momentum
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model.to(device, memory_format=self.memory_format)

        samples = training_samples(config)
        self.val_samples = []
        if config.val_dataset and info.is_main:
            self.val_samples = load_samples(config.val_dataset, config.val_root, config.val_split,
                                            config.val_limit, train=False)
        self.dataset: PoseDataset = training_set(config, samples, self.keypoints, 1)
        self.per_rank = len(self.dataset) // info.world_size
        if self.per_rank == 0:
            raise DatasetError(f"{config.dataset} at {config.root}: {len(self.dataset)} usable training samples "
                               f"for {info.world_size} processes")
        self.drop_last = self.per_rank >= config.batch_size
        self.steps_per_epoch = self.per_rank // config.batch_size if self.drop_last else 1
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.dataset.epochs = max(math.ceil(self.total_steps / self.steps_per_epoch), 1)  # for the sigma schedule

        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        opt_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_class(groups, lr=config.lr)
        self.ema = EMA(self.model, config.ema_decay) if config.ema else None
        self.autocast, self.scaler = self._amp()

        self.progress = Progress()
        if config.resume:
            self.progress = load_checkpoint(self.run_dir, model=self.model, optimizer=self.optimizer, ema=self.ema,
                                            scaler=self.scaler)
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(_resolved(config, self.run_dir), self.run_dir / "config.toml")
        self.logger = RunLogger(self.run_dir, enabled=info.is_main,
                                resume_step=self.progress.step if config.resume else None)
        self.net: nn.Module = _AllOutputs(self.model)
        if info.enabled:
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None)
        self.sampler = DistributedSampler(self.dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                          seed=config.seed, drop_last=True)
        self.loss_weights = {"heatmaps": config.loss_heatmaps, "heatmaps_1": config.loss_heatmaps_1,
                             "heatmaps_2": config.loss_heatmaps_2, "pafs": config.loss_pafs}
        self.last_saved: int | None = self.progress.step if config.resume else None
        self.metrics: dict[str, float] = {}
        self.step_seconds: list[float] = []

    # ---- setup helpers ----

    def _run_dir(self) -> Path:
        config = self.config
        if config.resume:
            run_dir = Path(config.resume)
            if config.output and Path(config.output).resolve() != run_dir.resolve():
                raise UsageError(f"--resume continues in {run_dir}; do not also give --output {config.output}")
            if not has_checkpoint(run_dir):
                raise CheckpointError(f"{run_dir}: no checkpoint to resume (last.safetensors is missing)")
            return run_dir
        if config.output is None:
            if self.info.enabled:
                raise UsageError("give --output RUN_DIR when training with several processes")
            return Path("runs") / f"{config.model}-{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(config.output)
        if has_checkpoint(run_dir):
            raise UsageError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                             f"or choose another --output")
        return run_dir

    def _amp(self) -> tuple[Any, Any]:
        if not self.config.amp:
            return nullcontext, None
        kind = self.device.type
        if kind == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
            return (lambda: torch.autocast("cuda", dtype=dtype)), scaler
        if kind == "cpu":
            return (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), None
        warnings.warn(f"--amp is not supported on {kind}; training in float32", stacklevel=2)
        return nullcontext, None

    # ---- the loop ----

    def _metadata(self) -> dict[str, str]:
        return model_metadata(self.model, step=str(self.progress.step), ema=str(int(self.ema is not None)),
                              limbs=json.dumps(self.keypoints.limb_names()),
                              dataset=str(self.config.dataset), init=self.init_note)

    def _weights(self) -> dict[str, torch.Tensor]:
        return (self.ema.module if self.ema is not None else self.model).state_dict()

    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        workers = self.config.workers
        return DataLoader(
            self.dataset, batch_size=self.config.batch_size,
            sampler=_SkipSampler(self.sampler, skip_batches * self.config.batch_size),
            num_workers=workers, collate_fn=collate_skip_none, drop_last=self.drop_last,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            generator=torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch),
        )

    def _batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        keys = {key for pair in TARGETS.values() for key in pair}
        return images, {k: batch[k].to(self.device, non_blocking=True) for k in keys}

    def _train_step(self, batch: dict[str, torch.Tensor], lr: float) -> dict[str, float]:
        """One optimisation step; the logged numbers (averaged over ranks)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images, targets = self._batch(batch)
        self.net.train()
        flip = bool(self.config.loss_flip)
        with self.autocast():  # with flip-consistency the mirrored batch rides along in the same forward pass
            outputs = self.net(torch.cat([images, images.flip(-1)]) if flip else images)
        if flip:
            mirrored = outputs["heatmaps"][len(images):]
            outputs = {name: out[:len(images)] for name, out in outputs.items()}
        loss, terms = pose_loss(outputs, targets, self.loss_weights)
        if flip:
            terms["flip"] = flip_consistency(outputs["heatmaps"], mirrored, self.keypoints.skeleton.flip_index)
            loss = loss + self.config.loss_flip * terms["flip"]
        values = distributed.all_mean(torch.stack([loss.detach().float(), *(t.detach().float()
                                                                             for t in terms.values())]), self.info)
        if not torch.isfinite(values).all():
            self._stop_non_finite(dict(zip(("loss", *terms), values.tolist(), strict=True)))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.clip_grad or math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        out = {"loss": values[0].item(), "grad_norm": float(grad_norm)}
        out.update({f"loss_{name}": v for name, v in zip(terms, values[1:].tolist(), strict=True)})
        return out

    def _stop_non_finite(self, values: dict[str, float]) -> None:
        """Save the (still finite) state before this step if possible, then raise on every rank."""
        step = self.progress.step
        state = [*self.model.state_dict().values(), *(v for s in self.optimizer.state.values() for v in s.values())]
        clean = _finite(state)
        if clean and self.last_saved != step:
            self._checkpoint()
        distributed.barrier(self.info)
        self.logger.close()
        terms = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        where = (f"{self.run_dir / LAST} holds step {self.last_saved}" if self.last_saved is not None
                 else "no checkpoint was written")
        raise NonFiniteLossError(
            f"step {step + 1}: non-finite loss ({terms}); stopped. {where}"
            f"{'' if clean else ' (the weights had already diverged, so the checkpoint is from before)'}. "
            f"Lower --lr, raise --warmup-steps or check the data")

    def _checkpoint(self) -> None:
        distributed.average_buffers(self.model, self.info)
        if self.ema is not None:
            distributed.average_buffers(self.ema.module, self.info)
        if self.info.is_main:
            self.progress.epoch = self.progress.step // self.steps_per_epoch
            save_checkpoint(self.run_dir, weights=self._weights(), metadata=self._metadata(), model=self.model,
                            optimizer=self.optimizer, ema=self.ema, scaler=self.scaler, progress=self.progress)
        self.last_saved = self.progress.step

    def _validate(self) -> None:
        if not self.info.is_main or not self.val_samples:
            return
        start = time.perf_counter()
        model = self.ema.module if self.ema is not None else self.model
        self.metrics = validate(model, self.val_samples, self.config.val_dataset, self.config.val_batch_size)
        metric = self.metrics.get("val_pck", math.nan)
        best = math.isfinite(metric) and (self.progress.best_metric is None or metric > self.progress.best_metric)
        if best:
            self.progress.best_metric, self.progress.best_step = metric, self.progress.step
            save_best(self.run_dir, self._weights(), {**self._metadata(), "val_pck": f"{metric:.4f}"})
        step = self.progress.step
        self.logger.log({"kind": "val", "step": step, "epoch": (step - 1) // self.steps_per_epoch, **self.metrics,
                         "best": int(best), "seconds": round(time.perf_counter() - start, 3)})
        self.logger.plot(self.steps_per_epoch)

    def describe(self) -> str:
        """One line: what is trained on what, for how long, from which weights."""
        c = self.config
        data = c.dataset + (f" + {c.extra_dataset}" if c.extra_dataset else "") + (" + teacher" if c.teacher else "")
        return (f"{self.variant.title} ({len(self.keypoints.names)} keypoints, {len(self.keypoints.limbs)} limbs) on "
                f"{data}: {len(self.dataset)} samples, {self.info.world_size} process(es) x batch {c.batch_size}, "
                f"{self.steps_per_epoch} steps/epoch, {self.total_steps} steps from {self.progress.step}; "
                f"init: {self.init_note}; device {self.device}; run folder {self.run_dir}")

    def run(self) -> RunResult:
        config, progress = self.config, self.progress
        if self.info.is_main:
            log.info("training %s", self.describe())
        bar = tqdm(total=self.total_steps, initial=progress.step, desc="train", dynamic_ncols=True,
                   disable=not (self.info.is_main and is_tty()))
        started = time.perf_counter()
        try:
            while progress.step < self.total_steps:
                epoch, skip = divmod(progress.step, self.steps_per_epoch)
                for batch in self._loader(epoch, skip):
                    if progress.step >= self.total_steps:
                        break
                    lr = lr_at(progress.step, self.total_steps, config)
                    tick = time.perf_counter()
                    if distributed.any_rank(batch is None, self.info, self.device):
                        warnings.warn(f"step {progress.step + 1}: a batch without readable samples was skipped",
                                      stacklevel=2)
                        progress.skipped_batches += 1
                        row = None
                    else:
                        row = self._train_step(batch, lr)
                        self.step_seconds.append(time.perf_counter() - tick)
                    progress.step += 1
                    bar.update(1)
                    step = progress.step
                    if row is not None and (step % config.log_every == 0 or step == self.total_steps):
                        bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{lr:.2e}", refresh=False)
                        self.logger.log({"kind": "train", "step": step, "epoch": (step - 1) // self.steps_per_epoch,
                                         "lr": lr, **row, "seconds": round(time.perf_counter() - started, 3)})
                    last = step == self.total_steps
                    if self.val_samples and (last or (config.val_every and step % config.val_every == 0)):
                        self._validate()
                    if last or (config.ckpt_every and step % config.ckpt_every == 0):
                        self._checkpoint()
            if self.last_saved != progress.step:  # e.g. resumed at the end
                self._checkpoint()
            self.logger.plot(self.steps_per_epoch)
            if config.debug_hashes:
                digest = distributed.state_hash(self._weights())
                atomic_write_text(self.run_dir / f"rank{self.info.rank}.sha256", digest + "\n")
            distributed.barrier(self.info)
        finally:
            bar.close()
            self.logger.close()
        best = self.run_dir / BEST
        return RunResult(
            run_dir=self.run_dir, steps=progress.step, total_steps=self.total_steps,
            steps_per_epoch=self.steps_per_epoch, last=self.run_dir / LAST, best=best if best.is_file() else None,
            best_metric=progress.best_metric, best_step=progress.best_step, metrics=dict(self.metrics),
            seconds_per_step=float(np.mean(self.step_seconds)) if self.step_seconds else None,
            log=list(self.logger.rows),
        )


def train(config: TrainConfig) -> RunResult:
    """Train (or, with ``config.resume``, continue training) an EfficientPose model; see docs/training.md."""
    config.validate()
    info, device = distributed.setup(config.device)
    try:
        return Trainer(config, info, device).run()
    finally:
        distributed.cleanup(info)
