"""Learning-rate schedule (linear warm-up, then cosine, step or constant) and an exponential moving average of
the weights. Both are functions of the step counter alone, so a resumed run continues them exactly."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from efficientpose.train.config import TrainConfig


def lr_at(done: int, total: int, config: TrainConfig) -> float:
    """The learning rate of the step taken after ``done`` completed steps, in a run of ``total`` steps."""
    if done < config.warmup_steps:
        return config.lr * (done + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.step_gamma ** ((done - config.warmup_steps) // config.step_every)
    span = max(total - config.warmup_steps - 1, 1)
    progress = min((done - config.warmup_steps) / span, 1.0)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a model's trainable weights and float buffers (batch-norm statistics).

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates, so early averages are not
    dominated by the initial weights. Frozen parameters and integer buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        buffers = {name for name, b in model.named_buffers() if b.is_floating_point()}
        self._averaged = trainable | buffers

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if name in self._averaged:
                value.mul_(d).add_(new.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(new)

