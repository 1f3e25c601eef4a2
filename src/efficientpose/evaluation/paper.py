"""The paper's comparison table: EfficientPose variants against the OpenPose baseline, with parameters, FLOPs
and CPU latency measured, and accuracy measured where a data set is supplied (else the authors' published
MPII numbers, labelled as such)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from efficientpose.inference.runtime.select import median_ms
from efficientpose.models.counting import count_flops, count_parameters
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.fuse import optimize_for_inference
from efficientpose.models.variants import OPENPOSE_PUBLISHED, VARIANTS
from efficientpose.reference.openpose import OpenPose


@dataclass
class Row:
    """One line of the table; accuracy figures carry their source ("measured" or "published")."""

    model: str
    input_size: int
    params: int
    flops: int
    latency_ms: float | None
    pckh50: float | None
    pckh10: float | None
    accuracy_source: str
    param_reduction: float = 1.0
    flop_reduction: float = 1.0


def latency_ms(net: torch.nn.Module, size: int, repeats: int = 5) -> float:
    """Median batch-1 CPU latency of an eval-mode network, after one warm-up."""
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        return median_ms(lambda: net(x), repeats)


def comparison_table(models: list[str], *, latency: bool = True,
                     measure: Callable[[str], tuple[float, float] | None] | None = None) -> list[Row]:
    """Rows for ``models`` plus OpenPose. ``measure(name)`` returns measured (PCKh@0.5, PCKh@0.1) or None."""
    rows = []
    for name in models:
        variant = VARIANTS[name]
        with torch.device("meta"):
            meta = EfficientPose(variant)
        measured = measure(name) if measure is not None else None
        ms = latency_ms(optimize_for_inference(EfficientPose(variant)), variant.input_size) if latency else None
        published = variant.published
        accuracy = measured if measured else (published.get("pckh50"), published.get("pckh10"))
        rows.append(Row(variant.title, variant.input_size, count_parameters(meta),
                        count_flops(meta, variant.input_size), ms, *accuracy,
                        "measured" if measured else ("published" if published else "-")))
    openpose = OpenPose().eval()
    size = int(OPENPOSE_PUBLISHED["input_size"])
    base = Row("OpenPose", size, count_parameters(openpose), count_flops(openpose, size),
               latency_ms(openpose, size, repeats=3) if latency else None,
               OPENPOSE_PUBLISHED["pckh50"], OPENPOSE_PUBLISHED["pckh10"], "published")
    for row in rows:
        row.param_reduction = base.params / row.params
        row.flop_reduction = base.flops / row.flops
    return [*rows, base]


def to_markdown(rows: list[Row]) -> str:
    """The table as markdown."""
    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = ["| model | input | parameters | reduction | GFLOPs | reduction | CPU ms (batch 1) | PCKh@50 | PCKh@10 | "
             "accuracy |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.input_size} | {r.params / 1e6:.2f}M | {r.param_reduction:.1f}x | "
                     f"{r.flops / 1e9:.2f} | {r.flop_reduction:.1f}x | {fmt(r.latency_ms, '.1f')} | "
                     f"{fmt(r.pckh50, '.1f')} | {fmt(r.pckh10, '.1f')} | {r.accuracy_source} |")
    return "\n".join(lines)
