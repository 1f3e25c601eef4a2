"""``python -m efficientpose.train.teacher``: build (or resume) the teacher cache of a training config
(:mod:`efficientpose.data.teacher` holds the cache itself; this module only reads the config)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from efficientpose.data.registry import TRAIN_SPLITS, open_dataset
from efficientpose.data.sample import Sample
from efficientpose.data.teacher import build_cache, load_teacher
from efficientpose.errors import EfficientPoseError, UsageError, exit_code, one_line
from efficientpose.train.config import load_config

log = logging.getLogger("efficientpose.teacher")


def _groups(config: Any, limit: int | None) -> list[tuple[str, str, list[Sample]]]:
    """(dataset, split, samples) of a training config's data (its main and extra training sets)."""
    out = []
    for name, root, split in ((config.dataset, config.root, config.split),
                              (config.extra_dataset, config.extra_root, config.extra_split)):
        if name is None:
            continue
        split = split or TRAIN_SPLITS[name]
        samples = open_dataset(name, Path(root), split)
        out.append((name, split, samples[:limit] if limit is not None else samples))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m efficientpose.train.teacher``: build (or resume) the teacher cache of a training config."""
    p = argparse.ArgumentParser(prog="python -m efficientpose.train.teacher",
                                description="Cache a teacher's keypoints for every training image of a config.")
    p.add_argument("--config", type=Path, required=True, help="training config (TOML): its data and `teacher` folder")
    p.add_argument("--out", type=Path, help="cache folder (default: the config's `teacher`)")
    p.add_argument("--variant", default="ii", help="teacher model (default ii)")
    p.add_argument("--weights", help="teacher weights file (default: the authors')")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no flip test-time augmentation")
    p.add_argument("--backend", default="openvino", help="inference backend (default openvino)")
    p.add_argument("--threads", type=int, default=1, help="backend threads (default 1)")
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--limit", type=int, help="only the first N samples of each dataset (smoke runs)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
        folder = args.out or (Path(config.teacher) if config.teacher else None)
        if folder is None:
            raise UsageError(f"{args.config}: no `teacher` folder; pass --out")
        groups = _groups(config, args.limit)
        teacher = load_teacher(args.variant, args.weights, flip=args.flip, backend=args.backend,
                               threads=args.threads)
        log.info("teacher %s (flip %s, %s backend, %s %s…) -> %s; %s", teacher.variant, teacher.flip,
                 teacher.backend, teacher.weights, teacher.weights_sha256[:12], folder,
                 ", ".join(f"{n}-{s}: {len(x)} samples" for n, s, x in groups))

        def progress(name: str, done: int, total: int, seconds: float) -> None:
            log.info("%s shard %d/%d in %.1f s", name, done, total, seconds)

        build_cache(folder, teacher, groups, shard_size=args.shard_size, on_shard=progress)
        log.info("complete: %s", folder)
    except EfficientPoseError as exc:
        print(f"teacher: error: {one_line(exc)}", file=sys.stderr)
        return exit_code(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
