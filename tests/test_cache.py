"""Prepared cache: round trip, normalisation, atomic writing and validation errors."""

import json
import os
import stat

import numpy as np
import pytest

from methods.data.cache import CacheFormatError, CachedDataset, write_cache
from methods.data.normalise import normalise_volume
from methods.data.types import Case, DatasetFormatError


def make_case(patient: str, phase: str, offset: float = 0.0, label_value: int = 1) -> Case:
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) + offset  # values offset..offset+23
    label = np.zeros((2, 3, 4), dtype=np.uint8)
    label[1, 1, 1:3] = label_value
    return Case(case_id=f"{patient}_{phase}", patient_id=patient, phase=phase, image=image, label=label,
                spacing=(10.0, 1.25, 1.5), source=f"/raw/{patient}_{phase}.nii.gz", meta={"vendor": "A"})


def two_patients():
    return [make_case("p1", "ED"), make_case("p1", "ES", 5), make_case("p2", "ED", 100), make_case("p2", "ES")]


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir())


def test_round_trip(tmp_path):
    out = write_cache(tmp_path / "cache", "toy", ("RV", "MYO", "LV"), two_patients(), "/raw", normalisation="minmax")
    cache = CachedDataset(out)
    assert cache.name == "toy" and cache.class_names == ("RV", "MYO", "LV") and cache.num_classes == 4
    assert cache.case_ids == ["p1_ED", "p1_ES", "p2_ED", "p2_ES"]
    assert cache.patients() == ["p1", "p2"]
    assert cache.cases_of(["p2"]) == ["p2_ED", "p2_ES"]
    case = cache.load("p1_ES")
    assert case.patient_id == "p1" and case.phase == "ES" and case.spacing == (10.0, 1.25, 1.5)
    assert case.meta == {"vendor": "A"}
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    # min-max of 5..28 maps value 5 + k to k / 23
    np.testing.assert_allclose(case.image.ravel(), np.arange(24) / 23, rtol=1e-6)
    np.testing.assert_array_equal(case.label, make_case("p1", "ES").label)
    index = json.loads((out / "dataset.json").read_text())
    assert index["format_version"] == 1 and index["normalisation"] == "minmax" and index["source_root"] == "/raw"
    assert index["cases"][0]["shape"] == [2, 3, 4] and index["cases"][0]["spacing"] == [10.0, 1.25, 1.5]
    with pytest.raises(KeyError, match="p9"):
        cache.cases_of(["p9"])


def test_clip_minmax_by_hand():
    volume = np.arange(1000, dtype=np.float64)
    low, high = 0.005 * 999, 0.995 * 999  # numpy's linear percentiles of 0..999
    result = normalise_volume(volume, "clip_minmax")
    assert result[0] == 0 and result[-1] == 1
    np.testing.assert_allclose(result[500], (500 - low) / (high - low), rtol=1e-6)
    assert np.all(normalise_volume(np.full((2, 2), 7.0)) == 0)
    with pytest.raises(ValueError, match="zscore"):
        normalise_volume(volume, "zscore")


def test_failure_mid_write_leaves_nothing(tmp_path):
    def broken_reader():
        yield make_case("p1", "ED")
        raise DatasetFormatError("/raw/p1_ES.nii.gz: truncated")

    with pytest.raises(DatasetFormatError, match="truncated"):
        write_cache(tmp_path / "cache", "toy", ("RV", "MYO", "LV"), broken_reader(), "/raw")
    assert leftovers(tmp_path) == []


def test_bad_label_and_duplicates_rejected(tmp_path):
    with pytest.raises(DatasetFormatError, match="p1_ED.nii.gz.*outside"):
        write_cache(tmp_path / "a", "toy", ("LV",), [make_case("p1", "ED", label_value=2)], "/raw")
    with pytest.raises(DatasetFormatError, match="appears twice"):
        write_cache(tmp_path / "b", "toy", ("LV",), [make_case("p1", "ED"), make_case("p1", "ED")], "/raw")
    with pytest.raises(DatasetFormatError, match="no annotated cases"):
        write_cache(tmp_path / "c", "toy", ("LV",), [], "/raw")
    assert leftovers(tmp_path) == []


def test_existing_cache_needs_overwrite(tmp_path):
    out = write_cache(tmp_path / "cache", "toy", ("RV", "MYO", "LV"), two_patients(), "/raw")
    with pytest.raises(FileExistsError, match="cache"):
        write_cache(out, "toy", ("RV", "MYO", "LV"), two_patients()[:2], "/raw")
    write_cache(out, "toy", ("RV", "MYO", "LV"), two_patients()[:2], "/raw", overwrite=True)
    assert CachedDataset(out).patients() == ["p1"]
    assert leftovers(tmp_path) == ["cache"]


