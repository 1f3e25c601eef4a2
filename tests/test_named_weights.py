"""Named weights shipped in the package (``weights="lsp"``, issue 18): they resolve offline from the package, their
pinned checksum is verified on every load, a corrupted copy is refused with one line, an existing file of the same
name wins with a warning, and the shipped file scores what the model card says on the validation split."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_cli import run_cli
from PIL import Image
from safetensors.torch import load_file

from efficientpose.errors import WeightsError
from efficientpose.inference.estimator import PoseEstimator
from efficientpose.models.variants import VARIANTS, get_variant
from efficientpose.weights import files
from efficientpose.weights.files import find_weights, packaged_path, sha256
from efficientpose.weights.hub import load_model
from efficientpose.weights.store import read_metadata

RT = get_variant("rt")
LSP = RT.named["lsp"]
CARD = Path(__file__).resolve().parents[1] / "docs" / "weights.md"


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No authors' weights anywhere, an empty cache, and downloads to a closed port: only the package is left."""
    monkeypatch.setenv("EFFICIENTPOSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_DIR", str(tmp_path / "no-weights-here"))
    monkeypatch.setenv("EFFICIENTPOSE_WEIGHTS_URL", "http://127.0.0.1:9/no-network-in-tests")


def test_the_entry_carries_file_checksum_terms_preprocessing_and_metrics() -> None:
    path = packaged_path(LSP)
    assert LSP.packaged and path.is_file()
    assert sha256(path) == LSP.sha256  # the pin matches the file that ships
    assert path.stat().st_size <= 5e6
    assert sum(p.stat().st_size for p in path.parent.glob("*.safetensors")) <= 20e6
    assert "research use only" in LSP.license and "Apache-2.0" in LSP.license
    assert LSP.normalization == RT.normalization.name == "torch"
    meta = read_metadata(path)
    assert meta["variant"] == "rt" and json.loads(meta["keypoints"]) == list(RT.keypoints)
    assert meta["dtype"] == "float16" and "research use only" in meta["license"]
    assert int(meta["step"]) == LSP.metrics["step"]
    assert {"lsp/train-b PCK@0.2", "lsp/train-b PCK@0.1"} <= set(LSP.metrics)


def test_the_model_card_states_the_pinned_figures_and_checksum() -> None:
    block = CARD.read_text(encoding="utf-8").split("<!-- ship:figures")[1].split("<!-- /ship:figures -->")[0]
    assert LSP.sha256 in block and f"step {LSP.metrics['step']} " in block
    for alpha in ("0.2", "0.1"):
        row = next(line for line in block.splitlines() if f"validation), PCK@{alpha} |" in line)
        assert f"**{LSP.metrics[f'lsp/train-b PCK@{alpha}']:.2f}**" in row


def test_named_weights_resolve_offline_from_the_package_as_fp32() -> None:
    source = find_weights(RT.files, explicit="lsp", named=RT.named)
    assert source.origin == "packaged" and source.path == packaged_path(LSP) and source.file is LSP
    model = load_model("rt", weights="lsp")
    state = model.state_dict()
    shipped = load_file(str(packaged_path(LSP)))
    assert all(v.dtype == torch.float16 for v in shipped.values() if v.is_floating_point())
    for key, value in shipped.items():
        assert state[key].dtype == torch.float32
        assert torch.equal(state[key], value.float()), key
    authors_free = [k for k in state if k not in shipped]
    assert all(k.endswith("num_batches_tracked") for k in authors_free)


