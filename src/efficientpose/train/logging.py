"""Run logs: RUN_DIR/log.csv and log.jsonl (one row per logged step or validation), TensorBoard when installed,
and RUN_DIR/convergence.png (loss, PCK and mean error per epoch)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from efficientpose.io.atomic import atomic_write_bytes, atomic_write_text
from efficientpose.pose import json_safe

CSV_NAME = "log.csv"
JSONL_NAME = "log.jsonl"
PLOT_NAME = "convergence.png"
#: CSV columns; a training row leaves the val_* cells empty and a validation row the loss cells.
COLUMNS = ("kind", "step", "epoch", "lr", "loss", "loss_heatmaps", "loss_heatmaps_1", "loss_heatmaps_2",
           "loss_pafs", "grad_norm", "val_pck", "val_auc", "val_error", "best", "seconds")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a log.jsonl (a torn last line from a crash is ignored)."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _csv_text(rows: list[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


class RunLogger:
    """Appends rows to the CSV and JSONL logs (flushed each row) and mirrors numbers to TensorBoard.

    Only the main rank writes (``enabled``). Resuming at step s first rewrites both logs without the rows
    after s (logged by the interrupted run after its last checkpoint), so the logs read as one run.
    """

    def __init__(self, run_dir: Path, *, enabled: bool, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self._csv = self._jsonl = self._tb = None
        if not enabled:
            return
        if resume_step is not None:
            self.rows = [r for r in read_jsonl(self.run_dir / JSONL_NAME) if int(r.get("step", 0)) <= resume_step]
        atomic_write_text(self.run_dir / CSV_NAME, _csv_text(self.rows))
        atomic_write_text(self.run_dir / JSONL_NAME, "".join(json.dumps(r) + "\n" for r in self.rows))
        self._csv = open(self.run_dir / CSV_NAME, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._jsonl = open(self.run_dir / JSONL_NAME, "a", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.DictWriter(self._csv, COLUMNS, restval="", extrasaction="ignore", lineterminator="\n")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)

    def log(self, row: Mapping[str, Any]) -> None:
        """Record one row (``kind`` train or val, ``step``, numbers)."""
        if not self.enabled:
            return
        row = {k: json_safe(v) for k, v in row.items()}
        self.rows.append(row)
        self._writer.writerow({k: "" if v is None else v for k, v in row.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        self._csv.flush()
        self._jsonl.flush()
        if self._tb is not None:
            prefix = "train" if row.get("kind") == "train" else "val"
            for key, value in row.items():
                if key not in ("kind", "step", "epoch") and isinstance(value, int | float) and value is not None:
                    self._tb.add_scalar(f"{prefix}/{key}", value, int(row["step"]))

    def close(self) -> None:
        for handle in (self._csv, self._jsonl):
            if handle is not None:
                handle.close()
        if self._tb is not None:
            self._tb.close()
        self._csv = self._jsonl = self._tb = None

    def plot(self, steps_per_epoch: int, path: Path | None = None) -> Path | None:
        """Write the convergence plot (atomically); None when there is nothing to plot yet."""
        if not self.enabled:
            return None
        return plot_convergence(self.rows, steps_per_epoch, path or self.run_dir / PLOT_NAME)


def _epoch_means(rows: list[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    sums: dict[int, list[float]] = {}
    for r in rows:
        if r.get("loss") is not None:
            sums.setdefault(int(r["epoch"]), []).append(float(r["loss"]))
    epochs = sorted(sums)
    return [e + 1.0 for e in epochs], [sum(sums[e]) / len(sums[e]) for e in epochs]


def plot_convergence(rows: list[Mapping[str, Any]], steps_per_epoch: int, path: Path) -> Path | None:
    """Training loss (per step and per-epoch mean) above validation PCK and mean error, against epochs."""
    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in rows if r.get("kind") == "val"]
    if not train and not val:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend (Agg via savefig)

    fig = Figure(figsize=(7.5, 6.0), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    spe = max(int(steps_per_epoch), 1)
    if train:
        top.plot([r["step"] / spe for r in train], [r["loss"] for r in train], color="tab:blue", alpha=0.3,
                 linewidth=0.8, label="loss (logged steps)")
        x, y = _epoch_means(train)
        top.plot(x, y, color="tab:blue", marker="o", linewidth=2, label="loss (epoch mean)")
        if all(v > 0 for v in y) and all(r["loss"] > 0 for r in train):
            top.set_yscale("log")
    top.set(ylabel="training loss", title="convergence")
    top.grid(alpha=0.3)
    top.legend(loc="upper right", fontsize="small")
    if val:
        x = [r["step"] / spe for r in val]
        pck = [r.get("val_pck") for r in val]
        bottom.plot(x, [math.nan if v is None else v for v in pck], color="tab:green", marker="o",
                    markersize=8, label="PCK / PCKh (%)")
        bottom.set_ylabel("validation PCK (%)", color="tab:green")
        errors = [r.get("val_error") for r in val]
        if any(e is not None for e in errors):
            twin = bottom.twinx()
            twin.plot(x, [math.nan if v is None else v for v in errors], color="tab:red", marker="s",
                      markersize=4, label="mean error / normaliser")
            twin.set_ylabel("mean error (fraction of normaliser)", color="tab:red")
    else:
        bottom.text(0.5, 0.5, "no validation", ha="center", va="center", transform=bottom.transAxes)
    bottom.set_xlabel("epoch")
    bottom.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def is_tty() -> bool:
    """Whether a progress bar should be shown (stderr is a terminal and not explicitly disabled)."""
    import sys

    return sys.stderr.isatty() and os.environ.get("EFFICIENTPOSE_NO_PROGRESS") is None
