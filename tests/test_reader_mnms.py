"""M&Ms reader against an OpenDataset tree written in the release format (tests/fixtures_datasets.py)."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from methods.data import mnms
from methods.data.types import DatasetFormatError
from fixtures_datasets import MNMS_CSV_NAME, MNMS_ZOOMS_XYZ, SHAPE_XYZ, heart_labels_xyz, write_mnms_fixture


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnms")
    return root, write_mnms_fixture(root)


@pytest.fixture
def fresh(tmp_path):
    write_mnms_fixture(tmp_path)
    return tmp_path


def _edit_csv(root, edit):
    path = root / MNMS_CSV_NAME
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(table).to_csv(path, index=False)


def test_lists_labelled_subjects_only(tree):
    root, _ = tree
    assert mnms.list_patients(root) == ["AAA001", "BBB002", "CCC003"]  # DDD004 is Training/Unlabeled
    assert [c.case_id for c in mnms.iter_cases(root)] == [
        "AAA001_ED", "AAA001_ES", "BBB002_ED", "BBB002_ES", "CCC003_ED", "CCC003_ES",
    ]


def test_ed_es_are_zero_based_time_indices(tree):
    root, _ = tree
    cases = {c.case_id: c for c in mnms.iter_cases(root)}
    # voxel (x, y, z, t) of the image holds x + 100 y + 1000 z + 4000 t
    assert cases["AAA001_ED"].image[0, 0, 0] == 0  # ED = 0
    assert cases["BBB002_ES"].image[0, 0, 0] == 20000  # ES = 5, the last time point
    assert cases["BBB002_ES"].image[2, 19, 23] == 20000 + 2000 + 1900 + 23
    assert cases["CCC003_ED"].meta["t_index"] == 1


def test_mnms_lv_becomes_canonical_lv(tree):
    root, expected = tree
    on_disk = np.asarray(nib.load(str(root / "Training/Labeled/AAA001/AAA001_sa_gt.nii.gz")).dataobj)
    assert on_disk[12, 6, 0, 0] == 1 and on_disk[2, 4, 0, 0] == 3  # M&Ms: LV 1, RV 3
    case = next(mnms.iter_cases(root, patients=["AAA001"]))
    assert mnms.class_names()[case.label[0, 6, 12] - 1] == "LV"
    assert case.label[0, 6, 12] == 3 and case.label[0, 4, 2] == 1 and case.label[0, 4, 10] == 2
    assert [int((case.label == k).sum()) for k in (1, 2, 3)] == [48, 144, 48]  # RV, MYO, LV at ED
    for c in mnms.iter_cases(root):
        np.testing.assert_array_equal(c.image, expected[c.case_id].image)
        np.testing.assert_array_equal(c.label, expected[c.case_id].label)


def test_spacing_is_header_voxel_size_in_zyx(tree):
    root, _ = tree
    case = next(mnms.iter_cases(root))
    assert case.spacing == pytest.approx((9.0, 1.4, 1.2), rel=1e-6)
    assert MNMS_ZOOMS_XYZ == (1.2, 1.4, 9.0)


def test_vendor_and_centre_are_exposed(tree):
    root, _ = tree
    meta = {c.case_id: c.meta for c in mnms.iter_cases(root)}
    assert (meta["BBB002_ED"]["vendor"], meta["BBB002_ED"]["vendor_name"], meta["BBB002_ED"]["centre"]) == ("B", "Philips", "2")
    assert meta["CCC003_ES"]["subset"] == "Testing"
    assert {p: m["vendor"] for p, m in mnms.patient_meta(root).items()} == {"AAA001": "A", "BBB002": "B", "CCC003": "C"}


def test_csv_read_by_column_name_whatever_the_order_or_spelling(fresh):
    def variant(table):
        table = table.drop(columns=[table.columns[0]])  # no leading index column
        table = table.rename(columns={"External code": "External_code", "Centre": "Center"})
        return table[list(reversed(table.columns))]

    _edit_csv(fresh, variant)
    cases = list(mnms.iter_cases(fresh, patients=["BBB002"]))
    assert [c.case_id for c in cases] == ["BBB002_ED", "BBB002_ES"]
    assert cases[1].image[0, 0, 0] == 20000 and cases[1].meta["centre"] == "2"


def test_missing_root_and_missing_csv(tmp_path):
    with pytest.raises(DatasetFormatError, match="not found"):
        mnms.list_patients(tmp_path / "nowhere")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetFormatError, match="no M&Ms information CSV"):
        mnms.list_patients(tmp_path)


def test_missing_required_column(fresh):
    _edit_csv(fresh, lambda t: t.drop(columns=["ES"]))
    with pytest.raises(DatasetFormatError, match=r"opendataset\.csv: missing column\(s\) \['es'\]"):
        mnms.list_patients(fresh)


def test_csv_row_without_files_names_code_and_path(fresh):
    _edit_csv(fresh, lambda t: pd.concat([t, t.iloc[[0]].assign(**{"External code": "ZZZ999"})]))
    with pytest.raises(DatasetFormatError, match=r"subject ZZZ999 has no image on disk; expected .*Training/Labeled/ZZZ999/ZZZ999_sa\.nii\.gz"):
        mnms.list_patients(fresh)


def test_time_indices_must_be_integers_for_labelled_subjects_only(fresh):
    def edit(table):
        table["ED"] = table["ED"].astype(str)
        table.loc[table["External code"] == "DDD004", ["ED", "ES"]] = ""  # unlabelled: never read
        table.loc[table["External code"] == "CCC003", "ES"] = "4.0"
        return table

    _edit_csv(fresh, edit)
    assert [c.meta["t_index"] for c in mnms.iter_cases(fresh, patients=["CCC003"])] == [1, 4]
    _edit_csv(fresh, lambda t: t.assign(ED=t["ED"].where(t["External code"] != "BBB002", "second")))
    with pytest.raises(DatasetFormatError, match=r"opendataset\.csv: line 3 \(BBB002\): ED must be a 0-based time index, got 'second'"):
        mnms.list_patients(fresh)


def test_time_index_outside_the_cine(fresh):
    _edit_csv(fresh, lambda t: t.assign(ES=t["ES"].where(t["External code"] != "AAA001", "6")))
    with pytest.raises(DatasetFormatError, match=r"AAA001_sa\.nii\.gz: ES index 6 .* outside the 6 time points"):
        list(mnms.iter_cases(fresh, patients=["AAA001"]))


def test_unlabelled_frame_reports_the_labelled_indices(fresh):
    # a 1-based ED (1 instead of 0) lands on an unlabelled time point
    _edit_csv(fresh, lambda t: t.assign(ED=t["ED"].where(t["External code"] != "AAA001", "1")))
    with pytest.raises(DatasetFormatError, match=r"AAA001_sa_gt\.nii\.gz: no labels at ED t=1 .* labelled t indices are \[0, 3\]"):
        list(mnms.iter_cases(fresh, patients=["AAA001"]))


def _rewrite(path, array):
    image = nib.Nifti1Image(array, np.diag([*MNMS_ZOOMS_XYZ, 1.0]))
    image.header.set_zooms(MNMS_ZOOMS_XYZ + (1.0,) * (array.ndim - 3))
    nib.save(image, str(path))


def test_label_values_outside_the_set(fresh):
    path = fresh / "Validation/BBB002/BBB002_sa_gt.nii.gz"
    label = np.asarray(nib.load(str(path)).dataobj).copy()
    label[0, 0, 0, 2] = 5
    _rewrite(path, label)
    with pytest.raises(DatasetFormatError, match=r"BBB002_sa_gt\.nii\.gz: label values \[5\]"):
        list(mnms.iter_cases(fresh, patients=["BBB002"]))


def test_3d_image_and_shape_mismatch_and_truncation(fresh):
    folder = fresh / "Testing/CCC003"
    _rewrite(folder / "CCC003_sa_gt.nii.gz", np.zeros((24, 20, 3, 5), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"CCC003_sa_gt\.nii\.gz: label shape \(24, 20, 3, 5\) != image shape \(24, 20, 3, 6\)"):
        list(mnms.iter_cases(fresh, patients=["CCC003"]))
    _rewrite(folder / "CCC003_sa.nii.gz", np.zeros((24, 20, 3), np.int16))
    with pytest.raises(DatasetFormatError, match=r"CCC003_sa\.nii\.gz: expected a 4D image"):
        list(mnms.iter_cases(fresh, patients=["CCC003"]))
    path = fresh / "Training/Labeled/AAA001/AAA001_sa.nii.gz"
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(DatasetFormatError, match=r"AAA001_sa\.nii\.gz: .*(truncated|readable)"):
        list(mnms.iter_cases(fresh, patients=["AAA001"]))


def test_unlabelled_subject_is_not_a_patient(tree):
    root, _ = tree
    with pytest.raises(DatasetFormatError, match=r"DDD004"):
        list(mnms.iter_cases(root, patients=["DDD004"]))


def test_4d_label_with_swapped_axes_is_reoriented_at_every_frame(fresh):
    # the _gt file stores (y, x, z, t) and its affine says so: each annotated frame is reoriented
    path = fresh / "Validation/BBB002/BBB002_sa_gt.nii.gz"
    label = np.asarray(nib.load(str(path)).dataobj)
    swap = np.array([[0.0, MNMS_ZOOMS_XYZ[0], 0, 0], [MNMS_ZOOMS_XYZ[1], 0, 0, 0], [0, 0, MNMS_ZOOMS_XYZ[2], 0], [0, 0, 0, 1]])
    image = nib.Nifti1Image(np.transpose(label, (1, 0, 2, 3)).copy(), swap)
    image.header.set_zooms((MNMS_ZOOMS_XYZ[1], MNMS_ZOOMS_XYZ[0], MNMS_ZOOMS_XYZ[2], 1.0))
    nib.save(image, str(path))
    notes = []
    cases = list(mnms.iter_cases(fresh, patients=["BBB002"], log=notes.append))
    for case in cases:
        canonical = heart_labels_xyz(SHAPE_XYZ, case.phase, rv=1, myo=2, lv=3)
        np.testing.assert_array_equal(case.label, np.transpose(canonical, (2, 1, 0)))
    assert [n.split(":")[0] for n in notes] == ["BBB002_ED", "BBB002_ES"]
    assert all("axes (x, y, z) -> (y, x, z)" in n for n in notes)


def test_4d_label_with_another_voxel_grid_is_refused(fresh):
    path = fresh / "Testing/CCC003/CCC003_sa_gt.nii.gz"
    label = np.asarray(nib.load(str(path)).dataobj)
    affine = np.diag([*MNMS_ZOOMS_XYZ, 1.0])
    affine[:3, 3] = (0.0, 0.0, 9.0)  # one slice further along z
    image = nib.Nifti1Image(label, affine)
    image.header.set_zooms(MNMS_ZOOMS_XYZ + (1.0,))
    nib.save(image, str(path))
    with pytest.raises(DatasetFormatError, match=r"CCC003_sa_gt\.nii\.gz: affine: origin .*does not describe the same "
                                                 r"voxels as the image .*CCC003_sa\.nii\.gz"):
        list(mnms.iter_cases(fresh, patients=["CCC003"]))
