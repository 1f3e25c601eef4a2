"""Ship a training run's best weights as named weights in the package (issue 18, docs/weights.md).

One repeatable command: the run's ``best.safetensors`` (EMA weights chosen on the validation split) becomes the
fp16 package file, written atomically; its SHA-256 and measured figures are pinned in the weights entry
(``models/variants.py``); the figures come from the evaluation users run (torch backend, one thread, refined
decoding) on LSP ``train-b`` and, against the authors' weights, on the COCO sample and the five MPII images; the
model card's figures block and its validation-curve PNG are regenerated from the run's ``log.csv``::

    OMP_NUM_THREADS=1 python -m efficientpose.train.ship /root/ep-state/runs/rt-lsp-distill
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from efficientpose.errors import EfficientPoseError, UsageError
from efficientpose.io.atomic import atomic_path, atomic_write_text
from efficientpose.models.variants import WeightFile, get_variant
from efficientpose.weights.files import packaged_path, sha256
from efficientpose.weights.store import read_metadata, read_safetensors

REPO = Path(__file__).resolve().parents[3]  #: the checkout whose package, weights table and docs are updated
CARD = Path("docs/weights.md")
CURVE = Path("docs/weights-validation.png")
BEGIN, END = "<!-- ship:figures (written by python -m efficientpose.train.ship) -->", "<!-- /ship:figures -->"
#: The authors' II on the same split, whole image, no flip (docs/training.md): the teacher's line on the plot.
TEACHER_TRAIN_B = 84.5


@dataclass(frozen=True)
class EvalSet:
    """One evaluation the card reports: a dataset split under the data folder, and the alphas to score."""

    label: str
    dataset: str
    root: str  #: relative to the data folder
    split: str
    alphas: tuple[float | None, ...] = (None,)  #: None = the dataset's default (PCK@0.2, PCKh@0.5)
    available_only: bool = False


TRAIN_B = EvalSet("LSP im0501-1000 (`train-b`, validation)", "lsp", "lsp", "train-b", (0.2, 0.1))
ELSEWHERE = (
    EvalSet("COCO sample `val2017_mini`", "coco", "coco", "val2017_mini"),
    EvalSet("COCO sample `train2017_mini`", "coco", "coco", "train2017_mini"),
    EvalSet("MPII, the 5 images here", "mpii", "mpii", "valid", available_only=True),
)


def half_state(best: Path, variant: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The run's best weights as fp16 (integer buffers kept) and their metadata; refuses a file of another variant
    or keypoint set, or one without a validation step."""
    meta = read_metadata(best)
    want = get_variant(variant)
    if meta.get("variant") != want.name or json.loads(meta.get("keypoints", "null") or "null") != list(want.keypoints):
        raise UsageError(f"{best}: not {want.title} weights with its {len(want.keypoints)} keypoints "
                         f"(variant {meta.get('variant')!r})")
    if "step" not in meta or "val_pck" not in meta:
        raise UsageError(f"{best}: no validation step in its metadata; is it a run's best.safetensors?")
    state = {k: v.half() if v.is_floating_point() else v for k, v in read_safetensors(best).items()
             if not k.endswith("num_batches_tracked")}
    return state, meta


def write_packaged(entry: WeightFile, state: dict[str, torch.Tensor], meta: dict[str, str], name: str) -> Path:
    """Write the fp16 package file atomically, its metadata saying what it is and under which terms."""
    keep = ("format", "variant", "keypoints", "num_keypoints", "num_pafs", "side_heads", "limbs", "step", "val_pck",
            "ema", "init")
    out = packaged_path(entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = save({k: v.contiguous() for k, v in state.items()},
                {**{k: meta[k] for k in keep if k in meta}, "name": name, "dtype": "float16",
                 "license": entry.license, "recipe": entry.recipe})
    with atomic_path(out) as temp:
        temp.write_bytes(_canonical(blob))
    out.chmod(0o644)  # package data: readable by everyone who installs it
    return out


def _canonical(blob: bytes) -> bytes:
    """A safetensors file with its JSON header's keys sorted: safetensors writes them in a random (hash) order,
    and the same weights should give the same bytes and so the same pinned SHA-256."""
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8:8 + size]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encoded = header.encode("utf-8")
    if len(encoded) > size:
        raise ValueError("canonical safetensors header longer than the original")
    return blob[:8] + encoded + b" " * (size - len(encoded)) + blob[8 + size:]


