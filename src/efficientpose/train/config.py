"""The training configuration: one flat dataclass, read from TOML (or JSON / YAML), overridden by flags and
saved fully resolved to ``RUN_DIR/config.toml`` so a run can be repeated or resumed exactly."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from efficientpose.data.targets import SigmaSchedule
from efficientpose.data.transforms import AugmentConfig
from efficientpose.errors import UsageError
from efficientpose.io.atomic import atomic_write_text

_SIGMA = SigmaSchedule()
#: Field names of :class:`AugmentConfig` that the ``[augmentation]`` table may set.
AUGMENT_KEYS = tuple(f.name for f in fields(AugmentConfig) if f.name != "train")
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "step", "constant")


@dataclass
class TrainConfig:
    """Every setting of a training run. Steps count batches per process; ``batch_size`` is per process."""

    # data
    dataset: str | None = None  #: mpii | lsp | lspet | coco
    root: str | None = None
    split: str | None = None  #: None = the dataset's training split (lsp: train, mpii: train, others: default)
    train_limit: int | None = None  #: only the first N training samples (smoke runs, over-fit checks)
    extra_dataset: str | None = None  #: a second training set, appended to the first (e.g. lsp beside lspet)
    extra_root: str | None = None
    extra_split: str | None = None  #: None = that dataset's training split
    teacher: str | None = None  #: teacher cache folder (``python -m efficientpose.train.teacher``); None = labels only
    teacher_threshold: float = 0.5  #: a teacher keypoint fills an unlabelled joint when its score is at least this
    val_dataset: str | None = None
    val_root: str | None = None
    val_split: str | None = None
    val_limit: int | None = None  #: only the first N validation samples
    # model
    model: str = "rt"
    init: str = "authors"  #: authors | scratch | FILE.safetensors (ours, or an EfficientNet backbone as res1.*)
    keypoints: str | None = None  #: mpii16 | lsp14 | coco17 | FILE (TOML/JSON); None = the model's own
    channels_last: bool = True  #: NHWC memory format (2-4x faster depthwise convs on CPU)
    bn_momentum: float | None = None  #: batch-norm running-stat momentum; None = the model's (Keras 0.99 -> 0.01)
    # schedule
    epochs: int = 10
    max_steps: int | None = None  #: stop after this many steps (also sets the length of the LR/sigma schedules)
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 1e-3
    min_lr: float = 1e-5  #: cosine floor
    weight_decay: float = 1e-4  #: applied to conv weights only (not to batch norm or biases)
    schedule: str = "cosine"  #: cosine | step | constant, after the linear warm-up
    warmup_steps: int = 100
    step_every: int = 1000  #: step schedule: multiply the LR by ``step_gamma`` every this many steps
    step_gamma: float = 0.1
    clip_grad: float = 1.0  #: max global gradient norm; 0 = off
    ema: bool = False
    ema_decay: float = 0.999
    amp: bool = False  #: CUDA: bf16 (or fp16 + loss scaling) autocast; CPU: bf16 autocast
    # loss (each term is a masked per-pixel MSE)
    loss_heatmaps: float = 1.0  #: final heatmaps, full resolution R
    loss_heatmaps_1: float = 1.0  #: intermediate heatmaps of pass 2 (R/8)
    loss_heatmaps_2: float = 1.0  #: pass-3 heatmaps before upsampling (R/8)
    loss_pafs: float = 1.0  #: part-affinity fields of pass 1 (R/8)
    #: flip-consistency (final heatmaps against the mirrored batch's, mirrored back); 0: off. The mirrored batch
    #: rides along in the same forward pass, so a step does about twice the work.
    loss_flip: float = 0.0
    # targets and augmentation
    # Sigmas in output pixels of each head. The final heatmaps are the fixed bilinear x8 upsampling of the R/8
    # ones, which turns sigma_low s into about sqrt((8 s)^2 + 4^2) full-resolution pixels: the full-resolution
    # defaults follow the low ones (12.6 -> 9.0) so the two targets agree (docs/training.md, "Targets").
    sigma_full_start: float = 12.6
    sigma_full_end: float = 9.0
    sigma_low_start: float = _SIGMA.low_start
    sigma_low_end: float = _SIGMA.low_end
    paf_width: float = 1.0
    augment: bool = True  #: False: the deterministic centred crop only
    augment_options: dict[str, Any] = field(default_factory=dict)  #: ``[augmentation]`` table: AugmentConfig fields
    # run
    output: str | None = None  #: RUN_DIR; None = runs/<model>-<dataset>-<time>
    resume: str | None = None  #: RUN_DIR to continue
    seed: int = 0
    workers: int = 0
    threads: int | None = None  #: torch intra-op threads; None = torch's default
    device: str = "auto"  #: auto | cpu | cuda | cuda:N | mps
    val_every: int = 500  #: steps between validations (0 = only at the end)
    val_batch_size: int = 8
    ckpt_every: int = 500  #: steps between checkpoints (0 = only at the end)
    log_every: int = 1
    debug_hashes: bool = False  #: every rank writes RUN_DIR/rank{r}.sha256 of its final weights

    def validate(self) -> None:
        """Raise UsageError for impossible settings (checked before anything is built)."""
        if self.dataset is None or self.root is None:
            raise UsageError("training needs --dataset NAME and --root DIR")
        if (self.val_dataset is None) != (self.val_root is None):
            raise UsageError("give both --val-dataset and --val-root, or neither")
        if (self.extra_dataset is None) != (self.extra_root is None):
            raise UsageError("give both extra_dataset and extra_root, or neither")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "val_batch_size": self.val_batch_size,
                    "log_every": self.log_every}
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        for name in ("max_steps", "train_limit", "val_limit", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        for name in ("workers", "val_every", "ckpt_every", "warmup_steps", "clip_grad", "weight_decay"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must not be negative, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or not 0 <= self.min_lr <= self.lr:
            raise UsageError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.schedule == "step" and self.step_every < 1:
            raise UsageError("the step schedule needs step_every >= 1")
        if self.bn_momentum is not None and not 0 < self.bn_momentum <= 1:
            raise UsageError(f"bn_momentum must be in (0, 1], got {self.bn_momentum}")
        if not 0 <= self.ema_decay < 1:
            raise UsageError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.output is not None and Path(self.output).exists() and not Path(self.output).is_dir():
            raise UsageError(f"--output {self.output}: is a file; RUN_DIR must be a folder (new or a run's)")
        unknown = sorted(set(self.augment_options) - set(AUGMENT_KEYS))
        if unknown:
            raise UsageError(f"unknown [augmentation] keys {unknown}; known: {', '.join(AUGMENT_KEYS)}")

    def augment_config(self) -> AugmentConfig:
        """The augmentation of the training set (``augment=False``: the deterministic crop)."""
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in self.augment_options.items()}
        return AugmentConfig(train=self.augment, **options)

    def sigma_schedule(self) -> SigmaSchedule:
        return SigmaSchedule(self.sigma_full_start, self.sigma_full_end, self.sigma_low_start, self.sigma_low_end)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    """``value`` converted to the type of field ``name`` (strings from flags are parsed); UsageError if it can't."""
    kind = _hints()[name]
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in options):
        if type(None) in options:
            return None
        raise UsageError(f"{name} cannot be empty")
    for target in options:
        if target is type(None):
            continue
        origin = typing.get_origin(target) or target
        try:
            if origin is bool:
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    return value.lower() in ("1", "true", "yes", "on")
                continue
            if origin is int and not isinstance(value, bool):
                number = float(value) if isinstance(value, str) else value
                if float(number) == int(number):
                    return int(number)
                continue
            if origin is float and not isinstance(value, bool):
                return float(value)
            if origin is str:
                return str(value)
            if origin is dict:
                parsed = json.loads(value) if isinstance(value, str) else value
                if isinstance(parsed, dict):
                    return dict(parsed)
        except (TypeError, ValueError):
            continue
    raise UsageError(f"{name}: cannot use {value!r} (expected {kind})")


