"""ICL (paper Eq. 2) and BCL (Eq. 4) over the subclass memory bank.

Notation: an anchor z_i (L2-normalised), bank entries z (L2-normalised centroids), similarities
Y = z_i . z, logits Y / tau. P_i / N_i: the anchor's positive / negative entries under the subclass
relation (`spcl.relations`); unconcerned entries are in neither.

ICL, per anchor (Eq. 2):  1/|P_i| sum_{p in P_i} -log( e^{Y_p/tau} / (e^{Y_p/tau} + sum_{n in N_i} e^{Y_n/tau}) )
                        = 1/|P_i| sum_p softplus( LSE_{n in N_i}(Y_n/tau) - Y_p/tau ).
BCL, per anchor (Eq. 4):  log(1 + sum_{p in P_i} e^{-Y_p/tau} x sum_{n in N_i} e^{Y_n/tau})
                        = softplus( LSE_p(-Y_p/tau) + LSE_n(Y_n/tau) ),  tau = 1 in the paper.
Both are written with log-sum-exp, so they are stable at tau = 0.07 and need no max subtraction.

Masked entries are filled with the finite MASKED (-1e4) rather than -inf: e^(MASKED - x) is exactly 0
in float32 for any logit here (|Y/tau| <= 1/0.07), and an anchor with no negatives (or a bank with no
entries) gives softplus(about -1e4) = 0 with zero gradient instead of the NaN that log-sum-exp over
an all -inf row back-propagates. An anchor with no valid positive is not counted in the mean.

Because the relation depends only on the pair of subclasses (`SubclassRelation`), the negatives'
log-sum-exp is taken per bank subclass first ([A, G] from [A, G, S]) and then over the negative
subclasses, and the positives are gathered as whole subclass queues: the only pass over the full
[anchors x bank] matrix is one masked log-sum-exp.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from spcl.relations import SubclassRelation

MASKED = -1.0e4
BCL_FORMS = ("paper", "official", "infonce")


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    return torch.logsumexp(x.masked_fill(~mask, MASKED), dim=dim)


@dataclass
class ContrastLogits:
    """Per anchor row: the positives' logits [A, P] with their mask, and the negatives' LSE [A]."""

    pos_logits: Tensor
    pos_valid: Tensor
    neg_lse: Tensor

    @property
    def has_positive(self) -> Tensor:
        return self.pos_valid.any(-1)


def info_nce(terms: ContrastLogits) -> Tensor:
    """Eq. 2 per anchor [A] (0 for anchors without positives)."""
    per_pair = F.softplus(terms.neg_lse[:, None] - terms.pos_logits)
    valid = terms.pos_valid.to(per_pair.dtype)
    return (per_pair * valid).sum(-1) / valid.sum(-1).clamp(min=1.0)


def boundary_contrastive(terms: ContrastLogits) -> Tensor:
    """Eq. 4 per anchor [A]: log(1 + sum_pos e^{-s+} sum_neg e^{s-}) on the given logits."""
    pos_lse = masked_logsumexp(-terms.pos_logits, terms.pos_valid, dim=-1)
    return F.softplus(pos_lse + terms.neg_lse)


def contrast_logits(
    sim: Tensor,
    anchor_groups: Tensor,
    bank_valid: Tensor,
    relation: SubclassRelation,
    tau: float,
) -> ContrastLogits:
    """From similarities sim [Ga, k, G, S] (anchors of subclasses `anchor_groups` [Ga], k per subclass,
    against a bank of G subclasses x S slots with validity [G, S]) to ContrastLogits over Ga*k rows."""
    ga, k, g, s = sim.shape
    logits = sim / tau
    per_subclass = masked_logsumexp(logits, bank_valid[None, None], dim=-1)  # [Ga, k, G]
    neg_subclasses = relation.negative[anchor_groups][:, None, :].expand(ga, k, g)
    neg_lse = masked_logsumexp(per_subclass, neg_subclasses, dim=-1)  # [Ga, k]
    pos_groups = relation.positive_groups[anchor_groups]  # [Ga, P]
    p = pos_groups.shape[1]
    pos_logits = torch.gather(logits, 2, pos_groups[:, None, :, None].expand(ga, k, p, s))  # [Ga, k, P, S]
    pos_valid = bank_valid[pos_groups][:, None].expand(ga, k, p, s)
    return ContrastLogits(pos_logits.reshape(ga * k, p * s), pos_valid.reshape(ga * k, p * s), neg_lse.reshape(ga * k))


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
