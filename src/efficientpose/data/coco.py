"""COCO person-keypoint reader: one Sample per non-crowd person with at least one labelled keypoint.

Coordinates are kept exactly as given in the JSON (no offset); see docs/evaluation.md for why this matters
by at most half a pixel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from efficientpose.data.lsp import check_images, torso_size
from efficientpose.data.sample import Sample
from efficientpose.errors import DatasetError, UsageError
from efficientpose.skeleton import COCO_KEYPOINTS

#: Added to COCO keypoint coordinates. Kept at 0 ("as given"); Detectron2 adds 0.5, reading them as pixel indices.
COCO_OFFSET = 0.0
PERSON_CATEGORY = 1
_PREFIX = "person_keypoints_"


def coco_splits(root: Path) -> list[str]:
    """Split names available under ``root/annotations``: JSON stems without the ``person_keypoints_`` prefix."""
    folder = Path(root) / "annotations"
    return sorted(p.stem.removeprefix(_PREFIX) for p in folder.glob("*.json")) if folder.is_dir() else []


def read_coco(root: Path, split: str = "val2017", *, require_images: bool = True) -> list[Sample]:
    """``root/annotations/[person_keypoints_]<split>.json``; images in ``root/<folder>/`` where the folder comes
    from each image's ``coco_url`` (train2017, val2017, ...), else ``<split>`` or ``images``."""
    root = Path(root)
    for name in (f"{_PREFIX}{split}.json", f"{split}.json", split):
        path = root / "annotations" / name
        if path.is_file():
            return read_coco_json(path, root, split, require_images=require_images)
    raise UsageError(f"coco: unknown split '{split}' under {root / 'annotations'} "
                     f"(choose from {', '.join(coco_splits(root)) or 'nothing: no JSON files'})")


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj or not isinstance(obj[key], kind):
        raise DatasetError(f"{where}: missing or malformed '{key}'")
    return obj[key]


def _image_path(root: Path, info: dict[str, Any], split: str) -> Path:
    name = info["file_name"]
    url = info.get("coco_url")
    folders = [Path(str(url)).parent.name] if isinstance(url, str) and "/" in url else []
    folders += [split, split.removesuffix("_mini"), "images", "."]
    candidates = [root / folder / name for folder in dict.fromkeys(folders) if folder]
    return next((p for p in candidates if p.is_file()), candidates[0])


def read_coco_json(path: Path, root: Path, split: str = "", *, require_images: bool = True) -> list[Sample]:
    """Samples of one COCO keypoints JSON (v=0 unannotated, 1 labelled but hidden, 2 visible)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({type(exc).__name__})") from None
    where = str(path)
    images = {}
    for info in _field(data, "images", list, where):
        images[_field(info, "id", int, where)] = info
        _field(info, "file_name", str, where)
    samples: list[Sample] = []
    for ann in _field(data, "annotations", list, where):
        if not isinstance(ann, dict):
            raise DatasetError(f"{where}: an annotation is not an object")
        if ann.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
            continue
        kp = np.asarray(_field(ann, "keypoints", list, where), dtype=object)
        if kp.shape != (3 * len(COCO_KEYPOINTS),) or not all(isinstance(v, int | float) for v in kp):
            raise DatasetError(f"{where}: annotation {ann.get('id')} has malformed 'keypoints' (expected 51 numbers)")
        if _field(ann, "iscrowd", int, where) or _field(ann, "num_keypoints", int, where) <= 0:
            continue
        image_id = _field(ann, "image_id", int, where)
        if image_id not in images:
            raise DatasetError(f"{where}: annotation {ann.get('id')} names unknown image {image_id}")
        bbox = np.asarray(_field(ann, "bbox", list, where), dtype=object)
        if bbox.shape != (4,) or not all(isinstance(v, int | float) for v in bbox):
            raise DatasetError(f"{where}: annotation {ann.get('id')} has a malformed 'bbox'")
        kp = kp.astype(np.float64).reshape(-1, 3)
        annotated, visible = kp[:, 2] > 0, kp[:, 2] == 2
        joints = np.where(annotated[:, None], kp[:, :2] + COCO_OFFSET, np.nan)
        x, y, w, h = bbox.astype(np.float64)
        box = np.array([x, y, x + w, y + h])
        samples.append(Sample(
            image=_image_path(root, images[image_id], split), keypoints=COCO_KEYPOINTS, joints=joints,
            annotated=annotated, visible=visible, norm_size=torso_size(joints, annotated, COCO_KEYPOINTS),
            center=(box[:2] + box[2:]) / 2, box=box, id=f"{images[image_id]['file_name']}#{ann.get('id')}",
        ))
    check_images([s.image for s in samples], path, require_images)
    return samples
