"""int8 post-training quantisation of the pose network with NNCF for OpenVINO, calibrated on real person photos
as the estimator sees them (whole images, letterboxed and normalised), and the cache of quantised models.

A quantised model is cached beside the fp32 export as OpenVINO IR, keyed by the weights (the export's
identity), the calibration set (a digest of its files) and the quantiser (NNCF's version and our recipe).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from efficientpose.errors import EfficientPoseError, UsageError
from efficientpose.io.atomic import atomic_write_text
from efficientpose.weights.files import sha256

if TYPE_CHECKING:
    from efficientpose.models.efficientpose import EfficientPose
    from efficientpose.models.variants import Variant

log = logging.getLogger(__name__)

#: Our part of the quantiser's version: bump it whenever the recipe below changes (it keys the cache).
RECIPE = "r2"
#: Kept in floating point, by measurement (README, "Reduced precision"): the swish and E-swish activations' own
#: multiplications and sigmoids (quantising their inputs cost RT 1.8 / 1.6 points of PCK@0.2 / @0.1 and split
#: every convolution from its activation) and the depthwise convolutions (OpenVINO runs them in fp32 on these CPUs
#: anyway, so their quantisers only added error and layout conversions).
IGNORED_PATTERNS = (".*/act/.*", ".*/act_1/.*")
IGNORED_TYPES = ("GroupConvolution",)
#: Kept in floating point per variant: the operations NNCF's accuracy control (``quantize_with_accuracy_control``)
#: reverted for RT, measured without labels as the int8 keypoints' agreement with fp32's on the calibration photos
#: (README, "Reduced precision"): the first 1x1 convolution of each pass block, the stem, two squeeze-excitations
#: and two expansions of the backbone. They take RT from -1.39 / -2.23 to -0.11 / +0.83 points of PCK@0.2 / @0.1.
IGNORED_NAMES: dict[str, tuple[str, ...]] = {"rt": (
    *(f"/{p}/blocks.0/mbconv{i}/conv1/Conv/WithoutBiases" for p in ("skeleton", "detection1") for i in (1, 2, 3)),
    "/detection2/blocks.0/mbconv1/conv1/Conv/WithoutBiases",
    "/res1/stem/conv/Conv/WithoutBiases",
    "/res1/stages/stages.0/stages.0.0/se/ReduceMean", "/res1/stages/stages.0/stages.0.0/se/Mul",
    "/res1/stages/stages.0/stages.0.0/se/expand/Conv/WithoutBiases",
    "/res1/stages/stages.1/stages.1.0/expand_conv/Conv/WithoutBiases",
    "/res1/stages/stages.2/stages.2.1/Add", "/res1/stages/stages.2/stages.2.1/expand_conv/Conv/WithoutBiases",
    "/res1/stages/stages.2/stages.2.1/se/ReduceMean", "/res1/stages/stages.2/stages.2.1/se/Mul",
    "/res1/stages/stages.2/stages.2.1/se/reduce/Conv/WithoutBiases",
)}
#: Calibration images used (evenly spaced over the folder's sorted images): NNCF's default subset size.
CALIBRATION_SIZE = 300
#: A folder of person photos to calibrate on when none is passed (LSP-extended's images are what we measured).
CALIBRATION_ENV = "EFFICIENTPOSE_CALIBRATION_DIR"


@dataclass(frozen=True)
class QuantizedModel:
    """A cached int8 model (OpenVINO IR, ``.xml`` with its ``.bin``) and what running it needs besides the file."""

    path: Path
    variant: str
    keypoints: tuple[str, ...]


def quantiser_version() -> str:
    """NNCF's version and our recipe's, e.g. ``nncf3.4.0-r1-vnni``; a UsageError names the extra when NNCF is
    missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"nncf{version('nncf')}-{RECIPE}-{'vnni' if has_vnni() else 'novnni'}"
    except PackageNotFoundError:
        raise UsageError("--precision int8 quantises with NNCF, which is not installed: "
                         "pip install 'efficientpose[int8]'") from None


def has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX): without them 8-bit
    weights can overflow in OpenVINO's int8 kernels, so NNCF's overflow fix (7-bit first layer) stays on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in text for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def calibration_folder(calibration: str | os.PathLike | None) -> Path | None:
    """The calibration folder: the one given, else ``$EFFICIENTPOSE_CALIBRATION_DIR``, else None."""
    folder = calibration if calibration is not None else os.environ.get(CALIBRATION_ENV) or None
    return None if folder is None else Path(folder)


def calibration_files(folder: Path, limit: int = CALIBRATION_SIZE) -> list[Path]:
    """Up to ``limit`` images of ``folder`` (walked recursively), evenly spaced over its sorted list."""
    from efficientpose.io.inputs import expand_inputs

    if not folder.is_dir():
        raise UsageError(f"{folder}: the calibration folder does not exist")
    files = sorted(item.path for item in expand_inputs([folder]).items if item.kind == "image")
    if not files:
        raise UsageError(f"{folder}: no images to calibrate on")
    if len(files) > limit:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, limit).round()]
    return files


