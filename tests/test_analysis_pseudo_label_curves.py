"""Pseudo-label curves from training logs: which runs are read, tidy values, one figure per setting."""

import pandas as pd
import pytest

import numpy as np

from analysis.pseudo_label_curves import (
    COLUMNS,
    collect_pseudo_label_logs,
    end_of_training,
    end_of_training_markdown,
    make_pseudo_label_figures,
    unfinished_runs,
)


def _log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_logs_are_collected_per_run_and_averaged_per_setting(tmp_path):
    runs = tmp_path / "runs" / "acdc"
    for seed, prec in ((0, 0.4), (1, 0.8)):
        _log(runs / "r5" / "meanteacher" / "default" / f"s{seed}" / "log.csv", [
            {"iteration": 0, "loss": 1.0},  # warm-up row: no pseudo-label columns filled
            {"iteration": 1, "loss": 0.9, "pl_cover_background": 0.8, "pl_cover_LV": 0.1, "pl_prec_LV": prec},
        ])
    _log(runs / "r5" / "suponly" / "default" / "s0" / "log.csv", [{"iteration": 0, "loss": 1.0}])  # no columns
    _log(runs / "r5" / "spcl" / "icl_only" / "s0" / "log.csv", [{"iteration": 1, "pl_cover_LV": 0.5}])  # ablation
    df = collect_pseudo_label_logs(tmp_path)
    assert set(df["method"]) == {"meanteacher"} and set(df["seed"]) == {0, 1}
    assert set(df["class_name"]) == {"LV"}  # background is not drawn
    prec = df[(df["quantity"] == "precision")].groupby("iteration")["value"].mean()
    assert prec.loc[1] == pytest.approx(0.6)
    outcome = make_pseudo_label_figures(tmp_path, tmp_path / "figures", tmp_path / "tables")
    assert outcome.produced and {p.name for p in outcome.paths} == {"pseudo_label_curves_acdc_r5.png",
                                                                    "pseudo_label_curves_acdc_r5.pdf"}
    assert (tmp_path / "tables" / "pseudo_label_logs.csv").is_file()


def test_no_logs_says_why(tmp_path):
    outcome = make_pseudo_label_figures(tmp_path, tmp_path / "figures")
    assert not outcome.produced and "pl_cover" in outcome.reason


def test_precision_from_too_few_pixels_is_not_drawn(tmp_path):
    run = tmp_path / "runs" / "phantom" / "r10" / "bass" / "default" / "s0"
    _log(run / "log.csv", [
        {"iteration": 3, "pl_cover_LV": 0.05, "pl_prec_LV": 1.0},  # 4 steps x 200 px x 0.05 = 40 pixels
        {"iteration": 8, "pl_cover_LV": 0.0},  # nothing passed: no precision
        {"iteration": 13, "pl_cover_LV": 0.2, "pl_prec_LV": 0.5},  # 5 x 200 x 0.2 = 200 pixels
    ])
    (run / "run.yaml").write_text("data: {unlabelled_batch: 2, img_size: 10}\n")  # 200 unlabelled pixels a step
    df = collect_pseudo_label_logs(tmp_path)
    prec = df[df["quantity"] == "precision"].set_index("iteration")["pixels"]
    assert prec.to_dict() == pytest.approx({3: 40.0, 13: 200.0})
    outcome = make_pseudo_label_figures(tmp_path, tmp_path / "figures")
    assert outcome.produced and len(outcome.png_captions) == 1
    assert "Phantom 10%, seed 0," in outcome.png_captions[0]
    assert "fewer than 100 pseudo-labelled pixels (estimated from coverage and run.yaml) are not drawn: 1 of 2" \
        in outcome.png_captions[0]


def test_end_of_training_pools_the_last_part_of_each_run_then_averages_seeds(tmp_path):
    runs = tmp_path / "runs" / "acdc" / "r5" / "bass" / "default"
    early = {"iteration": 1, "pl_cover_LV": 0.9, "pl_prec_LV": 0.0, "pl_recall_LV": 0.0}  # outside the window
    _log(runs / "s0" / "log.csv", [
        early,
        {"iteration": 3, "pl_cover_LV": 0.2, "pl_prec_LV": 0.5, "pl_recall_LV": 0.3, "pl_cover_RV": 0.0},
        {"iteration": 5, "pl_cover_LV": 0.1, "pl_prec_LV": 1.0, "pl_recall_LV": 0.5, "pl_cover_RV": 0.0},
    ])
    _log(runs / "s1" / "log.csv", [
        early,
        {"iteration": 3, "pl_cover_LV": 0.0, "pl_cover_RV": 0.0},  # nothing passed: no precision, no recall
        {"iteration": 5, "pl_cover_LV": 0.1, "pl_prec_LV": 0.5, "pl_recall_LV": 0.1, "pl_cover_RV": 0.0},
    ])
    end = end_of_training(collect_pseudo_label_logs(tmp_path), fraction=1 / 2)  # iterations >= 3 of 0..5
    lv = end[end["class_name"] == "LV"].iloc[0]
    # seed 0: coverage (0.2*2 + 0.1*2)/4 = 0.15; precision weighed by covered steps (0.5*0.4 + 1.0*0.2)/0.6 = 2/3;
    # recall (0.3*2 + 0.5*2)/4 = 0.4. Seed 1: coverage 0.05, precision 0.5, recall 0.1 (its only value).
    assert (lv["coverage"], lv["precision"], lv["recall"]) == pytest.approx((0.1, (2 / 3 + 0.5) / 2, 0.25))
    assert (lv["n_seeds"], lv["from_iteration"], lv["to_iteration"]) == (2, 3, 5)
    rv = end[end["class_name"] == "RV"].iloc[0]
    assert rv["coverage"] == 0 and np.isnan(rv["precision"]) and np.isnan(rv["recall"])
    text = end_of_training_markdown(end, {("acdc", 5.0): ["bass", "suponly"], ("acdc", 10.0): ["spcl"]})
    assert "**ACDC 5%**, iterations 3–5, mean over 2 seeds; no pseudo-labels logged by SupOnly." in text
    # the logs' class order (LV before RV here), fractions x 100
    assert "| Method | LV cover | LV prec | LV recall | RV cover | RV prec | RV recall |" in text
    assert "| BASS | 10.0 | 58.3 | 25.0 | 0.0 | – | – |" in text


