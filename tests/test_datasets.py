"""Dataset readers against the raw annotation files in ../shared, read independently here."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from efficientpose.data.coco import coco_splits, read_coco
from efficientpose.data.lsp import read_lsp, read_lspet
from efficientpose.data.mpii import read_mpii, read_mpii_h5, read_mpii_release
from efficientpose.data.registry import open_dataset
from efficientpose.errors import DatasetError, UsageError
from efficientpose.skeleton import COCO_KEYPOINTS, LSP_KEYPOINTS, MPII_DATASET_ORDER


def one_line(info: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


# ---------------------------------------------------------------- MPII (valid.h5)

@pytest.fixture(scope="module")
def mpii_valid(data_dir: Path) -> list:
    return read_mpii(data_dir / "mpii", "valid", require_images=False)


def test_mpii_valid_h5_matches_the_raw_file(data_dir: Path, mpii_valid: list) -> None:
    with h5py.File(data_dir / "mpii/annot/valid.h5", "r") as f:
        part, vis, head, center = f["part"][()], f["visible"][()], f["normalize"][()], f["center"][()]
    names = (data_dir / "mpii/annot/valid_images.txt").read_text().split()
    assert len(mpii_valid) == 2958 == len(names)
    joints = np.stack([s.joints for s in mpii_valid])
    annotated = np.stack([s.annotated for s in mpii_valid])
    visible = np.stack([s.visible for s in mpii_valid])
    missing = (part[..., 0] == 0) & (part[..., 1] == 0)
    np.testing.assert_array_equal(annotated, ~missing)
    assert annotated.sum() == 2958 * 16 - 3088
    # MATLAB 1-based pixel k has its centre at k, which is k - 0.5 with the top-left corner at 0.
    np.testing.assert_allclose(joints[annotated], part[annotated] - 0.5)
    assert np.isnan(joints[~annotated]).all()
    np.testing.assert_array_equal(visible, ~missing & (vis == 1))
    np.testing.assert_allclose([s.norm_size for s in mpii_valid], head)
    np.testing.assert_allclose(np.stack([s.center for s in mpii_valid]), center - 0.5)
    assert [s.image.name for s in mpii_valid] == names
    assert all(s.image.parent == data_dir / "mpii/images" for s in mpii_valid)
    assert all(s.keypoints == MPII_DATASET_ORDER for s in mpii_valid)
    assert len({s.id for s in mpii_valid}) == 2958


def test_mpii_agrees_with_the_independent_mmpose_conversion(data_dir: Path, mpii_valid: list) -> None:
    """mmpose's copy of the first persons keeps MATLAB coordinates; head/neck were refined there, so skip them."""
    records = json.loads((data_dir / "mpii/annot/mmpose_test_mpii.json").read_text())
    by_name = {}
    for s in mpii_valid:
        by_name.setdefault(s.image.name, s)
    body = [i for i, name in enumerate(MPII_DATASET_ORDER) if name not in ("upper_neck", "head_top")]
    for record in records:
        sample = by_name[record["image"]]
        assert sample.image.is_file()  # these five images are present
        ref = np.asarray(record["joints"])  # (-1, -1) where unannotated; joints_vis = annotated
        np.testing.assert_array_equal(sample.annotated, np.asarray(record["joints_vis"]) > 0)
        keep = [i for i in body if sample.annotated[i]]
        np.testing.assert_allclose(sample.joints[keep] + 0.5, ref[keep])


def test_mpii_requires_images_by_default(data_dir: Path) -> None:
    names = set((data_dir / "mpii/annot/valid_images.txt").read_text().split())
    present = {p.name for p in (data_dir / "mpii/images").iterdir()}
    with pytest.raises(DatasetError) as info:
        read_mpii(data_dir / "mpii", "valid")
    one_line(info, "valid.h5", f"{len(names - present)} of {len(names)} images missing", "require_images=False")


