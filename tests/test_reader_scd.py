"""SCD (Sunnybrook) reader against DICOM + contour trees in the MICCAI 2009 (A) and Kaggle (B)
layouts (tests/fixtures_datasets.py)."""

import shutil

import numpy as np
import pydicom
import pytest

from methods.data import scd
from methods.data.types import DatasetFormatError
from fixtures_datasets import SCD_SPACING_TAG, write_scd_fixture


@pytest.fixture(scope="module", params=["A", "B"])
def tree(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"scd{request.param}")
    return root, write_scd_fixture(root, layout=request.param)


@pytest.fixture
def fresh(tmp_path):
    write_scd_fixture(tmp_path)
    return tmp_path


def _contours(root, case):
    return root / "Sunnybrook Cardiac MR Database ContoursPart3/TrainingDataContours" / case / "contours-manual/IRCCI-expert"


def _dicom(root, case, number):
    return root / "Sunnybrook Cardiac MR Database DICOMPart3/TrainingDataDICOM" / case / "DICOM" / f"IM-0001-{number:04d}.dcm"


def test_cases_match_the_written_tree(tree):
    root, expected = tree
    assert scd.list_patients(root) == ["SC-HF-I-01", "SC-N-02"]
    cases = list(scd.iter_cases(root))
    assert [c.case_id for c in cases] == ["SC-HF-I-01_ED", "SC-HF-I-01_ES", "SC-N-02_ED", "SC-N-02_ES"]
    for case in cases:
        want = expected[case.case_id]
        np.testing.assert_array_equal(case.image, want.image)
        np.testing.assert_array_equal(case.label, want.label)
        assert case.spacing == pytest.approx(want.spacing)
        assert {k: case.meta[k] for k in want.meta} == want.meta


def test_ed_is_the_larger_cavity_not_phase_zero(tree):
    root, _ = tree
    ed, es = list(scd.iter_cases(root, patients=["SC-HF-I-01"]))
    # contoured images 8, 19, 28, 39: phases 7 and 18 of 20; the cavity is larger at phase 18
    assert (ed.meta["phase_index"], es.meta["phase_index"]) == (18, 7)
    assert ed.image[0, 0, 0] == 1024 * 39 and es.image[1, 0, 0] == 1024 * 8
    assert int(ed.label.sum()) == 2 * 70 and int(es.label.sum()) == 2 * 15


def test_slices_ordered_along_the_normal_and_z_from_positions(tree):
    root, _ = tree
    ed = next(scd.iter_cases(root, patients=["SC-N-02"]))
    # normal = row dir x column dir = (0,1,0) x (0,0,-1) = (-1,0,0); IPP x = 24 (slice 0), 34 (slice 1)
    assert ed.meta["image_numbers"] == [21, 1]
    assert ed.meta["slice_positions_mm"] == [-34.0, -24.0]
    assert ed.spacing == pytest.approx((10.0, 1.36, 1.30))  # (z, PixelSpacing row, PixelSpacing column)


def test_contour_x_is_the_column(tree):
    root, _ = tree
    ed = next(scd.iter_cases(root, patients=["SC-N-02"]))
    # image 1 (z index 1): endocardium x 5.5..15.5, y 7.5..14.5 in the file (1-based) ->
    # 0-based centres x 4.5..14.5, y 6.5..13.5 -> columns 5..14, rows 7..13
    lv = ed.label[1]
    assert lv[7, 5] == 1 and lv[13, 14] == 1
    assert lv[7, 4] == 0 and lv[6, 5] == 0 and lv[14, 14] == 0 and lv[7, 15] == 0
    assert int(lv.sum()) == 10 * 7
    assert int(ed.label[0, 7, 7]) == 1 and int(ed.label[0, 7, 5]) == 0  # image 21 is shifted 2 columns right


def test_lv_myo_is_epicardium_minus_endocardium(tree):
    root, expected = tree
    assert scd.class_names() == ("LV",) and scd.class_names(classes="lv_myo") == ("LV", "MYO")
    for case in scd.iter_cases(root, patients=["SC-N-02"], classes="lv_myo"):
        np.testing.assert_array_equal(case.label, expected[case.case_id].label_lv_myo)
        # ED: 14 x 11 epicardium - 10 x 7 cavity; ES: 11 x 9 - 5 x 3; per slice
        assert int((case.label[0] == 2).sum()) == 84
        assert int((case.label[0] == 1).sum()) == {"ED": 70, "ES": 15}[case.phase]