def test_predict_and_the_command_line_take_the_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    photo = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 255, (240, 180, 3), dtype=np.uint8)).save(photo)
    pose = PoseEstimator("rt", weights="lsp", backend="torch").predict(photo)
    assert pose.xy.shape == (16, 2) and np.isfinite(pose.xy).all()
    code, out, err = run_cli(["predict", str(photo), "--model", "rt", "--weights", "lsp", "--backend", "torch",
                              "--output", str(tmp_path / "out")], capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert "lsp" not in err  # no warning: there is no file called lsp here
    assert saved and all(record["weights"] == "lsp" for record in saved)  # the output says which weights ran
    code, out, err = run_cli(["models"], capsys)
    assert code == 0 and "named: lsp (in the package)" in next(line for line in out.splitlines()
                                                               if line.startswith("rt "))


def test_a_corrupted_copy_is_refused_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "package-data"
    folder.mkdir()
    copy = folder / LSP.relpath
    data = bytearray(packaged_path(LSP).read_bytes())
    data[-1000] ^= 0x01  # one bit of one weight: still a valid safetensors file, only the checksum can tell
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(files, "PACKAGED", folder)
    with pytest.raises(WeightsError, match=r"corrupted packaged weights 'lsp', refused: .*does not match the pinned"):
        load_model("rt", weights="lsp")
    code, out, err = run_cli(["export", "--model", "rt", "--weights", "lsp", "--output", str(tmp_path / "x.onnx")],
                             capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1, err
    assert lines[0].startswith("efficientpose export: error: corrupted packaged weights 'lsp', refused: ")
    assert "does not match the pinned" in lines[0] and lines[0].endswith("; reinstall efficientpose")
    assert not (tmp_path / "x.onnx").exists()
    copy.unlink()
    with pytest.raises(WeightsError, match="missing from this installation; reinstall efficientpose"):
        load_model("rt", weights="lsp")


def test_an_existing_file_of_that_name_wins_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lsp").mkdir()  # a folder is not a weight file: the name still means the packaged weights
    assert find_weights(RT.files, explicit="lsp", named=RT.named).origin == "packaged"
    (tmp_path / "lsp").rmdir()
    shutil.copy(packaged_path(LSP), tmp_path / "lsp")
    with pytest.warns(UserWarning, match=r"lsp: using this file, not the named weights 'lsp'"):
        source = find_weights(RT.files, explicit="lsp", named=RT.named)
    assert source.origin == "explicit" and source.path == Path("lsp")
    with pytest.warns(UserWarning, match="not the named weights"), \
            pytest.raises(WeightsError, match=r"^lsp: unknown weight format"):
        load_model("rt", weights="lsp")  # the file was used (and, without a suffix, is no known format)


def test_names_are_per_variant_and_unknown_names_are_missing_files() -> None:
    assert [name for name, v in VARIANTS.items() if v.named] == ["rt"]
    with pytest.raises(WeightsError, match=r"^lsp: weight file not found \(named weights 'lsp' exist for "
                                           r"EfficientPose RT only\)"):
        load_model("i", weights="lsp")
    with pytest.raises(WeightsError, match=r"^mpii: weight file not found; named weights here: lsp"):
        load_model("rt", weights="mpii")


def test_the_shipped_file_scores_what_the_model_card_says(data_dir: Path) -> None:
    """PCK@0.2 and @0.1 on LSP im0501-1000 (the validation split) with the torch backend on one thread, through the
    evaluation users run, within 0.05 of the figures pinned by the ship command (and shown on the model card)."""
    from efficientpose.data.registry import open_dataset
    from efficientpose.evaluation.evaluate import evaluate
    from efficientpose.evaluation.samples import predict_samples

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        samples = open_dataset("lsp", data_dir / "lsp", "train-b")
        poses = predict_samples(samples, PoseEstimator("rt", weights="lsp", backend="torch"), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert len(samples) == 500
    for alpha in (0.2, 0.1):
        measured = evaluate(samples, poses, alpha=alpha).mean
        assert abs(measured - LSP.metrics[f"lsp/train-b PCK@{alpha}"]) <= 0.05, (alpha, measured)


def test_the_card_block_is_where_the_ship_command_writes() -> None:
    from efficientpose.train.ship import BEGIN, END

    text = CARD.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)
    assert re.search(r"research use only", text, re.I)


def test_the_ship_command_writes_the_same_bytes_for_the_same_weights(tmp_path: Path) -> None:
    """safetensors orders its header by hash; the ship command sorts it, so a re-ship of unchanged weights keeps
    the pinned SHA-256."""
    from safetensors.torch import save

    from efficientpose.train.ship import _canonical

    state = {f"t{i}": torch.full((3,), float(i), dtype=torch.float16) for i in range(20)}
    meta = {f"key{i}": str(i) for i in range(20)}
    blobs = {_canonical(save(state, meta)) for _ in range(5)}
    assert len(blobs) == 1
    (tmp_path / "w.safetensors").write_bytes(blobs.pop())
    assert read_metadata(tmp_path / "w.safetensors") == meta
    assert torch.equal(load_file(str(tmp_path / "w.safetensors"))["t7"], state["t7"])


def test_the_ship_command_pins_the_entry_and_redraws_the_card(tmp_path: Path) -> None:
    """The ship command's bookkeeping on copies: the pin rewrites exactly the entry's sha256 and metrics, the hours
    add up over resumed processes, the curve is a small PNG, and the card's block is replaced, nothing else."""
    from efficientpose.train import ship

    variants = tmp_path / "variants.py"
    source = Path(ship.__file__).resolve().parents[1] / "models" / "variants.py"
    shutil.copy(source, variants)
    ship.pin(variants, LSP, "ab" * 32, {"step": 7, "lsp/train-b PCK@0.2": 1.5, "lsp/train-b PCK@0.1": 0.25})
    old, new = source.read_text().splitlines(), variants.read_text().splitlines()
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        f'sha256="{"ab" * 32}",', 'metrics={"step": 7, "lsp/train-b PCK@0.2": 1.5, "lsp/train-b PCK@0.1": 0.25},']

    log = tmp_path / "log.csv"
    header = "kind,step,epoch,lr,loss,loss_heatmaps,loss_heatmaps_1,loss_heatmaps_2,loss_pafs,grad_norm,val_pck," \
             "val_auc,val_error,best,seconds"
    rows = [f"train,{s},0,1e-4,{0.02 - s * 1e-6},,,,,,,,,,{t}" for s, t in ((10, 60), (20, 1800), (30, 3600))]
    rows += ["val,30,0,,,,,,,,83.5,75,0.18,1,6.5"]  # a validation's seconds are its own duration
    rows += [f"train,{s},0,1e-4,0.015,,,,,,,,,,{t}" for s, t in ((40, 50), (50, 1800))]  # resumed: a new clock
    log.write_text("\n".join([header, *rows]) + "\n")
    steps, hours = ship.run_hours(log)
    assert steps == 50 and hours == pytest.approx(1.5)
    ship.plot_curve(log, tmp_path / "curve.png", 81.2, 30)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "curve.png").stat().st_size < 150_000

    card = tmp_path / "card.md"
    card.write_text(f"# title\n\n{ship.BEGIN}\nold figures\n{ship.END}\n\nafter\n")
    ship.update_card(card, f"{ship.BEGIN}\nnew figures\n{ship.END}")
    assert card.read_text() == f"# title\n\n{ship.BEGIN}\nnew figures\n{ship.END}\n\nafter\n"


