"""SSL4MIS's preprocessed ACDC (h5 slices and volumes + list files) against a copy written in
SSL4MIS's exact layout from the raw ACDC fixture (tests/fixtures_datasets.py)."""

import json
import math

import h5py
import numpy as np
import pytest

from methods.data import ssl4mis
from methods.data.__main__ import main
from methods.data.cache import CachedDataset
from methods.data.types import DatasetFormatError
from fixtures_datasets import SSL4MIS_PATIENTS, write_acdc_fixture, write_ssl4mis_acdc_fixture

CASE_IDS = ["patient001_ED", "patient001_ES", "patient002_ED", "patient002_ES", "patient101_ED", "patient101_ES"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """(SSL4MIS root, raw ACDC root, expected cases)."""
    base = tmp_path_factory.mktemp("ssl4mis")
    write_acdc_fixture(base / "raw")
    expected = write_ssl4mis_acdc_fixture(base / "ACDC")
    return base / "ACDC", base / "raw", expected


@pytest.fixture
def fresh(tmp_path):
    write_acdc_fixture(tmp_path / "raw")
    write_ssl4mis_acdc_fixture(tmp_path / "ACDC")
    return tmp_path / "ACDC", tmp_path / "raw"


def test_fixture_has_the_ssl4mis_layout(trees):
    root, _, _ = trees
    assert (root / "train_slices.list").read_text().splitlines()[:2] == ["patient001_frame01_slice_1", "patient001_frame01_slice_2"]
    assert (root / "val.list").read_text().split() == ["patient002_frame01", "patient002_frame02"]
    with h5py.File(root / "data/slices/patient001_frame02_slice_3.h5", "r") as f:
        assert sorted(f) == ["image", "label"]
        assert f["image"].dtype == np.float32 and f["image"].shape == (20, 24) and f["image"].compression == "gzip"
        assert f["label"].dtype == np.uint8 and f["label"].shape == (20, 24)
    with h5py.File(root / "data/patient101_frame01.h5", "r") as f:
        assert f["image"].shape == f["label"].shape == (3, 20, 24)  # (Z, H, W): SimpleITK's order


def test_slices_and_volumes_give_the_expected_cases(trees):
    root, _, expected = trees
    assert ssl4mis.list_patients(root) == ["patient001", "patient002", "patient101"]
    cases = list(ssl4mis.iter_cases(root, log=[].append))
    assert [c.case_id for c in cases] == CASE_IDS
    for case in cases:
        want = expected[case.case_id]
        np.testing.assert_array_equal(case.image, want.image)
        np.testing.assert_array_equal(case.label, want.label)
        assert {k: case.meta[k] for k in want.meta} == want.meta
        assert not case.has_spacing and all(math.isnan(s) for s in case.spacing)
    # frame02 is ES: the raw fixture's frame 3, whose LV is the small one
    es = cases[1]
    assert es.meta["ssl4mis_name"] == "patient001_frame02" and int((es.label == 3).sum()) == 12
    assert ssl4mis.patient_meta(root) == {"patient001": {"ssl4mis_split": "train"},
                                          "patient002": {"ssl4mis_split": "val"},
                                          "patient101": {"ssl4mis_split": "test"}}


def test_spacing_from_the_raw_release(trees):
    root, raw, expected = trees
    cases = list(ssl4mis.iter_cases(root, spacing_from=raw, log=[].append))
    for case in cases:
        assert case.spacing == pytest.approx(expected[case.case_id].spacing)
    assert [c.meta["frame"] for c in cases[:2]] == [1, 3]  # frame01 -> raw ED 1, frame02 -> raw ES 3
    assert cases[0].meta["spacing_source"].endswith("patient001_frame01.nii.gz")
    assert ssl4mis.pixel_only_reason(spacing_from=raw) is None
    assert "no voxel size" in ssl4mis.pixel_only_reason()


def test_prepare_builds_the_same_cache_as_the_raw_release(trees, tmp_path, capsys):
    root, raw, _ = trees
    assert main(["prepare", "--dataset", "acdc", "--root", str(raw), "--out", str(tmp_path / "raw_cache")]) == 0
    assert main(["prepare", "--dataset", "ssl4mis_acdc", "--root", str(root), "--spacing-from", str(raw),
                 "--out", str(tmp_path / "h5_cache")]) == 0
    from_raw, from_h5 = CachedDataset(tmp_path / "raw_cache"), CachedDataset(tmp_path / "h5_cache")
    assert from_h5.name == from_raw.name == "acdc" and from_h5.class_names == from_raw.class_names
    assert from_h5.case_ids == from_raw.case_ids and not from_h5.pixel_only
    assert from_h5.reader == {"format": "ssl4mis_acdc", "options": {"spacing_from": str(raw)}}
    for case_id in from_raw.case_ids:
        a, b = from_raw.load(case_id), from_h5.load(case_id)
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.image, b.image, atol=1e-6)  # min-max then clip_minmax = clip_minmax
        assert a.spacing == pytest.approx(b.spacing)