def test_lv_myo_leaves_out_frames_without_epicardium_and_reports_them(tree):
    root, expected = tree
    notes = []
    cases = list(scd.iter_cases(root, classes="lv_myo", log=notes.append))
    # SC-HF-I-01 has no epicardial contour at ES (as on every real ES frame): that frame is left out
    assert [c.case_id for c in cases] == ["SC-HF-I-01_ED", "SC-N-02_ED", "SC-N-02_ES"]
    for case in cases:
        np.testing.assert_array_equal(case.label, expected[case.case_id].label_lv_myo)
    assert len(notes) == 1
    assert notes[0].startswith("SC-HF-I-01_ES: left out: classes='lv_myo' needs an epicardial contour")
    assert "images 0028, 0008" in notes[0] or "images 0008, 0028" in notes[0]


def test_lv_myo_leaves_out_ed_slices_without_epicardium(fresh):
    # real data: one case lacks the epicardium on two of its eleven ED slices
    (_contours(fresh, "SC-N-02") / "IM-0001-0021-ocontour-manual.txt").unlink()
    notes = []
    ed, es = list(scd.iter_cases(fresh, patients=["SC-N-02"], classes="lv_myo", log=notes.append))
    assert ed.meta["image_numbers"] == [1] and ed.label.shape == (1, 32, 28)
    assert ed.spacing == pytest.approx((SCD_SPACING_TAG, 1.36, 1.30))  # one slice left: the header tag
    assert es.meta["image_numbers"] == [29, 9]
    assert notes == ["SC-N-02_ED: 1 of 2 contoured slices left out for classes='lv_myo' "
                     "(no epicardial contour for images 0021)"]
    # the default class set is not affected
    assert next(scd.iter_cases(fresh, patients=["SC-N-02"])).meta["image_numbers"] == [21, 1]


def test_lv_myo_with_nothing_left_is_an_error(fresh):
    for path in _contours(fresh, "SC-N-02").glob("*-ocontour-manual.txt"):
        path.unlink()
    notes = []
    with pytest.raises(DatasetFormatError, match=r"classes='lv_myo' leaves nothing to read.*SC-N-02"):
        list(scd.iter_cases(fresh, patients=["SC-N-02"], classes="lv_myo", log=notes.append))
    assert [n.split(":")[0] for n in notes] == ["SC-N-02_ED", "SC-N-02_ES"]


def test_patient_meta_without_reading_images(tree):
    root, _ = tree
    meta = scd.patient_meta(root)
    assert meta["SC-HF-I-01"]["subset"] == "training" and meta["SC-N-02"]["group"] == "N"


def test_z_spacing_comes_from_positions_not_the_header_tag(fresh):
    for number in (1, 21, 9, 29):
        path = _dicom(fresh, "SC-N-02", number)
        ds = pydicom.dcmread(path)
        ds.SpacingBetweenSlices = 16.0  # what "thickness 8 mm, gap 8 mm" would suggest
        ds.save_as(path)
    assert next(scd.iter_cases(fresh, patients=["SC-N-02"])).spacing[0] == pytest.approx(10.0)


def test_single_contoured_slice_falls_back_to_spacing_between_slices(fresh):
    for path in _contours(fresh, "SC-N-02").glob("IM-0001-00[23]?-*"):
        path.unlink()  # images 21 and 29: slice 1
    ed, es = list(scd.iter_cases(fresh, patients=["SC-N-02"]))
    assert ed.image.shape == (1, 32, 28) and ed.meta["image_numbers"] == [1]
    assert ed.spacing == pytest.approx((SCD_SPACING_TAG, 1.36, 1.30))


def test_options_are_checked():
    with pytest.raises(ValueError, match="classes='lvmyo'"):
        scd.class_names(classes="lvmyo")
    with pytest.raises(ValueError, match="contour_convention='matlab'"):
        list(scd.iter_cases("/nowhere", contour_convention="matlab"))
    with pytest.raises(TypeError, match="colour"):
        scd.class_names(colour="red")


def test_missing_root_and_no_contours(tmp_path):
    with pytest.raises(DatasetFormatError, match="not found"):
        scd.list_patients(tmp_path / "nowhere")
    (tmp_path / "SC-HF-I-01" / "DICOM").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match="no SCD contour folders"):
        scd.list_patients(tmp_path)