def calibration_digest(files: list[Path]) -> str:
    """A digest of the calibration set: the contents of its files, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(bytes.fromhex(sha256(path)))
    return digest.hexdigest()


def _paths(cache: Path, identity: str, digest: str) -> tuple[Path, Path]:
    stem = f"{identity}-int8-{digest[:16]}-{quantiser_version()}"
    return cache / f"{stem}.xml", cache / f"{stem}.json"


def _read(xml: Path, info: Path) -> QuantizedModel | None:
    try:
        meta = json.loads(info.read_text())
        entry = QuantizedModel(xml, str(meta["variant"]), tuple(str(k) for k in meta["keypoints"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry if xml.is_file() and xml.with_suffix(".bin").is_file() else None


def cached_int8(cache: Path, identity: str, calibration: str | os.PathLike | None = None) -> QuantizedModel | None:
    """The cached int8 model of the weights ``identity`` calibrated on ``calibration`` (the folder or its
    environment default); with neither, the newest one cached for these weights by this quantiser. None if absent."""
    folder = calibration_folder(calibration)
    if folder is not None:
        return _read(*_paths(cache, identity, calibration_digest(calibration_files(folder))))
    version = quantiser_version()
    infos = sorted(cache.glob(f"{identity}-int8-*-{version}.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((e for info in infos if (e := _read(info.with_suffix(".xml"), info)) is not None), None)


def int8_for(model: EfficientPose, cache: Path, identity: str,
             calibration: str | os.PathLike | None = None) -> QuantizedModel:
    """The int8 model of ``model`` (cache identity ``identity``) calibrated on ``calibration``: quantised on first
    use from the cached fp32 export, then reopened from the cache."""
    from efficientpose.inference.runtime.cache import export_for

    folder = calibration_folder(calibration)
    if folder is None:
        found = cached_int8(cache, identity)
        if found is not None:
            return found
        raise UsageError(f"--precision int8 calibrates once on real photos of people: pass --calibration DIR "
                         f"(e.g. LSP-extended's images) or set {CALIBRATION_ENV}; the int8 model is then cached")
    files = calibration_files(folder)
    xml, info = _paths(cache, identity, calibration_digest(files))
    entry = _read(xml, info)
    if entry is None:
        quantize(export_for(model, cache, identity).onnx, files, model.variant, xml)
        entry = QuantizedModel(xml, model.variant.name, tuple(model.keypoints))
        atomic_write_text(info, json.dumps({"variant": entry.variant, "keypoints": list(entry.keypoints),
                                            "calibration": [str(p) for p in files]}))
    return entry


def calibration_inputs(files: list[Path], variant: Variant) -> list[np.ndarray]:
    """Each calibration image as the estimator feeds it: letterboxed, normalised, (1, 3, R, R); unreadable
    files are skipped with one line each."""
    from efficientpose.codec.geometry import letterbox
    from efficientpose.codec.normalize import to_input
    from efficientpose.io.images import read_image

    norm = variant.normalization
    inputs = []
    for path in files:
        try:
            inputs.append(to_input(letterbox(read_image(path), variant.input_size)[0][None], norm))
        except EfficientPoseError as exc:
            log.warning("calibration: skipping %s", exc)
    if not inputs:
        raise UsageError(f"{files[0].parent}: no readable images to calibrate on")
    return inputs


def quantize(onnx: Path, files: list[Path], variant: Variant, output: Path) -> Path:
    """Quantise the fp32 export ``onnx`` to int8 with NNCF (the recipe below), calibrated on ``files``, and save it
    as OpenVINO IR at ``output`` (``.xml`` and ``.bin``, both renamed into place)."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    log.warning("quantising %s to int8 on %d calibration images (once; the result is cached)", variant.name,
                len(files))
    inputs = calibration_inputs(files, variant)
    nncf.set_log_level(logging.WARNING)  # not NNCF's per-node notes about the ignored scope
    overflow = OverflowFix.DISABLE if has_vnni() else OverflowFix.FIRST_LAYER
    quantized = nncf.quantize(ov.Core().read_model(str(onnx)), nncf.Dataset(inputs),
                              preset=nncf.QuantizationPreset.MIXED, subset_size=len(inputs),
                              fast_bias_correction=True,
                              ignored_scope=nncf.IgnoredScope(names=list(IGNORED_NAMES.get(variant.name, ())),
                                                              patterns=list(IGNORED_PATTERNS),
                                                              types=list(IGNORED_TYPES), validate=False),
                              advanced_parameters=AdvancedQuantizationParameters(overflow_fix=overflow))
    # The layers left in floating point run in fp32, not in the CPU's default bf16.
    quantized.set_rt_info("f32", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    from efficientpose.inference.runtime.export import save_ir

    return save_ir(quantized, output)
