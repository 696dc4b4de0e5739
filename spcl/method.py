"""SPCL: intra-class subdivision pixel contrastive learning (registered as `spcl` and `spcl_official`).

Paper: J. Zhao, X. Yang, "Intra-class subdivision for pixel contrastive learning: application to
semi-supervised cardiac image segmentation", ICASSP 2026 (Sec. 2, Eqs. 1-5).
Official code: github.com/Jrstud203/SPCL (commit 23c6a8a; `train_spcl.py`, `dgcl/bcl/spcl.py`).

SPCL extends the mean-teacher skeleton (`methods.meanteacher`: warm-up, EMA teacher, 0.95
pseudo-labels, CutMix, L_sup + 0.3 L_unsup) with, per semi-supervised step (docs/spcl.md):
  1. subclass division at feature resolution: labels = ground truth (labelled, nearest-downsampled)
     and the teacher's argmax (un-mixed unlabelled view), boundary map by `boundary` (canny | thick);
  2. anchors (Eq. 1): hard (student max p <= gamma_s) and reliable pixels of the student's projections
     of [x_l; x_u], `anchors_per_subclass` per (class, subclass), drawn without replacement;
  3. ICL (Eq. 2) on inner anchors, BCL (Eq. 4) on boundary anchors, against the subclass memory
     banks only, with the subclass `relation` (unconcerned | positive | negative);
  4. L_spcl = (1 - a) L_icl + a L_bcl, a ramped to `alpha_max`; the method adds lambda_c L_spcl (Eq. 5);
  5. after the optimiser step, each image's reliable-pixel centroids enter the FIFO banks.

The 14 places where the official code differs from the paper's Sec. 2 and 3.1 (or fills in what
the text leaves open), and what the two presets do; docs/spcl.md cites the rows as #1-#14. `spcl`
follows the paper where the text is explicit and the code where it is silent; `spcl_official`
follows the code throughout. Every row is a plain config field.

| #  | topic | `spcl` | `spcl_official` |
|----|-------|--------|-----------------|
| 1  | boundary operator | `canny` (paper), per class, at feature resolution | `thick` = find_boundaries(mode='thick') |
|    | (either preset)   | `boundary: mask2edge`: the authors' unused cv2 Canny helper (dgcl/bcl/util.py) | same |
|    | boundary source   | unfiltered teacher argmax / ground truth (both presets) | same |
| 2  | anchor hardness / reliability | max p_s <= 0.75; teacher conf >= 0.95 | max p_s < 0.75; entropy percentile (alpha_t 80 -> 10) |
| 3  | centroid reliability | teacher conf >= 0.95 | entropy percentile; both: mean of raw projections, then L2 |
| 4  | ICL scale and averaging | x1, mean over all anchors (Eq. 2) | x 0.5/0.07, per class then over classes |
|    | background subclasses | included (text silent; code) | included |
| 5  | BCL temperature, balancing | no temperature (Eq. 4), no rescale | tau_b 0.07, rescaled per class to the InfoNCE value (detached) |
| 6  | alpha schedule | 0.1 exp(-5 (1 - t)^2), t = floor(60 it / T) / 60 (text silent; code) | same |
| 7  | L_unsup on a CutMix view, p = 0.5 | skeleton (text silent on CutMix; code) | same |
| 8  | teacher: warm-up, decay min(1 - 1/(t+1), 0.999), train mode | skeleton (code; the paper's fixed beta = 0.999 is not used, so all methods share one teacher) | same |
| 9  | loss only once all 2C banks are full | on (text silent; code) | on |
| 10 | backbone, input, batch, iterations | the harness profile, not the method | same |
| 11 | 256 anchors per (class, subclass) from labelled and unlabelled | yes | yes |
| 12 | evaluation protocol | the harness (methods/evaluation/evaluate.py) | same |
| 13 | temperatures | tau = 0.5 (ICL); BCL none | 0.5 (ICL, balancing NCE), 0.07 (BCL) |
| 14 | unlabelled pool also loses some unrelated slices (a bug) | not reproduced | not reproduced |

Read-out at feature resolution (both presets), as the official code: the teacher's probabilities
(pseudo-labels, confidences, entropies) and the student's confidences are the softmax of the class
logits *at feature resolution* (`feature_resolution_logits`: the network's segmentation head without
its upsampling, applied to the decoder features; the official `pred` at 1/4 resolution), and
ground-truth labels are nearest-downsampled from the input size (official `label_l_small`).
Nearest-downsampling smp's x4 upsampled logits instead would not be the same: smp upsamples with
`align_corners=True`, so feature pixel i would be read at 0.988 i (H = 256), a shift growing to
-0.74 px across the image (at the paper profile that moves 0.9 % of pseudo-labels, 1.5 % of
hard-pixel flags and 26 % of the unlabelled thick-boundary pixels; docs/spcl.md). With the U-Net
profile logits and features share the input resolution and nothing changes.

Deliberate differences from the official code in both presets:
- the entropy percentile is taken over all unlabelled pixels of the batch (the official ignore mask
  for padding does not exist here) and progress is continuous over the semi-supervised iterations
  (the official steps it per epoch);
- anchors are drawn with the method's seeded device generator (random keys + top-k per subclass),
  not `np.random.choice` per class; banks are rings (oldest entry overwritten first) rather than
  "prepend and truncate", holding the same entries: within a batch image 0 is the newest, as the
  official prepend of the batch in image order (spcl/memory.py);
- with only one of ICL / BCL enabled (Table 3 ablations, absent from the code) that term gets the
  full lambda_c weight;
- the learning rate decays over the run's T iterations, as for every method of the harness; the
  official horizon is (T // L + 1) L with L the labelled slices (6052 for L = 68), which
  `poly_horizon: official` sets (`lr_horizon`);
- CutMix (shared skeleton, methods/meanteacher.py `cutmix_box_mask`): box width round(W/2 + U W/2)
  in [W/2, W]; the official `generate_cutout_mask` draws `np.random.randint(W/2 + 1, W)`, i.e.
  [W/2 + 1, W - 1] (dgcl/dataset/augmentation.py). Not changed here: the skeleton is shared by every
  mean-teacher method.
"""  # noqa: E501 (the table's rows cannot wrap)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.api import check_choice, register_method
from methods.losses import sigmoid_rampup
from methods.meanteacher import MeanTeacher, MeanTeacherConfig, MTContext
from methods.optim import sgd_poly
from methods.random_streams import DeviceGenerator
from methods.tensors import downsample_labels
from spcl.boundaries import BOUNDARY_OPERATORS, import_cv2, subclass_boundaries
from spcl.losses import (
    BCL_FORMS,
    MIN_TAU,
    anchor_mean,
    balanced_to_infonce,
    boundary_contrastive,
    contrast_logits,
    info_nce,
)
from spcl.memory import SubclassMemoryBank, subclass_centroids
from spcl.relations import RELATIONS, subclass_relation
from spcl.reservoir import NEGATIVE, POSITIVE, SimilarityReservoir
from spcl.sampling import (
    RELIABILITY,
    confident_pseudo_labels,
    entropy_keep_fraction,
    hard_mask,
    low_entropy_pseudo_labels,
    sample_per_group,
)

