"""The subclass relation: which memory-bank entries are positives and negatives for an anchor.

Subclasses are indexed g = 2c + s with s = INNER (0) or BOUNDARY (1), so a batch of C classes has
G = 2C subclasses and the memory bank holds one queue per subclass (paper Sec. 2.1).

For an anchor of subclass (c, s) and a bank entry of subclass (c', s'):
- same subclass (c' = c, s' = s): positive;
- other class (c' != c): negative, inner and boundary entries alike;
- same class, other subclass (c' = c, s' != s), per `relation` (paper Table 4):
    `unconcerned` (the paper's "US"): neither positive nor negative;
    `positive` ("Pos"): positive;  `negative` ("Neg"): negative.
Because membership depends only on the pair of subclasses, a relation is two [G, G] boolean matrices;
the losses expand them over the bank slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

RELATIONS = ("unconcerned", "positive", "negative")
INNER, BOUNDARY = 0, 1


def subclass_index(cls: int | Tensor, sub: int | Tensor) -> int | Tensor:
    return 2 * cls + sub


@dataclass(frozen=True)
class SubclassRelation:
    """positive / negative [G, G] bool: anchor subclass (rows) x bank subclass (columns);
    positive_groups [G, P] long: the bank subclasses holding each anchor subclass's positives
    (P = 1, or 2 for the `positive` relation), precomputed so the losses never call nonzero()."""

    name: str
    positive: Tensor
    negative: Tensor
    positive_groups: Tensor

    @property
    def num_subclasses(self) -> int:
        return self.positive.shape[0]

    def to(self, device: torch.device | str) -> "SubclassRelation":
        return SubclassRelation(self.name, *(t.to(device) for t in (self.positive, self.negative, self.positive_groups)))


def subclass_relation(name: str, num_classes: int) -> SubclassRelation:
    if name not in RELATIONS:
        raise ValueError(f"relation must be one of {list(RELATIONS)}, got {name!r}")
    g = torch.arange(2 * num_classes)
    cls, sub = g // 2, g % 2
    same_class = cls[:, None] == cls[None, :]
    same_sub = sub[:, None] == sub[None, :]
    sibling = same_class & ~same_sub  # the other subclass of the anchor's own class
    positive = same_class & same_sub
    negative = ~same_class
    if name == "positive":
        positive = positive | sibling
    elif name == "negative":
        negative = negative | sibling
    per_anchor = int(positive[0].sum())  # the same for every subclass by construction
    positive_groups = positive.nonzero()[:, 1].view(2 * num_classes, per_anchor)
    return SubclassRelation(name, positive, negative, positive_groups)


def dense_masks(relation: SubclassRelation, anchor_groups: Tensor, entry_groups: Tensor, entry_valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Positive / negative masks [A, M] for anchors of subclasses `anchor_groups` [A] against bank
    entries of subclasses `entry_groups` [M] (invalid entries are neither)."""
    pos = relation.positive[anchor_groups][:, entry_groups]
    neg = relation.negative[anchor_groups][:, entry_groups]
    if entry_valid is not None:
        pos = pos & entry_valid[None, :]
        neg = neg & entry_valid[None, :]
    return pos, neg
