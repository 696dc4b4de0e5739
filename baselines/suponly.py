"""SupOnly: the supervised lower bound of every table.

Paper: SPCL (ICASSP 2026), Tables 1 and 3, first rows ("SupOnly": 77.52 / 85.05 Dice on ACDC at
5% / 10% labels). Official code: SPCL's `train_spcl.py`, whose warm-up branch is exactly this
method (the branch taken while `epoch < sup_only_epoch`): labelled images only through the student,
L = 0.5 (CE + Dice), same augmentation, optimiser, schedule and iterations as the semi-supervised
methods.

Deliberate choices in the harness:
- the student is evaluated (there is no EMA model; `evaluated_network = "student"`);
- the unlabelled stream is unused (`uses_unlabelled = False`), so the engine never loads or
  augments unlabelled slices; each step sees the harness's labelled batch (4 in the paper profile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from methods.api import Batch, Method, StepOutput, register_method
from methods.losses import supervised_loss


@dataclass
class SupOnlyConfig:
    """SupOnly has no hyper-parameters of its own (optimiser and schedule belong to the engine)."""


@register_method("suponly")
class SupOnly(Method):
    """Supervised-only training of one network on the labelled slices."""

    Config = SupOnlyConfig
    display_name = "SupOnly"
    description = "Supervised only: 0.5 (CE + Dice) on labelled slices, student evaluated (lower bound)"
    evaluated_network = "student"
    uses_unlabelled: ClassVar[bool] = False
    embeds_projection: ClassVar[bool] = False  # no contrastive loss: t-SNE shows decoder features

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        self.student = net_factory()

    def training_step(self, batch: Batch, it: int) -> StepOutput:
        loss = supervised_loss(self.student(batch.x_l).logits, batch.y_l)
        return StepOutput(loss, {"loss": loss.detach(), "sup": loss.detach()})

    def predictor(self) -> nn.Module:
        return self.student
