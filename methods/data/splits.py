"""Patient-level splits: which patients are labelled, unlabelled, validation and test.

A split file (JSON, docs/architecture.md) lists patient ids, so both frames (ED, ES) of a patient
always land in the same role:

    {"dataset", "seed", "labelled_count", "train_labelled", "train_unlabelled", "val", "test",
     "rule", "heart_centre"}

(`heart_centre`: the labelled patients' mean heart offset from the slice centre in mm, for the
region stage's label-free `labelled_mean` centre; absent when their labels hold no foreground.)

(`rule` says in words how the split was made; every list is sorted.)

Two rules:

- `random` (any dataset, the phantom's default). The test set is drawn from all patients with the
  fixed `test_seed` (0), independent of the run seed, so every seed is scored on the same
  patients; then, with `seed`, `n_val` validation and `labelled` labelled patients are drawn from
  the rest, and the remaining training patients are unlabelled. Default test size: 30% of the
  patients (rounded), as in ACDC's 70/30.
- `paper` (ACDC, M&Ms, SCD): the train/test partition of the SPCL paper.
  - ACDC: train = the 70 patients of SSL4MIS `train.list`, test = SSL4MIS val ∪ test (30).
    Published labelled patients = the first N of the SSL4MIS train order
    (3: 099 038 050; 7: + 100 058 021 049).
  - M&Ms (inferred: the paper, Sec. 3.1, gives only the counts, 170 training and 150 test
    subjects, and SPCL's `dgcl/dataset/sae_dataset.py` the labelled volume indices; the
    preprocessed tree and its id lists are not published): train = Training/Labeled
    (vendors A, B) + Validation of vendors C and D (170); test = Validation of vendors A, B +
    Testing (150). Labelled = SPCL's volume indices [1, 75, 150, 160] (4) and
    [1, 2, 75, 76, 150, 151, 160, 161] (8) into the training list sorted by (vendor, code),
    written here as (vendor, position within the vendor) pairs so they mean the same subjects
    whatever the block sizes: 1-2 per vendor.
  - SCD: train = the challenge's training + validation subsets (30), test = online (15);
    labelled = the first N of the sorted training ids (as SPCL's `scd_dataset.py`).
  `selection="paper"` (the default with this rule) takes those published labelled patients and
  ignores the seed for them; `selection="random"` draws the labelled patients from the training
  set with the seed (vendor-stratified round-robin for M&Ms), for label-selection variance runs.
  Validation patients (`n_val`) are drawn with the seed from the unlabelled training patients.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from methods.atomic import atomic_path
from methods.data.cache import CachedDataset

SPLIT_KEYS = ("dataset", "seed", "labelled_count", "train_labelled", "train_unlabelled", "val", "test")
ROLES = ("train_labelled", "train_unlabelled", "val", "test")
RULES = ("random", "paper")
SELECTIONS = ("paper", "random")
DEFAULT_TEST_FRACTION = 0.3

# SSL4MIS data/ACDC lists (HiLab-git/SSL4MIS), patient numbers in list order.
ACDC_SSL4MIS_TRAIN = (
    99, 38, 50, 100, 58, 21, 49, 20, 72, 40, 60, 89, 4, 56, 98, 96, 31, 18, 94, 47, 48, 55, 97, 74, 43,
    41, 63, 37, 95, 54, 26, 88, 32, 69, 6, 71, 12, 73, 61, 17, 25, 10, 57, 29, 51, 5, 36, 46, 62, 34,
    76, 92, 70, 77, 67, 3, 91, 16, 14, 44, 42, 90, 53, 27, 35, 86, 23, 9, 79, 15,
)
ACDC_SSL4MIS_VAL = (28, 85, 82, 87, 19, 30, 78, 45, 2, 39)
ACDC_SSL4MIS_TEST = (11, 13, 84, 33, 93, 22, 68, 24, 83, 81, 80, 1, 7, 66, 8, 65, 75, 64, 59, 52)

# SPCL sae_dataset.py labelled volume indices, as (vendor, position within the vendor block).
MNMS_PAPER_LABELLED = {
    4: (("A", 1), ("B", 0), ("C", 0), ("D", 0)),
    8: (("A", 1), ("A", 2), ("B", 0), ("B", 1), ("C", 0), ("C", 1), ("D", 0), ("D", 1)),
}
MNMS_TRAIN_VALIDATION_VENDORS = ("C", "D")


class SplitError(ValueError):
    """A split cannot be made or read; the message names the file or setting."""


def acdc_id(number: int) -> str:
    return f"patient{number:03d}"


def make_split(
    cache: CachedDataset,
    labelled: int,
    seed: int,
    n_val: int = 0,
    n_test: int | None = None,
    rule: str = "random",
    selection: str | None = None,
    test_seed: int = 0,
) -> dict:
    """Build a split of the patients of `cache` (see the module docstring for the rules)."""
    if rule not in RULES:
        raise SplitError(f"split rule {rule!r} is unknown; choose one of {list(RULES)}")
    if labelled < 1 or n_val < 0:
        raise SplitError(f"need labelled >= 1 and val >= 0, got labelled={labelled}, val={n_val}")
    patients = cache.patients()
    rng = np.random.default_rng(seed)
    if rule == "random":
        if selection not in (None, "random"):
            raise SplitError("the random rule draws the labelled patients at random; selection='paper' needs rule='paper'")
        train, test = _random_test(patients, n_test, test_seed)
        description = f"random: test drawn with test_seed={test_seed}; val and labelled drawn with seed={seed}"
        chosen = _draw(train, labelled, rng, "labelled")
        val = _draw([p for p in train if p not in chosen], n_val, rng, "val")
    else:
        if n_test is not None:
            raise SplitError("the paper rule fixes the test set; do not pass a test size with it")
        selection = selection or "paper"
        if selection not in SELECTIONS:
            raise SplitError(f"labelled selection {selection!r} is unknown; choose one of {list(SELECTIONS)}")
        train, test, published = _paper_partition(cache, labelled)
        if selection == "paper":
            chosen = published()
        elif cache.name == "mnms":
            chosen = _stratified_draw(train, [cache.patient_meta(p).get("vendor", "") for p in train], labelled, rng)
        else:
            chosen = _draw(train, labelled, rng, "labelled")
        val = _draw([p for p in train if p not in chosen], n_val, rng, "val")
        description = f"paper: {cache.name} train/test of the SPCL paper; labelled selection={selection}" + (
            f" (seed={seed})" if selection == "random" else " (published ids)") + f"; val drawn with seed={seed}"
    unlabelled = [p for p in train if p not in chosen and p not in val]
    split = {
        "dataset": cache.name,
        "seed": int(seed),
        "labelled_count": int(labelled),
        "train_labelled": sorted(chosen),
        "train_unlabelled": sorted(unlabelled),
        "val": sorted(val),
        "test": sorted(test),
        "rule": description,
    }
    centre = _heart_centre(cache, split["train_labelled"])
    if centre is not None:
        split["heart_centre"] = centre
    validate_split(split, "the new split", patients)
    return split


def _heart_centre(cache: CachedDataset, labelled: list[str]) -> dict | None:
    """The labelled patients' mean heart position for the region stage's `labelled_mean` centre
    (methods.data.region); None when their labels hold no foreground at all."""
    from methods.data.region import labelled_heart_centre
    from methods.errors import ConfigError

    try:
        return labelled_heart_centre(cache, labelled)
    except ConfigError:
        return None


def _random_test(patients: list[str], n_test: int | None, test_seed: int) -> tuple[list[str], list[str]]:
    n_test = round(DEFAULT_TEST_FRACTION * len(patients)) if n_test is None else n_test
    if not 1 <= n_test < len(patients):
        raise SplitError(f"test size {n_test} must be between 1 and {len(patients) - 1} for {len(patients)} patients")
    order = np.random.default_rng(test_seed).permutation(len(patients))
    test = sorted(patients[i] for i in order[:n_test])
    return [p for p in patients if p not in test], test


def _draw(candidates: list[str], count: int, rng: np.random.Generator, role: str) -> list[str]:
    """`count` patients drawn without replacement from the sorted `candidates`."""
    if count > len(candidates):
        raise SplitError(f"cannot draw {count} {role} patients from the {len(candidates)} available")
    order = rng.permutation(len(candidates))[:count]
    return [candidates[i] for i in order]


def _stratified_draw(candidates: list[str], strata: list[str], count: int, rng: np.random.Generator) -> list[str]:
    """Draw `count` patients taking one per stratum in turn (sorted strata), each stratum shuffled."""
    if count > len(candidates):
        raise SplitError(f"cannot draw {count} labelled patients from the {len(candidates)} available")
    pools = {}
    for patient, stratum in zip(candidates, strata):
        pools.setdefault(stratum, []).append(patient)
    queues = {s: [pool[i] for i in rng.permutation(len(pool))] for s, pool in sorted(pools.items())}
    chosen: list[str] = []
    while len(chosen) < count:
        for queue in queues.values():
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def _require(patients: list[str], wanted, where: str) -> None:
    missing = sorted(set(wanted) - set(patients))
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise SplitError(f"{where} needs patients that the cache lacks ({len(missing)} missing: {shown})")


def _paper_partition(cache: CachedDataset, labelled: int):
    """(train, test, published-labelled callable) of the paper rule for the cache's dataset."""
    patients = cache.patients()
    if cache.name == "acdc":
        train = [acdc_id(n) for n in ACDC_SSL4MIS_TRAIN]
        test = [acdc_id(n) for n in ACDC_SSL4MIS_VAL + ACDC_SSL4MIS_TEST]
        _require(patients, train + test, "the ACDC paper split (SSL4MIS lists)")

        def published() -> list[str]:
            if labelled > len(train):
                raise SplitError(f"ACDC has {len(train)} training patients; cannot label {labelled}")
            return train[:labelled]

        return train, test, published
    if cache.name == "mnms":
        meta = {p: cache.patient_meta(p) for p in patients}
        for patient, m in meta.items():
            if "vendor" not in m or "subset" not in m:
                raise SplitError(f"{cache.root}: M&Ms patient {patient} lacks vendor/subset meta; prepare the cache again")
        train = sorted((p for p, m in meta.items() if m["subset"] == "Training/Labeled"
                        or (m["subset"] == "Validation" and m["vendor"] in MNMS_TRAIN_VALIDATION_VENDORS)),
                       key=lambda p: (meta[p]["vendor"], p))
        test = sorted(p for p in patients if p not in train)

        def published() -> list[str]:
            if labelled not in MNMS_PAPER_LABELLED:
                raise SplitError(f"M&Ms has published labelled subjects only for {sorted(MNMS_PAPER_LABELLED)}; "
                                 f"use selection='random' for {labelled}")
            by_vendor: dict[str, list[str]] = {}
            for p in train:
                by_vendor.setdefault(meta[p]["vendor"], []).append(p)
            chosen = []
            for vendor, position in MNMS_PAPER_LABELLED[labelled]:
                block = by_vendor.get(vendor, [])
                if position >= len(block):
                    raise SplitError(f"M&Ms paper labelled selection needs at least {position + 1} training "
                                     f"subjects of vendor {vendor}; the cache has {len(block)}")
                chosen.append(block[position])
            return chosen

        return train, test, published
    if cache.name == "scd":
        subsets = {p: cache.patient_meta(p).get("subset", "") for p in patients}
        unknown = sorted(p for p, s in subsets.items() if s not in ("training", "validation", "online"))
        if unknown:
            raise SplitError(f"{cache.root}: SCD patients {unknown} have no challenge subset; cannot make the paper split")
        train = sorted(p for p, s in subsets.items() if s in ("training", "validation"))
        test = sorted(p for p, s in subsets.items() if s == "online")

        def published() -> list[str]:
            if labelled > len(train):
                raise SplitError(f"SCD has {len(train)} training patients; cannot label {labelled}")
            return train[:labelled]

        return train, test, published
    raise SplitError(f"the paper split rule is defined for acdc, mnms and scd, not {cache.name!r}; use rule='random'")


