"""`python -m methods.data prepare|split`: every format through its reader, and clear errors."""

import json

import numpy as np

from methods.data.__main__ import main
from methods.data.cache import CachedDataset
from methods.data.normalise import normalise_volume

from fixtures_datasets import write_acdc_fixture, write_mnms_fixture, write_scd_fixture


def prepare(*args):
    return main(["prepare", *map(str, args)])


def assert_cache_matches(out, dataset, classes, expected):
    cache = CachedDataset(out)
    assert cache.name == dataset and cache.class_names == classes
    assert sorted(cache.case_ids) == sorted(expected)
    for case_id, want in expected.items():
        case = cache.load(case_id)
        np.testing.assert_array_equal(case.label, want.label)
        np.testing.assert_allclose(case.image, normalise_volume(want.image), atol=1e-6)
        np.testing.assert_allclose(case.spacing, want.spacing, rtol=1e-6)
    return cache


def test_prepare_acdc(tmp_path, capsys):
    expected = write_acdc_fixture(tmp_path / "raw")
    assert prepare("--dataset", "acdc", "--root", tmp_path / "raw", "--out", tmp_path / "cache") == 0
    out = capsys.readouterr().out
    assert "prepared acdc: 3 patients, 6 cases" in out and "0 reader note(s)" in out
    # one line per case: shape (z x y x x), spacing in mm with the header's unit (unset in the
    # fixture, as in every ACDC release file), label check with voxels per class
    assert ("patient001_ES: 3x20x24 voxels, spacing (z, y, x) 10, 1.25, 1.5 mm [header unit unset (read as mm)]; "
            "labels in 0..3: RV 48, MYO 180, LV 12 voxels") in out.splitlines()
    assert sum(line.startswith("patient") for line in out.splitlines()) == 6
    cache = assert_cache_matches(tmp_path / "cache", "acdc", ("RV", "MYO", "LV"), expected)
    assert cache.patient_meta("patient101")["subset"] == "testing"
    assert not cache.pixel_only and cache.reader == {"format": "acdc", "options": {}}


def test_prepare_mnms_keeps_vendor_meta(tmp_path):
    expected = write_mnms_fixture(tmp_path / "raw")
    assert prepare("--dataset", "mnms", "--root", tmp_path / "raw", "--out", tmp_path / "cache",
                   "--normalisation", "minmax") == 0
    cache = CachedDataset(tmp_path / "cache")
    assert cache.normalisation == "minmax"
    for case_id, want in expected.items():
        np.testing.assert_array_equal(cache.load(case_id).label, want.label)
        assert cache.load(case_id).meta["vendor"] == want.meta["vendor"]


def test_prepare_scd_and_its_class_option(tmp_path, capsys):
    expected = write_scd_fixture(tmp_path / "raw")
    assert prepare("--dataset", "scd", "--root", tmp_path / "raw", "--out", tmp_path / "lv") == 0
    cache = assert_cache_matches(tmp_path / "lv", "scd", ("LV",), expected)
    assert {cache.patient_meta(p)["subset"] for p in cache.patients()} == {"training"}
    assert cache.reader == {"format": "scd", "options": {}}
    capsys.readouterr()
    # lv_myo reaches the reader, which leaves out the frame without an epicardial contour
    # (SC-HF-I-01 ES, as every real ES frame) and says so; the cache holds the other three
    assert prepare("--dataset", "scd", "--root", tmp_path / "raw", "--out", tmp_path / "lv_myo", "--classes", "lv_myo") == 0
    out = capsys.readouterr().out
    assert "  note: SC-HF-I-01_ES: left out: classes='lv_myo' needs an epicardial contour" in out
    assert "1 reader note(s)" in out
    cache = CachedDataset(tmp_path / "lv_myo")
    assert cache.class_names == ("LV", "MYO") and cache.case_ids == ["SC-HF-I-01_ED", "SC-N-02_ED", "SC-N-02_ES"]
    assert cache.reader == {"format": "scd", "options": {"classes": "lv_myo"}}
    assert cache.reader_notes[0].startswith("SC-HF-I-01_ES: left out")
    for case_id in cache.case_ids:
        np.testing.assert_array_equal(cache.load(case_id).label, expected[case_id].label_lv_myo)
    # the contour convention is an explicit option, recorded with the cache
    assert prepare("--dataset", "scd", "--root", tmp_path / "raw", "--out", tmp_path / "zero",
                   "--contour-convention", "zero_based") == 0
    assert CachedDataset(tmp_path / "zero").reader["options"] == {"contour_convention": "zero_based"}


