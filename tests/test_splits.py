"""Patient-level splits: the random rule, the paper presets and the split file."""

import json

import numpy as np
import pytest

from methods.data.cache import CachedDataset, write_cache
from methods.data.splits import (
    ACDC_SSL4MIS_TEST,
    ACDC_SSL4MIS_TRAIN,
    ACDC_SSL4MIS_VAL,
    SplitError,
    load_split,
    make_split,
    validate_split,
    write_split,
)
from methods.data.types import Case


def fake_cache(tmp_path, dataset, patients: dict[str, dict], classes=("RV", "MYO", "LV")) -> CachedDataset:
    """A cache of 1x2x2 cases: one ED and one ES per patient, with `patients[id]` as meta."""
    def cases():
        for patient, meta in patients.items():
            for phase in ("ED", "ES"):
                yield Case(f"{patient}_{phase}", patient, phase, np.zeros((1, 2, 2), np.float32),
                           np.zeros((1, 2, 2), np.uint8), (8.0, 1.0, 1.0), meta=meta)
    return CachedDataset(write_cache(tmp_path / dataset, dataset, classes, cases(), "/raw"))


@pytest.fixture
def acdc_cache(tmp_path):
    return fake_cache(tmp_path, "acdc", {f"patient{n:03d}": {} for n in range(1, 101)})


def roles(split):
    return {role: split[role] for role in ("train_labelled", "train_unlabelled", "val", "test")}


def test_tiny_split_file(tiny_split, tiny_cache):
    cache = CachedDataset(tiny_cache)
    split = load_split(tiny_split, cache)
    assert [len(split[r]) for r in ("train_labelled", "train_unlabelled", "val", "test")] == [2, 3, 1, 2]
    assert split["dataset"] == "phantom" and split["labelled_count"] == 2
    assert sorted(sum(roles(split).values(), [])) == cache.patients()
    # both frames of a patient go together
    for patients in roles(split).values():
        assert sorted(cache.cases_of(patients)) == sorted(f"{p}_{ph}" for p in patients for ph in ("ED", "ES"))


def test_random_rule_is_deterministic_and_keeps_the_test_set(acdc_cache):
    first = make_split(acdc_cache, 5, seed=1, n_val=4, n_test=20)
    assert first == make_split(acdc_cache, 5, seed=1, n_val=4, n_test=20)
    others = [make_split(acdc_cache, 5, seed=s, n_val=4, n_test=20) for s in (2, 3)]
    assert all(o["test"] == first["test"] for o in others)  # the test set ignores the run seed
    assert any(o["train_labelled"] != first["train_labelled"] for o in others)
    assert [len(first[r]) for r in roles(first)] == [5, 71, 4, 20]
    default = make_split(acdc_cache, 3, seed=0)
    assert len(default["test"]) == 30  # 30% by default


def test_acdc_paper_split_uses_the_published_lists(acdc_cache):
    split = make_split(acdc_cache, 3, seed=5, rule="paper")
    assert split["train_labelled"] == ["patient038", "patient050", "patient099"]
    assert split["test"] == sorted(f"patient{n:03d}" for n in ACDC_SSL4MIS_VAL + ACDC_SSL4MIS_TEST)
    assert len(split["train_unlabelled"]) == 67 and len(split["test"]) == 30
    seven = make_split(acdc_cache, 7, seed=0, rule="paper", n_val=5)
    assert seven["train_labelled"] == sorted(["patient099", "patient038", "patient050", "patient100", "patient058",
                                              "patient021", "patient049"])
    assert len(seven["val"]) == 5 and not set(seven["val"]) & set(seven["train_labelled"])
    train = {f"patient{n:03d}" for n in ACDC_SSL4MIS_TRAIN}
    assert set(seven["val"]) <= train
    drawn = make_split(acdc_cache, 3, seed=5, rule="paper", selection="random")
    assert set(drawn["train_labelled"]) <= train and drawn["train_labelled"] != split["train_labelled"]
    assert drawn == make_split(acdc_cache, 3, seed=5, rule="paper", selection="random")
    with pytest.raises(SplitError, match="fixes the test set"):
        make_split(acdc_cache, 3, seed=0, rule="paper", n_test=10)


