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


# --- NIfTI geometry: units, image/label voxels, qform/sform (methods/data/nifti.py) ----------------

FIXTURE_AFFINE = np.diag([1.5, 1.25, 10.0, 1.0])  # what write_acdc_fixture writes (x, y, z)


def _frame01(folder):
    return folder / "patient001_frame01.nii.gz", folder / "patient001_frame01_gt.nii.gz"


def _save(path, array, *, sform=None, sform_code=2, qform=None, qform_code=0, zooms=None, unit=None):
    """A NIfTI file with exactly the given transforms, codes, pixdim and spatial unit."""
    image = nib.Nifti1Image(array, None)
    image.header.set_sform(FIXTURE_AFFINE if sform is None else sform, code=sform_code)
    image.header.set_qform(FIXTURE_AFFINE if qform is None else qform, code=qform_code)
    image.header.set_zooms(zooms if zooms is not None else (1.5, 1.25, 10.0))
    if unit is not None:
        image.header.set_xyzt_units(xyz=unit)
    nib.save(image, str(path))


def _flip_y(shape_xyz):
    """Voxel (i, j, k) -> (i, ny - 1 - j, k): an affine factor that flips the second axis."""
    flip = np.diag([1.0, -1.0, 1.0, 1.0])
    flip[1, 3] = shape_xyz[1] - 1
    return flip


def _arrays(folder):
    image_path, label_path = _frame01(folder)
    return np.asarray(nib.load(str(image_path)).dataobj), np.asarray(nib.load(str(label_path)).dataobj)


def _ed(root, notes=None):
    return next(acdc.iter_cases(root, patients=["patient001"], log=(notes.append if notes is not None else None)))


@pytest.mark.parametrize("unit, factor", [("micron", 1000.0), ("meter", 0.001), ("mm", 1.0)])
def test_spacing_honours_the_spatial_unit(one_patient, unit, factor):
    root, folder = one_patient
    image, label = _arrays(folder)
    zooms = (1.5 * factor, 1.25 * factor, 10.0 * factor)
    affine = np.diag([*zooms, 1.0])
    for path, array in zip(_frame01(folder), (image, label)):
        _save(path, array, sform=affine, zooms=zooms, unit=unit)
    notes = []
    case = _ed(root, notes)
    assert case.spacing == pytest.approx((10.0, 1.25, 1.5), rel=1e-6)
    assert case.meta["spacing_unit"] == {"micron": "micron (converted to mm)", "meter": "metre (converted to mm)",
                                         "mm": "mm"}[unit]
    if unit == "mm":
        assert notes == []
    else:
        assert any(n.startswith(f"patient001_ED: patient001_frame01.nii.gz: voxel size stored in {unit.replace('meter', 'metre')}s")
                   and "converted to mm (1.5, 1.25, 10)" in n for n in notes)


def test_image_and_label_in_different_units_still_match(one_patient):
    root, folder = one_patient
    image_path, label_path = _frame01(folder)
    _, label = _arrays(folder)
    _save(label_path, label, sform=np.diag([1500.0, 1250.0, 10000.0, 1.0]), zooms=(1500.0, 1250.0, 10000.0), unit="micron")
    case = _ed(root, [])
    assert case.spacing == pytest.approx((10.0, 1.25, 1.5))


def test_unknown_spatial_unit_is_refused(one_patient):
    root, folder = one_patient
    image_path, _ = _frame01(folder)
    image = nib.load(str(image_path))
    header = image.header.copy()
    header["xyzt_units"] = 5 | 8  # spatial code 5 (no such unit), seconds
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine, header), str(image_path))
    with pytest.raises(DatasetFormatError, match=r"patient001_frame01\.nii\.gz: xyzt_units has spatial unit code 5"):
        list(acdc.iter_cases(root))


def test_label_with_flipped_axis_is_reoriented_onto_the_image(one_patient):
    # the _gt file stores its rows reversed and its affine says so: physically the same voxels
    root, folder = one_patient
    _, label = _arrays(folder)
    _, label_path = _frame01(folder)
    _save(label_path, label[:, ::-1, :].copy(), sform=FIXTURE_AFFINE @ _flip_y(label.shape))
    notes = []
    case = _ed(root, notes)
    np.testing.assert_array_equal(case.label, np.transpose(label, (2, 1, 0)))
    assert case.label[0, 4, 2] == 1  # RV at x=2, y=4, as in the image
    assert notes == [
        "patient001_ED: patient001_frame01_gt.nii.gz: label voxels stored as RPS, image patient001_frame01.nii.gz "
        "as RAS; label reoriented onto the image grid (flip y, nibabel.orientations)"
    ]


