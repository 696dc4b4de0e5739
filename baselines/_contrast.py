"""Pieces shared by the contrastive baselines (DGCL, BUS, BASS).

- binary morphology on the device (no scipy, no per-pixel loops): square erosion/dilation by
  max-pooling, vlkit's `seg2edge` (the edge BASS uses) beside the "thick" boundary of skimage's
  `find_boundaries` (methods/boundary.py), and dilation by a Euclidean disk (BASS's
  distance-transform band);
- the labels the contrastive terms see: ground truth on labelled images, confident teacher
  pseudo-labels on unlabelled ones, IGNORE elsewhere;
- random subsets of the True entries of a mask (drawn with a checkpointed device generator,
  methods/random_streams.py `DeviceGenerator`);
- the two InfoNCE forms: anchors against one positive and a negative set (DGCL, BUS), and one
  query against a positive and a negative key set (BASS).

Masks are bool tensors [..., H, W]; morphology treats pixels outside the image as absent, so the
image border neither erodes nor creates a boundary (cv2's and skimage's defaults).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.boundary import thick_boundary
from methods.meanteacher import MTContext
from methods.tensors import downsample_labels

IGNORE = 255


# ---- morphology --------------------------------------------------------------------------------
def _as_batch(mask: Tensor) -> tuple[Tensor, torch.Size]:
    """[..., H, W] bool -> ([N, 1, H, W] float, leading shape)."""
    lead = mask.shape[:-2]
    return mask.reshape(-1, 1, *mask.shape[-2:]).float(), lead


def dilate(mask: Tensor, size: int = 3) -> Tensor:
    """Dilation by a size x size square (cv2.dilate with a rectangular kernel, one iteration)."""
    x, lead = _as_batch(mask)
    out = F.max_pool2d(x, size, stride=1, padding=size // 2)
    return out.reshape(*lead, *mask.shape[-2:]) > 0.5


def erode(mask: Tensor, size: int = 3) -> Tensor:
    """Erosion by a size x size square; pixels outside the image do not erode (cv2's default)."""
    x, lead = _as_batch(mask)
    out = -F.max_pool2d(-x, size, stride=1, padding=size // 2)
    return out.reshape(*lead, *mask.shape[-2:]) > 0.5


def gradient_edge(mask: Tensor) -> Tensor:
    """vlkit's `seg2edge` of binary masks [..., H, W]: pixels where numpy's `np.gradient` of the
    mask is non-zero (vlkit/vlkit `vlkit/dense/dense.py`, commit f4bb071; BASS calls it through
    `ilib.utils.seg2edge` on every RoI mask, `standard_roi_head_clc.py`).

    `np.gradient` takes central differences inside the image, (m[i+1] - m[i-1]) / 2, and one-sided
    ones on the first and last row/column, m[1] - m[0] and m[-1] - m[-2]. So a pixel is an edge iff
    its two neighbours along a row or a column differ from each other (at the border: it differs
    from its one neighbour). This equals `thick_boundary` except on structures one pixel wide: a
    one-pixel line is not its own edge (both its neighbours are background), its two flanks are.
    A dimension of size 1 has no gradient (numpy raises); it contributes no edge here.
    """
    m = mask.bool()
    edge = torch.zeros_like(m)
    for dim in (-2, -1):
        n = m.shape[dim]
        if n < 2:
            continue
        diff = torch.zeros_like(m)
        first, last = m.narrow(dim, 0, 1), m.narrow(dim, n - 1, 1)
        diff.narrow(dim, 0, 1).copy_(m.narrow(dim, 1, 1) != first)
        diff.narrow(dim, n - 1, 1).copy_(last != m.narrow(dim, n - 2, 1))
        if n > 2:
            diff.narrow(dim, 1, n - 2).copy_(m.narrow(dim, 2, n - 2) != m.narrow(dim, 0, n - 2))
        edge |= diff
    return edge


EDGE_OPERATORS = ("seg2edge", "thick")


def mask_edge(mask: Tensor, operator: str) -> Tensor:
    """The edge of binary masks [..., H, W] by `operator`: "seg2edge" (`gradient_edge`, BASS's
    official edge) or "thick" (`thick_boundary`, skimage's `find_boundaries(mode="thick")`)."""
    if operator == "seg2edge":
        return gradient_edge(mask)
    if operator == "thick":
        return thick_boundary(mask)
    raise ValueError(f"edge operator must be one of {list(EDGE_OPERATORS)}, got {operator!r}")


def disk_offsets_kernel(radius: float, device=None) -> Tensor:
    """[1, 1, k, k] kernel of the offsets strictly closer than `radius` (BASS: edt < radius)."""
    r = math.ceil(radius)
    d = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    dist2 = d[:, None] ** 2 + d[None, :] ** 2
    return (dist2 < radius**2).float()[None, None]


def dilate_disk(mask: Tensor, radius: float) -> Tensor:
    """Pixels whose Euclidean distance to the mask is < radius (BASS's
    `distance_transform_edt(~edge) < radius`), by convolution with a disk on the device."""
    x, lead = _as_batch(mask)
    kernel = disk_offsets_kernel(radius, device=mask.device).to(x.dtype)
    out = F.conv2d(x, kernel, padding=kernel.shape[-1] // 2)
    return out.reshape(*lead, *mask.shape[-2:]) > 0.5


# ---- labels for the contrastive terms ---------------------------------------------------------
def reliable_labels(ctx: MTContext, conf_threshold: float) -> Tensor:
    """[B_l + B_u, H, W] int64 at input resolution: ground truth, then the teacher's pseudo-labels
    on the un-mixed unlabelled view with pixels below `conf_threshold` set to IGNORE."""
    pseudo = torch.where(ctx.conf_u >= conf_threshold, ctx.pseudo_u, torch.full_like(ctx.pseudo_u, IGNORE))
    return torch.cat([ctx.batch.y_l, pseudo])


def labelled_unlabelled_outputs(ctx: MTContext) -> tuple[Tensor, Tensor]:
    """Student decoder features and projections of [x_l; x_u] (the streams SPCL/DGCL contrast)."""
    feats = torch.cat([ctx.s_l.features, ctx.s_u.features])
    proj = torch.cat([ctx.s_l.projection, ctx.s_u.projection])
    return feats, proj


def to_feature_size(labels: Tensor, features: Tensor) -> Tensor:
    """Nearest-neighbour labels at the feature resolution of `features` [B, D, h, w]."""
    return downsample_labels(labels, tuple(features.shape[-2:]))


def pixels(x: Tensor) -> Tensor:
    """[B, D, h, w] -> [B*h*w, D] (row order b, y, x, the order of flattened label maps)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def full_precision(device: torch.device):
    """A context in which autocast is off, so similarities and densities are computed in fp32
    (DGCL computes its density with `autocast(enabled=False)`)."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


# ---- random sampling -------------------------------------------------------------------------
def random_subset(mask: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Indices of `k` entries of the flat bool `mask`, drawn uniformly without replacement among
    the True ones (True entries are drawn first, so k <= mask.sum() gives only True entries)."""
    k = min(int(k), mask.numel())
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    keys = torch.where(mask, keys, torch.full_like(keys, -1.0))
    return keys.topk(k).indices


def per_group_fraction(mask: Tensor, fraction: float, cap: int, generator: torch.Generator) -> Tensor:
    """Keep, in every row of `mask` [G, N], ceil(fraction * n_row) True entries at random, at most
    `cap` (BASS's `percent` sampling per RoI, here per image and class). Returns a bool [G, N]."""
    count = mask.sum(-1, keepdim=True)
    quota = torch.clamp(torch.ceil(fraction * count.float()), max=float(cap)).long()
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    keys = torch.where(mask, keys, torch.full_like(keys, -1.0))
    rank = keys.argsort(-1, descending=True).argsort(-1)
    return mask & (rank < quota)


# ---- InfoNCE forms ---------------------------------------------------------------------------
def anchor_infonce(anchors: Tensor, positive: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """Per-anchor -log softmax of the positive among [positive, negatives] on cosine / temperature.

    anchors [A, D]; positive [D] (one prototype) or [A, D]; negatives [N, D] (N may be 0).
    The positive is logit 0, as DGCL's `compute_dgcl_loss` and BUS's `CE(logits, 0)`. Returns [A].
    """
    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(positive.float(), dim=-1)
    pos = (a * p).sum(-1, keepdim=True) if p.dim() == 2 else (a @ p)[:, None]
    neg = a @ F.normalize(negatives.float(), dim=-1).T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return -logits.log_softmax(dim=1)[:, 0]


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """logsumexp of x over the True entries of mask along dim. Where none is True the result is
    a huge negative number (adds nothing to a later logaddexp); unlike -inf it keeps the
    gradient finite (0) instead of NaN."""
    fill = torch.finfo(x.dtype).min / 2
    return torch.where(mask, x, torch.full_like(x, fill)).logsumexp(dim)


def query_infonce(
    pos_logit: Tensor, pos_mask: Tensor, neg_logit: Tensor, neg_mask: Tensor, pos_denominator_logit: Tensor | None = None
) -> Tensor:
    """Mean over positive keys k+ of -log(e^{s+} / (e^{s+'} + sum_{k-} e^{s-})) for one query.

    `pos_logit`/`neg_logit` [..., N]: the query's logits (similarity / temperature) with every key,
    `pos_mask`/`neg_mask` [..., N] select the positive and negative keys; the leading dims are
    independent queries. `pos_denominator_logit` (default `pos_logit`) is the positive's logit in
    the denominator (BASS's code uses the similarity without the temperature there).
    Returns [...]; 0 where a query has no positive key.
    """
    den_pos = pos_logit if pos_denominator_logit is None else pos_denominator_logit
    lse_neg = masked_logsumexp(neg_logit, neg_mask, dim=-1).unsqueeze(-1)
    per_key = torch.logaddexp(den_pos, lse_neg) - pos_logit  # -log(e^{s+} / (e^{s+'} + sum e^{s-}))
    w = pos_mask.to(per_key.dtype)
    per_key = torch.where(pos_mask, per_key, torch.zeros_like(per_key))
    return (per_key * w).sum(-1) / w.sum(-1).clamp(min=1.0)