def test_prepare_phantom_generates_then_reuses_the_tree(tmp_path, capsys):
    args = ("--dataset", "phantom", "--root", tmp_path / "tree", "--patients", 2, "--seed", 4)
    assert prepare(*args, "--out", tmp_path / "cache") == 0
    assert json.loads((tmp_path / "tree" / "phantom.json").read_text())["n_patients"] == 2
    assert CachedDataset(tmp_path / "cache").patients() == ["patient001", "patient002"]
    assert prepare(*args, "--out", tmp_path / "again") == 0  # same settings: the tree is reused
    assert prepare("--dataset", "phantom", "--root", tmp_path / "tree", "--patients", 3, "--out", tmp_path / "x") == 2
    assert "generated with other settings" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_prepare_errors(tmp_path, capsys):
    assert prepare("--dataset", "acdc", "--root", tmp_path / "nowhere", "--out", tmp_path / "cache") == 2
    assert "nowhere: the acdc root folder does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert prepare("--dataset", "acdc", "--root", tmp_path / "empty", "--out", tmp_path / "cache") == 2
    assert "no ACDC patient folders" in capsys.readouterr().err
    assert prepare("--dataset", "acdc", "--root", tmp_path / "empty", "--out", tmp_path / "cache", "--patients", 3) == 2
    assert "--patients and --seed apply to --dataset phantom only" in capsys.readouterr().err
    assert prepare("--dataset", "acdc", "--root", tmp_path / "empty", "--out", tmp_path / "cache", "--classes", "lv") == 2
    assert prepare("--dataset", "acdc", "--root", tmp_path / "empty", "--out", tmp_path / "cache",
                   "--contour-convention", "zero_based") == 2
    assert "--classes and --contour-convention apply to --dataset scd only" in capsys.readouterr().err
    assert prepare("--dataset", "acdc", "--root", tmp_path / "empty", "--out", tmp_path / "cache",
                   "--spacing-from", tmp_path) == 2
    assert "--spacing-from applies to --dataset ssl4mis_acdc only" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_failed_prepare_leaves_no_cache(tmp_path, capsys):
    write_acdc_fixture(tmp_path / "raw")
    broken = next((tmp_path / "raw").rglob("patient002_frame03_gt.nii.gz"))
    broken.write_bytes(broken.read_bytes()[:40])  # truncated gzip
    assert prepare("--dataset", "acdc", "--root", tmp_path / "raw", "--out", tmp_path / "cache") == 2
    assert "patient002_frame03_gt.nii.gz" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_existing_cache_needs_overwrite(tmp_path, capsys):
    write_acdc_fixture(tmp_path / "raw", patients=("patient001",))
    out = tmp_path / "cache"
    assert prepare("--dataset", "acdc", "--root", tmp_path / "raw", "--out", out) == 0
    assert prepare("--dataset", "acdc", "--root", tmp_path / "raw", "--out", out) == 2
    assert "already exists" in capsys.readouterr().err
    assert prepare("--dataset", "acdc", "--root", tmp_path / "raw", "--out", out, "--overwrite") == 0


def test_split_command(tiny_cache, tmp_path, capsys):
    out = tmp_path / "split.json"
    assert main(["split", "--cache", str(tiny_cache), "--labelled", "2", "--seed", "1", "--val", "1", "--test", "2",
                 "--out", str(out)]) == 0
    split = json.loads(out.read_text())
    assert [len(split[r]) for r in ("train_labelled", "train_unlabelled", "val", "test")] == [2, 3, 1, 2]
    assert "2 train_labelled, 3 train_unlabelled, 1 val, 2 test" in capsys.readouterr().out
    assert main(["split", "--cache", str(tiny_cache), "--labelled", "2", "--seed", "1", "--preset", "paper",
                 "--out", str(tmp_path / "p.json")]) == 2
    assert "not 'phantom'" in capsys.readouterr().err
    assert main(["split", "--cache", str(tiny_cache), "--labelled", "2", "--seed", "1", "--preset", "paper",
                 "--test", "2", "--out", str(tmp_path / "p.json")]) == 2
    assert main(["split", "--cache", str(tmp_path / "nocache"), "--labelled", "2", "--seed", "1",
                 "--out", str(tmp_path / "p.json")]) == 2
    assert "nocache/dataset.json: not found" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