def test_contours_without_images_name_the_expected_places(fresh):
    for path in _dicom(fresh, "SC-N-02", 1).parent.iterdir():
        path.unlink()
    _dicom(fresh, "SC-N-02", 1).parent.rmdir()
    with pytest.raises(DatasetFormatError, match=r"no images for case SC-N-02; expected SC-N-02/DICOM/IM-0001-NNNN\.dcm .* SC-N-2/IM-<series>"):
        scd.list_patients(fresh)


def test_missing_and_truncated_dicom_are_named(fresh):
    path = _dicom(fresh, "SC-HF-I-01", 19)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError, match=r"IM-0001-0019\.dcm: not a readable DICOM image"):
        list(scd.iter_cases(fresh, patients=["SC-HF-I-01"]))
    path.unlink()
    with pytest.raises(DatasetFormatError, match=r"IM-0001-0019\.dcm: DICOM image not found"):
        list(scd.iter_cases(fresh, patients=["SC-HF-I-01"]))


def test_malformed_contour_is_named(fresh):
    path = _contours(fresh, "SC-N-02") / "IM-0001-0009-icontour-manual.txt"
    path.write_text("10.0 12.0\n11.0 abc\n12.0 14.0\n")
    with pytest.raises(DatasetFormatError, match=r"IM-0001-0009-icontour-manual\.txt: expected one 'x y' pair"):
        list(scd.iter_cases(fresh, patients=["SC-N-02"]))
    path.write_text("10.0 12.0\n11.0 13.0\n")
    with pytest.raises(DatasetFormatError, match=r"IM-0001-0009-icontour-manual\.txt: expected at least 3 lines"):
        list(scd.iter_cases(fresh, patients=["SC-N-02"]))


def test_contours_at_a_third_phase_are_refused(fresh):
    folder = _contours(fresh, "SC-N-02")
    (folder / "IM-0001-0012-icontour-manual.txt").write_text((folder / "IM-0001-0009-icontour-manual.txt").read_text())
    with pytest.raises(DatasetFormatError, match=r"IRCCI-expert: endocardial contours at 3 phase\(s\) \{0: \[1, 21\], 8: \[9, 29\], 11: \[12\]\}"):
        list(scd.iter_cases(fresh, patients=["SC-N-02"]))


def test_images_of_different_size_in_one_frame_are_refused(fresh):
    path = _dicom(fresh, "SC-N-02", 21)
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 28, 32
    ds.save_as(path)
    with pytest.raises(DatasetFormatError, match=r"IM-0001-0001\.dcm: image size \(32, 28\) differs from IM-0001-0021\.dcm \(28, 32\)"):
        list(scd.iter_cases(fresh, patients=["SC-N-02"]))


# --- contour convention -------------------------------------------------------------------------

# A hand-drawn L-shaped contour, as the release stores it (1-based: MATLAB pixel centres), and the
# mask it encloses, written out by hand (row 0 at the top, column 0 on the left).
HAND_DRAWN_L = np.array([[1.5, 1.5], [3.5, 1.5], [3.5, 3.5], [5.5, 3.5], [5.5, 5.5], [1.5, 5.5]])  # x, y
HAND_DRAWN_L_MASK = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0, 0],
    [0, 1, 1, 0, 0, 0, 0],
    [0, 1, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
], dtype=bool)


def test_rasterise_a_hand_drawn_contour_one_based_by_default(tmp_path):
    path = tmp_path / "IM-0001-0001-icontour-manual.txt"
    path.write_text("".join(f"{x:.2f} {y:.2f}\n" for x, y in HAND_DRAWN_L))
    points = scd.read_contour(path)
    np.testing.assert_array_equal(scd.rasterise(points, (6, 7)), HAND_DRAWN_L_MASK)
    np.testing.assert_array_equal(scd.rasterise(points, (6, 7), "one_based"), HAND_DRAWN_L_MASK)
    # read as 0-based pixel centres (what cv2.fillPoly loaders do), the same file lands one pixel
    # further right and down
    shifted = np.zeros_like(HAND_DRAWN_L_MASK)
    shifted[1:, 1:] = HAND_DRAWN_L_MASK[:-1, :-1]
    np.testing.assert_array_equal(scd.rasterise(points, (6, 7), "zero_based"), shifted)