def _write_h5(path: Path, n: int = 3, **override: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    fields = {
        "imgname": np.array([f"{i:09d}.jpg".encode() for i in range(n)]),
        "part": rng.uniform(1, 500, (n, 16, 2)), "visible": np.ones((n, 16)),
        "normalize": np.full(n, 40.0), "center": rng.uniform(100, 400, (n, 2)), "scale": np.full(n, 2.0),
        "person": np.zeros(n), "index": np.arange(n, dtype=float),
    }
    fields.update(override)
    with h5py.File(path, "w") as f:
        for key, value in fields.items():
            if value is not None:
                f[key] = value


@pytest.mark.parametrize("case, needle", [
    ("text", "not a readable HDF5"), ("truncated", "not a readable HDF5"), ("no_normalize", "normalize"),
    ("bad_part", "'part'"), ("zero_head", "head size"), ("absent", "not found"),
])
def test_mpii_h5_malformed_files_are_one_line_dataset_errors(tmp_path: Path, data_dir: Path, case: str,
                                                             needle: str) -> None:
    path = tmp_path / "valid.h5"
    if case == "text":
        path.write_text("imgname,part\n")
    elif case == "truncated":
        path.write_bytes((data_dir / "mpii/annot/valid.h5").read_bytes()[:5000])
    elif case == "no_normalize":
        _write_h5(path, normalize=None)
    elif case == "bad_part":
        _write_h5(path, part=np.ones((3, 14, 2)))
    elif case == "zero_head":
        _write_h5(path, normalize=np.array([40.0, 0.0, 40.0]))
    with pytest.raises(DatasetError) as info:
        read_mpii_h5(path, tmp_path / "images", require_images=False)
    one_line(info, str(path), needle)


def test_mpii_unknown_split_is_a_usage_error(data_dir: Path) -> None:
    with pytest.raises(UsageError) as info:
        read_mpii(data_dir / "mpii", "test")
    one_line(info, "valid", "release")


# ---------------------------------------------------------------- MPII (official release .mat, synthetic)

def _struct_array(records: list[dict]) -> np.ndarray:
    names = list(dict.fromkeys(k for r in records for k in r))
    array = np.zeros((1, len(records)), dtype=[(n, object) for n in names])
    for i, record in enumerate(records):
        for n in names:
            array[0, i][n] = record.get(n, np.zeros((0, 0)))
    return array


def _point(jid: int, x: float, y: float, vis: object) -> dict:
    return {"id": jid, "x": x, "y": y, "is_visible": vis}


def _write_release(path: Path) -> None:
    """Three images in the official RELEASE layout: two training (one with two people), one test."""
    rect_a = {"x1": 10.0, "y1": 20.0, "x2": 40.0, "y2": 60.0, "scale": 1.5, "objpos": {"x": 101.0, "y": 201.0},
              "annopoints": {"point": _struct_array([_point(0, 11.0, 21.0, 1), _point(9, 31.0, 41.0, "0"),
                                                     _point(15, 51.0, 61.0, np.zeros((0, 0)))])}}
    rect_b = {"x1": 0.0, "y1": 0.0, "x2": 3.0, "y2": 4.0, "scale": 1.0, "objpos": {"x": 5.0, "y": 6.0},
              "annopoints": {"point": _struct_array([_point(6, 2.0, 3.0, "1")])}}
    rect_unannotated = {"x1": 0.0, "y1": 0.0, "x2": 3.0, "y2": 4.0, "scale": 1.0, "objpos": {"x": 5.0, "y": 6.0}}
    rect_test = {"scale": 2.0, "objpos": {"x": 50.0, "y": 60.0}}
    annolist = _struct_array([
        {"image": {"name": "a.jpg"}, "annorect": _struct_array([rect_a, rect_b])},
        {"image": {"name": "b.jpg"}, "annorect": _struct_array([rect_unannotated])},
        {"image": {"name": "c.jpg"}, "annorect": _struct_array([rect_test])},
    ])
    single = np.empty((3, 1), dtype=object)
    single[0, 0], single[1, 0], single[2, 0] = np.array([[2]]), np.zeros((0, 0)), np.array([[1]])
    release = {"annolist": annolist, "img_train": np.array([[1, 1, 0]]), "single_person": single,
               "version": "12"}
    scipy.io.savemat(path, {"RELEASE": release})


def test_mpii_release_mat_reader(tmp_path: Path) -> None:
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    _write_release(path)
    samples = read_mpii_release(path, tmp_path / "images", require_images=False)
    assert [s.id for s in samples] == ["a.jpg#0", "a.jpg#1"]  # b's person has no joints, c is a test image
    a = samples[0]
    assert a.image == tmp_path / "images/a.jpg" and a.keypoints == MPII_DATASET_ORDER
    assert a.norm_size == pytest.approx(0.6 * 50.0)  # head box 30 x 40 -> diagonal 50
    np.testing.assert_array_equal(np.flatnonzero(a.annotated), [0, 9, 15])
    np.testing.assert_allclose(a.joints[[0, 9, 15]], [[10.5, 20.5], [30.5, 40.5], [50.5, 60.5]])
    assert np.isnan(a.joints[~a.annotated]).all()
    np.testing.assert_array_equal(a.visible[[0, 9, 15]], [True, False, True])  # empty is_visible: not marked
    np.testing.assert_allclose(a.center, [100.5, 200.5])
    assert a.scale == 1.5 and samples[1].norm_size == pytest.approx(3.0)
    only = read_mpii_release(path, tmp_path / "images", single_person=True, require_images=False)
    assert [s.id for s in only] == ["a.jpg#1"]
    with pytest.raises(DatasetError) as info:
        read_mpii_release(path, tmp_path / "images")
    one_line(info, "1 of 1 images missing", "a.jpg")


def test_mpii_single_person_subset_of_an_h5_split_uses_the_release(tmp_path: Path) -> None:
    (tmp_path / "annot").mkdir()
    names = np.array([b"a.jpg", b"a.jpg", b"b.jpg"])
    _write_h5(tmp_path / "annot/valid.h5", imgname=names, person=np.array([0.0, 1.0, 0.0]))
    with pytest.raises(DatasetError) as info:
        read_mpii(tmp_path, "valid", single_person=True, require_images=False)
    one_line(info, "mpii_human_pose_v1_u12_1.mat")
    _write_release(tmp_path / "annot/mpii_human_pose_v1_u12_1.mat")
    assert len(read_mpii(tmp_path, "valid", require_images=False)) == 3
    only = read_mpii(tmp_path, "valid", single_person=True, require_images=False)
    assert [s.id for s in only] == ["a.jpg#1"]
    release = read_mpii(tmp_path, "release", require_images=False)
    assert len(release) == 2


@pytest.mark.parametrize("content", [b"not a mat file", b"MATLAB 5.0 MAT-file" + b"\0" * 200, None])
def test_mpii_release_malformed(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "release.mat"
    if content is None:
        scipy.io.savemat(path, {"annolist": np.zeros(3)})  # no RELEASE struct
    else:
        path.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        read_mpii_release(path, tmp_path, require_images=False)
    one_line(info, str(path))


# ---------------------------------------------------------------- LSP

@pytest.fixture(scope="module")
def lsp_raw(data_dir: Path) -> np.ndarray:
    return scipy.io.loadmat(data_dir / "lsp/joints.mat")["joints"]  # (3, 14, 2000)


def test_lsp_train_split(data_dir: Path, lsp_raw: np.ndarray) -> None:
    samples = read_lsp(data_dir / "lsp", "train")
    assert len(samples) == 1000
    assert [s.image.name for s in samples[:2]] == ["im0001.jpg", "im0002.jpg"]
    assert samples[-1].image.name == "im1000.jpg" and all(s.image.is_file() for s in samples)
    joints = np.stack([s.joints for s in samples])
    np.testing.assert_allclose(joints, lsp_raw[:2, :, :1000].transpose(2, 1, 0) - 0.5)
    visible = np.stack([s.visible for s in samples])
    np.testing.assert_array_equal(visible, lsp_raw[2, :, :1000].T == 0)  # flag 1 = occluded
    assert all(s.annotated.all() and s.keypoints == LSP_KEYPOINTS for s in samples)
    # Torso = |left shoulder - right hip| (README order: index 9 L shoulder, 2 R hip), as the official code.
    torso = np.hypot(*(lsp_raw[:2, 9, :1000] - lsp_raw[:2, 2, :1000]))
    np.testing.assert_allclose([s.norm_size for s in samples], torso)


def test_lsp_train_halves_split_the_training_half(data_dir: Path) -> None:
    train = read_lsp(data_dir / "lsp", "train")
    a, b = read_lsp(data_dir / "lsp", "train-a"), read_lsp(data_dir / "lsp", "train-b")
    assert [s.image.name for s in (a[0], a[-1], b[0], b[-1])] == ["im0001.jpg", "im0500.jpg", "im0501.jpg",
                                                                  "im1000.jpg"]
    assert [s.id for s in a + b] == [s.id for s in train]
    np.testing.assert_array_equal(np.stack([s.joints for s in a + b]), np.stack([s.joints for s in train]))


def test_lsp_missing_test_images_are_named(data_dir: Path, lsp_raw: np.ndarray) -> None:
    with pytest.raises(DatasetError) as info:
        read_lsp(data_dir / "lsp", "test")
    one_line(info, "joints.mat", "1000 of 1000 images missing", "im1001.jpg")
    test = read_lsp(data_dir / "lsp", "test", require_images=False)
    assert [s.id for s in test[:1] + test[-1:]] == ["im1001", "im2000"]
    np.testing.assert_allclose(test[0].joints, lsp_raw[:2, :, 1000].T - 0.5)
    assert len(read_lsp(data_dir / "lsp", "all", require_images=False)) == 2000
    with pytest.raises(DatasetError):
        read_lsp(data_dir / "lsp", "all")  # never a silent subset
    with pytest.raises(UsageError):
        read_lsp(data_dir / "lsp", "val")


@pytest.mark.parametrize("case, needle", [
    ("shape", "expected (3, 14, 2000)"), ("key", "no 'joints'"), ("text", "not a readable MATLAB"),
    ("truncated", "not a readable MATLAB"), ("absent", "not found"),
])
def test_lsp_malformed_joints_mat(tmp_path: Path, data_dir: Path, case: str, needle: str) -> None:
    path = tmp_path / "joints.mat"
    if case == "shape":
        scipy.io.savemat(path, {"joints": np.zeros((14, 3, 2000))})
    elif case == "key":
        scipy.io.savemat(path, {"points": np.zeros((3, 14, 2000))})
    elif case == "text":
        path.write_text("joints = [1 2 3]")
    elif case == "truncated":
        path.write_bytes((data_dir / "lsp/joints.mat").read_bytes()[:3000])
    with pytest.raises(DatasetError) as info:
        read_lsp(tmp_path, "train", require_images=False)
    one_line(info, str(path), needle)


# ---------------------------------------------------------------- LSP-extended

def test_lspet_masks_unannotated_joints_and_falls_back_on_the_other_torso_diagonal(data_dir: Path) -> None:
    raw = scipy.io.loadmat(data_dir / "lspet/joints.mat")["joints"]  # (14, 3, 10000), flag 1 = visible
    samples = read_lspet(data_dir / "lspet")  # checks that all 10,000 image files exist (none is decoded)
    assert len(samples) == 10000 and samples[-1].image.name == "im10000.jpg"
    for i in (0, 4999, 9999):
        assert samples[i].image.is_file()
    flag = raw[:, 2].T == 1
    annotated = np.stack([s.annotated for s in samples])
    np.testing.assert_array_equal(annotated, flag)
    np.testing.assert_array_equal(np.stack([s.visible for s in samples]), flag)
    joints = np.stack([s.joints for s in samples])
    np.testing.assert_allclose(joints[flag], raw[:, :2].transpose(2, 0, 1)[flag] - 0.5)
    assert np.isnan(joints[~flag]).all()
    # torso: L shoulder (9) - R hip (2) if both annotated, else R shoulder (8) - L hip (3), else undefined
    xy = raw[:, :2]
    first, second = flag[:, 9] & flag[:, 2], flag[:, 8] & flag[:, 3]
    expected = np.where(first, np.hypot(*(xy[9] - xy[2])), np.where(second, np.hypot(*(xy[8] - xy[3])), np.nan))
    norm = np.array([s.norm_size for s in samples])
    np.testing.assert_allclose(norm, expected)
    assert (first.sum(), (~first & second).sum(), np.isnan(norm).sum()) == (7179, 1116, 1705)


def test_lspet_rejects_an_lsp_shaped_file(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((3, 14, 2000))})
    with pytest.raises(DatasetError) as info:
        read_lspet(tmp_path, require_images=False)
    one_line(info, "(14, 3, 10000)")


# ---------------------------------------------------------------- COCO

def test_coco_splits_are_the_annotation_files(data_dir: Path) -> None:
    assert coco_splits(data_dir / "coco") == ["mmpose_test_coco", "train2017_mini", "val2017_mini"]
    with pytest.raises(UsageError) as info:
        read_coco(data_dir / "coco", "val2017")
    one_line(info, "val2017_mini")


@pytest.mark.parametrize("split", ["val2017_mini", "train2017_mini", "mmpose_test_coco"])
def test_coco_reader_matches_the_json(data_dir: Path, split: str) -> None:
    name = f"person_keypoints_{split}.json" if "mini" in split else f"{split}.json"
    data = json.loads((data_dir / "coco/annotations" / name).read_text())
    files = {img["id"]: img["file_name"] for img in data["images"]}
    anns = [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    samples = read_coco(data_dir / "coco", split)
    assert len(samples) == len(anns) > 0
    for sample, ann in zip(samples, anns, strict=True):
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        assert sample.keypoints == COCO_KEYPOINTS and sample.image.is_file()
        assert sample.image.name == files[ann["image_id"]] and sample.image.parent.name in ("val2017", "train2017")
        np.testing.assert_array_equal(sample.annotated, kp[:, 2] > 0)
        assert sample.annotated.sum() == ann["num_keypoints"]
        np.testing.assert_array_equal(sample.visible, kp[:, 2] == 2)
        np.testing.assert_array_equal(sample.joints[sample.annotated], kp[kp[:, 2] > 0, :2])  # as given
        x, y, w, h = ann["bbox"]
        np.testing.assert_allclose(sample.box, [x, y, x + w, y + h])
        v = kp[:, 2] > 0  # 5 L shoulder, 12 R hip, 6 R shoulder, 11 L hip
        if v[5] and v[12]:
            assert sample.norm_size == pytest.approx(np.hypot(*(kp[5, :2] - kp[12, :2])))
        elif v[6] and v[11]:
            assert sample.norm_size == pytest.approx(np.hypot(*(kp[6, :2] - kp[11, :2])))
        else:
            assert np.isnan(sample.norm_size)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not a readable JSON"), ('{"images": []}', "'annotations'"), ('[1, 2]', "'images'"),
    ('{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id": 5, "image_id": 1, "iscrowd": 0, '
     '"num_keypoints": 1, "bbox": [0, 0, 1, 1], "keypoints": [1, 2, 2]}]}', "malformed 'keypoints'"),
])
def test_coco_malformed_json(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations/person_keypoints_x.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as info:
        read_coco(tmp_path, "x", require_images=False)
    one_line(info, str(path), needle)


def test_coco_truncated_json(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "annotations").mkdir()
    raw = (data_dir / "coco/annotations/person_keypoints_val2017_mini.json").read_bytes()
    (tmp_path / "annotations/person_keypoints_cut.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError) as info:
        read_coco(tmp_path, "cut")
    one_line(info, "person_keypoints_cut.json")


# ---------------------------------------------------------------- open_dataset

def test_open_dataset_by_name(data_dir: Path) -> None:
    assert len(open_dataset("lsp", data_dir / "lsp", "train")) == 1000
    assert len(open_dataset("coco", data_dir / "coco", "val2017_mini")) == 20
    assert len(open_dataset("mpii", data_dir / "mpii", require_images=False)) == 2958  # default split: valid
    with pytest.raises(UsageError):
        open_dataset("flic", data_dir)
    with pytest.raises(UsageError):
        open_dataset("lsp", data_dir / "lsp", "train", single_person=True)
