"""The pseudo-label diagnostic: hand-counted confident-label quality, and the CLI on a tiny run."""

import math

import pandas as pd
import pytest
import torch

from methods.evaluation.pseudo_labels import confident_label_quality, main
from _tiny_run import train_tiny


def test_confident_label_quality_counts_by_hand():
    # one 1x4 image, classes 0/1; pixel probabilities of class 1: 0.99, 0.60, 0.02, 0.97
    p1 = torch.tensor([0.99, 0.60, 0.02, 0.97]).view(1, 1, 1, 4)
    probs = torch.cat([1 - p1, p1], dim=1)
    labels = torch.tensor([[[1, 1, 1, 0]]])
    t = confident_label_quality(probs, labels, 0.95, ["bg", "fg"]).set_index("class_name")
    # fg pixels: 0 confident right (0.99), 1 unsure (0.60), 2 confident wrong (0.98 for bg)
    assert t.loc["fg", "pixels"] == 3
    assert t.loc["fg", "coverage"] == pytest.approx(2 / 3)
    assert t.loc["fg", "correct"] == pytest.approx(1 / 3)
    assert t.loc["fg", "wrong"] == pytest.approx(1 / 3)
    # confidently called fg: pixels 0 (right) and 3 (background): precision 1/2
    assert t.loc["fg", "precision"] == pytest.approx(0.5)
    # the bg pixel is confidently called fg
    assert t.loc["bg", "coverage"] == 1.0 and t.loc["bg", "correct"] == 0.0 and t.loc["bg", "wrong"] == 1.0
    assert t.loc["bg", "precision"] == pytest.approx(0.0)


def test_a_class_absent_from_the_labels_gives_nan_not_a_division_error():
    probs = torch.full((1, 3, 2, 2), 1 / 3)
    t = confident_label_quality(probs, torch.zeros(1, 2, 2, dtype=torch.long), 0.5, ["a", "b", "c"])
    assert t.loc[1, "pixels"] == 0 and math.isnan(t.loc[1, "coverage"]) and math.isnan(t.loc[1, "precision"])
    assert t.loc[0, "coverage"] == 0.0  # nothing reaches 0.5


def test_cli_on_a_tiny_mean_teacher_run(tiny_cache, tiny_split, tmp_path, capsys):
    train_tiny("meanteacher", {"warmup_iters": 1}, tiny_cache, tiny_split, tmp_path / "run", iterations=2)
    out = tmp_path / "pl.csv"
    assert main(["--checkpoint", str(tmp_path / "run" / "final.pt"), "--cache", str(tiny_cache),
                 "--split", str(tiny_split), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["class_name"]) == ["background", "RV", "MYO", "LV"]
    assert (table["pixels"] > 0).all()
    assert ((table["correct"] <= table["coverage"] + 1e-12) & (table["coverage"] <= 1)).all()
    assert "meanteacher teacher (train mode)" in capsys.readouterr().out


def test_cli_refuses_a_teacher_for_a_method_without_one(tiny_cache, tiny_split, tmp_path, capsys):
    train_tiny("suponly", {}, tiny_cache, tiny_split, tmp_path / "run", iterations=1)
    assert main(["--checkpoint", str(tmp_path / "run" / "final.pt"), "--cache", str(tiny_cache),
                 "--split", str(tiny_split)]) == 2
    assert "has no EMA teacher" in capsys.readouterr().err