def test_rasterise_integer_vertices_on_pixel_centres_and_corners():
    # vertices exactly on 1-based pixel centres: a right triangle, its edges included
    triangle = np.array([[2.0, 2.0], [6.0, 2.0], [2.0, 6.0]])
    mask = scd.rasterise(triangle, (7, 7))
    rows, cols = np.nonzero(mask)
    assert sorted(zip(rows.tolist(), cols.tolist())) == sorted(
        (r, c) for r in range(1, 6) for c in range(1, 6) if r + c <= 6)
    # pixel-corner coordinates: the rectangle from corner (1, 1) to corner (4, 3) covers exactly
    # columns 1..3 and rows 1..2
    corners = np.array([[1.0, 1.0], [4.0, 1.0], [4.0, 3.0], [1.0, 3.0]])
    expected = np.zeros((5, 6), dtype=bool)
    expected[1:3, 1:4] = True
    np.testing.assert_array_equal(scd.rasterise(corners, (5, 6), "pixel_corner"), expected)


def test_contour_convention_option_reaches_the_labels(tree):
    root, expected = tree
    default = next(scd.iter_cases(root, patients=["SC-N-02"]))
    zero = next(scd.iter_cases(root, patients=["SC-N-02"], contour_convention="zero_based"))
    np.testing.assert_array_equal(default.label, expected["SC-N-02_ED"].label)
    np.testing.assert_array_equal(zero.label[:, 1:, 1:], default.label[:, :-1, :-1])
    assert zero.label[:, 0, :].sum() == 0 and zero.label[:, :, 0].sum() == 0


def test_papillary_p1contour_files_are_ignored(fresh):
    folder = _contours(fresh, "SC-N-02")
    assert sorted(p.name for p in folder.glob("*p1contour-manual.txt")) == [
        "IM-0001-0001-p1contour-manual.txt", "IM-0001-0021-p1contour-manual.txt"]
    before = [c.label for c in scd.iter_cases(fresh, patients=["SC-N-02"])]
    for path in folder.glob("*p1contour-manual.txt"):
        path.write_text("not a contour\n")
    after = [c.label for c in scd.iter_cases(fresh, patients=["SC-N-02"])]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# --- Kaggle copy: the SC-N-6 series ------------------------------------------------------------


def _as_sc_n_6(root, series):
    """Turn the layout-B fixture's SC-N-02 into SC-N-6 whose short-axis series is `series`."""
    source = root / "challenge_training" / "SC-N-2"
    target = root / "challenge_validation" / "SC-N-6"
    target.mkdir(parents=True)
    for path in source.glob("IM-0898-*.dcm"):
        path.rename(target / path.name.replace("IM-0898-", f"IM-{series}-"))
    shutil.rmtree(source)
    contours = root / "Sunnybrook Cardiac MR Database ContoursPart3/TrainingDataContours"
    (contours / "SC-N-02").rename(contours / "SC-N-06")
    return target


@pytest.mark.parametrize("series", ["0981", "0984"])
def test_sc_n_6_accepts_either_public_series_number(tmp_path, series):
    expected = write_scd_fixture(tmp_path, layout="B")
    _as_sc_n_6(tmp_path, series)
    ed, es = list(scd.iter_cases(tmp_path, patients=["SC-N-06"]))
    np.testing.assert_array_equal(ed.image, expected["SC-N-02_ED"].image)
    np.testing.assert_array_equal(es.label, expected["SC-N-02_ES"].label)
    assert ed.meta["series"] == series and ed.meta["layout"] == "B"


def test_sc_n_6_with_both_series_complete_is_ambiguous(tmp_path):
    write_scd_fixture(tmp_path, layout="B")
    folder = _as_sc_n_6(tmp_path, "0981")
    for path in folder.glob("IM-0981-*.dcm"):
        shutil.copy(path, folder / path.name.replace("IM-0981-", "IM-0984-"))
    with pytest.raises(DatasetFormatError, match=r"SC-N-6: series IM-0981 and IM-0984 .* both hold every contoured image"):
        list(scd.iter_cases(tmp_path, patients=["SC-N-06"]))
    # one of them incomplete: the complete one is read
    (folder / "IM-0984-0029.dcm").unlink()
    assert next(scd.iter_cases(tmp_path, patients=["SC-N-06"])).meta["series"] == "0981"
