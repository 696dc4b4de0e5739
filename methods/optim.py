"""The optimiser and learning-rate schedule every method trains with, unless it brings its own.

SGD with the run's lr, momentum and weight decay on every optimised parameter (as SPCL's code:
lr 0.01, momentum 0.9, weight decay 1e-4), and poly decay lr_t = lr (1 - t / T)^power, stepped
per iteration, over a horizon T: the run's iterations for the engine's default, another horizon
for a method that decays as its official code does (SPCL's `poly_horizon: official`).
"""

from __future__ import annotations

import torch


def poly_schedule(optimizer: torch.optim.Optimizer, horizon: int, power: float) -> torch.optim.lr_scheduler.LRScheduler:
    """lr_t = lr (1 - t / horizon)^power, 0 from t = horizon on."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: max(0.0, 1.0 - t / horizon) ** power)


def sgd_poly(params, train, horizon: int | None = None):
    """(SGD, poly schedule) from a `TrainConfig` (`lr`, `momentum`, `weight_decay`, `poly_power`,
    `iterations`); `horizon` defaults to `train.iterations`."""
    optimizer = torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
    return optimizer, poly_schedule(optimizer, train.iterations if horizon is None else horizon, train.poly_power)
