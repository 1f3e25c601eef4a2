"""One table of EfficientPose variant settings, each with its weights entry (files, checksums, source,
preprocessing, published accuracy) the way torchvision's weights entries carry them together."""

from __future__ import annotations

from dataclasses import dataclass, field

from efficientpose.codec.normalize import Normalization, normalization_for
from efficientpose.errors import UsageError
from efficientpose.skeleton import KEYPOINTS


@dataclass(frozen=True)
class StageSpec:
    """One EfficientNet stage: output channels, number of blocks, expansion ratio, kernel, first stride."""

    channels: int
    repeats: int
    expand: int
    kernel: int
    stride: int


@dataclass(frozen=True)
class BackboneSpec:
    """A truncated EfficientNet: stem width, stages, activation, SE on/off and BN momentum.

    ``last_residual=False`` reproduces the low-resolution path's quirk: its final block has no residual
    add (architecture.md §3.4).
    """

    name: str
    stem: int
    stages: tuple[StageSpec, ...]
    act: str = "swish"
    se: bool = True
    keras_momentum: float = 0.99
    last_residual: bool = True

    @property
    def out_channels(self) -> int:
        return self.stages[-1].channels


#: The authors' repository at the commit whose files this package pins.
AUTHORS_REPO = "daniegr/EfficientPose"
AUTHORS_COMMIT = "78e4bd1913780dd565efe35db03a4aec75907e8c"
AUTHORS_BASE_URL = f"https://raw.githubusercontent.com/{AUTHORS_REPO}/{AUTHORS_COMMIT}/models"


@dataclass(frozen=True)
class WeightFile:
    """One weight file (a torchvision-style weights entry): its path relative to a weights folder (the authors'
    ``models/`` layout, or e.g. ``mediapipe/pose_detection.tflite``), its pinned SHA-256 (None where the file was
    not available to pin, so it is never downloaded unverified), where it is published and under which terms.

    A ``packaged`` file ships inside the package (``efficientpose/weights/data/<relpath>``, never downloaded) and
    carries what torchvision's entries do besides: the input normalisation it expects, its training recipe and
    its measured metrics."""

    relpath: str
    sha256: str | None
    base_url: str = AUTHORS_BASE_URL
    license: str = "Apache-2.0"  #: the terms the weights are used under
    packaged: bool = False
    normalization: str = ""  #: the input normalisation the weights expect ("torch" or "tf"; "" = the variant's)
    recipe: str = ""  #: how they were made (data, teacher, schedule; the model card has the command)
    metrics: dict[str, float] = field(default_factory=dict, hash=False, compare=False)  #: measured, model card

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.relpath}"


@dataclass(frozen=True)
class Variant:
    """Everything that defines one EfficientPose variant, plus how to feed it and where its weights are."""

    name: str  #: CLI / API name, e.g. "rt-lite"
    title: str  #: the paper's name, e.g. "RT Lite"
    input_size: int
    backbone: BackboneSpec  #: high-resolution feature extractor (stride 8)
    low_res: BackboneSpec | None  #: low-resolution path fed the 2x2-average-pooled input (I-IV)
    blocks_per_pass: int
    lite: bool  #: ReLU6, no SE in the detection blocks, no side heads in the published files
    files: tuple[WeightFile, ...]  #: preferred first (fp32 .h5 before fp16 .tflite)
    published: dict[str, float] = field(default_factory=dict)  #: authors' reported MPII val metrics
    keypoints: tuple[str, ...] = KEYPOINTS
    named: dict[str, WeightFile] = field(default_factory=dict)  #: other weights by name (``weights="lsp"``)

    @property
    def width(self) -> int:
        """W, the width of every detection block: the backbone's output channels."""
        return self.backbone.out_channels

    @property
    def normalization(self) -> Normalization:
        """The input normalisation the weights expect: Keras 'tf' mode ([-1, 1]) for Lite, 'torch' (ImageNet)."""
        return normalization_for(self.lite)

    @property
    def act(self) -> str:
        return "relu6" if self.lite else "eswish"

    @property
    def side_heads(self) -> bool:
        """Whether the published model has the intermediate PAF and heatmap heads."""
        return not self.lite


def _b(name: str, stem: int, *stages: tuple[int, int, int, int, int], low_res: bool = False) -> BackboneSpec:
    return BackboneSpec(name, stem, tuple(StageSpec(*s) for s in stages), last_residual=not low_res)


def _lite(name: str, *stages: tuple[int, int, int, int, int]) -> BackboneSpec:
    return BackboneSpec(name, 32, tuple(StageSpec(*s) for s in stages), act="relu6", se=False, keras_momentum=0.9)


# Stage tuples: (channels, repeats, expand, kernel, first stride); architecture.md §3.2-3.3.
_B0_LOW = _b("efficientnet-b0", 32, (16, 1, 1, 3, 1), (24, 2, 6, 3, 2), low_res=True)


def _files(stem: str, h5: str | None, tflite: str | None) -> tuple[WeightFile, ...]:
    return WeightFile(f"keras/{stem}.h5", h5), WeightFile(f"tflite/{stem}.tflite", tflite)