def test_end_of_training_without_labels_of_the_unlabelled_patients_shows_coverage_only(tmp_path):
    _log(tmp_path / "runs" / "scd" / "r10" / "spcl" / "default" / "s0" / "log.csv",
         [{"iteration": 4, "pl_cover_LV": 0.25}])
    text = end_of_training_markdown(end_of_training(collect_pseudo_label_logs(tmp_path)), {})
    assert "| Method | LV cover |" in text and "| SPCL | 25.0 |" in text


def test_a_short_log_still_has_its_last_row_at_the_end(tmp_path):
    # iterations 0 and 1: the last third of 2 iterations starts at 1.33, after the last row; the last row is kept
    _log(tmp_path / "runs" / "phantom" / "r20" / "spcl" / "default" / "s0" / "log.csv",
         [{"iteration": 0, "pl_cover_LV": 0.5}, {"iteration": 1, "pl_cover_LV": 0.1}])
    end = end_of_training(collect_pseudo_label_logs(tmp_path))
    assert end[["coverage", "from_iteration", "to_iteration"]].values.tolist() == [[0.1, 1, 1]]


def test_end_of_training_hides_a_precision_from_too_few_pixels(tmp_path):
    # 200 unlabelled pixels a step; window = iterations 3..5 of 0..5 (fraction 1/2), rows at 3 and 5, 2 steps each
    run = tmp_path / "runs" / "phantom" / "r10" / "spcl" / "default" / "s0"
    _log(run / "log.csv", [{"iteration": 1, "pl_cover_LV": 0.5, "pl_prec_LV": 0.5, "pl_cover_RV": 0.5, "pl_prec_RV": 0.5},
                           {"iteration": 3, "pl_cover_LV": 0.1, "pl_prec_LV": 0.0, "pl_cover_RV": 0.001, "pl_prec_RV": 1.0},
                           {"iteration": 5, "pl_cover_LV": 0.2, "pl_prec_LV": 1.0, "pl_cover_RV": 0.0}])
    (run / "run.yaml").write_text("data: {unlabelled_batch: 2, img_size: 10}\ntrain: {iterations: 6}\n")
    end = end_of_training(collect_pseudo_label_logs(tmp_path), fraction=1 / 2).set_index("class_name")
    # LV: 0.1 x 400 + 0.2 x 400 = 120 pixels, precision (0 x 0.2 + 1 x 0.4) / 0.6 = 2/3; RV: 0.001 x 400 = 0.4 pixel
    assert end.loc["LV", "pixels"] == pytest.approx(120) and end.loc["LV", "precision"] == pytest.approx(2 / 3)
    assert end.loc["RV", "pixels"] == pytest.approx(0.4) and np.isnan(end.loc["RV", "precision"])
    assert end.loc["RV", "coverage"] == pytest.approx(0.0005)
    text = end_of_training_markdown(end.reset_index(), {})
    assert "| SPCL | 15.0 | 66.7 | 0.1 | – |" in text
    assert "prec '–' where the class was pseudo-labelled on fewer than 100 pixels" in text and "(1 cell(s))" in text


def test_an_unfinished_run_is_left_out_of_the_end_and_named(tmp_path):
    runs = tmp_path / "runs" / "acdc" / "r10"
    for method, seed, last in (("bus", 0, 5), ("bus", 1, 2), ("abd", 0, 2)):  # 6 planned: 0..5
        run = runs / method / "default" / f"s{seed}"
        _log(run / "log.csv", [{"iteration": i, "pl_cover_LV": 0.1 * (i + 1)} for i in range(last + 1)])
        (run / "run.yaml").write_text("train: {iterations: 6}\n")
    logs = collect_pseudo_label_logs(tmp_path)
    running = unfinished_runs(logs)
    assert running[["method", "seed", "last_iteration", "planned_iterations"]].values.tolist() == [
        ["abd", 0, 2, 6.0], ["bus", 1, 2, 6.0]]
    end = end_of_training(logs)  # bus seed 0 only: iterations 4 and 5, coverage (0.5 + 0.6) / 2
    assert end[["method", "coverage", "n_seeds", "from_iteration"]].values.tolist() == [["bus", pytest.approx(0.55), 1, 4]]
    text = end_of_training_markdown(end, {("acdc", 10.0): ["abd", "bus"]}, running)
    assert ("**ACDC 10%**, iterations 4–5, one seed; left out, not finished (still training or stopped; the last rows "
            "of an unfinished run are not the end of its training): ABD seed 0 (logged to iteration 2 of 6), BUS seed 1 (logged to iteration "
            "2 of 6).") in text
    assert "no pseudo-labels logged by" not in text  # ABD logs them; its run is not finished yet
    only_running = end_of_training_markdown(end_of_training(logs[logs["method"] == "abd"]), {},
                                            running[running["method"] == "abd"])
    assert only_running.startswith("**ACDC 10%**: no finished run with pseudo-label logs; left out, not finished")


def test_end_of_training_of_no_logs_says_so():
    assert "Not produced" in end_of_training_markdown(end_of_training(pd.DataFrame(columns=COLUMNS)), {})