def test_prepare_without_spacing_is_pixel_only(trees, tmp_path, capsys):
    root, _, _ = trees
    assert main(["prepare", "--dataset", "ssl4mis_acdc", "--root", str(root), "--out", str(tmp_path / "px")]) == 0
    out = capsys.readouterr().out
    assert "patient001_ED: 3x20x24 voxels, spacing unknown (pixel-only); labels in 0..3: RV 48, MYO 144, LV 48 voxels" in out
    assert "PIXEL-ONLY: SSL4MIS's h5 files carry no voxel size" in out
    cache = CachedDataset(tmp_path / "px")
    assert cache.pixel_only and "HD95 and ASD in mm are undefined" in cache.pixel_only_reason
    index = json.loads((tmp_path / "px" / "dataset.json").read_text())
    assert index["pixel_only"] is True and index["cases"][0]["spacing"] == [None, None, None]
    assert not cache.load("patient002_ES").has_spacing


def test_minmax_normalisation_keeps_ssl4mis_intensities_bit_for_bit(trees, tmp_path):
    root, _, expected = trees
    out = tmp_path / "minmax"
    assert main(["prepare", "--dataset", "ssl4mis_acdc", "--root", str(root), "--out", str(out),
                 "--normalisation", "minmax"]) == 0
    cache = CachedDataset(out)
    for case_id, want in expected.items():
        np.testing.assert_array_equal(cache.load(case_id).image, want.image)  # exact, not close


def test_zero_based_slice_files_and_raw_frame_names(tmp_path):
    # the repository's script numbers slices from 0; WSL4MIS keeps the raw frame numbers (01, 03)
    write_acdc_fixture(tmp_path / "raw")
    expected = write_ssl4mis_acdc_fixture(tmp_path / "ACDC", slice_base=0, frame_names={"ED": 1, "ES": 3})
    cases = list(ssl4mis.iter_cases(tmp_path / "ACDC", spacing_from=tmp_path / "raw", log=[].append))
    assert [c.case_id for c in cases] == CASE_IDS
    for case in cases:
        np.testing.assert_array_equal(case.label, expected[case.case_id].label)
    assert cases[1].meta["ssl4mis_name"] == "patient001_frame03" and cases[1].meta["frame"] == 3


def test_slice_numbering_with_a_gap_is_refused(fresh):
    root, _ = fresh
    (root / "data/slices/patient001_frame02_slice_2.h5").unlink()
    with pytest.raises(DatasetFormatError, match=r"data/slices: slices of patient001_frame02 are numbered 1\.\.3 with gaps at \[2\]"):
        list(ssl4mis.iter_cases(root, patients=["patient001"], log=[].append))


