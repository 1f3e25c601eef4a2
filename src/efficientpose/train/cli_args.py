"""Command-line flags of ``efficientpose train`` (also ``python -m efficientpose.train.cli_args``, which is
what ``torchrun ... -m efficientpose.train.cli_args`` runs on every rank).

Precedence: defaults < the resumed run's config.toml < ``--config FILE`` < ``--set KEY=VALUE`` < flags.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from efficientpose.errors import EfficientPoseError, UsageError, exit_code
from efficientpose.train.config import TrainConfig, apply_overrides, load_config

S = argparse.SUPPRESS  # flags not given leave the setting alone


def build_parser(prog: str = "efficientpose train") -> argparse.ArgumentParser:
    """The argument parser (every flag optional; a missing dataset is reported after the config is read)."""
    p = argparse.ArgumentParser(prog=prog, description="Train or fine-tune an EfficientPose model.",
                                argument_default=S)
    p.add_argument("--config", type=Path, help="TOML (or JSON/YAML) file of settings; flags override it")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="set_values",
                   help="any setting of the config file, e.g. --set loss_pafs=0.5 (repeatable)")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="training dataset: mpii, lsp, lspet or coco")
    g.add_argument("--root", help="training dataset folder")
    g.add_argument("--split", help="training split (default: the dataset's training split)")
    g.add_argument("--train-limit", type=int, help="only the first N training samples")
    g.add_argument("--val-dataset", help="validation dataset (PCKh@0.5 for mpii, PCK@0.2 otherwise)")
    g.add_argument("--val-root", help="validation dataset folder")
    g.add_argument("--val-split", help="validation split (default: the dataset's evaluation split)")
    g.add_argument("--val-limit", type=int, help="only the first N validation samples")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, help="augmentation (default on)")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="variant: rt, i, ii, iii, iv, rt-lite, i-lite, ii-lite (default rt)")
    g.add_argument("--init", help="authors (default), scratch, or a .safetensors file (ours, or an EfficientNet "
                                  "backbone with res1.* keys)")
    g.add_argument("--keypoints", help="mpii16 (default), lsp14, coco17, or a .toml/.json file with keypoints "
                                       "and limbs")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="passes over the training set (default 10)")
    g.add_argument("--max-steps", type=int, help="run exactly N steps (overrides --epochs)")
    g.add_argument("--batch-size", type=int, help="samples per step and process (default 16)")
    g.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    g.add_argument("--min-lr", type=float, help="end of the cosine schedule (default 1e-5)")
    g.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default 100)")
    g.add_argument("--schedule", choices=("cosine", "step", "constant"))
    g.add_argument("--optimizer", choices=("adamw", "adam"))
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--clip-grad", type=float, help="max gradient norm, 0 = off (default 1)")
    g.add_argument("--ema", action=argparse.BooleanOptionalAction, help="keep an EMA of the weights")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="mixed precision (CUDA bf16/fp16, CPU bf16); default off")
    g = p.add_argument_group("run")
    g.add_argument("--output", help="RUN_DIR for logs and checkpoints (default runs/<model>-<dataset>-<time>)")
    g.add_argument("--resume", help="continue the run in RUN_DIR exactly where its last checkpoint left off")
    g.add_argument("--seed", type=int)
    g.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    g.add_argument("--threads", type=int, help="torch CPU threads per process")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="NHWC memory format (default on)")
    g.add_argument("--val-every", type=int, help="steps between validations, 0 = only at the end (default 500)")
    g.add_argument("--ckpt-every", type=int, help="steps between checkpoints, 0 = only at the end (default 500)")
    g.add_argument("--log-every", type=int, help="steps between log rows (default 1)")
    g.add_argument("--debug-hashes", action="store_true", help=S)
    return p


def _parse_value(text: str) -> Any:
    """A --set value: TOML syntax if it parses (numbers, true/false, "strings", [lists]), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_values(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key = key.strip().replace("-", "_")
        if key.startswith("augmentation."):
            out.setdefault("augment_options", {})[key.split(".", 1)[1]] = _parse_value(value.strip())
        else:
            out[key] = _parse_value(value.strip())
    return out


def config_from_args(argv: Sequence[str]) -> TrainConfig:
    """The resolved configuration of a command line (not yet validated; :func:`train` validates)."""
    args = vars(build_parser().parse_args(list(argv)))
    config = TrainConfig()
    resume = args.get("resume")
    if resume is not None:
        saved = Path(resume) / "config.toml"
        if not saved.is_file():
            raise UsageError(f"{resume}: not a run folder (no config.toml)")
        config = load_config(saved)
    if args.get("config") is not None:
        config = load_config(args["config"], config)
    overrides = _set_values(args.pop("set_values", []) or [])
    if "augment_options" in overrides:
        overrides["augment_options"] = {**config.augment_options, **overrides["augment_options"]}
    args.pop("config", None)
    overrides.update(args)  # flag dests are the field names
    config = apply_overrides(config, overrides)
    if resume is not None:
        config.resume = resume
        config.output = resume
    return config


def _summary(result: Any) -> str:
    parts = [f"{result.steps} steps in {result.run_dir}", f"last: {result.last}"]
    if result.best is not None and result.best_metric is not None:
        parts.append(f"best: {result.best} (PCK {result.best_metric:.1f} at step {result.best_step})")
    if result.seconds_per_step:
        parts.append(f"{1.0 / result.seconds_per_step:.3f} steps/s")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``efficientpose train``; exit code 0, 1 (run error) or 2 (usage error)."""
    argv = sys.argv[1:] if argv is None else argv
    rank = int(os.environ.get("RANK", "0"))
    logger, handler = logging.getLogger("efficientpose.train"), logging.StreamHandler(sys.stderr)
    try:
        config = config_from_args(argv)
        if rank == 0:
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        from efficientpose.train.loop import train

        result = train(config)
    except EfficientPoseError as exc:
        print(f"efficientpose train: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt as exc:
        from efficientpose.interrupts import interrupted

        return interrupted(exc)
    finally:
        logger.removeHandler(handler)  # a caller that runs this in-process keeps no handler on a stale stream
    if rank == 0:
        print(_summary(result))
        if result.metrics:
            print(", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if not math.isnan(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