def validate_split(split: dict, where: str | Path, patients: list[str] | None = None) -> None:
    """Check keys, types, that roles are disjoint and non-empty where needed, and (optionally)
    that every patient id is one of `patients`."""
    if not isinstance(split, dict):
        raise SplitError(f"{where}: a split must be a JSON object")
    missing = [key for key in SPLIT_KEYS if key not in split]
    if missing:
        raise SplitError(f"{where}: missing keys {missing}")
    for role in ROLES:
        if not isinstance(split[role], list) or not all(isinstance(p, str) for p in split[role]):
            raise SplitError(f"{where}: {role!r} must be a list of patient ids")
    if not split["train_labelled"] or not split["test"]:
        raise SplitError(f"{where}: train_labelled and test must not be empty")
    if split["labelled_count"] != len(split["train_labelled"]):
        raise SplitError(f"{where}: labelled_count {split['labelled_count']} != {len(split['train_labelled'])} labelled patients")
    seen: dict[str, str] = {}
    for role in ROLES:
        for patient in split[role]:
            if patient in seen:
                raise SplitError(f"{where}: patient {patient} is in both {seen[patient]!r} and {role!r}")
            seen[patient] = role
    centre = split.get("heart_centre")
    if centre is not None:
        offset = centre.get("offset_mm") if isinstance(centre, dict) else None
        if not (isinstance(offset, list) and len(offset) == 2 and all(isinstance(v, (int, float)) for v in offset)):
            raise SplitError(f"{where}: 'heart_centre' must hold 'offset_mm': [dy, dx] in mm, got {centre!r}")
    if patients is not None:
        unknown = sorted(set(seen) - set(patients))
        if unknown:
            raise SplitError(f"{where}: patients {unknown} are not in the dataset")


def write_split(split: dict, path: str | Path) -> Path:
    """Validate and write `split` as JSON, atomically (temporary file + rename)."""
    path = Path(path)
    validate_split(split, path)
    with atomic_path(path) as temporary, temporary.open("w") as stream:  # the umask applies
        json.dump(split, stream, indent=1)
        stream.write("\n")
    return path


def load_split(path: str | Path, cache: CachedDataset | None = None) -> dict:
    """Read and validate a split file; with `cache`, also check its dataset and patient ids."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"{path}: split file not found")
    try:
        split = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SplitError(f"{path}: not valid JSON ({error})") from None
    validate_split(split, path, cache.patients() if cache is not None else None)
    if cache is not None and split["dataset"] != cache.name:
        raise SplitError(f"{path}: split is for dataset {split['dataset']!r} but the cache {cache.root} holds {cache.name!r}")
    return split
