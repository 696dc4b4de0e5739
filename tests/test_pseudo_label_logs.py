"""Pseudo-label diagnostics during training: hand-counted values, and proof that the unlabelled
patients' labels reach the logs only, never a loss (identical weights without them)."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from methods.api import PseudoLabelView
from methods.training.pseudo_label_logs import PseudoLabelMeter
from _tiny_run import TINY_NET
from test_engine import assert_same_state


def test_meter_counts_by_hand():
    meter = PseudoLabelMeter(["RV", "LV"], with_labels=True)
    labels = torch.tensor([[[0, 1, 1, 2], [2, 2, 0, 1]]])  # one 2 x 4 image
    passed = torch.tensor([[[1, 1, 0, 1], [1, 0, 1, 1]]], dtype=torch.bool)
    truth = torch.tensor([[[0, 1, 2, 2], [1, 2, 0, 2]]])
    meter.add(PseudoLabelView(labels, passed), truth)
    out = meter.flush()
    # passed pixels: (0,0)=0 ok, (0,1)=1 ok, (0,3)=2 ok, (1,0)=2 wrong (truth 1), (1,2)=0 ok, (1,3)=1 wrong (truth 2)
    assert out["pl_cover_background"] == pytest.approx(2 / 8)
    assert out["pl_cover_RV"] == pytest.approx(2 / 8)
    assert out["pl_cover_LV"] == pytest.approx(2 / 8)
    assert out["pl_prec_background"] == 1.0
    assert out["pl_prec_RV"] == pytest.approx(1 / 2)
    assert out["pl_prec_LV"] == pytest.approx(1 / 2)
    # truth counts: background 2 (both right), RV 2 (one right), LV 4 (one right)
    assert out["pl_recall_background"] == 1.0
    assert out["pl_recall_RV"] == pytest.approx(1 / 2)
    assert out["pl_recall_LV"] == pytest.approx(1 / 4)
    assert meter.flush() == {}  # reset after a flush


def test_meter_accumulates_and_reports_nan_when_nothing_is_labelled_a_class():
    meter = PseudoLabelMeter(["RV"], with_labels=False)
    view = PseudoLabelView(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[1, 0], [0, 0]]], dtype=torch.bool))
    meter.add(view, None)
    meter.add(view, None)
    out = meter.flush()
    assert set(out) == {"pl_cover_background", "pl_cover_RV"}  # no labels: coverage only
    assert out["pl_cover_background"] == pytest.approx(2 / 8)
    assert out["pl_cover_RV"] == 0.0


def _strip_unlabelled_labels(cache_dir, split_path, out_dir):
    shutil.copytree(cache_dir, out_dir)
    split = json.loads(open(split_path).read())
    index = json.loads((out_dir / "dataset.json").read_text())
    for entry in index["cases"]:
        if entry["patient_id"] in split["train_unlabelled"]:
            path = out_dir / "cases" / f"{entry['case_id']}.npz"
            with np.load(path) as f:
                arrays = {k: f[k] for k in f.files}
            arrays["label"] = np.zeros_like(arrays["label"])
            np.savez_compressed(path, **arrays)
    return out_dir


def _train(cache, split, out_dir, iterations=4, method="meanteacher", method_config=None, logs=True):
    from methods.runconfig import parse_run_config
    from methods.training.engine import train

    cfg = parse_run_config({
        "method": method, "method_config": {"warmup_iters": 1, "conf_threshold": 0.3} if method_config is None else method_config,
        "seed": 0,
        "out_dir": str(out_dir),
        "data": {"cache": str(cache), "split": str(split), "dataset": "phantom", "ratio": 5, "img_size": 32,
                 "labelled_batch": 2, "unlabelled_batch": 2},
        "network": TINY_NET,
        "train": {"iterations": iterations, "device": "cpu", "amp": "off", "progress": False,
                  "log_every": 2, "checkpoint_every": 1000, "pseudo_label_logs": logs},
    })
    run_dir = train(cfg)
    with open(run_dir / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    state = torch.load(run_dir / "final.pt", map_location="cpu", weights_only=False)["method_state"]
    return rows, state


def test_unlabelled_labels_are_logged_but_never_trained_on(tiny_cache, tiny_split, tmp_path):
    rows, state = _train(tiny_cache, tiny_split, tmp_path / "with")
    stripped = _strip_unlabelled_labels(tiny_cache, tiny_split, tmp_path / "cache_without")
    rows_wo, state_wo = _train(stripped, tiny_split, tmp_path / "without")
    # bit-identical weights (student, teacher, BN buffers) and losses
    assert state.keys() == state_wo.keys()
    for k in state:
        a, b = state[k], state_wo[k]
        if isinstance(a, dict):  # extra state (the CutMix generator)
            assert a.keys() == b.keys() and all(torch.equal(a[j], b[j]) for j in a), k
        else:
            assert torch.equal(a, b), k
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_wo]
    # with labels: coverage, precision and recall per class at the log iterations after warm-up
    logged = [r for r in rows if r.get("pl_cover_LV", "") != ""]
    assert [int(r["iteration"]) for r in logged] == [1, 3]
    for r in logged:
        for c in ("background", "RV", "MYO", "LV"):
            assert 0.0 <= float(r[f"pl_cover_{c}"]) <= 1.0
            assert r[f"pl_recall_{c}"] != "" and 0.0 <= float(r[f"pl_recall_{c}"]) <= 1.0
        # the four coverages are disjoint parts of the unlabelled pixels
        assert sum(float(r[f"pl_cover_{c}"]) for c in ("background", "RV", "MYO", "LV")) <= 1.0 + 1e-9
    # without labels (all background in the cache): the same coverage, no precision columns
    assert "pl_prec_LV" not in rows_wo[0]
    assert [r["pl_cover_LV"] for r in rows_wo] == [r["pl_cover_LV"] for r in rows]


# methods outside the mean-teacher family that feed their unlabelled loss pseudo-labels of their own
OWN_VIEWS = {
    "abd": {},  # cross pseudo supervision: the other model's argmax, no filter
    "admt": {"conf_threshold": 0.3},  # the teachers' ensemble after conflict combating
    "ugpcl": {"contrast_start": 0},  # certainty pseudo-labels on the rotated views, from the first step
}


@pytest.mark.parametrize("method", sorted(OWN_VIEWS))
def test_methods_with_their_own_pseudo_labels_log_them_and_logging_changes_nothing(method, tiny_cache, tiny_split,
                                                                                   tmp_path):
    rows, state = _train(tiny_cache, tiny_split, tmp_path / "on", method=method, method_config=OWN_VIEWS[method])
    rows_off, state_off = _train(tiny_cache, tiny_split, tmp_path / "off", method=method,
                                 method_config=OWN_VIEWS[method], logs=False)
    assert_same_state(state, state_off)
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_off]
    logged = [r for r in rows if r.get("pl_cover_LV", "") != ""]
    assert [int(r["iteration"]) for r in logged] == [1, 3]
    for r in logged:
        covers = [float(r[f"pl_cover_{c}"]) for c in ("background", "RV", "MYO", "LV")]
        assert all(0.0 <= v <= 1.0 for v in covers) and sum(covers) <= 1.0 + 1e-9
        assert r["pl_recall_background"] != ""
    if method == "abd":  # no filter: every unlabelled pixel is pseudo-labelled
        assert all(sum(float(r[f"pl_cover_{c}"]) for c in ("background", "RV", "MYO", "LV")) == pytest.approx(1.0)
                   for r in logged)


def test_a_warped_view_is_scored_against_labels_warped_the_same_way():
    from baselines.ugpcl import rotate_views

    truth = torch.zeros(2, 16, 16, dtype=torch.long)
    truth[:, 2:7, 3:12], truth[:, 9:14, 5:9] = 1, 2
    x = torch.rand(2, 1, 16, 16)
    k, angle = torch.tensor([1, 3]), torch.tensor([0.0, 20.0])
    rotated = rotate_views(x, truth, k, angle)[1]  # what a perfect network sees and predicts
    every = torch.ones_like(rotated, dtype=torch.bool)
    meter = PseudoLabelMeter(["RV", "LV"], with_labels=True)
    meter.add(PseudoLabelView(rotated, every, warp=lambda y: rotate_views(x, y, k, angle)[1]), truth)
    out = meter.flush()
    assert all(out[f"pl_{q}_{c}"] == 1.0 for q in ("prec", "recall") for c in ("RV", "LV"))
    meter.add(PseudoLabelView(rotated, every), truth)  # the same pseudo-labels scored on the unrotated grid
    assert meter.flush()["pl_prec_RV"] < 0.5
