"""The protocol decomposition (config/experiments/protocol_decomposition.yaml, analysis/protocol_chain.py):
the analysis on a hand-made table, the shipped experiment's job graph on fixture ACDC, and the
shipped chain at tiny CPU scale on the phantom, end to end to REPORT.md."""

import csv
import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.protocol_chain import chain_summary, make_protocol_chain, per_case, protocol_steps
from fixtures_datasets import write_acdc_stubs, write_acdc_fixture
from test_workflow import REPO, job_counts, snakemake, write_yaml

EXPERIMENT = REPO / "config" / "experiments" / "protocol_decomposition.yaml"
STEPS = [{"name": "official", "change": "all official"}, {"name": "fair", "change": "all fair"}]


def rows(step, method, case, seed, dices, hd, uses):
    return [{"variant": f"protocol_{step}", "method": method, "seed": seed, "case_id": case, "class_name": c,
             "dice": d, "hd95_mm": hd, "uses_test_label": uses, "dataset": "phantom", "ratio": 5.0}
            for c, d in zip(("RV", "MYO", "LV"), dices)]


def test_chain_table_numbers_by_hand(tmp_path):
    table = pd.DataFrame(
        rows("official", "spcl", "a", 0, (0.9, 0.8, 1.0), 2.0, True) + rows("official", "spcl", "b", 0, (0.7, 0.7, 0.7), 4.0, True)
        + rows("fair", "spcl", "a", 0, (0.8, 0.7, 0.9), 3.0, False) + rows("fair", "spcl", "b", 0, (0.6, 0.6, 0.6), 5.0, False)
        + rows("official", "spcl", "c", 0, (1.0, 1.0, 1.0), 1.0, True)  # no partner in "fair": left out of Δ only
        + rows("other", "spcl", "a", 0, (0.0, 0.0, 0.0), 9.0, False)  # not a configured step
    )
    cases = per_case(table, STEPS)
    assert sorted(cases["step"].astype(str).unique()) == ["fair", "official"]
    summary = chain_summary(cases, STEPS, n_boot=200).set_index("step")
    # official: case means 90, 70, 100 -> 86.67; fair: 80, 60 -> 70
    assert summary.loc["official", "dice"] == pytest.approx((90 + 70 + 100) / 3)
    assert summary.loc["fair", "dice"] == pytest.approx(70.0)
    # paired over a and b: Dice -10 on both, HD95 +1 on both -> the bootstrap interval is the point
    assert summary.loc["fair", "delta_dice"] == pytest.approx(-10.0)
    assert (summary.loc["fair", "delta_dice_ci_low"], summary.loc["fair", "delta_dice_ci_high"]) == pytest.approx((-10, -10))
    assert summary.loc["fair", "delta_hd95_mm"] == pytest.approx(1.0)
    assert np.isnan(summary.loc["official", "delta_dice"])
    assert bool(summary.loc["official", "uses_test_label"]) and not bool(summary.loc["fair", "uses_test_label"])

    result, figure = make_protocol_chain(table, {"protocols": {"steps": STEPS}}, tmp_path / "t", tmp_path / "f", n_boot=50)
    assert figure.produced and (tmp_path / "f" / "protocol_decomposition.png").is_file()
    md = (tmp_path / "t" / "protocol_decomposition.md").read_text()
    assert "-10.00 [-10.00, -10.00]" in md and "yes" in md


def test_without_steps_or_runs_nothing_is_produced_and_the_reason_is_given(tmp_path):
    table = pd.DataFrame(rows("official", "spcl", "a", 0, (1, 1, 1), 1.0, True))
    assert protocol_steps({}) == []
    result, figure = make_protocol_chain(table, {}, tmp_path, tmp_path)
    assert result is None and "protocols.steps" in figure.reason
    result, figure = make_protocol_chain(table.assign(variant="default"), {"protocols": {"steps": STEPS}}, tmp_path, tmp_path)
    assert result is None and "no per-case rows" in figure.reason


def test_the_shipped_experiment_plans_every_step_for_every_method(tmp_path, monkeypatch):
    write_acdc_fixture(tmp_path / "ACDC")
    write_acdc_stubs(tmp_path / "ACDC" / "database")  # the start-up check looks for all 100 patients
    monkeypatch.setenv("SPCL_BENCH_ACDC", str(tmp_path / "ACDC" / "database"))
    cfg = yaml.safe_load(EXPERIMENT.read_text())
    (tmp_path / "work").mkdir()
    result = snakemake(tmp_path / "work", EXPERIMENT, "--dry-run", "--quiet", "rules")
    assert result.returncode == 0, result.stdout[-3000:]
    steps = cfg["protocols"]["steps"]
    assert [s["name"] for s in steps][0] == "official" and steps[-1]["profile"] == "paper"
    assert job_counts(result.stdout)["train"] == len(cfg["protocols"]["methods"]) * len(steps) + len(cfg["methods"])