def test_label_with_permuted_axes_is_reoriented(one_patient):
    root, folder = one_patient
    _, label = _arrays(folder)
    _, label_path = _frame01(folder)
    swap = np.array([[0.0, 1.5, 0, 0], [1.25, 0, 0, 0], [0, 0, 10.0, 0], [0, 0, 0, 1]])  # stored (y, x, z)
    _save(label_path, np.transpose(label, (1, 0, 2)).copy(), sform=swap, zooms=(1.25, 1.5, 10.0))
    notes = []
    case = _ed(root, notes)
    np.testing.assert_array_equal(case.label, np.transpose(label, (2, 1, 0)))
    assert len(notes) == 1 and "axes (x, y, z) -> (y, x, z)" in notes[0]


def test_label_with_another_origin_is_refused_naming_both_files(one_patient):
    root, folder = one_patient
    _, label = _arrays(folder)
    _, label_path = _frame01(folder)
    shifted = FIXTURE_AFFINE.copy()
    shifted[1, 3] = 5.0  # 4 voxels further along y
    _save(label_path, label, sform=shifted)
    with pytest.raises(DatasetFormatError) as error:
        list(acdc.iter_cases(root))
    message = str(error.value)
    assert message.startswith(str(label_path)) and str(_frame01(folder)[0]) in message
    assert "origin (0, 5, 0) vs (0, 0, 0) mm (off by (0, 5, 0) mm" in message


def test_flipped_affine_without_moved_origin_is_refused(one_patient):
    # the affine flips y but the origin was not moved: after reorienting, the voxels still sit
    # 23.75 mm away from the image's
    root, folder = one_patient
    _, label = _arrays(folder)
    _, label_path = _frame01(folder)
    _save(label_path, label[:, ::-1, :].copy(), sform=FIXTURE_AFFINE @ np.diag([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(DatasetFormatError, match=r"frame01_gt\.nii\.gz: stored as RPS while the image is RAS, and even "
                                                 r"after reorienting its axes \(flip y\).*origin"):
        list(acdc.iter_cases(root))


def test_qform_sform_conflict_follows_the_documented_rule(one_patient):
    root, folder = one_patient
    _, label = _arrays(folder)
    _, label_path = _frame01(folder)
    flipped_data, flipped_affine = label[:, ::-1, :].copy(), FIXTURE_AFFINE @ _flip_y(label.shape)
    expected = np.transpose(label, (2, 1, 0))

    # sform code 1 (scanner): nibabel and ITK/SimpleITK both read the sform; the stale qform is noted
    _save(label_path, flipped_data, sform=flipped_affine, sform_code=1, qform=FIXTURE_AFFINE, qform_code=1)
    notes = []
    np.testing.assert_array_equal(_ed(root, notes).label, expected)
    assert any("qform (code 1) disagrees with the sform" in n and "the sform (code 1, scanner) is used" in n for n in notes)

    # sform code 0: the sform is ignored (whatever it holds) and the qform is read
    _save(label_path, flipped_data, sform=np.diag([9.0, 9.0, 9.0, 1.0]), sform_code=0, qform=flipped_affine, qform_code=1)
    np.testing.assert_array_equal(_ed(root, []).label, expected)

    # sform code 2 (aligned) against a different qform: nibabel would read the sform, ITK the qform
    _save(label_path, flipped_data, sform=flipped_affine, sform_code=2, qform=FIXTURE_AFFINE, qform_code=1)
    with pytest.raises(DatasetFormatError, match=r"frame01_gt\.nii\.gz: the qform \(code 1\) and the sform \(code 2\) "
                                                 r"disagree .*nibabel reads the sform.*ITK/SimpleITK read the qform"):
        list(acdc.iter_cases(root))

    # both codes set and equal transforms: read without a note
    _save(label_path, label, sform_code=2, qform_code=1)
    notes = []
    np.testing.assert_array_equal(_ed(root, notes).label, expected)
    assert notes == []