def test_acdc_paper_split_needs_every_listed_patient(tmp_path):
    partial = fake_cache(tmp_path, "acdc", {f"patient{n:03d}": {} for n in range(1, 51)})
    with pytest.raises(SplitError, match="SSL4MIS.*50 missing: patient051"):
        make_split(partial, 3, seed=0, rule="paper")


def test_mnms_paper_split_is_vendor_stratified(tmp_path):
    subjects = {}
    for vendor, subset, count in (("A", "Training/Labeled", 5), ("B", "Training/Labeled", 5), ("C", "Validation", 3),
                                  ("D", "Validation", 3), ("A", "Validation", 2), ("B", "Validation", 2),
                                  ("C", "Testing", 2), ("D", "Testing", 2)):
        for i in range(count):
            subjects[f"{vendor}{subset[:2].upper()}{i}"] = {"vendor": vendor, "subset": subset}
    cache = fake_cache(tmp_path, "mnms", subjects)
    four = make_split(cache, 4, seed=0, rule="paper")
    # SPCL indices [1, 75, 150, 160]: the 2nd A subject and the 1st of B, C and D
    assert four["train_labelled"] == ["ATR1", "BTR0", "CVA0", "DVA0"]
    assert len(four["train_unlabelled"]) == 16 - 4
    assert four["test"] == sorted(["AVA0", "AVA1", "BVA0", "BVA1", "CTE0", "CTE1", "DTE0", "DTE1"])
    eight = make_split(cache, 8, seed=0, rule="paper")
    assert eight["train_labelled"] == ["ATR1", "ATR2", "BTR0", "BTR1", "CVA0", "CVA1", "DVA0", "DVA1"]
    with pytest.raises(SplitError, match="only for \\[4, 8\\]"):
        make_split(cache, 5, seed=0, rule="paper")
    drawn = make_split(cache, 4, seed=3, rule="paper", selection="random")
    assert sorted(entry[0] for entry in drawn["train_labelled"]) == ["A", "B", "C", "D"]  # one per vendor


def test_scd_paper_split(tmp_path):
    subjects = {f"SC-HF-I-{i:02d}": {"subset": subset} for i, subset in
                enumerate(["training"] * 3 + ["validation"] * 3 + ["online"] * 2, start=1)}
    cache = fake_cache(tmp_path, "scd", subjects, classes=("LV",))
    split = make_split(cache, 3, seed=9, rule="paper")
    assert split["train_labelled"] == ["SC-HF-I-01", "SC-HF-I-02", "SC-HF-I-03"]
    assert split["test"] == ["SC-HF-I-07", "SC-HF-I-08"]


def test_paper_rule_is_not_defined_for_the_phantom(tiny_cache):
    with pytest.raises(SplitError, match="not 'phantom'"):
        make_split(CachedDataset(tiny_cache), 2, seed=0, rule="paper")


def test_impossible_requests(acdc_cache):
    with pytest.raises(SplitError, match="cannot draw 80 labelled"):
        make_split(acdc_cache, 80, seed=0)
    with pytest.raises(SplitError, match="test size 100"):
        make_split(acdc_cache, 3, seed=0, n_test=100)
    with pytest.raises(SplitError, match="labelled >= 1"):
        make_split(acdc_cache, 0, seed=0)


def test_split_file_round_trip_and_validation(tmp_path, acdc_cache):
    split = make_split(acdc_cache, 3, seed=0, rule="paper")
    path = write_split(split, tmp_path / "splits" / "acdc.json")
    assert load_split(path, acdc_cache) == split
    assert sorted(p.name for p in path.parent.iterdir()) == ["acdc.json"]
    overlapping = {**split, "test": split["test"] + [split["train_labelled"][0]]}
    with pytest.raises(SplitError, match="patient038 is in both 'train_labelled' and 'test'"):
        validate_split(overlapping, "x.json")
    with pytest.raises(SplitError, match="x.json: missing keys \\['val'\\]"):
        validate_split({k: v for k, v in split.items() if k != "val"}, "x.json")
    (tmp_path / "wrong.json").write_text(json.dumps({**split, "dataset": "mnms"}))
    with pytest.raises(SplitError, match="wrong.json.*'mnms'"):
        load_split(tmp_path / "wrong.json", acdc_cache)
