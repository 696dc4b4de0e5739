"""Pseudo-label coverage and precision during training, per class (the engine's diagnostics).

Every `log_every` iterations the engine logs, for a method that thresholds pseudo-labels
(`Method.pseudo_label_view`), counts accumulated over the iterations since the last log:

- `pl_cover_<class>`: fraction of all unlabelled pixels that pass the method's filter with
  pseudo-label <class> (needs no label);
- `pl_prec_<class>`: of those, the fraction whose true label is <class> (precision);
- `pl_recall_<class>`: fraction of the unlabelled pixels whose true label is <class> that receive
  a passing, correct pseudo-label (the `correct` of `methods.evaluation.pseudo_labels`).

The last two need the labels the cache holds for the unlabelled patients (the phantom's, or a
real dataset's whose split hides them). The engine loads them beside the batch, warps them with
the unlabelled images' common augmentation (same draws: the augmentation's random numbers do not
depend on whether a label is passed), and never puts them into the `Batch` a method sees, so no
loss can read them (tests/test_pseudo_label_logs.py: identical weights with and without them).
A value with nothing to count in the interval (no pixel pseudo-labelled <class>) is NaN, logged
as an empty cell.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from methods.api import PseudoLabelView


class PseudoLabelMeter:
    """Accumulates per-class counts on the device; `flush()` returns the interval's log values."""

    def __init__(self, class_names: Sequence[str], with_labels: bool):
        self.class_names = ["background", *class_names]
        self.with_labels = with_labels
        self._counts: Tensor | None = None  # [4, C]: pixels, passed-as-c, passed-correct-c, true-c

    def add(self, view: PseudoLabelView, true_labels: Tensor | None) -> None:
        """view.labels/passed [B, H, W]; true_labels [B, H, W] integer on x_u's grid (moved onto the
        pseudo-labels' grid by `view.warp` when the method transformed x_u), or None."""
        c = len(self.class_names)
        labels, passed = view.labels.long(), view.passed.bool()
        passed_as = torch.bincount(labels[passed].reshape(-1), minlength=c)[:c]
        counts = torch.zeros(4, c, dtype=torch.float64, device=labels.device)
        counts[0] += labels.numel()
        counts[1] += passed_as
        if self.with_labels and true_labels is not None:
            truth = true_labels.to(labels.device).long()
            if view.warp is not None:
                truth = view.warp(truth).long()
            correct = passed & (labels == truth)
            counts[2] += torch.bincount(truth[correct].reshape(-1), minlength=c)[:c]
            counts[3] += torch.bincount(truth.reshape(-1), minlength=c)[:c]
        self._counts = counts if self._counts is None else self._counts + counts

    def flush(self) -> dict[str, float]:
        """The interval's values (empty when nothing was added), and a reset."""
        if self._counts is None:
            return {}
        pixels, passed_as, correct, truth = self._counts.cpu().tolist()
        self._counts = None
        out: dict[str, float] = {}
        for k, name in enumerate(self.class_names):
            out[f"pl_cover_{name}"] = passed_as[k] / pixels[k] if pixels[k] else math.nan
            if self.with_labels:
                out[f"pl_prec_{name}"] = correct[k] / passed_as[k] if passed_as[k] else math.nan
                out[f"pl_recall_{name}"] = correct[k] / truth[k] if truth[k] else math.nan
        return out
