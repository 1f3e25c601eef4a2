"""What a run trains: the keypoint set and limbs, the model with its initial weights, and the datasets."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import torch

from efficientpose.data.dataset import PoseDataset, default_limbs
from efficientpose.data.registry import TRAIN_SPLITS, open_dataset
from efficientpose.data.sample import Sample
from efficientpose.data.teacher import merge_teacher, read_cache
from efficientpose.errors import UsageError, WeightsError
from efficientpose.models.efficientpose import EfficientPose
from efficientpose.models.variants import Variant, get_variant
from efficientpose.skeleton import KEYPOINTS, PAF_LIMBS, SKELETONS, Skeleton
from efficientpose.train.config import TrainConfig
from efficientpose.weights.store import check_state_dict, read_metadata, read_safetensors, resolve_state_dict

#: State-dict prefixes that belong to one keypoint set: re-initialised when the keypoints change.
HEAD_PREFIXES = ("confs_head.", "confs1_head.", "pafs_head.", "upsample.")
#: State-dict prefixes of the feature extractors, what an ImageNet backbone file may provide.
BACKBONE_PREFIXES = ("res1.", "res2.")
#: The training split of each dataset when none is given (``open_dataset``'s defaults are evaluation splits).


@dataclass(frozen=True)
class KeypointSet:
    """The keypoints a model emits and the limbs of its PAF head (2 channels each)."""

    skeleton: Skeleton
    limbs: tuple[tuple[int, int], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.skeleton.keypoints

    def limb_names(self) -> list[list[str]]:
        return [[self.names[a], self.names[b]] for a, b in self.limbs]


def _limb_index(limb: object, names: tuple[str, ...], where: str) -> tuple[int, int]:
    if not isinstance(limb, list | tuple) or len(limb) != 2:
        raise UsageError(f"{where}: each limb must be a pair, got {limb!r}")
    out = []
    for end in limb:
        if isinstance(end, str) and end in names:
            out.append(names.index(end))
        elif isinstance(end, int) and not isinstance(end, bool) and 0 <= end < len(names):
            out.append(end)
        else:
            raise UsageError(f"{where}: limb end {end!r} is neither a keypoint name nor an index below {len(names)}")
    if out[0] == out[1]:
        raise UsageError(f"{where}: limb {limb!r} joins a keypoint to itself")
    return out[0], out[1]


def read_keypoint_file(path: Path) -> KeypointSet:
    """A user keypoint set: TOML or JSON with ``keypoints = [names]``, ``limbs = [[a, b], ...]`` (names or
    indices) and an optional ``name``. Left/right pairs are found by the ``left_``/``right_`` prefixes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise UsageError(f"{path}: keypoint file not found") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable TOML/JSON keypoint file ({str(exc).splitlines()[0]})") from None
    names = data.get("keypoints") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise UsageError(f"{path}: needs 'keypoints', a non-empty list of names")
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: keypoint names must be unique")
    names = tuple(names)
    limbs = tuple(_limb_index(limb, names, str(path)) for limb in data.get("limbs", []))
    if not limbs:
        raise UsageError(f"{path}: needs 'limbs', a non-empty list of keypoint pairs (the PAF head)")
    skeleton = Skeleton(str(data.get("name", path.stem)), names, limbs)
    return KeypointSet(skeleton, limbs)


def resolve_keypoints(spec: str | None, variant: Variant) -> KeypointSet:
    """``None`` (the model's own 16), a named set (mpii16, lsp14, coco17) or a keypoint file."""
    if spec is None or spec == "mpii16":
        if spec is None and variant.keypoints != KEYPOINTS:
            raise UsageError(f"model {variant.name} has no default keypoint set; pass --keypoints")
        return KeypointSet(SKELETONS["mpii16"], PAF_LIMBS)
    if spec in SKELETONS:
        skeleton = SKELETONS[spec]
        return KeypointSet(skeleton, default_limbs(skeleton))
    path = Path(spec)
    if path.suffix.lower() in (".toml", ".json"):
        return read_keypoint_file(path)
    raise UsageError(f"unknown keypoint set {spec!r}; use mpii16, lsp14, coco17 or a .toml/.json file")


def new_model(variant: Variant, keypoints: KeypointSet) -> EfficientPose:
    """The trainable network: side heads on (intermediate supervision), heads sized for ``keypoints``."""
    return EfficientPose(variant, num_keypoints=len(keypoints.names), num_pafs=2 * len(keypoints.limbs),
                         side_heads=True, keypoint_names=keypoints.names)


def transfer(model: EfficientPose, state: dict[str, torch.Tensor], *, keep_heads: bool, source: str,
             prefixes: tuple[str, ...] | None = None) -> tuple[int, int]:
    """Copy ``state`` into ``model``: every tensor except the heads (unless ``keep_heads``), limited to
    ``prefixes`` if given. Tensors of ``model`` the state should cover but lacks are an error (except the
    optional side heads). Returns (tensors loaded, tensors left as initialised)."""
    own = model.state_dict()

    def allowed(key: str) -> bool:
        return (keep_heads or not key.startswith(HEAD_PREFIXES)) and (prefixes is None or key.startswith(prefixes))

    check_state_dict(model, state, source, keys=[k for k in own if allowed(k)], unexpected=False)
    loaded = {k: state[k] for k in own if k in state and allowed(k)}
    merged = dict(own)
    merged.update(loaded)
    model.load_state_dict(merged)
    return len(loaded), len(own) - len(loaded)


