"""Every reader finds data behind symbolic links to folders, as data usually sits on clusters
(`training -> /scratch/.../training`); a link loop ends. Trees from tests/fixtures_datasets.py."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from methods.data import acdc, mnms, scd, ssl4mis
from methods.data.prepare import prepare_dataset
from fixtures_datasets import write_acdc_fixture, write_mnms_fixture, write_scd_fixture, write_ssl4mis_acdc_fixture


def move_behind_link(root: Path, relative: str, store: Path) -> None:
    """Move root/relative to store/<name> and leave a symbolic link to it in its place."""
    place = root / relative
    target = store / place.name
    store.mkdir(parents=True, exist_ok=True)
    shutil.move(str(place), str(target))
    place.symlink_to(target, target_is_directory=True)


def assert_reads(reader, root, expected, **options):
    cases = {c.case_id: c for c in reader.iter_cases(root, **options)}
    assert sorted(cases) == sorted(expected)
    for case_id, want in expected.items():
        np.testing.assert_array_equal(cases[case_id].image, want.image)
        np.testing.assert_array_equal(cases[case_id].label, want.label)


def test_acdc_with_a_linked_training_folder_reads_every_patient(tmp_path):
    root = tmp_path / "ACDC"
    expected = write_acdc_fixture(root)
    move_behind_link(root, "database/training", tmp_path / "scratch")
    assert (root / "database" / "training").is_symlink()
    assert acdc.list_patients(root) == ["patient001", "patient002", "patient101"]
    assert acdc.patient_meta(root)["patient001"]["subset"] == "training"
    assert_reads(acdc, root, expected)
    lines = []
    prepare_dataset("acdc", root, tmp_path / "cache", log=lines.append)
    assert sum(line.startswith("patient") for line in lines) == 6  # 3 patients x ED, ES


def test_acdc_with_a_linked_root_and_linked_patient_folders(tmp_path):
    root = tmp_path / "ACDC"
    expected = write_acdc_fixture(root, database_prefix=False)
    move_behind_link(root, "training/patient002", tmp_path / "one_patient")
    linked_root = tmp_path / "link_to_root"
    linked_root.symlink_to(root, target_is_directory=True)
    assert_reads(acdc, linked_root, expected)


def test_a_link_loop_ends_and_each_patient_is_read_once(tmp_path):
    root = tmp_path / "ACDC"
    write_acdc_fixture(root)
    (root / "database" / "training" / "back_to_root").symlink_to(root, target_is_directory=True)
    assert acdc.list_patients(root) == ["patient001", "patient002", "patient101"]


def test_mnms_with_linked_training_and_subject_folders(tmp_path):
    root = tmp_path / "OpenDataset"
    expected = write_mnms_fixture(root)
    move_behind_link(root, "Training", tmp_path / "scratch")
    move_behind_link(root, "Validation/BBB002", tmp_path / "subject")
    assert_reads(mnms, root, expected)


@pytest.mark.parametrize("layout, linked", [
    ("A", ["Sunnybrook Cardiac MR Database DICOMPart3", "Sunnybrook Cardiac MR Database ContoursPart3/TrainingDataContours"]),
    ("B", ["challenge_training"]),
])
def test_scd_with_linked_image_and_contour_folders(tmp_path, layout, linked):
    root = tmp_path / "SCD"
    expected = write_scd_fixture(root, layout=layout)
    for i, relative in enumerate(linked):
        move_behind_link(root, relative, tmp_path / f"scratch{i}")
    assert scd.list_patients(root) == ["SC-HF-I-01", "SC-N-02"]
    assert_reads(scd, root, expected)


def test_ssl4mis_with_linked_data_and_slice_folders(tmp_path):
    root = tmp_path / "ACDC_h5"
    expected = write_ssl4mis_acdc_fixture(root)
    move_behind_link(root, "data/slices", tmp_path / "scratch_slices")
    move_behind_link(root, "data", tmp_path / "scratch_data")
    assert_reads(ssl4mis, root, expected)


def test_a_phantom_behind_a_linked_root_and_training_folder_is_read_whole(tmp_path):
    real = tmp_path / "phantom"
    prepare_dataset("phantom", real, tmp_path / "cache1", phantom_patients=2, log=lambda line: None)
    move_behind_link(real, "training", tmp_path / "scratch")
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    lines = []
    prepare_dataset("phantom", linked, tmp_path / "cache2", phantom_patients=2, log=lines.append)
    assert sum(line.startswith("patient") for line in lines) == 4  # 2 patients x ED, ES
