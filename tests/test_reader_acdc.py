"""ACDC reader against a raw ACDC tree written in the release format (tests/fixtures_datasets.py)."""

import shutil

import nibabel as nib
import numpy as np
import pytest

from methods.data import acdc
from methods.data.types import DatasetFormatError
from fixtures_datasets import write_acdc_fixture


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("acdc")
    return root, write_acdc_fixture(root)


@pytest.fixture
def one_patient(tmp_path):
    write_acdc_fixture(tmp_path, patients=("patient001",))
    return tmp_path, tmp_path / "database" / "training" / "patient001"


def test_lists_training_and_testing_patients_and_yields_ed_then_es(tree):
    root, _ = tree
    assert acdc.list_patients(root) == ["patient001", "patient002", "patient101"]
    cases = list(acdc.iter_cases(root))
    assert [c.case_id for c in cases] == [
        "patient001_ED", "patient001_ES", "patient002_ED", "patient002_ES", "patient101_ED", "patient101_ES",
    ]
    assert [c.meta["subset"] for c in cases[-2:]] == ["testing", "testing"]
    assert cases[1].meta["frame"] == 3 and cases[1].meta["group"] == "DCM"


def test_arrays_are_zyx_of_the_annotated_frames(tree):
    root, expected = tree
    es = next(c for c in acdc.iter_cases(root, patients=["patient001"]) if c.phase == "ES")
    assert es.image.shape == es.label.shape == (3, 20, 24)
    # voxel (x=23, y=19, z=2) of frame 3 holds 23 + 1900 + 2000 + 5000 * 2
    assert es.image[2, 19, 23] == 13923
    assert es.label[0, 7, 13] == 3  # LV (ACDC 3 = canonical LV) at x=13, y=7
    assert es.label[0, 4, 2] == 1  # RV at x=2, y=4
    assert es.label[2, 4, 2] == 0  # no RV on the apical slice
    assert [int((es.label == k).sum()) for k in (1, 2, 3)] == [48, 180, 12]
    for case in acdc.iter_cases(root):
        np.testing.assert_array_equal(case.image, expected[case.case_id].image)
        np.testing.assert_array_equal(case.label, expected[case.case_id].label)


def test_spacing_is_header_voxel_size_in_zyx(tree):
    root, _ = tree
    case = next(acdc.iter_cases(root))
    assert case.spacing == (10.0, 1.25, 1.5)


def test_canonical_classes_are_acdc_order():
    assert acdc.class_names() == ("RV", "MYO", "LV")


def test_tree_without_database_prefix_and_patient_filter(tmp_path):
    write_acdc_fixture(tmp_path, patients=("patient003", "patient120"), database_prefix=False)
    assert acdc.list_patients(tmp_path) == ["patient003", "patient120"]
    assert [c.case_id for c in acdc.iter_cases(tmp_path, patients=["patient120"])] == ["patient120_ED", "patient120_ES"]
    assert acdc.patient_meta(tmp_path)["patient120"]["subset"] == "testing"


def test_missing_root_and_wrong_layout(tmp_path):
    with pytest.raises(DatasetFormatError, match="not found"):
        acdc.list_patients(tmp_path / "nowhere")
    (tmp_path / "training" / "case1").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match=r"patientNNN/Info.cfg"):
        list(acdc.iter_cases(tmp_path))


@pytest.mark.parametrize("text, message", [
    ("ED: 1\nGroup: DCM\n", "'ES: <1-based frame number>'"),
    ("ED: 1\nES: three\n", "got 'three'"),
    ("ED: 1\nES 3\n", "is not 'Key: value'"),
])
def test_bad_info_cfg_is_named(one_patient, text, message):
    root, folder = one_patient
    (folder / "Info.cfg").write_text(text)
    with pytest.raises(DatasetFormatError, match=message) as error:
        list(acdc.iter_cases(root))
    assert "patient001/Info.cfg" in str(error.value)


def test_missing_label_file_is_named(one_patient):
    root, folder = one_patient
    (folder / "patient001_frame03_gt.nii.gz").unlink()
    with pytest.raises(DatasetFormatError, match=r"patient001_frame03_gt\.nii\.gz: file not found"):
        list(acdc.iter_cases(root))


def test_truncated_file_is_named(one_patient):
    root, folder = one_patient
    path = folder / "patient001_frame01.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError, match=r"patient001_frame01\.nii\.gz: .*(truncated|readable)"):
        list(acdc.iter_cases(root))


def _rewrite_label(folder, array, zooms=(1.5, 1.25, 10.0)):
    image = nib.Nifti1Image(array, np.diag([*zooms, 1.0]))
    nib.save(image, str(folder / "patient001_frame01_gt.nii.gz"))


def test_shape_mismatch_is_named(one_patient):
    root, folder = one_patient
    _rewrite_label(folder, np.zeros((24, 20, 4), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"frame01_gt\.nii\.gz: label shape \(24, 20, 4\) != image shape \(24, 20, 3\)"):
        list(acdc.iter_cases(root))


def test_label_values_outside_the_set_are_named(one_patient):
    root, folder = one_patient
    label = np.zeros((24, 20, 3), np.uint8)
    label[0, 0, 0] = 4
    _rewrite_label(folder, label)
    with pytest.raises(DatasetFormatError, match=r"frame01_gt\.nii\.gz: label values \[4\] are outside"):
        list(acdc.iter_cases(root))


def test_label_with_other_voxel_size_is_refused(one_patient):
    root, folder = one_patient
    _rewrite_label(folder, np.zeros((24, 20, 3), np.uint8), zooms=(1.25, 1.5, 10.0))
    with pytest.raises(DatasetFormatError, match=r"frame01_gt\.nii\.gz: voxel size"):
        list(acdc.iter_cases(root))


def test_duplicate_patient_and_unknown_patient(one_patient):
    root, folder = one_patient
    with pytest.raises(DatasetFormatError, match=r"patient042"):
        list(acdc.iter_cases(root, patients=["patient042"]))
    shutil.copytree(folder, root / "training" / "patient001")
    with pytest.raises(DatasetFormatError, match="found twice"):
        acdc.list_patients(root)


def test_unknown_option_is_refused(tree):
    with pytest.raises(TypeError, match="classes"):
        acdc.class_names(classes="lv_myo")
