"""Checkpoints without pickle: tensors in safetensors, everything else (optimizer hyper-parameters, counters,
RNG states) in JSON. Every file is written atomically; the step recorded in all three ties them together.

RUN_DIR/last.safetensors         the weights to use (the EMA weights when EMA is on), loadable by load_model
RUN_DIR/last.state.safetensors   optimizer moments, EMA and raw weights, torch/CUDA RNG states
RUN_DIR/last.state.json          step, epoch, best metric, optimizer groups and scalars, Python/NumPy RNG
RUN_DIR/best.safetensors         the weights with the best validation metric so far
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from efficientpose.errors import EfficientPoseError
from efficientpose.io.atomic import atomic_write_text
from efficientpose.weights.store import read_metadata, save_weights

LAST = "last.safetensors"
STATE = "last.state.safetensors"
STATE_JSON = "last.state.json"
BEST = "best.safetensors"
FORMAT = "efficientpose-train-state/1"


class CheckpointError(EfficientPoseError):
    """A run folder's checkpoint is missing, incomplete or inconsistent."""


@dataclass
class Progress:
    """The counters a resumed run continues from."""

    step: int = 0  #: completed steps (batches)
    epoch: int = 0  #: epoch of the next step
    best_metric: float | None = None
    best_step: int | None = None
    skipped_batches: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---- optimizer ----

def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer ``state_dict()`` as (tensors named ``optim.<param>.<key>``, JSON-ready rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu")
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entry in data.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in data["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---- random number generators ----

def rng_states() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) of the torch, CUDA, Python and NumPy global generators."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return tensors, {"python": [version, list(internal), gauss],
                     "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def set_rng_states(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    version, internal, gauss = data["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = data["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# ---- saving and loading ----

def _cpu(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().to("cpu") for k, v in state.items()}


def save_checkpoint(run_dir: Path, *, weights: dict[str, torch.Tensor], metadata: dict[str, str],
                    model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: Any | None,
                    scaler: Any | None, progress: Progress) -> None:
    """Write the three ``last.*`` files, state first, the weights file last (each atomically).

    ``weights`` is what goes into last.safetensors (EMA weights with EMA, else the model's); with EMA the raw
    model weights are kept in the state file for resuming.
    """
    run_dir = Path(run_dir)
    opt_tensors, opt_json = flatten_optimizer(optimizer.state_dict())
    rng_tensors, rng_json = rng_states()
    tensors = {**opt_tensors, **rng_tensors}
    if ema is not None:
        tensors.update(_cpu(ema.module.state_dict(), "ema."))
        tensors.update(_cpu(model.state_dict(), "model."))
    step = str(progress.step)
    save_weights(run_dir / STATE, tensors, {"format": FORMAT, "step": step})
    data = {
        "format": FORMAT, "step": progress.step, "epoch": progress.epoch, "best_metric": progress.best_metric,
        "best_step": progress.best_step, "skipped_batches": progress.skipped_batches, "extra": progress.extra,
        "optimizer": opt_json, "rng": rng_json, "ema_updates": ema.updates if ema is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    atomic_write_text(run_dir / STATE_JSON, json.dumps(data) + "\n")
    save_weights(run_dir / LAST, _cpu(weights), {**metadata, "step": step})


def save_best(run_dir: Path, weights: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    save_weights(Path(run_dir) / BEST, _cpu(weights), metadata)


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in (LAST, STATE, STATE_JSON))


def load_checkpoint(run_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema: Any | None, scaler: Any | None) -> Progress:
    """Restore model, optimizer, EMA, loss scaler and RNG states from ``run_dir``; the counters to continue."""
    run_dir = Path(run_dir)
    for name in (LAST, STATE, STATE_JSON):
        if not (run_dir / name).is_file():
            raise CheckpointError(f"{run_dir}: cannot resume, {name} is missing")
    try:
        data = json.loads((run_dir / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(run_dir / STATE))
        weights = load_file(str(run_dir / LAST))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(f"{run_dir}: unreadable checkpoint ({str(exc).splitlines()[0]})") from None
    steps = {STATE_JSON: data.get("step"), STATE: read_metadata(run_dir / STATE).get("step"),
             LAST: read_metadata(run_dir / LAST).get("step")}
    if len({str(s) for s in steps.values()}) != 1 or data.get("format") != FORMAT:
        raise CheckpointError(f"{run_dir}: checkpoint files disagree (steps {steps}); it was interrupted while "
                              f"being written. Delete the three last.* files to start over")
    has_ema = any(k.startswith("ema.") for k in tensors)
    if (ema is not None) != has_ema:
        raise CheckpointError(f"{run_dir}: the checkpoint was written {'with' if has_ema else 'without'} EMA; "
                              f"resume with the same --ema setting")
    try:
        if ema is not None:
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
            ema.updates = int(data["ema_updates"])
        else:
            model.load_state_dict(weights)
        optimizer.load_state_dict(unflatten_optimizer(tensors, data["optimizer"]))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{run_dir}: checkpoint does not fit this model/optimizer "
                              f"({str(exc).splitlines()[0]})") from None
    if scaler is not None and data.get("scaler"):
        scaler.load_state_dict(data["scaler"])
    set_rng_states(tensors, data["rng"])
    return Progress(int(data["step"]), int(data["epoch"]), data.get("best_metric"), data.get("best_step"),
                    int(data.get("skipped_batches", 0)), dict(data.get("extra") or {}))
