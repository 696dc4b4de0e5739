"""Pseudo-label curves from training logs: which runs are read, tidy values, one figure per setting."""

import pandas as pd
import pytest

from analysis.pseudo_label_curves import collect_pseudo_label_logs, make_pseudo_label_figures


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