def test_bad_h5_files_are_named(fresh):
    root, _ = fresh
    path = root / "data/patient002_frame01.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("img", data=np.zeros((3, 20, 24), np.float32))
        f.create_dataset("label", data=np.zeros((3, 20, 24), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"patient002_frame01\.h5: no dataset \['image'\]"):
        list(ssl4mis.iter_cases(root, patients=["patient002"], log=[].append))
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.zeros((3, 20, 24), np.float32))
        f.create_dataset("label", data=np.full((3, 20, 24), 4, np.uint8))
    with pytest.raises(DatasetFormatError, match=r"patient002_frame01\.h5: label values \[4\] are outside"):
        list(ssl4mis.iter_cases(root, patients=["patient002"], log=[].append))
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.zeros((3, 20, 24), np.float32))
        f.create_dataset("label", data=np.zeros((3, 20, 23), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"patient002_frame01\.h5: expected a volume \(Z, H, W\) with image and label of the same shape"):
        list(ssl4mis.iter_cases(root, patients=["patient002"], log=[].append))
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(DatasetFormatError, match=r"patient002_frame01\.h5: not a readable HDF5 file"):
        list(ssl4mis.iter_cases(root, patients=["patient002"], log=[].append))


def test_truncated_slice_file_fails_prepare_and_leaves_nothing(fresh, tmp_path, capsys):
    root, _ = fresh
    path = root / "data/slices/patient001_frame01_slice_2.h5"
    path.write_bytes(path.read_bytes()[:300])
    assert main(["prepare", "--dataset", "ssl4mis_acdc", "--root", str(root), "--out", str(tmp_path / "cache")]) == 2
    assert "patient001_frame01_slice_2.h5: not a readable HDF5 file" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cache")]


def test_volume_and_slices_must_agree(fresh):
    root, _ = fresh
    with h5py.File(root / "data/patient001_frame01.h5", "w") as f:
        f.create_dataset("image", data=np.zeros((4, 20, 24), np.float32))
        f.create_dataset("label", data=np.zeros((4, 20, 24), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"patient001_frame01\.h5: 4 slices, but there are 3 slice files"):
        list(ssl4mis.iter_cases(root, patients=["patient001"], log=[].append))


def test_spacing_from_checks_shape_frames_and_ground_truth(fresh):
    root, raw = fresh
    # frames swapped on disk: frame01 holds the ES frame -> its label is not the raw ED ground truth
    first, second = root / "data/patient002_frame01.h5", root / "data/patient002_frame02.h5"
    first.rename(root / "data/tmp.h5")
    second.rename(first)
    (root / "data/tmp.h5").rename(second)
    with pytest.raises(DatasetFormatError, match=r"patient002_frame01\.h5: label differs from the raw ground truth "
                                                 r".*patient002_frame01_gt\.nii\.gz in \d+ voxels"):
        list(ssl4mis.iter_cases(root, patients=["patient002"], spacing_from=raw, log=[].append))
    # another shape than the raw image
    with h5py.File(first, "w") as f:
        f.create_dataset("image", data=np.zeros((3, 24, 20), np.float32))
        f.create_dataset("label", data=np.zeros((3, 24, 20), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"patient002_frame01\.h5: shape \(Z, H, W\) \(3, 24, 20\) differs from "
                                                 r"the raw frame .*patient002_frame01\.nii\.gz \(3, 20, 24\)"):
        list(ssl4mis.iter_cases(root, patients=["patient002"], spacing_from=raw, log=[].append))
    # a patient the raw root lacks
    with pytest.raises(DatasetFormatError, match=r"no ACDC patient folder for patient101"):
        list(ssl4mis.iter_cases(root, patients=["patient101"], spacing_from=raw / "database" / "training", log=[].append))


def test_lists_must_match_the_files(fresh):
    root, _ = fresh
    (root / "test.list").write_text("patient101_frame01\npatient101_frame02\npatient103_frame01\n")
    with pytest.raises(DatasetFormatError, match=r"test\.list: line 3 names patient103_frame01, which has no h5 file"):
        list(ssl4mis.iter_cases(root, log=[].append))
    (root / "test.list").write_text("patient101_frame01\npatient002_frame02\n")
    with pytest.raises(DatasetFormatError, match=r"test\.list: line 2: patient002 is also in the val list"):
        ssl4mis.patient_meta(root)
    (root / "test.list").write_text("patient101_frame01\npatient101-frame02\n")
    with pytest.raises(DatasetFormatError, match=r"test\.list: line 2 'patient101-frame02' is not a name like patientNNN_frameFF"):
        ssl4mis.patient_meta(root)


def test_slice_list_numbering_mismatch_is_reported_not_fatal(fresh):
    root, _ = fresh
    lines = (root / "train_slices.list").read_text().splitlines()
    (root / "train_slices.list").write_text("\n".join(line.replace("_slice_1", "_slice_0") for line in lines) + "\n")
    notes = []
    cases = list(ssl4mis.iter_cases(root, patients=["patient001"], log=notes.append))
    assert len(cases) == 2
    assert notes == ["train_slices.list names 2 slice(s) that have no slice file (e.g. "
                     "patient001_frame01_slice_0): its numbering does not match the files; volumes are built from the files"]


def test_layout_errors_and_options(tmp_path):
    with pytest.raises(DatasetFormatError, match="root folder not found"):
        ssl4mis.list_patients(tmp_path / "nowhere")
    with pytest.raises(DatasetFormatError, match=r"no data/ folder"):
        ssl4mis.list_patients(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(DatasetFormatError, match=r"no SSL4MIS ACDC h5 files in \[.*data'\]"):
        ssl4mis.list_patients(tmp_path)
    with pytest.raises(TypeError, match="spacing"):
        ssl4mis.class_names(spacing=tmp_path)
    assert ssl4mis.class_names() == ("RV", "MYO", "LV")


def test_patient_with_one_frame_is_refused(fresh):
    root, _ = fresh
    (root / "data/patient002_frame02.h5").unlink()
    (root / "val.list").write_text("patient002_frame01\n")
    with pytest.raises(DatasetFormatError, match=r"patient patient002 has 1 annotated frame\(s\) \['patient002_frame01'\]"):
        ssl4mis.list_patients(root)


# ----------------------------------------------------------------------------------------------
# other people's copies: slices directly in data/, WSL4MIS's folders, stray files


def _slices_into_data(root):
    """The public copy that keeps the slice files directly in data/ (no data/slices/)."""
    for path in sorted((root / "data" / "slices").glob("*.h5")):
        path.rename(root / "data" / path.name)
    (root / "data" / "slices").rmdir()


@pytest.mark.parametrize("with_lists", [True, False])
def test_slices_directly_in_data_are_read_with_or_without_the_lists(tmp_path, with_lists):
    root = tmp_path / "ACDC"
    expected = write_ssl4mis_acdc_fixture(root)
    _slices_into_data(root)
    if not with_lists:
        for name in ssl4mis.LIST_FILES:
            (root / name).unlink()
    notes = []
    cases = {c.case_id: c for c in ssl4mis.iter_cases(root, log=notes.append)}
    assert sorted(cases) == CASE_IDS
    for case_id, want in expected.items():
        np.testing.assert_array_equal(cases[case_id].image, want.image)
        np.testing.assert_array_equal(cases[case_id].label, want.label)
    assert cases["patient002_ED"].meta["ssl4mis_split"] == ("val" if with_lists else "")
    assert notes == ([] if with_lists else [f"no list files (train_slices.list, train.list, val.list, test.list) "
                                            f"under {root}: every patient's ssl4mis_split is empty"])


def _write_wsl4mis_copy(root):
    """WSL4MIS's layout: every frame as a volume and as 0-based slices, raw frame numbers, no lists,
    and a `scribble` dataset beside image and label."""
    patients = {p: (split, True, True) for p, (split, _, _) in SSL4MIS_PATIENTS.items()}
    expected = write_ssl4mis_acdc_fixture(root, patients=patients, slice_base=0, frame_names={"ED": 1, "ES": 3})
    (root / "data" / "slices").rename(root / "ACDC_training_slices")
    (root / "data").rename(root / "ACDC_training_volumes")
    for name in ssl4mis.LIST_FILES:
        (root / name).unlink()
    for path in sorted(root.glob("ACDC_training_*/*.h5")):
        with h5py.File(path, "r+") as f:
            f.create_dataset("scribble", data=np.full(f["label"].shape, 4, np.uint8))
    return expected


def test_the_wsl4mis_layout_is_read_and_its_preprocessing_noted(tmp_path):
    root = tmp_path / "ACDC"
    expected = _write_wsl4mis_copy(root)
    notes = []
    cases = {c.case_id: c for c in ssl4mis.iter_cases(root, log=notes.append)}
    assert sorted(cases) == CASE_IDS
    for case_id, want in expected.items():
        np.testing.assert_array_equal(cases[case_id].image, want.image)
        np.testing.assert_array_equal(cases[case_id].label, want.label)  # label, not the scribble (all 4)
    assert cases["patient001_ES"].meta["ssl4mis_name"] == "patient001_frame03"
    assert notes == [ssl4mis.WSL4MIS_NOTE]
    assert "99th" in ssl4mis.WSL4MIS_NOTE


def test_unrecognised_h5_files_and_mixed_layouts_are_refused_naming_what_was_found(tmp_path):
    root = tmp_path / "ACDC"
    write_ssl4mis_acdc_fixture(root)
    stray = root / "data" / "patient001_frame01_copy.h5"
    stray.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=rf"{stray}: not an SSL4MIS ACDC file name"):
        ssl4mis.list_patients(root)
    stray.unlink()
    twice = root / "data" / "patient001_frame01_slice_1.h5"
    twice.write_bytes((root / "data" / "slices" / twice.name).read_bytes())
    with pytest.raises(DatasetFormatError, match=r"slice 1 of patient001_frame01 found twice"):
        ssl4mis.list_patients(root)
    twice.unlink()
    (root / "ACDC_training_volumes").mkdir()
    with pytest.raises(DatasetFormatError, match=r"both an SSL4MIS data/ folder and WSL4MIS's ACDC_training_\* folders"):
        ssl4mis.list_patients(root)
    with pytest.raises(DatasetFormatError, match=r"no data/ folder .* It holds h5 files itself .*patient002_frame01\.h5.*"
                                                 r"point root at the folder above it"):
        ssl4mis.list_patients(root / "data")
