"""DGCL: density-guided contrastive learning on the shared mean-teacher skeleton.

Paper: Wang et al., "Hunting Sparsity: Density-Guided Contrastive Learning for Semi-Supervised
Semantic Segmentation", CVPR 2023. Official code: https://github.com/Gavinwxy/DGCL
(`train_semi.py`, `dgcl/dgcl.py`, `dgcl/models/decoder.py`, the configs
`experiments/{pascal/732,cityscapes/372}/dgcl/config.yaml`); SPCL's code is a fork of it
(github.com/Jrstud203/SPCL, commit 23c6a8a, `dgcl/`).

One semi-supervised iteration as implemented (after the skeleton's warm-up, EMA, CutMix and the
3-way student forward, see methods/meanteacher.py):
1. Unsupervised loss (DGCL's own, replacing the skeleton's Dice/0.95): teacher pseudo-labels on
   x_u at input size; the `20 (1 - progress)` % highest-entropy pixels are dropped (no confidence
   threshold); CutMix mixes labels and drop mask; CE of the student on the CutMix view over the
   kept pixels, times B·H·W / #kept (U2PL's weight). Weight 0.5.
2. Contrastive labels at feature resolution: ground truth (nearest) on x_l; on x_u the teacher
   argmax with the `max(80 (1 - progress), 10)` % highest-entropy pixels ignored.
3. Once every class memory (background included) is full: for each foreground class in the
   labels, up to 10000 random class pixels of [x_l; x_u] get a multi-scale kNN density (mean of
   the top-k dot products of L2-normalised decoder features against the class memory, averaged
   over k = 8, 16, 32; fp32). Anchors: the 200 lowest-density student projections (with grad).
   Prototype: the mean of the 50 highest-density batch projections (detached) and the 50
   highest-density memory projections. Negatives: 512 random projections of other valid classes
   (detached). InfoNCE with tau 0.5, positive first; mean over anchors, then over classes.
   Weight 0.5.
4. After the optimiser step, per class (background included), up to 1000 random detached
   (features, projection) pairs of [x_l; x_u] are pushed FIFO into a 10000-per-class memory,
   each with its density against the memory at that moment (0 while the memory holds
   <= 1000 entries, as the official code).

Deviations from the official code (all deliberate):
- Supervised loss: the harness's 0.5 (CE + Dice) for every method (official DGCL: CE, OHEM
  optional), so that only the semi-supervised parts differ between methods.
- Progress counts iterations after the warm-up, not epochs (the schedules move smoothly instead
  of once per epoch).
- Teacher probabilities at feature resolution are the input-size logits resized bilinearly (the
  harness's networks return input-size logits; the official model returns 1/4-size logits).
- A class with at most max(k) = 32 pixels in the batch gets its real density; the official code
  gives it a constant density, which makes its anchor/positive choice an arbitrary tie-break.
  With fewer pixels than 200 (or 50) all of them are anchors (or positives), as the official code.
- The memory is a ring buffer (the same FIFO contents as the official prepend-and-truncate), held
  in buffers so a checkpoint restores it exactly; random sampling uses a device generator kept in
  the method's extra state instead of numpy's global RNG.
- Single device: no all-gather of the memory update, no DDP; autocast only where the engine
  enables it, with the density and the InfoNCE in fp32.
- `conf_threshold` is not used (DGCL filters by entropy); setting it is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines._contrast import (
    IGNORE,
    anchor_infonce,
    full_precision,
    labelled_unlabelled_outputs,
    pixels,
    random_subset,
    to_feature_size,
)
from methods.api import register_method
from methods.losses import masked_cross_entropy
from methods.meanteacher import MeanTeacher, MeanTeacherConfig, MTContext, apply_cutmix
from methods.random_streams import DeviceGenerator
from methods.tensors import class_argmax


@dataclass
class DGCLConfig(MeanTeacherConfig):
    unsup_weight: float = 0.5  # official: loss = sup + 0.5 unsup + 0.5 contra
    contrast_weight: float = 0.5
    temperature: float = 0.5
    memory_size: int = 10000  # entries per class
    memory_update_samples: int = 1000  # pixels per class pushed per step
    memory_density_min: int = 1000  # new entries get a density once the memory holds more than this
    density_k: tuple[int, ...] = (8, 16, 32)
    num_anchors: int = 200  # lowest-density anchors per class
    num_positives: int = 50  # highest-density batch pixels and memory entries in the prototype
    num_negatives: int = 512
    class_sample_cap: int = 10000  # class pixels whose density is computed per step
    unreliable_percent_start: float = 20.0  # unsup loss: % highest-entropy pixels dropped, -> 0
    contrast_drop_start: float = 80.0  # contrast labels: % highest-entropy pixels dropped ...
    contrast_drop_min: float = 10.0  # ... decaying to this floor
    contrast_background: bool = False  # official: background excluded from the contrast

    def validate(self) -> None:
        super().validate()
        if self.conf_threshold != MeanTeacherConfig.conf_threshold:
            raise ValueError("conf_threshold is not used by DGCL (pseudo-labels are filtered by entropy percentile)")
        if not self.density_k or min(self.density_k) < 1:
            raise ValueError(f"density_k must be positive integers, got {self.density_k}")
        if self.memory_size < max(self.density_k):
            raise ValueError(f"memory_size ({self.memory_size}) must be >= max(density_k) ({max(self.density_k)})")
        if not 1 <= self.memory_update_samples <= self.memory_size:
            raise ValueError(f"memory_update_samples must be in [1, memory_size], got {self.memory_update_samples}")
        if self.memory_density_min < max(self.density_k):
            raise ValueError(f"memory_density_min must be >= max(density_k) ({max(self.density_k)})")
        for name in ("num_anchors", "num_positives", "class_sample_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


# ---- the mechanism, as functions -----------------------------------------------------------
def entropy(prob: Tensor) -> Tensor:
    """Per-pixel entropy of class probabilities [B, C, ...] -> [B, ...] (official eps 1e-10)."""
    return -(prob * torch.log(prob + 1e-10)).sum(1)


def drop_high_entropy(ent: Tensor, percent: float) -> Tensor:
    """True for the pixels at or above the (100 - percent)-th entropy percentile."""
    thresh = torch.quantile(ent.flatten().float(), (100.0 - percent) / 100.0)
    return ent >= thresh


def multiscale_density(feat: Tensor, memory: Tensor, ks: tuple[int, ...]) -> Tensor:
    """kNN density of each feature [N, D] in `memory` [M, D]: the mean over k in `ks` of the mean
    of its k largest dot products, on L2-normalised vectors (k is clamped to M). Returns [N]."""
    with full_precision(feat.device):
        sim = F.normalize(feat.float(), dim=1) @ F.normalize(memory.float(), dim=1).T
        top = sim.topk(min(max(ks), sim.shape[1]), dim=1).values  # sorted, largest first
        running_mean = top.cumsum(1) / torch.arange(1, top.shape[1] + 1, device=top.device)
        cols = torch.tensor([min(k, top.shape[1]) - 1 for k in ks], device=top.device)
        return running_mean[:, cols].mean(1)


def select_by_density(density: Tensor, n_low: int, n_high: int) -> tuple[Tensor, Tensor]:
    """Indices of the n_low lowest- and the n_high highest-density entries (all entries when
    there are fewer)."""
    n = density.shape[0]
    low = density.topk(min(n_low, n), largest=False).indices
    high = density.topk(min(n_high, n)).indices
    return low, high


@register_method("dgcl")
class DGCL(MeanTeacher):
    """DGCL (CVPR'23) on SPCL's mean-teacher skeleton."""

    Config = DGCLConfig
    embeds_projection = True  # the contrast is on the projection head
    display_name = "DGCL"
    description = "DGCL (CVPR'23): entropy-filtered CE x0.5 + density-guided InfoNCE to a high-density prototype x0.5"

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        c, m = self.num_classes, cfg.memory_size
        feat_dim = self.student.feat_channels
        proj_dim = self.student.projector[-1].out_channels
        self.register_buffer("mem_feat", torch.zeros(c, m, feat_dim))
        self.register_buffer("mem_proj", torch.zeros(c, m, proj_dim))
        self.register_buffer("mem_density", torch.zeros(c, m))
        self.register_buffer("mem_count", torch.zeros(c, dtype=torch.long))
        self.register_buffer("mem_ptr", torch.zeros(c, dtype=torch.long))
        self._sampler = DeviceGenerator()
        self._pending: tuple | None = None

    def get_extra_state(self):
        return {**super().get_extra_state(), "sampler": self._sampler.state()}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self._sampler.load((state or {}).get("sampler"))

    def progress(self, it: int) -> float:
        span = max(self.max_iters - self.warmup_iters, 1)
        return min(max((it - self.warmup_iters) / span, 0.0), 1.0)

    # ---- unsupervised loss ------------------------------------------------------------------
    def pseudo_label_passed(self, ctx: MTContext) -> Tensor:
        """DGCL's filter on the un-mixed view: the pixels its entropy percentile keeps."""
        percent = self.cfg.unreliable_percent_start * (1.0 - self.progress(ctx.it))
        return ~drop_high_entropy(entropy(ctx.t_prob_u), percent)

    def unsupervised_loss(self, ctx: MTContext) -> Tensor:
        percent = self.cfg.unreliable_percent_start * (1.0 - self.progress(ctx.it))
        with torch.no_grad():
            dropped = drop_high_entropy(entropy(ctx.t_prob_u), percent)
            (dropped_aug,) = apply_cutmix(ctx.cut_mask, dropped)
            kept = ~dropped_aug
            weight = kept.numel() / kept.sum().clamp(min=1)
        return masked_cross_entropy(ctx.s_aug.logits, ctx.pseudo_aug, kept) * weight

    # ---- contrastive loss -------------------------------------------------------------------
    @torch.no_grad()
    def contrast_labels(self, ctx: MTContext, size: tuple[int, int]) -> Tensor:
        """[B_l + B_u, h, w]: GT on x_l, entropy-filtered teacher argmax on x_u (IGNORE dropped)."""
        y_l = to_feature_size(ctx.batch.y_l, ctx.s_l.features)
        logits = ctx.t_u.logits.float()
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        prob = logits.softmax(1)
        percent = max(self.cfg.contrast_drop_start * (1.0 - self.progress(ctx.it)), self.cfg.contrast_drop_min)
        dropped = drop_high_entropy(entropy(prob), percent)
        pseudo = torch.where(dropped, torch.full_like(dropped, IGNORE, dtype=torch.long), class_argmax(prob))
        return torch.cat([y_l, pseudo])

    def extra_loss(self, ctx: MTContext) -> tuple[Tensor, dict[str, Tensor]]:
        feats, proj = labelled_unlabelled_outputs(ctx)
        labels = self.contrast_labels(ctx, tuple(feats.shape[-2:])).reshape(-1)
        feat_px = pixels(feats.detach()).float()
        proj_px = pixels(proj)
        classes = torch.arange(self.num_classes, device=labels.device)
        class_counts = (labels[:, None] == classes).sum(0)
        # the step's one host synchronisation: memory fill and class sizes decide every shape below
        host = torch.cat([self.mem_count, class_counts]).tolist()
        mem_counts, counts = host[: self.num_classes], host[self.num_classes :]
        self._pending = (feat_px, proj_px.detach().float(), labels, counts, mem_counts)
        if min(mem_counts) < self.cfg.memory_size:
            loss = proj_px.new_zeros((), dtype=torch.float32)
        else:
            loss = self.density_contrast(proj_px, feat_px, labels, counts)
        logs = {"contrast": loss.detach(), "memory_fill": min(mem_counts) / self.cfg.memory_size}
        return self.cfg.contrast_weight * loss, logs

    def density_contrast(self, proj: Tensor, feat: Tensor, labels: Tensor, counts: list[int]) -> Tensor:
        """DGCL's `compute_dgcl_loss` on flat pixels: proj [N, Dp] (with grad), feat [N, Df]."""
        cfg = self.cfg
        gen = self._sampler.on(proj.device)
        valid = labels != IGNORE
        first = 0 if cfg.contrast_background else 1
        losses = []
        with full_precision(proj.device):
            for c in range(first, self.num_classes):
                if counts[c] == 0:
                    continue
                in_class = labels == c
                idx = random_subset(in_class, min(counts[c], cfg.class_sample_cap), gen)
                density = multiscale_density(feat[idx], self.mem_feat[c], cfg.density_k)
                low, high = select_by_density(density, cfg.num_anchors, cfg.num_positives)
                top_memory = self.mem_density[c].topk(min(cfg.num_positives, cfg.memory_size)).indices
                positives = torch.cat([proj[idx[high]].detach().float(), self.mem_proj[c, top_memory]])
                n_other = sum(counts) - counts[c]
                neg_idx = random_subset(valid & ~in_class, min(n_other, cfg.num_negatives), gen)
                per_anchor = anchor_infonce(proj[idx[low]], positives.mean(0), proj[neg_idx].detach(), cfg.temperature)
                losses.append(per_anchor.mean())
        if not losses:
            return proj.new_zeros((), dtype=torch.float32)
        return torch.stack(losses).mean()

    # ---- memory -----------------------------------------------------------------------------
    @torch.no_grad()
    def after_update(self, ctx: MTContext, it: int) -> None:
        if self._pending is None:
            return
        feat, proj, labels, counts, mem_counts = self._pending
        self._pending = None
        self.push_to_memory(feat, proj, labels, counts, mem_counts)

    @torch.no_grad()
    def push_to_memory(self, feat: Tensor, proj: Tensor, labels: Tensor, counts: list[int], mem_counts: list[int]) -> None:
        """FIFO update of every class memory with up to `memory_update_samples` random pixels."""
        cfg, m = self.cfg, self.cfg.memory_size
        gen = self._sampler.on(feat.device)
        for c in range(self.num_classes):
            k = min(counts[c], cfg.memory_update_samples)
            if k == 0:
                continue
            idx = random_subset(labels == c, k, gen)
            filled = mem_counts[c]  # before this push the entries sit at [0, filled) or fill the ring
            if filled > cfg.memory_density_min:
                density = multiscale_density(feat[idx], self.mem_feat[c, :filled], cfg.density_k)
            else:
                density = feat.new_zeros(k)
            slots = (self.mem_ptr[c] + torch.arange(k, device=feat.device)) % m  # k <= m: distinct
            self.mem_feat[c].index_copy_(0, slots, feat[idx].to(self.mem_feat.dtype))
            self.mem_proj[c].index_copy_(0, slots, proj[idx].to(self.mem_proj.dtype))
            self.mem_density[c].index_copy_(0, slots, density.to(self.mem_density.dtype))
            self.mem_ptr[c] = (self.mem_ptr[c] + k) % m
            self.mem_count[c] = torch.clamp(self.mem_count[c] + k, max=m)
