"""Segmentation losses shared by every method.

`dice_loss` follows the SSL4MIS / DGCL convention used by SPCL's code: soft Dice per class over the
whole batch (background included), smooth 1e-5, loss = 1 - mean over classes; pixels outside
`valid` (ignored pseudo-labels) contribute to neither numerator nor denominator.
Losses compute in float32 whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dice_loss(probs: Tensor, target: Tensor, valid: Tensor | None = None, smooth: float = 1e-5) -> Tensor:
    """probs [B,C,H,W] (softmax), target [B,H,W] int64, valid [B,H,W] bool or None."""
    probs = probs.float()
    num_classes = probs.shape[1]
    onehot = F.one_hot(target.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    if valid is not None:
        w = valid.unsqueeze(1).to(probs.dtype)
        probs = probs * w
        onehot = onehot * w
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = (probs * probs).sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1.0 - dice.mean()


def supervised_loss(logits: Tensor, target: Tensor) -> Tensor:
    """0.5 * (CE + Dice): the supervised loss of SPCL (Eq. 5) and of every baseline here."""
    logits = logits.float()
    return 0.5 * (F.cross_entropy(logits, target) + dice_loss(logits.softmax(1), target))


def masked_cross_entropy(logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean CE over valid pixels; 0 (with a graph) when no pixel is valid."""
    ce = F.cross_entropy(logits.float(), target.clamp(min=0), reduction="none")
    w = valid.to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp(min=1.0)


def sigmoid_rampup(current: float, length: float) -> float:
    """exp(-5 (1 - t)^2) with t = clip(current / length, 0, 1) (Laine & Aila; SSL4MIS ramps)."""
    if length <= 0:
        return 1.0
    t = min(max(current / length, 0.0), 1.0)
    return float(torch.exp(torch.tensor(-5.0 * (1.0 - t) ** 2)))
