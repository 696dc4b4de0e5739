"""BASS: boundary-aware region contrast (and optional low-resolution denoising), adapted from
nuclei instances to cardiac classes on the shared mean-teacher skeleton.

Paper: Zhang et al., "Boundary-aware Contrastive Learning for Semi-supervised Nuclei Instance
Segmentation" (BASS), MIDL 2024. Official code: https://github.com/zhangye-zoe/BASS, read at
commit 1451b67 (mmdetection 2.18, Mask R-CNN). The README's semi-supervised configuration is
`configs/noisyboundaries/*/mask_rcnn_r50_fpn_1x_coco_pl_clc.py`: `StandardRoIHeadCLC`
(`mmdet/models/roi_heads/standard_roi_head_clc.py`) with `FCNMaskHeadCLC` and the mmdet
`PixelContrastiveHead` (`mmdet/models/roi_heads/mask_heads/contrastive_head.py`); the sets come
from `ilib/utils/sample_utils.py::get_query_keys`; the weight schedule is in
`ilib/utils/tensorboard_utils.py`. The adaptation and its deviations are listed below; docs/baselines.md
gives the reasons.

What BASS does: a supervised Mask R-CNN makes offline pseudo-labels; the student's mask head adds
(a) CRC, a cross-RoI contrast per 28x28 RoI: the edge of the RoI mask (vlkit's `seg2edge`,
non-zero `np.gradient`) is dilated by a distance transform (radius 4) into a band; band inside the
mask = inner band (hard positives), band outside = outer band (hard negatives), mask minus band =
easy positives, outside mask and dilated edge = easy negatives; each set is sampled at 70 %; the
foreground and background queries are the mean embeddings over the mask and its complement,
averaged over RoIs; InfoNCE terms (query, positive set, negative set): (q_f, easy fg, easy bg) and
(q_b, easy bg, easy fg) at tau 0.3, (q_f, inner, outer) and (q_b, outer, inner) at tau 0.7; and
(b) LRD, a parallel coarse (14x14) mask branch whose upsampled logits are fused with the fine
ones by a 1x1 conv.

The weight of L_cl, two sources that disagree:
- paper, Eq. 2: Loss = L_det + L_nmh + L_lrd + L_cl, and Eq. 6: L_cl = the sum of the four terms
  (weight 1, four terms, Eq. 7's InfoNCE with tau in numerator and denominator);
- code (`pl_clc` config): the mmdet `PixelContrastiveHead.loss` returns
  `torch.mean(L_qf_hard + L_qb_hard) * self.weight` -- the mean of a one-element tensor, i.e. the
  *sum* of the two hard terms -- added with factor 1 to the mask loss. `self.weight` is set only
  by `SelfTensorboardLoggerHook.before_epoch` (`ilib/utils/tensorboard_utils.py`, a ramp 0.25 -> 1
  over 4 epochs); the config's `IterBasedRunner` calls `before_epoch` once, at epoch 0, so the
  weight stays 0.25: effective 0.25 x (two hard terms), with the code's InfoNCE quirks below.
  (The factor 0.1 x weight, i.e. 0.025, belongs to the `ilib` ContrastMask head
  `ilib/model/contrastmask_head/contrastive_head.py`, whose `forward` calls `get_query_keys` with
  arguments that function does not take: it fails with a TypeError and trains nothing.)
The default here is the paper: weight 1 on the four terms of Eq. 6 with Eq. 7's InfoNCE. The
module already follows the paper's loss where the code departs from it (the quirks are a switch),
so the weight and the set of terms come from the same source; taking the code's weight for the
paper's four terms would be neither. The variant `official` is the code as it runs: the two hard
terms, weight 0.25, `code_quirks` on.

Adaptation to cardiac semantic segmentation (SPCL: "region-based contrastive learning separately
within the boundary and inner regions"). One semi-supervised iteration as implemented (skeleton
as SPCL: 0.5 (CE + Dice), Dice on the CutMix view against pseudo-labels with confidence >= 0.95,
weight 0.3):
1. Labels of [x_l; x_u] at feature resolution: ground truth, teacher pseudo-labels with
   confidence >= `conf_threshold`, the rest ignored (never in any set or query).
2. Each foreground class c of each image plays the RoI's foreground F (the rest is B). Edge =
   `edge` of F ("seg2edge": official, `baselines._contrast.gradient_edge`; "thick": the
   4-neighbourhood thick boundary, which adds the pixels of one-pixel-wide structures); band =
   pixels closer than `band_radius` to the edge (disk dilation on the device) minus the edge;
   inner/outer band, easy fg/bg as above.
3. An image takes part for class c only if all four sets have >= 5 pixels (official RoI rule).
   Per image and set, ceil(0.7 n) pixels are sampled, at most `max_keys_per_image`.
4. Queries: the mean projection over F (and over B) per image, averaged over the participating
   images (the cross-image analogue of cross-RoI sharing).
5. The InfoNCE terms per class (`terms` "all": the four of Eq. 6; "hard": the two hard ones),
   each the mean over its positive keys, summed; mean over the classes with a participating image.
6. L = L_skeleton + `contrast_weight` L_CRC (1; `official`: 0.25) (+ `lrd_weight` L_LRD when `lrd`).

Deviations and choices (all deliberate):
- Online mean-teacher pseudo-labels (refreshed every step, confidence >= 0.95) instead of BASS's
  offline single-round pseudo-labels from a frozen supervised model.
- Images instead of RoIs, classes instead of instances; background is not a query class by
  default (`include_background`), since every foreground class already contrasts against it.
- Band radius 2 feature pixels by default: the official 4 is 14 % of a 28-pixel RoI; at 1/4
  resolution of a cardiac slice, 2 feature pixels are about 8 input pixels.
- Cap of 549 keys per image and set (= ceil(0.7 * 28 * 28), the most one official RoI gives), so
  the negative sums in the InfoNCE denominators keep the official scale on large feature maps.
- Embedding: the harness's projection head (shared with SPCL) instead of BASS's 3-conv + 2-layer
  64-d contrastive head with a final ReLU; its logits are not fused into the mask prediction.
- The code's quirks (keys centred on the query before the cosine; exp(s) without tau for the
  positive in the denominator) are off by default and on in `code_quirks` / `official`.
- `weight_ramp_iters` > 0 ramps the weight from 0.25 x to 1 x `contrast_weight` linearly over
  that many semi-supervised iterations: what the official hook was written to do per epoch and
  does not do under the iteration-based runner; 0 (default) keeps it constant.
- If no image qualifies for a class, the class is skipped (the official code then samples 2
  points per set of every RoI).
- LRD (`lrd`, off by default because it changes the segmentation head): decoder features
  average-pooled by `lrd_stride`, two 3x3 conv-BN-ReLU and a 1x1 classifier give coarse logits,
  supervised by nearest-downsampled labels (GT on x_l, confident pseudo-labels on the CutMix
  view) with boundary pixels weighted `lrd_boundary_weight` (the paper's lower boundary weight);
  their bilinear upsampling is fused with the main logits by a 1x1 conv initialised to pass the
  main logits through, so the network starts as the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines._contrast import (
    EDGE_OPERATORS,
    IGNORE,
    dilate_disk,
    full_precision,
    labelled_unlabelled_outputs,
    mask_edge,
    per_group_fraction,
    query_infonce,
    reliable_labels,
    to_feature_size,
)
from methods.api import Batch, StepOutput, check_choice, register_method
from methods.boundary import thick_boundary
from methods.ema import make_teacher
from methods.meanteacher import MeanTeacher, MeanTeacherConfig, MTContext
from methods.nets import NetOutput
from methods.random_streams import DeviceGenerator
from methods.tensors import downsample_labels


@dataclass
class BASSConfig(MeanTeacherConfig):
    contrast_weight: float = 1.0  # paper Eq. 2 (weight 1); the official code runs 0.25 (variant `official`)
    weight_ramp_iters: int = 0  # 0: constant; > 0: 0.25 -> 1 x contrast_weight linearly over this many iterations
    tau_easy: float = 0.3
    tau_hard: float = 0.7
    edge: str = "seg2edge"  # "seg2edge" (official: vlkit, non-zero np.gradient) | "thick" (4-neighbour)
    band_radius: float = 2.0  # feature pixels (official: 4 on a 28 x 28 RoI)
    sample_fraction: float = 0.7  # official `percent`
    max_keys_per_image: int = 549  # ceil(0.7 * 28 * 28): the most one official RoI gives
    min_set_size: int = 5  # official: a RoI with a set below 5 pixels is dropped
    terms: str = "all"  # "all" (paper Eq. 6) | "hard" (the official pl_clc config's mmdet head)
    code_quirks: bool = False
    include_background: bool = False
    lrd: bool = False
    lrd_stride: int = 4
    lrd_weight: float = 1.0  # official: the coarse mask loss has the mask loss's weight
    lrd_boundary_weight: float = 0.5

    def validate(self) -> None:
        super().validate()
        check_choice("terms", self.terms, ("all", "hard"))
        check_choice("edge", self.edge, EDGE_OPERATORS)
        if self.contrast_weight < 0:
            raise ValueError(f"contrast_weight must be >= 0, got {self.contrast_weight}")
        if self.tau_easy <= 0 or self.tau_hard <= 0:
            raise ValueError("tau_easy and tau_hard must be > 0")
        if self.band_radius <= 1:
            raise ValueError(f"band_radius must be > 1 (a band beyond the edge), got {self.band_radius}")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")
        if self.max_keys_per_image < 1 or self.min_set_size < 1 or self.lrd_stride < 1:
            raise ValueError("max_keys_per_image, min_set_size and lrd_stride must be >= 1")


# ---- CRC: the regions and the loss --------------------------------------------------------------
class Regions(NamedTuple):
    """Bool [B, K, h, w] sets of one class per channel; `fg`/`bg` are the query regions."""

    fg: Tensor
    bg: Tensor
    inner: Tensor  # band inside the class: hard positives
    outer: Tensor  # band outside the class: hard negatives
    easy_fg: Tensor  # class minus band
    easy_bg: Tensor  # outside the class and the dilated edge


def bass_regions(labels: Tensor, classes: list[int], radius: float, edge_operator: str = "seg2edge") -> Regions:
    """BASS's `get_query_keys` sets for every class in `classes` from labels [B, h, w] (IGNORE:
    in no set). The edge of each class mask is `edge_operator` ("seg2edge" official, or "thick");
    the band is the pixels at Euclidean distance < `radius` (feature pixels) from it, minus it."""
    cls = torch.tensor(classes, device=labels.device)[None, :, None, None]
    fg = labels[:, None] == cls
    valid = (labels != IGNORE)[:, None]
    edge = mask_edge(fg, edge_operator)
    near_edge = dilate_disk(edge, radius)  # distance to the edge < radius, the edge included
    band = near_edge & ~edge
    return Regions(
        fg=fg & valid,
        bg=~fg & valid,
        inner=band & fg & valid,
        outer=band & ~fg & valid,
        easy_fg=fg & ~band & valid,
        easy_bg=~(fg | near_edge) & valid,
    )


def query_logits(queries: Tensor, emb: Tensor, centred: bool) -> Tensor:
    """Cosine of each class query [K, D] with every pixel embedding [B, D, h, w] -> [B, K, h, w].
    `centred` (BASS code): cosine of the query with (key - query)."""
    q = queries.float()
    e = emb.float()
    dot = torch.einsum("kd,bdhw->bkhw", q, e)
    q_sq = (q * q).sum(1)[None, :, None, None]
    e_sq = (e * e).sum(1, keepdim=True)
    eps = 1e-16  # clamp squared norms before sqrt: an all-zero query (an absent class) keeps a finite gradient
    if centred:
        diff_norm = (e_sq - 2 * dot + q_sq).clamp(min=eps).sqrt()
        return (dot - q_sq) / (q_sq.clamp(min=eps).sqrt() * diff_norm).clamp(min=1e-8)
    return dot / (q_sq.clamp(min=eps).sqrt() * e_sq.clamp(min=eps).sqrt()).clamp(min=1e-8)


def crc_terms(sim_fg: Tensor, sim_bg: Tensor, keys: dict[str, Tensor], tau_easy: float, tau_hard: float,
              quirks: bool) -> dict[str, Tensor]:
    """The four InfoNCE terms per class. sim_* [K, N] cosines of the fg/bg query with every
    pixel; keys[name] [K, N] bool sampled sets. Returns name -> [K]."""

    def term(sim: Tensor, pos: Tensor, neg: Tensor, tau: float) -> Tensor:
        return query_infonce(sim / tau, pos, sim / tau, neg, pos_denominator_logit=sim if quirks else None)

    return {
        "fg_easy": term(sim_fg, keys["easy_fg"], keys["easy_bg"], tau_easy),
        "fg_hard": term(sim_fg, keys["inner"], keys["outer"], tau_hard),
        "bg_easy": term(sim_bg, keys["easy_bg"], keys["easy_fg"], tau_easy),
        "bg_hard": term(sim_bg, keys["outer"], keys["inner"], tau_hard),
    }


# ---- LRD: the low-resolution denoising head -----------------------------------------------
class LowResDenoisingNet(nn.Module):
    """A segmentation network plus BASS's coarse branch, fused into its logits (see docstring).

    The forward returns the usual NetOutput with the fused logits and keeps the coarse logits of
    its last call in `coarse_logits`, so the method can supervise them without changing NetOutput.
    """

    def __init__(self, net: nn.Module, num_classes: int, stride: int):
        super().__init__()
        self.net = net
        ch = net.feat_channels
        self.feat_channels = ch
        self.stride = stride
        self.coarse_head = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
            nn.Conv2d(ch, num_classes, 1),
        )
        self.fuse = nn.Conv2d(2 * num_classes, num_classes, 1)
        with torch.no_grad():  # start as the plain network: fused = main logits
            self.fuse.weight.zero_()
            self.fuse.weight[:, :num_classes, 0, 0] = torch.eye(num_classes)
            self.fuse.bias.zero_()
        self.coarse_logits: Tensor | None = None

    def forward(self, x: Tensor) -> NetOutput:
        out = self.net(x)
        low = F.avg_pool2d(out.features, self.stride, ceil_mode=True) if self.stride > 1 else out.features
        coarse = self.coarse_head(low)
        self.coarse_logits = coarse
        up = F.interpolate(coarse, size=out.logits.shape[-2:], mode="bilinear", align_corners=False)
        return NetOutput(self.fuse(torch.cat([out.logits, up.to(out.logits.dtype)], 1)), out.features, out.projection_or_deferred)


def lrd_loss(coarse_logits: Tensor, labels: Tensor, num_classes: int, boundary_weight: float) -> Tensor:
    """CE of coarse logits [B, C, h, w] against labels [B, H, W] resized nearest to (h, w);
    pixels on a class boundary (4-neighbourhood, thick) weigh `boundary_weight`, IGNORE 0."""
    target = downsample_labels(labels, tuple(coarse_logits.shape[-2:]))
    valid = target != IGNORE
    onehot = target[:, None] == torch.arange(num_classes, device=target.device)[None, :, None, None]
    boundary = thick_boundary(onehot & valid[:, None]).any(1)
    weight = torch.where(boundary, boundary_weight, 1.0) * valid
    ce = F.cross_entropy(coarse_logits.float(), torch.where(valid, target, 0), reduction="none")
    return (ce * weight).sum() / weight.sum().clamp(min=1e-8)


@register_method("bass")
class BASS(MeanTeacher):
    """BASS's boundary-aware region contrast (MIDL'24) for classes, on SPCL's skeleton."""

    Config = BASSConfig
    embeds_projection = True  # the contrast is on the projection head
    display_name = "BASS"
    description = "BASS (MIDL'24), per class: inner/outer boundary band and easy regions vs fg/bg queries, 4 InfoNCE, x1 (paper)"
    variants = {
        "lrd": {"lrd": True},  # with the low-resolution denoising head
        "code_quirks": {"code_quirks": True},  # the official code's InfoNCE form, the paper's terms and weight
        # the official pl_clc configuration as it runs: two hard terms x 0.25 with the code's InfoNCE
        "official": {"terms": "hard", "contrast_weight": 0.25, "code_quirks": True},
    }

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        if cfg.lrd:
            self.student = LowResDenoisingNet(self.student, self.num_classes, cfg.lrd_stride)
            self.teacher = make_teacher(self.student)
        self._sampler = DeviceGenerator()
        self.contrast_classes = list(range(0 if cfg.include_background else 1, self.num_classes))

    def get_extra_state(self):
        return {**super().get_extra_state(), "sampler": self._sampler.state()}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self._sampler.load((state or {}).get("sampler"))

    def contrast_weight(self, it: int) -> float:
        ramp = self.cfg.weight_ramp_iters
        if ramp <= 0:
            return self.cfg.contrast_weight
        t = min(max(it - self.warmup_iters, 0) / ramp, 1.0)
        return self.cfg.contrast_weight * (0.25 + 0.75 * t)

    # ---- losses -------------------------------------------------------------------------------
    def warmup_step(self, batch: Batch, it: int) -> StepOutput:
        out = super().warmup_step(batch, it)
        if not self.cfg.lrd:
            return out
        lrd = lrd_loss(self.student.coarse_logits, batch.y_l, self.num_classes, self.cfg.lrd_boundary_weight)
        loss = out.loss + self.cfg.lrd_weight * lrd
        return StepOutput(loss, {**out.logs, "loss": loss.detach(), "lrd": lrd.detach()})

    def extra_loss(self, ctx: MTContext) -> tuple[Tensor, dict[str, Tensor]]:
        _, proj = labelled_unlabelled_outputs(ctx)
        crc, logs = self.crc_loss(proj, reliable_labels(ctx, self.cfg.conf_threshold))
        total = self.contrast_weight(ctx.it) * crc
        if self.cfg.lrd:
            n_l, n_u = ctx.batch.x_l.shape[0], ctx.batch.x_u.shape[0]
            coarse = self.student.coarse_logits
            coarse = torch.cat([coarse[:n_l], coarse[n_l + n_u :]])
            pseudo = torch.where(ctx.conf_aug >= self.cfg.conf_threshold, ctx.pseudo_aug, IGNORE)
            lrd = lrd_loss(coarse, torch.cat([ctx.batch.y_l, pseudo]), self.num_classes, self.cfg.lrd_boundary_weight)
            total = total + self.cfg.lrd_weight * lrd
            logs["lrd"] = lrd.detach()
        return total, logs

    def crc_loss(self, emb: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """emb [B, D, h, w] (with grad); labels [B, H, W] at input size (IGNORE = unreliable)."""
        cfg = self.cfg
        with torch.no_grad():
            regions = bass_regions(to_feature_size(labels, emb), self.contrast_classes, cfg.band_radius, cfg.edge)
            b, k = regions.fg.shape[:2]
            sizes = {name: getattr(regions, name).flatten(2).sum(-1) for name in ("inner", "outer", "easy_fg", "easy_bg")}
            keep = torch.stack([s >= cfg.min_set_size for s in sizes.values()]).all(0)  # [B, K]
            gen = self._sampler.on(emb.device)
            keys = {}
            for name in sizes:
                chosen = per_group_fraction(getattr(regions, name).flatten(2).reshape(b * k, -1), cfg.sample_fraction,
                                            cfg.max_keys_per_image, gen).reshape(b, k, -1)
                keys[name] = (chosen & keep[..., None]).permute(1, 0, 2).reshape(k, -1)  # [K, B*h*w]
        with full_precision(emb.device):
            e = emb.float()
            queries = {}
            for side in ("fg", "bg"):
                region = getattr(regions, side).float()
                per_image = torch.einsum("bkhw,bdhw->bkd", region, e) / region.sum((2, 3))[..., None].clamp(min=1)
                w = keep.float()[..., None]
                queries[side] = (per_image * w).sum(0) / w.sum(0).clamp(min=1)  # [K, D]
            sims = {side: query_logits(q, e, cfg.code_quirks).permute(1, 0, 2, 3).reshape(k, -1) for side, q in queries.items()}
            terms = crc_terms(sims["fg"], sims["bg"], keys, cfg.tau_easy, cfg.tau_hard, cfg.code_quirks)
            used = ("fg_easy", "fg_hard", "bg_easy", "bg_hard") if cfg.terms == "all" else ("fg_hard", "bg_hard")
            per_class = sum(terms[t] for t in used)
            active = keep.any(0).float()
            loss = (per_class * active).sum() / active.sum().clamp(min=1)
        logs = {"contrast": loss.detach(), "contrast_classes": active.sum()}
        return loss, logs
