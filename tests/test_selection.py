"""`train.selection: best_on_test` (methods/training/selection.py): the best (network, iteration) by mean test
Dice is kept, survives a resume, ends up in final.pt and in the results CSV; bad input."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from _tiny_run import TINY_NET
from methods.api import ConfigError
from methods.training.checkpoint import load_trained_method, read_checkpoint
from methods.training.selection import BestOnTestSelector, mean_dice, selection_points


def test_mean_dice_by_hand():
    label = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 0, 2]])
    # class 1: 2*1/(1+2) = 2/3; class 2: 1; class 3 absent from both: 1
    assert mean_dice(pred, label, 4) == pytest.approx((2 / 3 + 1 + 1) / 3)


def test_selection_points_include_the_end():
    assert list(selection_points(2500, 1000)) == [1000, 2000, 2500]
    assert list(selection_points(3, 1)) == [1, 2, 3]


class TwoNets(nn.Module):
    evaluated_network = "student"

    def __init__(self):
        super().__init__()
        self.student, self.teacher = nn.Linear(2, 2), nn.Linear(2, 2)

    def predictor(self):
        return self.student

    def selection_candidates(self):
        return {"student": self.student, "teacher": self.teacher}


def selector_with_scores(scores):
    """A selector whose `score` returns the next of `scores` (no data needed)."""
    sel = BestOnTestSelector.__new__(BestOnTestSelector)
    sel.best, sel.history = None, []
    it = iter(scores)
    sel.score = lambda net: next(it)
    return sel


def test_best_is_kept_ties_keep_the_earlier_and_apply_loads_its_weights():
    method = TwoNets()
    sel = selector_with_scores([0.5, 0.7, 0.7, 0.6])  # round 1: student .5, teacher .7; round 2: .7 (tie), .6
    sel.consider(1000, method)
    teacher_then = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    with torch.no_grad():
        method.teacher.weight.add_(1.0)  # training goes on; the kept copy must not follow
    sel.consider(2000, method)
    assert sel.record() == "best_on_test: teacher @ 1000, test Dice 0.7000"
    assert [h["network"] for h in sel.history] == ["student", "teacher", "student", "teacher"]
    restored = selector_with_scores([])
    restored.load_state_dict(sel.state_dict())
    assert restored.apply(method) == sel.record()
    for k, v in method.student.state_dict().items():
        torch.testing.assert_close(v, teacher_then[k])


def _run_cfg(tiny_cache, tiny_split, out_dir, **train):
    from methods.runconfig import parse_run_config

    return parse_run_config({
        "method": "meanteacher", "method_config": {"warmup_iters": 1}, "seed": 0, "out_dir": str(out_dir),
        "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom", "ratio": 5,
                 "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": TINY_NET,
        "train": {"iterations": 3, "device": "cpu", "amp": "off", "progress": False, "log_every": 1,
                  "checkpoint_every": 2, "selection": "best_on_test", "select_every": 2, **train},
    })


def test_engine_selects_on_test_resumes_the_selection_and_the_csv_marks_it(tiny_cache, tiny_split, tmp_path):
    from methods.evaluation.evaluate import evaluate_checkpoint
    from methods.training.engine import Trainer

    whole = Trainer(_run_cfg(tiny_cache, tiny_split, tmp_path / "whole"))
    whole.run()
    history = whole.selector.history
    assert [(h["network"], h["iteration"]) for h in history] == [("student", 2), ("teacher", 2), ("student", 3), ("teacher", 3)]
    best = max(history, key=lambda h: h["dice"])  # max keeps the first of equal scores, as the selector
    final = read_checkpoint(tmp_path / "whole" / "final.pt")
    assert final["meta"]["selection"] == f"best_on_test: {best['network']} @ {best['iteration']}, test Dice {best['dice']:.4f}"

    # killed after the checkpoint at iteration 2: the resumed run selects exactly as the whole one
    class Stop(Exception):
        pass

    part = Trainer(_run_cfg(tiny_cache, tiny_split, tmp_path / "part"))
    original = part.save_checkpoint

    def save_then_stop():
        original()
        raise Stop

    part.save_checkpoint = save_then_stop
    with pytest.raises(Stop):
        part.run()
    resumed = Trainer(_run_cfg(tiny_cache, tiny_split, tmp_path / "part"))
    resumed.run()
    assert resumed.selector.history == history
    assert read_checkpoint(tmp_path / "part" / "final.pt")["meta"]["selection"] == final["meta"]["selection"]

    method, _ = load_trained_method(tmp_path / "whole" / "final.pt")
    assert method.selection_record == final["meta"]["selection"]
    df = evaluate_checkpoint(tmp_path / "whole" / "final.pt", tiny_cache, tiny_split, device="cpu")
    assert (df["selection"] == final["meta"]["selection"]).all() and df["uses_test_label"].all()
    # the selected network's test Dice is what the selection measured (same cases, same convention)
    assert df.groupby("case_id")["dice"].mean().mean() == pytest.approx(best["dice"], abs=1e-6)


def test_best_on_test_without_test_cases_names_the_split(tiny_cache, tiny_split, tmp_path):
    from methods.data.loaders import open_cache

    split = json.loads(open(tiny_split).read())
    split["test"] = []
    with pytest.raises(ConfigError, match="best_on_test.*needs test cases.*no_test.json"):
        BestOnTestSelector(open_cache(tiny_cache), split, None, None, 4, "cpu", "no_test.json")


def test_best_on_test_with_unannotated_test_cases_names_the_cache(tiny_cache, tiny_split):
    from methods.data.loaders import open_cache

    class Unannotated:
        root = "some/cache"

        def __init__(self, cache):
            self.cache = cache

        def load(self, cid):
            case = self.cache.load(cid)
            case.label[:] = 0
            return case

    split = json.loads(open(tiny_split).read())
    sel = BestOnTestSelector(open_cache(tiny_cache), split, 32, None, 4, "cpu")
    sel.cache = Unannotated(sel.cache)
    sel.evaluation = type("E", (), {"grid": "native"})()
    from methods.nets import NetOutput

    class Background(nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 4, *x.shape[-2:])
            return NetOutput(logits, logits, logits)

    with pytest.raises(ConfigError, match="some/cache carry no label"):
        sel.score(Background())
