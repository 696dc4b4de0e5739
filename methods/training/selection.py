"""Model selection on the test set, as the official SPCL script does (`train.selection: best_on_test`).

The official `train_spcl.py` evaluates the student and the EMA teacher on the test volumes every
1000 iterations and keeps the best checkpoint of each by test Dice; the published numbers are
therefore most likely best-on-test (docs/methods.md). This module reproduces that as a named,
reported variant, never a default:

- every `train.select_every` iterations (and at the last iteration), each of the method's
  candidate networks (`Method.selection_candidates()`: student and teacher for the mean-teacher
  family, the evaluated network otherwise) is scored on the split's **test** cases with the run's
  evaluation convention (`evaluation.grid`): mean Dice over cases and foreground classes;
- the best (candidate, iteration) so far is kept as a CPU copy of its weights (ties keep the
  earlier one), and saved in `checkpoints/last.pt`, so a resumed run selects exactly as an
  uninterrupted one;
- at the end its weights are loaded into the evaluated network (`method.predictor()`), so
  `final.pt` and the evaluation read the selected model, and the record (e.g.
  "best_on_test: teacher @ 3000, test Dice 0.8123") goes into `final.pt`'s meta and the results
  CSV's `selection` column, which the report marks as test-set selection.

Errors: a split without test cases, or test cases without any annotation, is a `ConfigError`
naming the split file or the cache.
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from methods.api import ConfigError, Method
from methods.precision import FP32, Numerics

RULE = "best_on_test"


def candidates_of(method: Method) -> dict[str, nn.Module]:
    """The networks a selection may pick from, by name (the method's hook, else its predictor)."""
    hook = getattr(method, "selection_candidates", None)
    found = hook() if callable(hook) else None
    return dict(found) if found else {str(method.evaluated_network): method.predictor()}


def mean_dice(pred: np.ndarray, label: np.ndarray, num_classes: int) -> float:
    """Mean Dice over foreground classes 1..C-1 of one case; a class absent from both counts 1."""
    scores = []
    for k in range(1, num_classes):
        p, r = pred == k, label == k
        total = int(p.sum()) + int(r.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((p & r).sum()) / total)
    return float(np.mean(scores))


class BestOnTestSelector:
    """Keeps the best (network, iteration) by mean test Dice (module docstring)."""

    def __init__(self, cache, split: dict, region, evaluation, num_classes: int, device,
                 split_path: str = "split", batch_size: int = 16, numerics: Numerics = FP32):
        from methods.data.loaders import cases_of_role

        self.case_ids = cases_of_role(cache, split, "test", split_path) if split.get("test") else []
        if not self.case_ids:
            raise ConfigError(f"train.selection 'best_on_test' needs test cases, but split {split_path} has none")
        self.cache, self.region, self.evaluation = cache, region, evaluation
        self.num_classes, self.device = int(num_classes), torch.device(device)
        self.batch_size, self.numerics = batch_size, numerics
        self.best: dict | None = None  # {"network", "iteration", "dice", "state"}
        self.history: list[dict] = []

    def score(self, network: nn.Module) -> float:
        """Mean over test cases of the mean foreground Dice, under the run's evaluation grid."""
        from methods.evaluation.inference import official_grid_prediction, predict_case_with_centre

        scores, annotated = [], False
        for cid in self.case_ids:
            case = self.cache.load(cid)
            annotated = annotated or bool(case.label.any())
            pred, centre = predict_case_with_centre(network, case, self.region, self.device, self.batch_size, self.numerics)
            if self.evaluation.grid == "official":
                pred, label, _ = official_grid_prediction(network, case, self.region, centre, self.evaluation.grid_size,
                                                          self.device, self.batch_size, self.numerics)
            else:
                label = case.label
            scores.append(mean_dice(pred, label, self.num_classes))
        if not annotated:
            raise ConfigError(f"train.selection 'best_on_test': the test cases {self.case_ids[:3]}... of cache "
                              f"{self.cache.root} carry no label, so there is nothing to select on")
        return float(np.mean(scores))

    def consider(self, iteration: int, method: Method) -> list[dict]:
        """Score every candidate at `iteration`; keep the best; return this round's scores."""
        round_ = []
        for name, net in candidates_of(method).items():
            dice = self.score(net)
            round_.append({"network": name, "iteration": int(iteration), "dice": dice})
            if self.best is None or dice > self.best["dice"]:
                state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                self.best = {"network": name, "iteration": int(iteration), "dice": dice, "state": state}
        self.history += round_
        return round_

    def record(self) -> str:
        if self.best is None:
            raise ConfigError("best_on_test: no selection round ran")
        b = self.best
        return f"{RULE}: {b['network']} @ {b['iteration']}, test Dice {b['dice']:.4f}"

    def apply(self, method: Method) -> str:
        """Load the selected weights into the evaluated network; return the record."""
        record = self.record()
        target = method.predictor()
        try:
            target.load_state_dict(self.best["state"], strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"best_on_test picked network {self.best['network']!r}, whose weights do not fit the evaluated "
                f"network {method.evaluated_network!r}: {str(exc).splitlines()[0]}"
            ) from None
        return record

    # ---- resume -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"best": copy.copy(self.best), "history": list(self.history)}

    def load_state_dict(self, state: dict | None) -> None:
        state = state or {}
        self.best = state.get("best")
        self.history = list(state.get("history", []))


def selection_points(iterations: int, every: int) -> Sequence[int]:
    """Iterations (completed counts) at which a selection round runs: multiples of `every`, and the end."""
    return sorted({*range(every, iterations + 1, every), iterations})