def measure(variant: str, weights: str | Path | None, data: Path, sets: Sequence[EvalSet], batch_size: int = 8):
    """Reports per (set, alpha) of ``variant`` with ``weights`` (None: the authors'), torch backend, refined."""
    from efficientpose.data.registry import open_dataset
    from efficientpose.evaluation.evaluate import evaluate
    from efficientpose.evaluation.samples import predict_samples
    from efficientpose.inference.estimator import PoseEstimator

    estimator = PoseEstimator(variant, weights, backend="torch", decoder="refined")
    out = {}
    for s in sets:
        samples = open_dataset(s.dataset, data / s.root, s.split, require_images=not s.available_only)
        if s.available_only:
            samples = [x for x in samples if Path(x.image).is_file()]
        poses = predict_samples(samples, estimator, batch_size=batch_size, progress=False)
        for alpha in s.alphas:
            out[s, alpha] = evaluate(samples, poses, alpha=alpha, dataset=f"{s.dataset}/{s.split}")
    return out


def pin(variants_py: Path, entry: WeightFile, digest: str, metrics: dict[str, float]) -> None:
    """Rewrite ``entry``'s sha256 and metrics in the weights table (the source file), atomically."""
    text = variants_py.read_text(encoding="utf-8")
    block = re.compile(r'WeightFile\(\s*"' + re.escape(entry.relpath) + r'",.*?\n\)', re.S)
    found = block.findall(text)
    if len(found) != 1:
        raise UsageError(f"{variants_py}: expected one WeightFile entry for {entry.relpath}, found {len(found)}")
    new = re.sub(r'sha256="[0-9a-f]{64}"', f'sha256="{digest}"', found[0])
    new = re.sub(r"metrics=\{[^}]*\}", "metrics=" + json.dumps(metrics), new)
    atomic_write_text(variants_py, text.replace(found[0], new))


def run_hours(log_csv: Path) -> tuple[int, float]:
    """(last logged step, hours of training processes) from the run's log: each resumed process restarts the
    ``seconds`` clock, so the hours are the sum of each process's last reading."""
    steps, hours, last = 0, 0.0, 0.0
    for row in _rows(log_csv):
        if row["kind"] != "train":
            continue
        seconds = float(row["seconds"])
        if seconds < last:
            hours += last / 3600
        last, steps = seconds, int(row["step"])
    return steps, hours + last / 3600


