"""Opt-in: four real ACDC patients through prepare, the real-data profile and evaluation.

Runs when the environment variable SPCL_BENCH_ACDC points at an ACDC `database/` folder (the
public release: `training/patientNNN/` with Info.cfg, `_frameFF.nii.gz` and `_gt.nii.gz`);
`.ci/run` sets it when `../shared/data/ACDC/database` exists. Any use of the data must cite
Bernard et al., "Deep learning techniques for automatic MRI cardiac multi-structures segmentation
and diagnosis: is the problem solved?", IEEE TMI 37(11), 2018.
"""

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from methods.api import ConfigError

ACDC = os.environ.get("SPCL_BENCH_ACDC", "")
PATIENTS = ("patient001", "patient002", "patient003", "patient004")

pytestmark = pytest.mark.skipif(
    not ACDC, reason="not run: set SPCL_BENCH_ACDC to an ACDC database/ folder (the one holding training/patient001 ...)"
)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A cache of four real patients (the raw folders linked, never copied) and a split."""
    from methods.data.cache import CachedDataset
    from methods.data.prepare import prepare_dataset
    from methods.data.splits import make_split, write_split

    source = Path(ACDC)
    folders = {p: next(source.glob(f"*/{p}"), None) for p in PATIENTS}
    missing = [p for p, f in folders.items() if f is None]
    if missing:
        raise ConfigError(f"SPCL_BENCH_ACDC={ACDC}: patients {missing} not found under it")
    base = tmp_path_factory.mktemp("acdc")
    root = base / "database" / "training"
    root.mkdir(parents=True)
    for patient, folder in folders.items():
        (root / patient).symlink_to(folder.resolve())
    cache_dir = prepare_dataset("acdc", root.parent, base / "cache")
    cache = CachedDataset(cache_dir)
    split = make_split(cache, labelled=1, seed=0, n_val=0, n_test=1)
    split_path = write_split(split, base / "split.json")
    return {"folders": folders, "cache_dir": cache_dir, "cache": cache, "split": split, "split_path": split_path, "base": base}


def test_spacing_comes_from_the_nifti_header(real):
    for case_id in real["cache"].case_ids:
        entry = real["cache"].entry(case_id)
        patient = entry["patient_id"]
        files = sorted(real["folders"][patient].glob(f"{patient}_frame*_gt.nii.gz"))
        zooms = {tuple(np.round(nib.load(str(f)).header.get_zooms()[:3], 4)) for f in files}
        assert len(zooms) == 1, (patient, zooms)  # ED and ES share the acquisition grid
        x, y, z = zooms.pop()  # NIfTI (x, y, z); the cache stores (z, y, x) with the array [Z, H, W]
        assert entry["spacing"][0] == pytest.approx(z, abs=1e-3)
        assert sorted(entry["spacing"][1:]) == pytest.approx(sorted((x, y)), abs=1e-3)
        assert 0.5 < entry["spacing"][1] < 2.5 and 4.0 <= entry["spacing"][0] <= 10.0  # ACDC's ranges


def _outer_ring(mask: np.ndarray) -> np.ndarray:
    """Pixels 4-adjacent to `mask` (per slice) that are not in it."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(mask, structure) & ~mask


def test_anatomy_lv_inside_myo_rv_outside_ed_larger_than_es(real):
    cache = real["cache"]
    rv, myo, lv = (cache.class_names.index(n) + 1 for n in ("RV", "MYO", "LV"))
    lv_volume = {}
    for case_id in cache.case_ids:
        case = cache.load(case_id)
        ring = _outer_ring(case.label == lv)
        # the LV cavity is enclosed by myocardium: its outer neighbours are MYO (a few basal pixels
        # may touch the outflow tract)
        assert (case.label[ring] == myo).mean() > 0.9, case_id
        rv_ring = _outer_ring(case.label == rv)
        # the RV is not enclosed by myocardium: much of its border is background
        assert (case.label[rv_ring] == 0).mean() > 0.3, case_id
        lv_volume[(case.patient_id, case.phase)] = (case.label == lv).sum() * np.prod(case.spacing) / 1000.0  # ml
    for patient in {p for p, _ in lv_volume}:
        assert lv_volume[(patient, "ED")] > lv_volume[(patient, "ES")], patient


def test_real_profile_trains_and_evaluates_to_the_results_schema(real):
    from methods.evaluation.evaluate import evaluate_checkpoint
    from methods.results_schema import RESULT_COLUMNS
    from methods.runconfig import load_raw, parse_run_config, profile_path
    from methods.training.engine import train

    raw = load_raw(profile_path("acdc_cpu"))
    raw.update({"method": "meanteacher", "seed": 0, "out_dir": str(real["base"] / "run"),
                "method_config": {"warmup_iters": 1}})
    raw["data"].update({"cache": str(real["cache_dir"]), "split": str(real["split_path"]), "dataset": "acdc", "ratio": 5})
    raw["train"].update({"iterations": 3, "log_every": 1, "progress": False, "device": "cpu"})
    run_dir = train(parse_run_config(raw))
    log = (run_dir / "log.csv").read_text().splitlines()
    assert "pl_cover_LV" in log[0] and "pl_prec_LV" in log[0]  # the unlabelled patients' labels, logged only
    df = evaluate_checkpoint(run_dir / "final.pt", real["cache_dir"], real["split_path"], "test", device="cpu")
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert df["case_id"].nunique() == 2 and set(df["class_name"]) == {"RV", "MYO", "LV"}
    assert df["region"].str.startswith("crop").all() and (df["region_centre"] != "").all()
    assert df["dice"].between(0, 1).all() and (df["hd95_mm"].dropna() > 0).all()