#: the steps of the shipped chain the tiny run keeps (every switch is on in the first and off in the
#: last; the full chain is planned by the dry run above): the official protocol; the label-free test
#: crop on the native grid; the harness's fair protocol
TINY_STEPS = ("official", "label_free_test_crop", "harness_network")


def tiny_chain(tmp_path):
    """The shipped chain, shrunk: SPCL, three of its steps, phantom, 2 iterations, 32 px inputs,
    small crops and grid, selection after each iteration."""
    cfg = yaml.safe_load(EXPERIMENT.read_text())
    steps = []
    for step in (s for s in cfg["protocols"]["steps"] if s["name"] in TINY_STEPS):
        step = copy.deepcopy(step)
        over = step.setdefault("overrides", {})
        data = over.setdefault("data", {})
        data.update(img_size=32, **({"crop_px": 48} if data.get("region") == "label_centred" else {}))
        if "evaluation" in over:
            over["evaluation"]["grid_size"] = 32
        train = over.setdefault("train", {})
        train.pop("amp", None)
        if train.get("selection") == "best_on_test":
            train["select_every"] = 1
        steps.append(step)
    return {
        "run_name": "protocol_tiny", "profile": "paper",
        "profile_overrides": {"data": {"labelled_batch": 2, "unlabelled_batch": 2},
                              "network": {"encoder_weights": None, "proj_hidden": 8, "proj_dim": 8},
                              "train": {"iterations": 2, "checkpoint_every": 1, "log_every": 1, "amp": "off", "device": "cpu"}},
        "threads_per_job": 1, "gpus_per_job": 0,
        "datasets": [{"name": "phantom", "format": "phantom", "phantom": {"patients": 8, "seed": 0},
                      "ratios": [{"percent": 20, "labelled": 1}], "split": {"preset": "random", "val": 1, "test": 2}}],
        "methods": ["spcl"], "control": "spcl", "seeds": [0],
        "method_config": {"spcl": {"bank_size": 1, "warmup_iters": 0}},
        "protocols": {"dataset": "phantom", "percent": 20, "methods": ["spcl"], "steps": steps},
        "evaluation": {"prediction_cases": 1, "features_per_class": 10},
        "figures": {"tsne_methods": ["spcl"], "tsne_points_per_panel": 60},
    }


def test_the_chain_runs_at_tiny_scale_to_its_table_and_figure_in_the_report(tmp_path):
    cfg = tiny_chain(tmp_path)
    config = write_yaml(cfg, tmp_path / "protocol_tiny.yaml")
    result = snakemake(tmp_path, config, cores=2, timeout=1500)
    assert result.returncode == 0, result.stdout[-5000:]
    out = tmp_path / "results" / "protocol_tiny"
    names = [s["name"] for s in cfg["protocols"]["steps"]]

    run = lambda step, m="spcl": out / "runs" / "phantom" / "r20" / m / f"protocol_{step}" / "s0"  # noqa: E731
    official = yaml.safe_load((run("official") / "config.yaml").read_text())
    assert official["network"]["arch"] == "deeplabv3plus_official"
    assert official["data"]["region"] == "label_centred" and official["train"]["selection"] == "best_on_test"
    fair = yaml.safe_load((run(names[-1]) / "config.yaml").read_text())
    assert fair["network"]["arch"] == "deeplabv3plus" and fair["data"]["region"] == "whole"
    assert fair["train"]["selection"] == "last" and fair["evaluation"]["grid"] == "native"

    def metrics(step):
        with (out / "eval" / "phantom" / "r20" / "spcl" / f"protocol_{step}" / "s0" / "metrics.csv").open() as f:
            return list(csv.DictReader(f))

    assert all(r["selection"].startswith("best_on_test: ") and r["uses_test_label"] == "True"
               and r["evaluation"] == "official 32 px grid" for r in metrics("official"))
    assert all(r["evaluation"] == "native" and r["selection"] == "last" and r["uses_test_label"] == "False"
               for r in metrics("label_free_test_crop"))

    analysis = out / "analysis"
    with (analysis / "tables" / "protocol_decomposition.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(r["step"], r["method"]) for r in table] == [(s, "spcl") for s in names]
    flagged = {r["step"] for r in table if r["uses_test_label"] == "True"}
    assert flagged == {"official"}
    assert (analysis / "figures" / "protocol_decomposition.png").is_file()
    report = (analysis / "REPORT.md").read_text()
    assert "## Protocol decomposition (official → fair)" in report
    assert "figures/protocol_decomposition.png" in report and "Test labels used" in report
