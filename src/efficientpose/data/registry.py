"""The dataset registry: a dataset name and root -> its samples (training and evaluation both open datasets here)."""

from __future__ import annotations

from pathlib import Path

from efficientpose.data.coco import read_coco
from efficientpose.data.lsp import read_lsp, read_lspet
from efficientpose.data.mpii import read_mpii
from efficientpose.data.sample import Sample
from efficientpose.errors import UsageError

#: Dataset name -> default split. Splits: mpii valid|train|release, lsp train|test|all, lspet all,
#: coco the JSON stems under annotations/ (e.g. val2017, or val2017_mini for the test copy).
DATASETS: dict[str, str] = {"mpii": "valid", "lsp": "test", "lspet": "all", "coco": "val2017"}
#: Dataset name -> the split training uses unless told otherwise.
TRAIN_SPLITS: dict[str, str] = {"mpii": "train", "lsp": "train", "lspet": "all", "coco": "train2017"}


def open_dataset(name: str, root: Path, split: str | None = None, *, require_images: bool = True,
                 single_person: bool = False) -> list[Sample]:
    """Samples of dataset ``name`` (mpii|lsp|lspet|coco) under ``root``; ``split`` None = its default."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset '{name}' (choose from {', '.join(DATASETS)})")
    if single_person and name != "mpii":
        raise UsageError("the single-person subset exists only for mpii")
    split = split or DATASETS[name]
    if name == "mpii":
        return read_mpii(root, split, single_person=single_person, require_images=require_images)
    reader = {"lsp": read_lsp, "lspet": read_lspet, "coco": read_coco}[name]
    return reader(Path(root), split, require_images=require_images)