def test_the_ship_command_refuses_weights_of_another_model(tmp_path: Path) -> None:
    from efficientpose.errors import UsageError
    from efficientpose.models.efficientpose import EfficientPose
    from efficientpose.train.ship import half_state
    from efficientpose.weights.store import model_metadata, save_weights

    lite = EfficientPose(get_variant("rt-lite"))
    save_weights(tmp_path / "best.safetensors", lite.state_dict(), model_metadata(lite, step="5", val_pck="1"))
    with pytest.raises(UsageError, match="not RT weights"):
        half_state(tmp_path / "best.safetensors", "rt")
    rt = EfficientPose(RT)
    save_weights(tmp_path / "last.safetensors", rt.state_dict(), model_metadata(rt, step="5"))
    with pytest.raises(UsageError, match="no validation step"):
        half_state(tmp_path / "last.safetensors", "rt")
    save_weights(tmp_path / "best.safetensors", rt.state_dict(), model_metadata(rt, step="5", val_pck="1"))
    state, meta = half_state(tmp_path / "best.safetensors", "rt")
    assert meta["step"] == "5" and not any(k.endswith("num_batches_tracked") for k in state)
    assert {v.dtype for v in state.values()} == {torch.float16}


def test_prediction_files_name_other_weights_and_only_them(tmp_path: Path) -> None:
    """``weights`` is written when other weights than the authors' ran, and absent otherwise (default schema)."""
    from efficientpose.io.predictions import ImagePredictionsWriter, VideoPredictionsWriter, read_image_predictions
    from efficientpose.pose import Pose

    pose = Pose(np.tile([10.0, 20.0, 0.5], (16, 1)), image_size=(64, 48))
    for weights in (None, "lsp"):
        out = tmp_path / f"{weights}.json"
        with ImagePredictionsWriter(out, model="rt", weights=weights) as writer:
            writer.add("a.jpg", 64, 48, pose)
        record = json.loads(out.read_text())[0]
        assert record.get("weights") == weights and ("weights" in record) == (weights is not None)
        assert read_image_predictions(out)[0].pose is not None  # the one reader takes both
        video = tmp_path / f"{weights}-video.json"
        with VideoPredictionsWriter(video, file="c.mp4", width=64, height=48, fps=30.0, model="rt",
                                    weights=weights) as writer:
            writer.add(0, 0.0, pose)
        meta = json.loads(video.read_text())
        assert meta.get("weights") == weights and ("weights" in meta) == (weights is not None)
