"""ICL (paper Eq. 2) and BCL (Eq. 4) over the subclass memory bank, in the paper's own notation.

An anchor z_i (L2-normalised), bank entries z (L2-normalised centroids), similarities Y = z_i . z.
P_i / N_i: the anchor's positive / negative entries under the subclass relation (`spcl.relations`);
unconcerned entries are in neither. With the paper's sums (Sec. 2.3)
    sr+_i = sum_{p in P_i} e^{-Y_p/tau},        sr-_i = sum_{n in N_i} e^{Y_n/tau}:
ICL, per anchor (Eq. 2):  1/|P_i| sum_p -log( e^{Y_p/tau} / (e^{Y_p/tau} + sr-_i) )
                        = 1/|P_i| sum_p log(1 + e^{-Y_p/tau} sr-_i)          (the first line of Eq. 3)
BCL, per anchor (Eq. 4):  log(1 + sr+_i sr-_i),  tau = 1 in the paper (0.07 in the official code).
Written with log1p of products of exponentials, both are exact (no max subtraction, no log-sum-exp)
as long as e^{2/tau} x |P| x |N| fits in float32: tau >= MIN_TAU = 0.03 (the official 0.07 gives
at most 1e19). An anchor without negatives gets sr- = 0, so its ICL and BCL terms are exactly 0 with
zero gradient; an anchor without a valid positive is not counted in the mean.

Empty bank slots hold zero vectors and are multiplied out after exp rather than masked with a huge
negative logit: exp is 5-15x slower on the CPU where it underflows (3.3 M values: 12 ms at -2,
69 ms at -1e4, 167 ms at -100, 33 ms at -inf; measured).

Speed: sr- needs the whole [anchors x bank] matrix (2C x 400 slots): one matmul (the 1/tau scale
rides on the anchors), then `MaskedExpSum` with one 0/1 row per anchor subclass (valid slot and
negative subclass): exp, mask and sum forward, a single multiply backward (d sum / dx = mask e^x,
which it keeps). The positives (one or two subclass queues per anchor) come from a small batched
matmul.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spcl.relations import SubclassRelation

BCL_FORMS = ("paper", "official", "infonce")
MIN_TAU = 0.03


@dataclass
class ContrastLogits:
    """Per anchor row: the positives' logits Y_p/tau [A, P] with their mask, and sr- [A].

    `neg_weights` [Ga, k, M] = e^{Y/tau} on the valid negative slots, 0 elsewhere (no gradient),
    kept so that the negatives can be re-read at another temperature without a second matmul."""

    pos_logits: Tensor
    pos_valid: Tensor
    sr_neg: Tensor
    tau: float
    neg_weights: Tensor | None = None

    @property
    def has_positive(self) -> Tensor:
        return self.pos_valid.any(-1)

    def sr_pos(self) -> Tensor:
        """sum over valid positives of e^{-Y_p/tau} [A]."""
        return (torch.exp(-self.pos_logits) * self.pos_valid).sum(-1)

    def at_temperature(self, tau: float) -> "ContrastLogits":
        """The same anchors and bank at temperature `tau`: e^{Y/tau} = (e^{Y/tau_0})^(tau_0 / tau)."""
        if self.neg_weights is None:
            raise ValueError("at_temperature needs the negative weights of a contrast_logits result")
        weights = self.neg_weights.pow(self.tau / tau)
        return ContrastLogits(self.pos_logits * (self.tau / tau), self.pos_valid, weights.sum(-1).flatten(), tau, weights)


class MaskedExpSum(torch.autograd.Function):
    """sum over the last dim of mask * e^x, returned with w = mask * e^x (non-differentiable).

    The backward is the one multiply grad * w, with the w the forward kept, instead of autograd's
    two (through the mask product, then through exp)."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor):
        weights = torch.exp(x).mul_(mask)
        ctx.save_for_backward(weights)
        ctx.mark_non_differentiable(weights)
        return weights.sum(-1), weights

    @staticmethod
    def backward(ctx, grad_total: Tensor, grad_weights: Tensor):
        (weights,) = ctx.saved_tensors
        return grad_total.unsqueeze(-1) * weights, None


