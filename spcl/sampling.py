"""Reliable-aware threshold sampling (paper Sec. 2.2, Eq. 1).

Anchors of subclass (c, s) are pixels whose label (ground truth, or teacher pseudo-label) is c, whose
subclass is s, that the student finds hard, max p_s <= gamma_s (0.75), and whose label is reliable.
Reliability of a pseudo-label (labelled pixels are always reliable):
- `confidence` (paper): teacher max p >= gamma_t (0.95);
- `entropy` (official code): the teacher entropy is below the (100 - alpha_t)-th percentile of the
  unlabelled batch, alpha_t = max(80 (1 - progress), 10), i.e. the kept fraction grows from 20 % to
  90 % (reached at 87.5 % of the semi-supervised iterations).
A fixed number k of anchors per subclass is drawn uniformly without replacement, for all subclasses
at once, with the method's seeded generator: one sort of (subclass, random key) pairs (fewer than k
when a subclass has fewer candidates; the missing slots are marked invalid).
"""

from __future__ import annotations

import torch
from torch import Tensor

RELIABILITY = ("confidence", "entropy")


def hard_mask(student_conf: Tensor, gamma_s: float, strict: bool = False) -> Tensor:
    """Hard pixels: max p_s <= gamma_s (paper), or < gamma_s (official code, `strict`)."""
    return student_conf < gamma_s if strict else student_conf <= gamma_s


def entropy_keep_fraction(progress: float, alpha_start: float = 80.0, alpha_end: float = 10.0) -> float:
    """Official schedule: keep the (100 - alpha_t) % lowest-entropy pseudo-labels."""
    alpha_t = max(alpha_start * (1.0 - min(max(progress, 0.0), 1.0)), alpha_end)
    return (100.0 - alpha_t) / 100.0


def confident_pseudo_labels(teacher_conf: Tensor, gamma_t: float) -> Tensor:
    """Paper: reliable where the teacher's max probability [B, H, W] is >= gamma_t."""
    return teacher_conf >= gamma_t


def low_entropy_pseudo_labels(teacher_prob: Tensor, keep_fraction: float) -> Tensor:
    """Official code: reliable where the teacher's entropy (softmax [B, C, H, W]) is below the
    `keep_fraction` quantile of the batch (pixels at or above it are dropped)."""
    entropy = -(teacher_prob * torch.log(teacher_prob + 1e-10)).sum(1)
    threshold = torch.quantile(entropy.flatten().float(), keep_fraction)
    return entropy < threshold


def sample_per_group(group: Tensor, num_groups: int, k: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Up to k pixels per group, uniformly without replacement, for all groups at once.

    group: [N] long, the group (subclass) of each candidate pixel, -1 for non-candidates.
    Returns index [G, k] into the N pixels and valid [G, k] bool; slots of a group with fewer than k
    candidates are invalid (their index is arbitrary). One sort of the integer keys
    group * 2^32 + random 31-bit number lays the groups out one after another, each in random order,
    so the first k of each group's segment are a uniform sample without replacement.
    """
    n = group.numel()
    device = group.device
    noise = torch.randint(0, 2**31, (n,), generator=generator, device=device)
    keys, order = torch.sort(group.long() * 2**32 + noise)
    bounds = torch.arange(num_groups + 1, device=device, dtype=torch.long) * 2**32
    edges = torch.searchsorted(keys, bounds)  # segment of group g: [edges[g], edges[g + 1])
    slot = edges[:-1, None] + torch.arange(k, device=device)[None, :]
    valid = slot < edges[1:, None]
    return order[slot.clamp(max=n - 1)], valid