def from_dict(data: dict[str, Any], base: TrainConfig | None = None, source: str = "config") -> TrainConfig:
    """A config from a mapping (a parsed file): unknown keys are an error; ``[augmentation]`` fills augment_options."""
    known = {f.name for f in fields(TrainConfig)}
    data = dict(data)
    if "augmentation" in data:  # the TOML [augmentation] table
        data["augment_options"] = data.pop("augmentation")
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    config = dataclasses.replace(base) if base is not None else TrainConfig()
    for key, value in data.items():
        setattr(config, key, _coerce(key, value))
    return config


def load_config(path: Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a TOML, JSON or (with PyYAML installed) YAML file into a config."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise UsageError(f"{path}: YAML configs need PyYAML (pip install pyyaml); or use TOML") from None
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        else:
            raise UsageError(f"{path}: unknown config format {suffix!r}; use .toml, .json or .yaml")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a valid config file ({str(exc).splitlines()[0]})") from None
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{path}: not a valid config file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must hold a table of settings")
    return from_dict(data, base, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(config: TrainConfig) -> str:
    """The config as TOML: every setting (unset ones as comments) and the ``[augmentation]`` table."""
    lines = ["# efficientpose training configuration (fully resolved)"]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name == "augment_options":
            continue
        lines.append(f"# {f.name} = (unset)" if value is None else f"{f.name} = {_toml_value(value)}")
    if config.augment_options:
        lines += ["", "[augmentation]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in sorted(config.augment_options.items())]
    return "\n".join(lines) + "\n"


def save_config(config: TrainConfig, path: Path) -> None:
    """Write :func:`to_toml` atomically."""
    atomic_write_text(Path(path), to_toml(config))


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy with the given settings replaced (values coerced to each field's type)."""
    return from_dict(overrides, config, "overrides")