def init_weights(model: EfficientPose, init: str, keypoints: KeypointSet) -> str:
    """Initialise ``model`` (already randomly initialised) from ``init``; a one-line description of what was done.

    * ``scratch``: keep the random initialisation.
    * ``authors``: the published weights (as resolved by the weight store); heads only if the keypoints are the
      model's own 16 with the published 14 PAF limbs, else the heads stay random.
    * a ``.safetensors`` file: either ours (metadata says which keypoints; heads kept if they match) or an
      ImageNet EfficientNet backbone whose keys are all ``res1.*`` (and ``res2.*``), named as our feature
      extractor: those load and everything after the backbone stays random.
    """
    variant = model.variant
    own_heads = keypoints.names == variant.keypoints and keypoints.limbs == PAF_LIMBS
    if init == "scratch":
        return "random initialisation"
    if init == "authors":
        source = EfficientPose(variant, side_heads=True)
        state = resolve_state_dict(source, None)
        loaded, fresh = transfer(model, state, keep_heads=own_heads, source=f"authors' {variant.title} weights")
        return f"authors' {variant.title} weights ({loaded} tensors; {fresh} new)"
    path = Path(init)
    if path.suffix.lower() != ".safetensors":
        raise UsageError(f"--init must be authors, scratch or a .safetensors file, got {init!r}")
    if not path.is_file():
        raise UsageError(f"{path}: --init file not found")
    meta = read_metadata(path)
    state = read_safetensors(path)
    if state and all(k.startswith(BACKBONE_PREFIXES) for k in state):
        prefixes = tuple(p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in model.state_dict())
                         and any(k.startswith(p) for k in state))
        loaded, fresh = transfer(model, state, keep_heads=False, source=str(path), prefixes=prefixes)
        return f"backbone {path} ({loaded} tensors; {fresh} new)"
    if meta.get("variant") not in (None, variant.name):
        raise WeightsError(f"{path}: holds weights for variant {meta['variant']!r}, not {variant.name!r}")
    names = tuple(json.loads(meta["keypoints"])) if "keypoints" in meta else variant.keypoints
    file_limbs = json.loads(meta["limbs"]) if "limbs" in meta else None
    same_limbs = (file_limbs == keypoints.limb_names()) if file_limbs is not None else (
        int(meta.get("num_pafs", 2 * len(PAF_LIMBS))) == 2 * len(keypoints.limbs) and keypoints.limbs == PAF_LIMBS)
    keep = names == keypoints.names and same_limbs
    loaded, fresh = transfer(model, state, keep_heads=keep, source=str(path))
    return f"{path} ({loaded} tensors; {fresh} new{'' if keep else ', heads re-initialised'})"


def normalization(variant: Variant) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) of the variant's input normalisation."""
    norm = variant.normalization
    return norm.mean, norm.std


def load_samples(name: str, root: str, split: str | None, limit: int | None, train: bool) -> list[Sample]:
    """Samples of a dataset split (training default: its training split), optionally only the first ``limit``."""
    split = split or (TRAIN_SPLITS.get(name) if train else None)
    samples = open_dataset(name, Path(root), split)
    return samples[:limit] if limit is not None else samples


def training_samples(config: TrainConfig) -> list[Sample]:
    """The training samples: the dataset, then the extra one if any, each merged with its teacher keypoints when
    ``config.teacher`` names a cache (samples then become MPII-16); the first ``train_limit`` of them."""
    samples: list[Sample] = []
    for name, root, split in ((config.dataset, config.root, config.split),
                              (config.extra_dataset, config.extra_root, config.extra_split)):
        if name is None:
            continue
        part = load_samples(name, root, split, None, train=True)
        if config.teacher:
            part = merge_teacher(part, read_cache(Path(config.teacher), name), config.teacher_threshold)
        samples += part
    return samples[:config.train_limit] if config.train_limit is not None else samples


def training_set(config: TrainConfig, samples: list[Sample], keypoints: KeypointSet, epochs: int) -> PoseDataset:
    """The augmented training dataset; samples are remapped by name onto the model's keypoints (joints the
    dataset lacks, e.g. LSP's thorax and pelvis for an MPII-16 model, are masked out of the loss)."""
    variant = get_variant(config.model)
    mean, std = normalization(variant)
    return PoseDataset(samples, keypoints.skeleton, variant.input_size, True, mean=mean, std=std,
                       cfg=config.augment_config(), seed=config.seed, sigma=config.sigma_schedule(),
                       epochs=epochs, limbs=keypoints.limbs, paf_width=config.paf_width)
