"""Odd values real files carry: DICOM rescale tags present but empty (read as absent), and NaN or
infinite voxels (refused, naming the file, the case and how many). Trees from
tests/fixtures_datasets.py, altered by hand."""

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest

from methods.data import acdc, mnms, scd, ssl4mis
from methods.data.cache import write_cache
from methods.data.prepare import prepare_dataset
from methods.data.types import Case, DatasetFormatError
from fixtures_datasets import (
    ACDC_ZOOMS_XYZ,
    MNMS_ZOOMS_XYZ,
    acdc_frame_image_xyz,
    mnms_image_xyzt,
    scd_pixels,
    write_acdc_fixture,
    write_mnms_fixture,
    write_scd_fixture,
    write_ssl4mis_acdc_fixture,
)


def _scd_file(root, number):
    return (root / "Sunnybrook Cardiac MR Database DICOMPart3" / "TrainingDataDICOM" / "SC-HF-I-01" / "DICOM"
            / f"IM-0001-{number:04d}.dcm")


def _set_rescale(path, slope: str, intercept: str):
    ds = pydicom.dcmread(path)
    ds.add_new(0x00281053, "DS", slope)  # RescaleSlope
    ds.add_new(0x00281052, "DS", intercept)  # RescaleIntercept
    ds.save_as(path)


def test_empty_dicom_rescale_tags_read_as_the_stored_pixels(tmp_path):
    expected = write_scd_fixture(tmp_path)
    path = _scd_file(tmp_path, 8)
    _set_rescale(path, "", "")
    ds = pydicom.dcmread(path)
    assert "RescaleSlope" in ds and ds.RescaleSlope is None  # present, zero length
    np.testing.assert_array_equal(scd.read_slice(path, 8).pixels, scd_pixels(8))
    cases = {c.case_id: c for c in scd.iter_cases(tmp_path, patients=["SC-HF-I-01"])}
    np.testing.assert_array_equal(cases["SC-HF-I-01_ES"].image, expected["SC-HF-I-01_ES"].image)


def test_dicom_rescale_tags_with_values_are_applied(tmp_path):
    write_scd_fixture(tmp_path)
    path = _scd_file(tmp_path, 8)
    _set_rescale(path, "2", "-10")
    np.testing.assert_array_equal(scd.read_slice(path, 8).pixels, 2.0 * scd_pixels(8) - 10.0)


def _nan_frame(path, zooms, array):
    nib.save(nib.Nifti1Image(array, np.diag([*zooms, 1.0])), str(path))


def test_a_nan_voxel_in_an_acdc_image_names_the_file_case_and_count(tmp_path):
    write_acdc_fixture(tmp_path, patients=("patient001",))
    path = tmp_path / "database" / "training" / "patient001" / "patient001_frame03.nii.gz"
    image = acdc_frame_image_xyz(3).astype(np.float32)
    image[0, 0, 0] = image[1, 0, 0] = np.nan
    image[2, 0, 0] = np.inf
    _nan_frame(path, ACDC_ZOOMS_XYZ, image)
    message = rf"{path}: the image of case patient001_ES holds 2 NaN and 1 infinite voxel\(s\) of {image.size}"
    with pytest.raises(DatasetFormatError, match=message):
        list(acdc.iter_cases(tmp_path))
    out = tmp_path / "cache"
    with pytest.raises(DatasetFormatError, match=message):
        prepare_dataset("acdc", tmp_path, out, log=lambda line: None)
    assert not out.exists()


def test_an_infinite_voxel_in_an_mnms_frame_names_the_file_time_and_case(tmp_path):
    write_mnms_fixture(tmp_path)
    path = tmp_path / "Training" / "Labeled" / "AAA001" / "AAA001_sa.nii.gz"
    image = mnms_image_xyzt().astype(np.float32)
    image[1, 1, 1, 3] = -np.inf  # t = 3 is AAA001's ES
    image[1, 1, 1, 2] = np.nan  # an unannotated time point is not read
    _nan_frame(path, MNMS_ZOOMS_XYZ, image)
    with pytest.raises(DatasetFormatError, match=rf"{path} \(t=3\): the image of case AAA001_ES holds 0 NaN and 1 "):
        list(mnms.iter_cases(tmp_path, patients=["AAA001"]))


def test_a_nan_voxel_in_an_ssl4mis_file_names_the_file_and_frame(tmp_path):
    write_ssl4mis_acdc_fixture(tmp_path)
    path = tmp_path / "data" / "patient002_frame02.h5"
    with h5py.File(path, "r+") as f:
        image = f["image"][()]
        image[0, 0, :3] = np.nan
        f["image"][...] = image
    with pytest.raises(DatasetFormatError, match=rf"{path}: the image of case patient002_frame02 holds 3 NaN"):
        list(ssl4mis.iter_cases(tmp_path, patients=["patient002"]))


def test_the_cache_writer_names_the_source_and_case_of_a_nan_image(tmp_path):
    image = np.ones((2, 3, 4), dtype=np.float32)
    image[1, 2, 3] = np.nan
    case = Case(case_id="p1_ED", patient_id="p1", phase="ED", image=image, label=np.zeros((2, 3, 4), np.uint8),
                spacing=(10.0, 1.0, 1.0), source="/raw/p1_ED.nii.gz")
    with pytest.raises(DatasetFormatError, match=r"/raw/p1_ED.nii.gz: the image of case p1_ED holds 1 NaN and 0 "
                                                 r"infinite voxel\(s\) of 24"):
        write_cache(tmp_path / "cache", "x", ("A",), [case], tmp_path)
    assert not (tmp_path / "cache").exists()