def info_nce(terms: ContrastLogits) -> Tensor:
    """Eq. 2 per anchor [A]: mean over valid positives of log(1 + e^{-Y_p/tau} sr-) (0 without positives)."""
    per_pair = torch.log1p(torch.exp(-terms.pos_logits) * terms.sr_neg[:, None])
    valid = terms.pos_valid.to(per_pair.dtype)
    return (per_pair * valid).sum(-1) / valid.sum(-1).clamp(min=1.0)


def boundary_contrastive(terms: ContrastLogits) -> Tensor:
    """Eq. 4 per anchor [A]: log(1 + sr+ sr-)."""
    return torch.log1p(terms.sr_pos() * terms.sr_neg)


def contrast_logits(
    anchors: Tensor,
    anchor_groups: Tensor,
    bank: Tensor,
    bank_valid: Tensor,
    relation: SubclassRelation,
    tau: float,
) -> ContrastLogits:
    """Anchors [Ga, k, D] of subclasses `anchor_groups` [Ga] (k rows each, L2-normalised) against a
    bank [G, S, D] with slot validity [G, S] -> ContrastLogits over the Ga * k anchor rows."""
    ga, k, d = anchors.shape
    g, s, _ = bank.shape
    if tau < MIN_TAU:
        raise ValueError(f"temperature {tau} is below {MIN_TAU}: e^(2/tau) products would overflow float32")
    scaled = anchors / tau
    logits = torch.mm(scaled.reshape(ga * k, d), bank.reshape(g * s, d).T).view(ga, k, g * s)
    neg_columns = (relation.negative[anchor_groups][:, :, None] & bank_valid[None]).reshape(ga, 1, g * s)
    sr_neg, neg_weights = MaskedExpSum.apply(logits, neg_columns.to(logits.dtype))
    pos_groups = relation.positive_groups[anchor_groups]  # [Ga, P]
    p = pos_groups.shape[1]
    pos_bank = bank[pos_groups].reshape(ga, p * s, d)
    pos_logits = torch.bmm(scaled, pos_bank.transpose(1, 2))  # [Ga, k, P * S]
    pos_valid = bank_valid[pos_groups].reshape(ga, 1, p * s).expand(ga, k, p * s)
    return ContrastLogits(pos_logits.reshape(ga * k, p * s), pos_valid.reshape(ga * k, p * s), sr_neg.flatten(),
                          tau, neg_weights)


def anchor_mean(per_anchor: Tensor, counted: Tensor, classes: int, class_balanced: bool) -> tuple[Tensor, Tensor]:
    """Mean of per-anchor losses [C * k] over counted anchors: over all of them (paper: 1/|A|), or per
    class and then over the classes that have one (official). Returns (loss, per-class means [C])."""
    w = counted.to(per_anchor.dtype).view(classes, -1)
    per_class_sum = (per_anchor.view(classes, -1) * w).sum(1)
    per_class_n = w.sum(1)
    per_class = per_class_sum / per_class_n.clamp(min=1.0)
    if class_balanced:
        has = (per_class_n > 0).to(per_class.dtype)
        return (per_class * has).sum() / has.sum().clamp(min=1.0), per_class
    return per_class_sum.sum() / per_class_n.sum().clamp(min=1.0), per_class


def balanced_to_infonce(per_anchor_bcl: Tensor, per_anchor_nce: Tensor, counted: Tensor, classes: int) -> Tensor:
    """Official BCL weight balancing: per class, BCL x (NCE_c / mean BCL_c), the ratio detached, so each
    class's mean BCL takes the InfoNCE value while keeping BCL's gradient direction. [C * k]."""
    w = counted.to(per_anchor_bcl.dtype).view(classes, -1)
    n = w.sum(1).clamp(min=1.0)
    bcl_mean = (per_anchor_bcl.detach().view(classes, -1) * w).sum(1) / n
    nce_mean = (per_anchor_nce.detach().view(classes, -1) * w).sum(1) / n
    ratio = torch.where(bcl_mean > 0, nce_mean / bcl_mean.clamp(min=1e-12), torch.zeros_like(bcl_mean))
    return (per_anchor_bcl.view(classes, -1) * ratio[:, None]).reshape(-1)