def _rows(log_csv: Path) -> list[dict[str, str]]:
    with open(log_csv, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def plot_curve(log_csv: Path, out: Path, baseline: float, shipped_step: int) -> None:
    """The validation curve (PCK@0.2 on train-b per validation) above the training loss, as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = _rows(log_csv)
    val = [(int(r["step"]), float(r["val_pck"])) for r in rows if r["kind"] == "val" and r["val_pck"]]
    train = [(int(r["step"]), float(r["loss"])) for r in rows if r["kind"] == "train" and r["loss"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True, height_ratios=(3, 2))
    if val:
        x, y = zip(*val, strict=True)
        top.plot(x, y, "o-", color="C0", label="RT, ours (EMA): validation PCK@0.2")
        best = max(val, key=lambda v: v[1])
        top.annotate(f"shipped: step {shipped_step}", best, textcoords="offset points", xytext=(-40, 8), fontsize=8)
    values = [v for _, v in val] + [baseline, TEACHER_TRAIN_B]
    top.set_ylim(min(values) - 1.0, max(values) + 1.0)
    top.axhline(baseline, color="grey", linestyle="--", label=f"authors' RT: {baseline:.1f}")
    top.axhline(TEACHER_TRAIN_B, color="C3", linestyle=":", label=f"authors' II (teacher): {TEACHER_TRAIN_B:.1f}")
    top.set(ylabel="PCK@0.2 on LSP im0501-1000 (%)", title="RT fine-tuned on LSP (weights=\"lsp\")")
    top.legend(fontsize=8, loc="lower right")
    top.grid(alpha=0.3)
    if train:
        x, y = (np.asarray(v) for v in zip(*train, strict=True))
        k = min(20, len(y))
        bottom.plot(x, y, color="C1", alpha=0.25, linewidth=0.8)
        bottom.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), color="C1", label=f"mean of {k} logs")
        bottom.legend(fontsize=8)
    bottom.set(xlabel="step (batch 16)", ylabel="training loss")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as temp:
        fig.savefig(temp, dpi=80, format="png")
    plt.close(fig)


def _se(p: float, n: int) -> float:
    return 100 * math.sqrt(max(p / 100 * (1 - p / 100), 1e-12) / n) if n else math.nan


def figures_block(ours: dict, authors: dict, fp32: dict, meta: dict[str, str], name: str, digest: str, size: int,
                  steps: int, hours: float, threads: int) -> str:
    """The model card's generated block: provenance, then one table row per figure with its command."""
    from efficientpose.evaluation.evaluate import compare_reports

    lines = [BEGIN, "",
             f"Shipped: step {meta['step']} of the run (its best validation so far; the run's own validation said "
             f"{float(meta['val_pck']):.2f}), fp16, {size / 1e6:.2f} MB, SHA-256 `{digest}`. The run had logged "
             f"{steps} steps in {hours:.1f} wall-clock hours of training processes when this was shipped.", "",
             f"Measured with the torch backend on {'one thread' if threads == 1 else f'{threads} threads'}, refined "
             f"decoding, as `OMP_NUM_THREADS={threads}` plus each row's command gives it (without `--weights {name}`: "
             f"the authors' column; with the run's `best.safetensors` instead: the column before fp16).", "",
             "| evaluation | joints | authors' RT | `lsp` (fp16, shipped) | `lsp` before fp16 | paired test "
             "(`lsp` vs authors') | command |", "|---|---|---|---|---|---|---|"]
    for (s, alpha), report in ours.items():
        a, f = authors[s, alpha], fp32[s, alpha]
        paired = compare_reports(report, a)
        command = (f"`efficientpose evaluate --dataset {s.dataset} --root ../shared/data/{s.root} --split {s.split}"
                   f"{' --available-only' if s.available_only else ''} --model {meta['variant']} --weights {name}"
                   " --backend torch"
                   f"{f' --alpha {alpha:g}' if alpha is not None else ''}`")
        lines.append(f"| {s.label}, {report.title.split(' on ')[0]} | {paired.total} | {a.mean:.2f} | "
                     f"**{report.mean:.2f}** ± {_se(report.mean, paired.total):.1f} | {f.mean:.2f} | "
                     f"{paired.difference:+.2f} points: {paired.only_a} joints right only with `lsp`, "
                     f"{paired.only_b} only with the authors'; McNemar p = {paired.p_value:.2g} | {command} |")
    at2, at1 = ours[TRAIN_B, 0.2].mean, ours[TRAIN_B, 0.1].mean
    lines += ["", f"Against issue 18's target, which is on the held LSP test half (not here): PCK@0.2 ≥ 85.0 and "
              f"PCK@0.1 ≥ 66 with `--weights {name}`. On the validation split the shipped file is at {at2:.2f} "
              f"({'at or above' if at2 >= 85.0 else 'below'} 85.0) and {at1:.2f} "
              f"({'at or above' if at1 >= 66.0 else 'below'} 66)."]
    lines += ["", f"± is one binomial standard error of the `{name}` figure (joints treated as independent, so "
              "if anything too small): about 0.5 points on the 7,000 validation joints, several points on the "
              "small COCO and MPII sets, where only a large paired difference means anything.", "", END]
    return "\n".join(lines)


def update_card(card: Path, block: str) -> None:
    """Replace the generated block of the model card (between the markers), atomically."""
    text = card.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise UsageError(f"{card}: no generated figures block ({BEGIN} ... {END})")
    atomic_write_text(card, text[:start] + block + text[end + len(END):])


def ship(run_dir: Path, *, variant: str = "rt", name: str = "lsp", data: Path = Path("../shared/data"),
         threads: int = 1, repo: Path = REPO) -> dict[str, float]:
    """Everything the command does (module docstring); returns the pinned metrics."""
    entry = get_variant(variant).named.get(name)
    if entry is None or not entry.packaged:
        raise UsageError(f"{variant} has no packaged named weights {name!r} in the weights table")
    best = Path(run_dir) / "best.safetensors"
    if not best.is_file():
        raise UsageError(f"{best}: not found (a run writes it at its first validation)")
    torch.set_num_threads(threads)
    state, meta = half_state(best, variant)
    out = write_packaged(entry, state, meta, name)
    digest = sha256(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, step {meta['step']}); SHA-256 {digest}")
    sets = (TRAIN_B, *ELSEWHERE)
    ours = measure(variant, out, data, sets)
    authors = measure(variant, None, data, sets)
    fp32 = measure(variant, best, data, sets)
    metrics = {"step": int(meta["step"]),
               "lsp/train-b PCK@0.2": round(ours[TRAIN_B, 0.2].mean, 2),
               "lsp/train-b PCK@0.1": round(ours[TRAIN_B, 0.1].mean, 2)}
    pin(repo / "src" / "efficientpose" / "models" / "variants.py", entry, digest, metrics)
    steps, hours = run_hours(Path(run_dir) / "log.csv")
    plot_curve(Path(run_dir) / "log.csv", repo / CURVE, authors[TRAIN_B, 0.2].mean, int(meta["step"]))
    update_card(repo / CARD, figures_block(ours, authors, fp32, meta, name, digest, out.stat().st_size, steps,
                                           hours, threads))
    print(f"pinned in models/variants.py: sha256={digest} metrics={metrics}")
    print(f"updated {CARD} (figures) and {CURVE} ({(repo / CURVE).stat().st_size / 1e3:.0f} kB)")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m efficientpose.train.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="the training run folder (best.safetensors, log.csv)")
    p.add_argument("--model", default="rt")
    p.add_argument("--name", default="lsp", help="the named weights entry to ship (default lsp)")
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with lsp/, coco/, mpii/")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    try:
        ship(args.run_dir, variant=args.model, name=args.name, data=args.data, threads=args.threads)
    except EfficientPoseError as exc:
        print(f"ship: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