def test_validation_errors_name_the_file(tmp_path):
    out = write_cache(tmp_path / "cache", "toy", ("RV", "MYO", "LV"), two_patients(), "/raw")
    with pytest.raises(CacheFormatError, match="missing.*dataset.json"):
        CachedDataset(tmp_path / "missing")
    index_path = out / "dataset.json"
    index = json.loads(index_path.read_text())

    np.savez(out / "cases" / "p1_ED.npz", image=np.zeros((2, 3, 5), np.float32), label=np.zeros((2, 3, 5), np.uint8),
             spacing=np.array([10.0, 1.25, 1.5]))
    with pytest.raises(CacheFormatError, match="p1_ED.npz.*do not match"):
        CachedDataset(out).load("p1_ED")
    (out / "cases" / "p1_ES.npz").unlink()
    with pytest.raises(CacheFormatError, match="p1_ES.npz.*missing"):
        CachedDataset(out).load("p1_ES")

    index_path.write_text(json.dumps({**index, "format_version": 0}))
    with pytest.raises(CacheFormatError, match="dataset.json.*format_version"):
        CachedDataset(out)
    index_path.write_text(json.dumps({k: v for k, v in index.items() if k != "classes"}))
    with pytest.raises(CacheFormatError, match="dataset.json.*'classes'"):
        CachedDataset(out)
    index_path.write_text("{not json")
    with pytest.raises(CacheFormatError, match="dataset.json.*not valid JSON"):
        CachedDataset(out)


def test_tiny_cache_cases_are_normalised(tiny_cache):
    cache = CachedDataset(tiny_cache)
    assert cache.name == "phantom" and cache.num_classes == 4 and len(cache) == 2 * len(cache.patients())
    for case_id in cache.case_ids[:4]:
        case = cache.load(case_id)
        assert case.image.min() == 0.0 and case.image.max() == 1.0
        assert set(np.unique(case.label)) <= {0, 1, 2, 3}


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(root):
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600), (0o002, 0o775, 0o664)])
def test_cache_permissions_follow_the_umask(tmp_path, umask, mask, dir_mode, file_mode):
    umask(mask)
    out = write_cache(tmp_path / "cache", "toy", ("RV", "MYO", "LV"), two_patients(), "/raw")
    modes = _modes(out)
    assert modes["."] == dir_mode and modes["cases"] == dir_mode  # not mkdtemp's 0700
    assert modes["dataset.json"] == file_mode and modes["cases/p1_ED.npz"] == file_mode
    # replacing a cache keeps to the same rule
    write_cache(out, "toy", ("RV", "MYO", "LV"), two_patients()[:2], "/raw", overwrite=True)
    assert _modes(out)["."] == dir_mode
    assert leftovers(tmp_path) == ["cache"]


def pixel_case(patient: str, phase: str) -> Case:
    case = make_case(patient, phase)
    return Case(case.case_id, case.patient_id, case.phase, case.image, case.label, (np.nan,) * 3, case.source)


def test_pixel_only_cache_round_trip(tmp_path):
    reason = "SSL4MIS h5 files carry no voxel size"
    out = write_cache(tmp_path / "cache", "acdc", ("RV", "MYO", "LV"), [pixel_case("p1", "ED"), pixel_case("p1", "ES")],
                      "/h5", pixel_only_reason=reason, reader={"format": "ssl4mis_acdc", "options": {}},
                      reader_notes=["p1_ES: something to know"])
    index = json.loads((out / "dataset.json").read_text())
    assert index["pixel_only"] is True and index["pixel_only_reason"] == reason
    assert index["cases"][0]["spacing"] == [None, None, None]
    assert index["reader"] == {"format": "ssl4mis_acdc", "options": {}} and index["reader_notes"] == ["p1_ES: something to know"]
    cache = CachedDataset(out)
    assert cache.pixel_only and cache.pixel_only_reason == reason and cache.reader_notes == ["p1_ES: something to know"]
    case = cache.load("p1_ED")
    assert not case.has_spacing and all(np.isnan(case.spacing))
    # an ordinary cache says so explicitly
    normal = CachedDataset(write_cache(tmp_path / "mm", "toy", ("LV",), [make_case("p1", "ED")], "/raw"))
    assert not normal.pixel_only and normal.load("p1_ED").has_spacing
    assert json.loads((tmp_path / "mm" / "dataset.json").read_text())["pixel_only"] is False


def test_pixel_only_must_be_all_or_nothing(tmp_path):
    with pytest.raises(DatasetFormatError, match="p1_ED.*not declared pixel-only"):
        write_cache(tmp_path / "a", "toy", ("RV", "MYO", "LV"), [pixel_case("p1", "ED")], "/raw")
    with pytest.raises(DatasetFormatError, match="p2_ED.*has spacing .* but the cache is pixel-only"):
        write_cache(tmp_path / "b", "toy", ("RV", "MYO", "LV"), [pixel_case("p1", "ED"), make_case("p2", "ED")], "/raw",
                    pixel_only_reason="no spacing")
    assert leftovers(tmp_path) == []


def test_pixel_only_index_is_validated(tmp_path):
    out = write_cache(tmp_path / "cache", "toy", ("RV", "MYO", "LV"), [pixel_case("p1", "ED")], "/h5", pixel_only_reason="why")
    index_path = out / "dataset.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "pixel_only_reason": ""}))
    with pytest.raises(CacheFormatError, match="needs a 'pixel_only_reason'"):
        CachedDataset(out)
    index_path.write_text(json.dumps({**index, "pixel_only": False}))
    with pytest.raises(CacheFormatError, match=r"p1_ED has spacing \[None, None, None\]; expected 3 positive numbers"):
        CachedDataset(out)