#: Our RT for LSP-style sports images (issue 18, docs/weights.md), fp16 in the package. Its sha256 and metrics are
#: pinned by ``python -m efficientpose.train.ship RUN_DIR``, which wrote the file and measured it.
RT_LSP = WeightFile(
    "rt-lsp.safetensors",
    sha256="2f61ad18eff53f5bd85b3951eb73622420132b6af698ed66514c0e5a2645b1c1",
    base_url="",
    license="research use only: trained on LSP and LSP-extended, whose terms allow research use only; these "
            "weights inherit that restriction (unlike the authors' Apache-2.0 weights)",
    packaged=True,
    normalization="torch",
    recipe="the authors' RT fine-tuned on LSP-extended + LSP im0001-0500 (configs/rt-lsp.toml), unlabelled "
           "joints, thorax and pelvis filled by the authors' II where its score >= 0.5, EMA weights chosen on "
           "LSP im0501-1000 (lsp split train-b)",
    metrics={"step": 20000, "lsp/train-b PCK@0.2": 86.56, "lsp/train-b PCK@0.1": 70.79},
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            name="rt", title="RT", input_size=224, blocks_per_pass=1, lite=False,
            backbone=_b("efficientnet-b0", 32, (16, 1, 1, 3, 1), (24, 2, 6, 3, 2), (40, 2, 6, 5, 2)), low_res=None,
            files=_files("EfficientPoseRT", "508943cfdeb1d102d69aff4280b805c023585b0d9ae530344fb4c4fad3a175f1",
                         "baf3da751c55517b7072a13f37ad5ce89d2dee813a7f0038ce90a7c8776d63b7"),
            published={"pckh50": 82.9, "pckh10": 23.6}, named={"lsp": RT_LSP},
        ),
        Variant(
            name="i", title="I", input_size=256, blocks_per_pass=1, lite=False,
            backbone=_b("efficientnet-b2", 32, (16, 2, 1, 3, 1), (24, 3, 6, 3, 2), (48, 3, 6, 5, 2)), low_res=_B0_LOW,
            files=_files("EfficientPoseI", "003aea100c30c68103fb4c383fb8782f78adbea7a45451af85334327b79fc5bd",
                         "fc5aac01a3b10b00f110acf862ff241cfa687f66a54ed022784c946218d5d54b"),
            published={"pckh50": 85.2, "pckh10": 26.5},
        ),
        Variant(
            name="ii", title="II", input_size=368, blocks_per_pass=2, lite=False,
            backbone=_b("efficientnet-b4", 48, (24, 2, 1, 3, 1), (32, 4, 6, 3, 2), (56, 4, 6, 5, 2)), low_res=_B0_LOW,
            files=_files("EfficientPoseII", None, "0659b687e8c0d33f63855c2b196d355b317490a586275609e20787861a305ac3"),
            published={"pckh50": 88.2, "pckh10": 30.2},
        ),
        Variant(
            name="iii", title="III", input_size=480, blocks_per_pass=3, lite=False,
            backbone=_b("efficientnet-b5", 48, (24, 3, 1, 3, 1), (40, 5, 6, 3, 2), (64, 5, 6, 5, 2)),
            low_res=_b("efficientnet-b1", 32, (16, 2, 1, 3, 1), (24, 3, 6, 3, 2), low_res=True),
            files=_files("EfficientPoseIII", None, None),
            published={"pckh50": 89.5, "pckh10": 30.9},
        ),
        Variant(
            name="iv", title="IV", input_size=600, blocks_per_pass=4, lite=False,
            backbone=_b("efficientnet-b7", 64, (32, 4, 1, 3, 1), (48, 7, 6, 3, 2), (80, 7, 6, 5, 2)),
            low_res=_b("efficientnet-b3", 40, (24, 2, 1, 3, 1), (32, 3, 6, 3, 2), low_res=True),
            files=_files("EfficientPoseIV", None, None),
            published={"pckh50": 89.8, "pckh10": 35.6},
        ),
        Variant(
            name="rt-lite", title="RT Lite", input_size=224, blocks_per_pass=1, lite=True,
            backbone=_lite("efficientnet-lite0", (16, 1, 1, 3, 1), (24, 2, 6, 3, 2), (40, 2, 6, 5, 2)), low_res=None,
            files=_files("EfficientPoseRT_LITE", "ce0c91259b075180177d070d0be1e71ff8695d7c123745efb950743aa90699ae",
                         "43c2257e6837c5b7a82e0ecef4bf44d9927952dad0fb473a8d536c545d6d8b56"),
            published={"pckh50": 80.6, "pckh10": 23.1},
        ),
        Variant(
            name="i-lite", title="I Lite", input_size=256, blocks_per_pass=1, lite=True,
            backbone=_lite("efficientnet-lite2", (16, 1, 1, 3, 1), (24, 3, 6, 3, 2), (48, 3, 6, 5, 2)), low_res=None,
            files=_files("EfficientPoseI_LITE", "3eb6eb2a595e47d3104590e6484533d64534e4b994397a9dd2bd3e5a11430516",
                         "95ae3a739cdb2115e9da5402947db957d7bffd8933c0e8fb42aaae6a772a3f10"),
            published={"pckh50": 83.7, "pckh10": 27.7},
        ),
        Variant(
            name="ii-lite", title="II Lite", input_size=368, blocks_per_pass=2, lite=True,
            backbone=_lite("efficientnet-lite4", (24, 1, 1, 3, 1), (32, 4, 6, 3, 2), (56, 4, 6, 5, 2)), low_res=None,
            files=_files("EfficientPoseII_LITE", None,
                         "e0d23ecf1f689e9394a2f3768d5e9aebc8457c5e88ef418fea35fe727f5c92cc"),
        ),
    )
}

#: The paper's baseline as the authors report it (MPII val), for the comparison table.
OPENPOSE_PUBLISHED = {"params": 25.94e6, "flops": 160.36e9, "pckh50": 87.6, "pckh10": 22.8, "input_size": 368}


def get_variant(name: str) -> Variant:
    """Look a variant up by name, case-insensitively ('RT_LITE', 'rt lite' and 'rt-lite' all work)."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key.startswith("efficientpose"):
        key = key[len("efficientpose"):].lstrip("-")
    if key not in VARIANTS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(VARIANTS)}")
    return VARIANTS[key]