ALPHA_RAMP_STEPS = 60  # official: sigmoid_rampup(i_iter // 100, 60) over 6000 iterations
POLY_HORIZONS = ("run", "official")


@dataclass
class SPCLConfig(MeanTeacherConfig):
    """`spcl`: the paper where explicit, the official code where the paper is silent."""

    # subclass division (Sec. 2.1)
    boundary: str = "canny"  # "canny" (paper) | "thick" (official find_boundaries) | "mask2edge" (authors' cv2 Canny)
    canny_sigma: float = 1.0
    canny_low: float = 0.1
    canny_high: float = 0.2
    relation: str = "unconcerned"  # "unconcerned" (US) | "positive" | "negative" (Table 4)
    include_background: bool = True
    # reliable-aware threshold sampling (Sec. 2.2, Eq. 1)
    reliability: str = "confidence"  # "confidence" (teacher max p >= gamma_t) | "entropy" (official)
    gamma_s: float = 0.75
    gamma_t: float = 0.95
    strict_hard_threshold: bool = False  # official: max p_s < gamma_s
    entropy_alpha_start: float = 80.0
    entropy_alpha_end: float = 10.0
    anchors_per_subclass: int = 256
    # memory banks
    bank_size: int = 400
    bank_full_gate: bool = True
    # losses (Sec. 2.3, Eq. 5)
    tau: float = 0.5
    icl_scale: float = 1.0  # official: 0.5 / 0.07
    bcl_form: str = "paper"  # "paper" (Eq. 4) | "official" (tau_b + InfoNCE rescale) | "infonce"
    bcl_tau: float = 1.0  # paper: no temperature; official 0.07
    class_balanced: bool = False  # official: mean per class, then over classes
    lambda_c: float = 0.1
    alpha_max: float = 0.1
    alpha_rampup_iters: int = -1  # -1: the whole run (official: 6000 = max_iter)
    use_icl: bool = True
    use_bcl: bool = True
    # learning-rate horizon: "run" (the harness's poly over the run's T, every method alike) |
    # "official" (train_spcl.py: poly over (T // L + 1) L, L = labelled slices = one official epoch)
    poly_horizon: str = "run"
    # Fig. 3 similarity reservoir
    similarity_pairs_per_step: int = 1024
    similarity_capacity: int = 65536

    def validate(self) -> None:
        super().validate()
        check_choice("boundary", self.boundary, BOUNDARY_OPERATORS)
        if self.boundary == "mask2edge":
            import_cv2()  # fail at configuration time, not at the first semi-supervised step
        check_choice("relation", self.relation, RELATIONS)
        check_choice("reliability", self.reliability, RELIABILITY)
        check_choice("bcl_form", self.bcl_form, BCL_FORMS)
        check_choice("poly_horizon", self.poly_horizon, POLY_HORIZONS)
        for name in ("gamma_s", "gamma_t", "alpha_max"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("tau", "bcl_tau"):
            if not getattr(self, name) >= MIN_TAU:
                raise ValueError(f"{name} must be >= {MIN_TAU} (e^(1/tau) must fit in float32), got {getattr(self, name)}")
        for name in ("icl_scale", "canny_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.canny_low <= self.canny_high:
            raise ValueError(f"need 0 <= canny_low <= canny_high, got {self.canny_low}, {self.canny_high}")
        if not 0.0 <= self.entropy_alpha_end <= self.entropy_alpha_start <= 100.0:
            raise ValueError("need 0 <= entropy_alpha_end <= entropy_alpha_start <= 100, got "
                             f"{self.entropy_alpha_end}, {self.entropy_alpha_start}")
        for name in ("anchors_per_subclass", "bank_size", "similarity_pairs_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.similarity_capacity < self.similarity_pairs_per_step:
            raise ValueError("similarity_capacity must be >= similarity_pairs_per_step, got "
                             f"{self.similarity_capacity} < {self.similarity_pairs_per_step}")
        if self.lambda_c < 0:
            raise ValueError(f"lambda_c must be >= 0, got {self.lambda_c}")
        if self.alpha_rampup_iters == 0 or self.alpha_rampup_iters < -1:
            raise ValueError(f"alpha_rampup_iters must be -1 (whole run) or >= 1, got {self.alpha_rampup_iters}")


@dataclass
class SPCLOfficialConfig(SPCLConfig):
    """`spcl_official`: every documented behaviour of the official code (the table's right column)."""

    boundary: str = "thick"
    reliability: str = "entropy"
    strict_hard_threshold: bool = True
    icl_scale: float = 0.5 / 0.07
    bcl_form: str = "official"
    bcl_tau: float = 0.07
    class_balanced: bool = True


#: Tables 3 and 4 and the BCL-vs-InfoNCE comparison (docs/architecture.md relies on these names).
SPCL_VARIANTS: dict[str, dict[str, Any]] = {
    "sup_unsup": {"use_icl": False, "use_bcl": False},
    "icl_only": {"use_bcl": False},
    "bcl_only": {"use_icl": False},
    "relation_neg": {"relation": "negative"},
    "relation_pos": {"relation": "positive"},
    "bcl_infonce": {"bcl_form": "infonce"},
}


@dataclass
class SubclassView:
    """One step's pixels at feature resolution, stacked [labelled; unlabelled]."""

    projection: Tensor  # [B, D, h, w] float32, un-normalised student projections, detached (bank centroids)
    labels: Tensor  # [B, h, w] long: ground truth / teacher argmax
    boundary: Tensor  # [B, h, w] bool: boundary subclass
    reliable: Tensor  # [B, h, w] bool: label reliable (always for labelled pixels)
    hard: Tensor  # [B, h, w] bool: student max p <= gamma_s
    trainable: Tensor | None = None  # the same projections with their gradient, in the network's dtype

    @property
    def subclass(self) -> Tensor:
        return 2 * self.labels + self.boundary.long()


def pixel_rows(maps: Tensor) -> Tensor:
    """[B, D, h, w] -> [B * h * w, D], row b * h * w + y * w + x. A view of a channels-last map, so
    the gradient of a gather from it reaches the network channels-last, and the anchors are
    gathered before the float32 conversion: forward and gradient values are those of gathering
    from the float32 map, without converting or zero-filling the whole map in float32."""
    b, d, h, w = maps.shape
    return maps.permute(0, 2, 3, 1).reshape(b * h * w, d)


_UPSAMPLING = (nn.Upsample,)  # smp's SegmentationHead: Conv2d, Upsample(bilinear, align_corners=True) | Identity, Activation


def feature_resolution_logits(net: nn.Module, logits: Tensor, features: Tensor) -> Tensor:
    """Class logits [B, C, h, w] at the resolution of the decoder `features` [B, F, h, w].

    `logits` [B, C, H, W] are the network's input-size logits from the same forward. If H, W = h, w
    (U-Net profile) they are returned unchanged. Otherwise the network's `segmentation_head` is run
    on `features` (in float32) without its upsampling layers: for smp's DeepLabV3+ the 1x1 conv,
    i.e. exactly the map that smp's x4 `align_corners=True` upsampling turns into `logits`, and the
    official SPCL code's `pred` at 1/4 resolution. Reading `logits` back by nearest downsampling
    instead samples feature pixel i at i (h - 1) / (H - 1) * H / h (0.988 i for 64 -> 256).
    """
    size = tuple(features.shape[-2:])
    if tuple(logits.shape[-2:]) == size:
        return logits
    head = getattr(net, "segmentation_head", None)
    if not isinstance(head, nn.Sequential):
        raise ValueError(f"{type(net).__name__} has no smp segmentation_head to read logits at feature "
                         f"resolution {size} (its logits are {tuple(logits.shape[-2:])})")
    x = features.float()
    for layer in head:
        if not isinstance(layer, _UPSAMPLING):
            x = layer(x)
    if tuple(x.shape[-2:]) != size:
        raise ValueError(f"the segmentation head without upsampling gives {tuple(x.shape[-2:])}, expected {size}")
    return x


@register_method("spcl")
class SPCL(MeanTeacher):
    """Mean teacher + subclass division, reliable-aware sampling, subclass banks, ICL and BCL."""

    Config = SPCLConfig
    display_name = "SPCL"
    description = "SPCL (paper text where explicit): Canny subclasses, conf>=0.95 anchors, ICL tau 0.5 + BCL (Eq. 4)"
    variants = SPCL_VARIANTS
    embeds_projection = True  # the contrastive losses train the projection head: t-SNE (Figs 4, 7) uses it

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        proj_dim = int(net_factory.profile.proj_dim)
        self.relation = subclass_relation(cfg.relation, num_classes)
        self.bank = SubclassMemoryBank(num_classes, cfg.bank_size, proj_dim)
        self.reservoir = SimilarityReservoir(cfg.similarity_capacity)
        first = 0 if cfg.include_background else 1
        self.first_class = first
        self.register_buffer("active_subclasses", torch.arange(2 * num_classes) // 2 >= first, persistent=False)
        self._sampler = DeviceGenerator()  # anchors and Fig. 3 pairs; seeded from the run's seed
        self._pending_bank: tuple[Tensor, Tensor] | None = None

    @property
    def contrastive(self) -> bool:
        return self.cfg.use_icl or self.cfg.use_bcl

    # ---- state ---------------------------------------------------------------------------------
    def generator(self, device: torch.device) -> torch.Generator:
        return self._sampler.on(device)

    # the sampler's state is stored flat, as "spcl_seed" and "spcl_generator" {device, state}
    def get_extra_state(self):
        state = dict(super().get_extra_state() or {})
        sampler = self._sampler.state()
        state["spcl_seed"] = sampler["seed"]
        if sampler["pending"] is not None:
            state["spcl_generator"] = {"device": sampler["pending"]["device_type"], "state": sampler["pending"]["state"]}
        return state

    def set_extra_state(self, state):
        super().set_extra_state(state)
        if not state:
            return
        gen = state.get("spcl_generator")
        self._sampler.load({"seed": state.get("spcl_seed", self._sampler.seed),
                            "pending": {"device_type": gen["device"], "state": gen["state"]} if gen else None})

    # ---- schedules -----------------------------------------------------------------------------
    def lr_horizon(self, iterations: int) -> int:
        """T of the poly schedule lr_t = lr (1 - t / T)^power for a run of `iterations`.

        "run": T = iterations (the engine's default for every method). "official": train_spcl.py
        sets `epochs = max_iter // len(train_loader) + 1` and `LRScheduler` decays over
        `epochs * len(train_loader)` (dgcl/utils/lr_helper.py, commit 23c6a8a), with one loader
        pass = L labelled slices (`data_info["labelled_slices"]`, the skeleton's official epoch):
        T = (iterations // L + 1) L, e.g. 6052 for L = 68 and 6120 for L = 136 at 6000 iterations,
        so the learning rate never reaches 0 (0.01 x (52 / 6052)^0.9 = 1.4e-4 at the end for L = 68).
        """
        if self.cfg.poly_horizon == "run":
            return int(iterations)
        slices = int(self.data_info.get("labelled_slices", 0))
        if slices < 1:
            raise ValueError("poly_horizon 'official' needs the number of labelled slices (data_info['labelled_slices'])")
        return (int(iterations) // slices + 1) * slices

    def configure_optimizer(self, params, train_cfg):
        """The engine's optimiser (SGD, lr, momentum, weight decay of `train_cfg` on every parameter)
        and poly decay with power `train_cfg.poly_power` over `lr_horizon(train_cfg.iterations)`."""
        return sgd_poly(params, train_cfg, horizon=self.lr_horizon(train_cfg.iterations))

    def alpha(self, it: int) -> float:
        """BCL mixing weight: alpha_max exp(-5 (1 - t)^2), t = floor(60 it / T) / 60 (official)."""
        length = self.cfg.alpha_rampup_iters if self.cfg.alpha_rampup_iters > 0 else max(self.max_iters, 1)
        return self.cfg.alpha_max * sigmoid_rampup((ALPHA_RAMP_STEPS * it) // length, ALPHA_RAMP_STEPS)

    def semi_progress(self, it: int) -> float:
        span = max(self.max_iters - self.warmup_iters, 1)
        return min(max((it - self.warmup_iters) / span, 0.0), 1.0)

    # ---- subclass division and sampling ----------------------------------------------------------
    def subclass_view(self, ctx: MTContext) -> SubclassView:
        cfg = self.cfg
        trainable = torch.cat([ctx.s_l.projection, ctx.s_u.projection])
        projection = trainable.detach().float()
        size = tuple(projection.shape[-2:])
        with torch.no_grad():
            labels_l = downsample_labels(ctx.batch.y_l, size)  # official label_l_small: nearest
            # teacher and student read at feature resolution (official pred, probs_bi_t), no resampling
            t_prob_u = feature_resolution_logits(self.teacher, ctx.t_u.logits, ctx.t_u.features).float().softmax(1)
            conf_u, pseudo_u = t_prob_u.max(1)
            labels = torch.cat([labels_l, pseudo_u])
            boundary = subclass_boundaries(labels, self.num_classes, cfg.boundary, sigma=cfg.canny_sigma,
                                           low=cfg.canny_low, high=cfg.canny_high)
            if cfg.reliability == "confidence":
                reliable_u = confident_pseudo_labels(conf_u, cfg.gamma_t)
            else:
                keep = entropy_keep_fraction(self.semi_progress(ctx.it), cfg.entropy_alpha_start, cfg.entropy_alpha_end)
                reliable_u = low_entropy_pseudo_labels(t_prob_u, keep)
            reliable = torch.cat([torch.ones_like(labels_l, dtype=torch.bool), reliable_u])
            student_logits = feature_resolution_logits(self.student, torch.cat([ctx.s_l.logits, ctx.s_u.logits]),
                                                       torch.cat([ctx.s_l.features, ctx.s_u.features]))
            hard = hard_mask(student_logits.detach().float().softmax(1).max(1).values, cfg.gamma_s,
                             cfg.strict_hard_threshold)
        return SubclassView(projection, labels, boundary, reliable, hard, trainable)

    def bank_subclass_map(self, view: SubclassView) -> Tensor:
        """Subclass per pixel for the bank update (-1: unreliable or excluded class)."""
        use = view.reliable & (view.labels >= self.first_class)
        return torch.where(use, view.subclass, torch.full_like(view.labels, -1))

    def sample_anchors(self, view: SubclassView, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Anchors [G, k, D] (L2-normalised, with gradient) and their validity [G, k]."""
        candidate = view.reliable & view.hard & (view.labels >= self.first_class)
        group = torch.where(candidate, view.subclass, torch.full_like(view.labels, -1)).flatten()
        index, valid = sample_per_group(group, 2 * self.num_classes, self.cfg.anchors_per_subclass, generator)
        source = view.trainable if view.trainable is not None else view.projection
        pixels = pixel_rows(source)[index.flatten()].float()  # [G * k, D]; only these carry gradient
        return F.normalize(pixels, dim=-1).view(*index.shape, source.shape[1]), valid

    # ---- the losses ------------------------------------------------------------------------------
    def inner_contrast(self, anchors: Tensor, valid: Tensor, bank_valid: Tensor) -> Tensor:
        """L_icl (Eq. 2) on the inner anchors [C, k, D]."""
        cfg, c = self.cfg, self.num_classes
        groups = torch.arange(0, 2 * c, 2, device=anchors.device)
        terms = contrast_logits(anchors, groups, self.bank.features(), bank_valid, self.relation, cfg.tau)
        counted = valid.flatten() & terms.has_positive
        loss, _ = anchor_mean(cfg.icl_scale * info_nce(terms), counted, c, cfg.class_balanced)
        return loss

    def boundary_contrast(self, anchors: Tensor, valid: Tensor, bank_valid: Tensor) -> Tensor:
        """L_bcl (Eq. 4, or the official rescaled form, or InfoNCE) on the boundary anchors [C, k, D]."""
        cfg, c = self.cfg, self.num_classes
        groups = torch.arange(1, 2 * c, 2, device=anchors.device)
        bank = self.bank.features()
        if cfg.bcl_form == "infonce":
            terms = contrast_logits(anchors, groups, bank, bank_valid, self.relation, cfg.tau)
            per_anchor = cfg.icl_scale * info_nce(terms)
        else:
            terms = contrast_logits(anchors, groups, bank, bank_valid, self.relation, cfg.bcl_tau)
            per_anchor = boundary_contrastive(terms)
        counted = valid.flatten() & terms.has_positive
        if cfg.bcl_form == "official":
            with torch.no_grad():
                nce = cfg.icl_scale * info_nce(terms.at_temperature(cfg.tau))
            per_anchor = balanced_to_infonce(per_anchor, nce, counted, c)
        loss, _ = anchor_mean(per_anchor, counted, c, cfg.class_balanced)
        return loss

    @torch.no_grad()
    def record_similarities(self, anchors: Tensor, valid: Tensor, bank_valid: Tensor, gate: Tensor, generator) -> None:
        """Draw (inner anchor, bank slot) pairs uniformly; keep their cosine similarity and their role
        in the ICL (positive / negative / neither) in the reservoir, for Fig. 3."""
        c, k, d = anchors.shape
        bank = self.bank.features()
        g, s, _ = bank.shape
        n = self.cfg.similarity_pairs_per_step
        a = torch.randint(0, c * k, (n,), device=anchors.device, generator=generator)
        e = torch.randint(0, g * s, (n,), device=anchors.device, generator=generator)
        sim = (anchors.reshape(c * k, d)[a] * bank.reshape(g * s, d)[e]).sum(-1)
        anchor_group, entry_group = 2 * (a // k), e // s
        used = valid.flatten()[a] & bank_valid.flatten()[e] & gate
        pos = self.relation.positive[anchor_group, entry_group] & used
        neg = self.relation.negative[anchor_group, entry_group] & used
        self.reservoir.add(sim, pos.to(torch.int8) * POSITIVE + neg.to(torch.int8) * NEGATIVE)

    def contrastive_loss(self, view: SubclassView, it: int) -> tuple[Tensor, dict[str, Tensor]]:
        """lambda_c-free L_spcl for one step (gated), with named logs."""
        cfg = self.cfg
        device = view.projection.device
        if self.relation.positive.device != device:
            self.relation = self.relation.to(device)
        generator = self.generator(device)
        anchors, valid = self.sample_anchors(view, generator)
        bank_valid = self.bank.valid()
        if cfg.bank_full_gate:
            gate = self.bank.is_full(self.active_subclasses)
        else:
            gate = torch.ones((), dtype=torch.bool, device=device)
        icl = bcl = view.projection.new_zeros(())  # a disabled term (Table 3 ablations)
        if cfg.use_icl:
            icl = self.inner_contrast(anchors[0::2], valid[0::2], bank_valid)
            self.record_similarities(anchors[0::2].detach(), valid[0::2], bank_valid, gate, generator)
        if cfg.use_bcl:
            bcl = self.boundary_contrast(anchors[1::2], valid[1::2], bank_valid)
        alpha = self.alpha(it)
        if cfg.use_icl and cfg.use_bcl:
            mixed = (1.0 - alpha) * icl + alpha * bcl
        else:
            mixed = icl if cfg.use_icl else bcl
        on = gate.to(mixed.dtype)
        logs = {
            "icl": (icl * on).detach(),
            "bcl": (bcl * on).detach(),
            "spcl": (mixed * on).detach(),
            "alpha": alpha,
            "bank_fill": self.bank.fill_fraction().detach(),
            "anchors_inner": valid[0::2].sum().float(),
            "anchors_boundary": valid[1::2].sum().float(),
        }
        return mixed * on, logs

    # ---- MeanTeacher extension points -------------------------------------------------------------
    def extra_loss(self, ctx: MTContext) -> tuple[Tensor, dict[str, Tensor]]:
        if not self.contrastive:
            return super().extra_loss(ctx)
        device_type = ctx.s_l.projection.device.type
        with torch.autocast(device_type=device_type, enabled=False):  # logits / 0.07 need float32
            view = self.subclass_view(ctx)
            self._pending_bank = (view.projection.detach(), self.bank_subclass_map(view))
            loss, logs = self.contrastive_loss(view, ctx.it)
        return self.cfg.lambda_c * loss, logs

    def after_update(self, ctx: MTContext, it: int) -> None:
        if self._pending_bank is None:
            return
        projection, subclass = self._pending_bank
        self._pending_bank = None
        centroids, present = subclass_centroids(projection, subclass, 2 * self.num_classes)
        self.bank.push(centroids, present)

    # ---- for the figures ----------------------------------------------------------------------
    def similarity_samples(self) -> dict[str, np.ndarray] | None:
        """Fig. 3: recent anchor-positive / anchor-negative cosine similarities the ICL used."""
        return self.reservoir.arrays()

    @torch.no_grad()
    def tagged_projections(self, x: Tensor, y: Tensor, boundary: str | None = None) -> dict[str, Tensor]:
        """Figs 4 / 7: the evaluated network's L2-normalised projections of a batch, one row per pixel at
        feature resolution, with class index (0 = background) and subclass (True = boundary) tags."""
        out = self.predictor()(x)
        projection = out.projection.float()
        size = tuple(projection.shape[-2:])
        labels = downsample_labels(y, size)
        operator = boundary or self.cfg.boundary
        tags = subclass_boundaries(labels, self.num_classes, operator, sigma=self.cfg.canny_sigma,
                                   low=self.cfg.canny_low, high=self.cfg.canny_high)
        d = projection.shape[1]
        return {
            "features": F.normalize(projection, dim=1).permute(0, 2, 3, 1).reshape(-1, d),
            "class_index": labels.flatten(),
            "boundary": tags.flatten(),
        }


@register_method("spcl_official")
class SPCLOfficial(SPCL):
    """SPCL as the official code runs it: thick boundaries, entropy filter, scaled ICL, rescaled BCL."""

    Config = SPCLOfficialConfig
    display_name = "SPCL (official code)"
    description = "SPCL (official code): thick boundaries, entropy-filtered anchors, ICL x7.14, BCL tau 0.07 rescaled"
    variants = SPCL_VARIANTS
