"""ABD: adaptive bidirectional displacement, cross-teaching variant, under the common harness.

Paper: H. Chi et al., "Adaptive Bidirectional Displacement for Semi-Supervised Medical Image
Segmentation", CVPR 2024. Official code: https://github.com/chy-upc/ABD
(`code/train_ACDC_Cross_Teaching.py`, `code/utils/displacement.py`, `code/dataloaders/dataset.py`).

Algorithm per iteration (`code/train_ACDC_Cross_Teaching.py`, `code/utils/displacement.py`):
1. Weak view = the harness batch; strong view = grey cutout (p 0.5; the box is relabelled as
   background, as published) + ColorJitter(0.8, 0.8, 0.8, 0.2). Model 1 sees the weak view,
   model 2 the strong view; both on labelled + unlabelled images in one forward each.
2. ABD-I on each labelled (weak, strong) pair of the 4x4 patch grid, with p 0.5: the weak image's
   most confident patch (model 1's mean max-softmax) is replaced by the strong image's least
   confident one; then the strong image's most confident patch by the weak image's least
   confident one (read after the first write, as the official in-place code). Labels move with
   their patches. -> 2 B_l labelled images.
3. ABD-R on each unlabelled pair: b, d = least confident patches of the weak / strong image;
   among the strong view's 4 most confident patches, the one whose patch-mean prediction is
   closest in KL to the weak view's patch b replaces b; symmetrically for the strong image at d.
   -> 2 B_u unlabelled images.
4. Losses of model k: 0.5 (CE + Dice) on its view (model 2 against the cutout-relabelled labels)
   + 2 x the same on the ABD-I images while t <= 20000 + lambda (Dice(p_k, argmax p_other) on
   the unlabelled views + the same on the ABD-R images), lambda = 0.1 sigmoid_rampup(t // 150,
   200). The two models' losses are summed.
5. Model 1 (weak-view student) is evaluated.

Deviations:
- Both students are the harness backbone (`net_factory()`), so that the displacement strategies,
  not a second architecture, are what ABD adds over the other methods; the official model 2 is an
  ImageNet-pretrained Swin-UNet at 224 px. The official UNet + Swin-UNet pair is recorded in
  `NATIVE_SCHEDULE` as the native setting.
- One optimiser for both students (the engine's); the official two SGD optimisers have identical
  hyper-parameters, which makes them the same update.
- The strong view is made on the device from the weak batch; images are mapped to [0, 1] per
  image for the cutout fill and the ColorJitter (see baselines/_views.py).
- The grid is 4x4 patches of floor(S/4) pixels; when S is not a multiple of 4 (513) the last
  S mod 4 rows/columns stay in place.
- Schedules (ramp, ABD-I cut-off) are in official iterations, mapped to this run's budget unless
  `schedule: native` (baselines/_schedule.py).
- ABD-R loops over the unlabelled batch (the official loop runs over `labeled_bs`, equal to the
  unlabelled batch there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines._schedule import NativeSchedule, check_schedule, native_time
from methods.random_streams import GeneratorStateMixin, seeded_generator, step_generator
from baselines._views import abd_strong_view
from methods.api import Batch, Method, PseudoLabelView, StepOutput, check_choice, register_method
from methods.losses import dice_loss, sigmoid_rampup, supervised_loss
from methods.tensors import class_argmax

NATIVE_SCHEDULE = NativeSchedule(
    iterations=30000,
    labelled_batch=8,
    unlabelled_batch=8,
    img_size=224,
    network="model 1: SSL4MIS UNet (1-channel); model 2: Swin-UNet (Swin-T, ImageNet)",
    optimiser="SGD, momentum 0.9 (one per model)",
    lr=0.01,
    weight_decay=1e-4,
    lr_schedule="poly 0.9 over 30000 iterations",
    source="code/train_ACDC_Cross_Teaching.py",
)


@dataclass
class ABDConfig:
    grid: int = 4  # patches per side (official h_size = w_size = 4)
    top_num: int = 4  # ABD-R candidates among the most confident patches
    abd_i_prob: float = 0.5  # per labelled pair
    abd_i_weight: float = 2.0
    abd_i_until: int = 20000  # ABD-I loss used while t <= this (official iterations)
    cutout_prob: float = 0.5
    consistency: float = 0.1
    rampup_unit: int = 150  # the ramp advances once per this many official iterations
    rampup_length: float = 200.0  # in ramp units: full weight at 30000
    native_iters: int = NATIVE_SCHEDULE.iterations
    schedule: str = "scaled"  # "scaled" | "native" (baselines/_schedule.py)
    eval_network: str = "model1"  # official: model 1 (the weak-view UNet)

    def validate(self) -> None:
        check_schedule(self.schedule)
        check_choice("eval_network", self.eval_network, ("model1", "model2"))
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")
        if not 1 <= self.top_num <= self.grid**2:
            raise ValueError(f"top_num must be in [1, grid^2 = {self.grid**2}], got {self.top_num}")
        for name in ("abd_i_prob", "cutout_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


# --- the patch grid ---------------------------------------------------------------------------


def to_patches(x: Tensor, grid: int) -> Tensor:
    """[B, ..., S, S] -> [B, grid*grid, ..., p, p] (row-major patch order), p = S // grid.

    Only the top-left grid*p square is cut; `from_patches` writes it back into a copy of x."""
    p = x.shape[-1] // grid
    lead = x.shape[1:-2]
    sq = x[..., : grid * p, : grid * p]
    sq = sq.reshape(x.shape[0], *lead, grid, p, grid, p)
    n = len(lead)
    # move the two grid axes to the front (after batch): [B, gh, gw, *lead, p, p]
    order = [0, n + 1, n + 3, *range(1, n + 1), n + 2, n + 4]
    return sq.permute(order).reshape(x.shape[0], grid * grid, *lead, p, p)


def from_patches(patches: Tensor, like: Tensor, grid: int) -> Tensor:
    """Inverse of `to_patches`: a copy of `like` with its grid square replaced by `patches`."""
    b, p = like.shape[0], like.shape[-1] // grid
    lead = like.shape[1:-2]
    n = len(lead)
    sq = patches.reshape(b, grid, grid, *lead, p, p)
    order = [0, *range(3, 3 + n), 1, 3 + n, 2, 4 + n]
    sq = sq.permute(order).reshape(b, *lead, grid * p, grid * p)
    out = like.clone()
    out[..., : grid * p, : grid * p] = sq
    return out


def patch_means(t: Tensor, grid: int) -> Tensor:
    """[B,S,S] -> [B, grid^2]; [B,C,S,S] -> [B, grid^2, C]: the mean over each patch."""
    return to_patches(t, grid).mean(dim=(-2, -1))


def _take(patches: Tensor, idx: Tensor) -> Tensor:
    """patches [B, N, ...], idx [B] -> [B, ...]: patch idx[i] of image i."""
    return patches[torch.arange(patches.shape[0], device=patches.device), idx]


def _put(patches: Tensor, idx: Tensor, values: Tensor, where: Tensor) -> Tensor:
    """A copy of patches with patch idx[i] of image i set to values[i] where `where[i]`."""
    out = patches.clone()
    rows = torch.arange(patches.shape[0], device=patches.device)
    current = out[rows, idx]
    w = where.view(-1, *([1] * (values.dim() - 1)))
    out[rows, idx] = torch.where(w, values, current)
    return out


def abd_i(x_w: Tensor, x_s: Tensor, y_w: Tensor, y_s: Tensor, conf_w: Tensor, conf_s: Tensor,
          apply: Tensor, grid: int) -> tuple[Tensor, Tensor]:
    """ABD-I on labelled pairs. x_* [B,1,S,S], y_* [B,S,S], conf_* [B,S,S] (max softmax of the
    model that saw that view), apply [B] bool. Returns (images [2B,1,S,S], labels [2B,S,S]):
    the displaced weak images then the displaced strong images."""
    m_w, m_s = patch_means(conf_w, grid), patch_means(conf_s, grid)
    e, f = m_w.argmax(1), m_w.argmin(1)  # weak: most / least confident
    g, h = m_s.argmax(1), m_s.argmin(1)  # strong: most / least confident
    pw, ps = to_patches(x_w, grid), to_patches(x_s, grid)
    lw, ls = to_patches(y_w, grid), to_patches(y_s, grid)
    pw = _put(pw, e, _take(ps, h), apply)
    ps = _put(ps, g, _take(pw, f), apply)  # reads the weak image after its write
    lw = _put(lw, e, _take(ls, h), apply)
    ls = _put(ls, g, _take(lw, f), apply)
    images = torch.cat([from_patches(pw, x_w, grid), from_patches(ps, x_s, grid)])
    labels = torch.cat([from_patches(lw, y_w, grid), from_patches(ls, y_s, grid)])
    return images, labels


def abd_r(x_w: Tensor, x_s: Tensor, conf_w: Tensor, conf_s: Tensor, logits_w: Tensor, logits_s: Tensor,
          grid: int, top_num: int) -> Tensor:
    """ABD-R on unlabelled pairs: returns [2B,1,S,S], displaced weak then displaced strong images.

    b, d: least confident patch of the weak / strong image. Among the weak view's `top_num` most
    confident patches, a_ori minimises KL(softmax(mean logits of strong patch d) || softmax(mean
    logits of the candidate)); c_ori likewise among the strong view's against weak patch b. Then
    weak[b] <- strong[c_ori] and strong[d] <- weak[a_ori] (read after the first write)."""
    m_w, m_s = patch_means(conf_w, grid), patch_means(conf_s, grid)
    b_idx, d_idx = m_w.argmin(1), m_s.argmin(1)
    top_w, top_s = m_w.topk(top_num, dim=1).indices, m_s.topk(top_num, dim=1).indices  # [B, k]
    mo_w = patch_means(logits_w.float(), grid)  # [B, N, C]
    mo_s = patch_means(logits_s.float(), grid)
    rows = torch.arange(x_w.shape[0], device=x_w.device)
    target_for_w = F.softmax(mo_s[rows, d_idx], dim=-1)  # [B, C]
    target_for_s = F.softmax(mo_w[rows, b_idx], dim=-1)
    cand_w = F.log_softmax(mo_w.gather(1, top_w[..., None].expand(-1, -1, mo_w.shape[-1])), dim=-1)  # [B,k,C]
    cand_s = F.log_softmax(mo_s.gather(1, top_s[..., None].expand(-1, -1, mo_s.shape[-1])), dim=-1)
    kl_w = (target_for_w[:, None] * (target_for_w[:, None].clamp_min(1e-12).log() - cand_w)).sum(-1)  # [B,k]
    kl_s = (target_for_s[:, None] * (target_for_s[:, None].clamp_min(1e-12).log() - cand_s)).sum(-1)
    a_ori = top_w.gather(1, kl_w.argmin(1, keepdim=True)).squeeze(1)
    c_ori = top_s.gather(1, kl_s.argmin(1, keepdim=True)).squeeze(1)
    always = torch.ones_like(b_idx, dtype=torch.bool)
    pw, ps = to_patches(x_w, grid), to_patches(x_s, grid)
    pw = _put(pw, b_idx, _take(ps, c_ori), always)
    ps = _put(ps, d_idx, _take(pw, a_ori), always)
    return torch.cat([from_patches(pw, x_w, grid), from_patches(ps, x_s, grid)])


# --- the method -------------------------------------------------------------------------------


@register_method("abd")
class ABD(GeneratorStateMixin, Method):
    """Two cross-teaching students with ABD-I (labelled) and ABD-R (unlabelled) displacement."""

    Config = ABDConfig
    embeds_projection = False  # ABD trains no projection head: t-SNE shows decoder features
    display_name = "ABD"
    description = "ABD (CVPR'24), cross-teaching: two students, weak/strong views, ABD-I + ABD-R 4x4 patch displacement"
    NATIVE_SCHEDULE = NATIVE_SCHEDULE
    variants = {"native": {"schedule": "native"}}

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        self.model1 = net_factory()
        self.model2 = net_factory()
        self._rng = seeded_generator()
        self._pl_fed: Tensor | None = None

    @property
    def evaluated_network(self) -> str:  # type: ignore[override]
        return self.cfg.eval_network

    def pseudo_label_view(self) -> PseudoLabelView | None:
        """The other model's argmax on the unlabelled images, every pixel passed (cross pseudo
        supervision has no filter); ABD-R's displaced images are not logged."""
        fed = self._pl_fed
        return None if fed is None else PseudoLabelView(fed, torch.ones_like(fed, dtype=torch.bool))

    def predictor(self) -> nn.Module:
        return self.model1 if self.cfg.eval_network == "model1" else self.model2

    # ---- schedule ---------------------------------------------------------------------------
    def official_time(self, it: int) -> float:
        return native_time(it, self.max_iters, self.cfg.native_iters, self.cfg.schedule)

    def cross_weight(self, it: int) -> float:
        t = self.official_time(it)
        return self.cfg.consistency * sigmoid_rampup(t // self.cfg.rampup_unit, self.cfg.rampup_length)

    def abd_i_active(self, it: int) -> bool:
        return self.official_time(it) <= self.cfg.abd_i_until

    # ---- the step ---------------------------------------------------------------------------
    def training_step(self, batch: Batch, it: int) -> StepOutput:
        cfg = self.cfg
        n_l, n_u = batch.x_l.shape[0], batch.x_u.shape[0]
        if n_u == 0:
            raise ValueError("ABD needs unlabelled images (unlabelled_batch > 0)")
        dev = batch.x_l.device
        g = step_generator(self._rng, dev)
        x_w = torch.cat([batch.x_l, batch.x_u])
        y_any = torch.cat([batch.y_l, batch.y_l.new_zeros((n_u, *batch.y_l.shape[1:]))])
        with torch.no_grad():
            x_s, y_s_all = abd_strong_view(x_w, y_any, g, cfg.cutout_prob)
        y_s = y_s_all[:n_l]  # labels of the strong labelled images (cutout box -> background)

        out1 = self.model1(x_w).logits
        out2 = self.model2(x_s).logits
        prob1, prob2 = out1.float().softmax(1), out2.float().softmax(1)
        conf1, pseudo1 = prob1.detach().max(1)
        conf2, pseudo2 = prob2.detach().max(1)
        # what the evaluated model's cross-supervision on x_u is fed: the other model's argmax, no filter
        # (the strong view only recolours and blanks a box, so it shares x_u's grid)
        self._pl_fed = (pseudo2 if cfg.eval_network == "model1" else pseudo1)[n_l:]

        # displaced samples (inputs only; no gradient flows through the displacement)
        with torch.no_grad():
            apply_i = torch.rand(n_l, generator=g, device=dev) < cfg.abd_i_prob
            img_i, lab_i = abd_i(batch.x_l, x_s[:n_l], batch.y_l, y_s, conf1[:n_l], conf2[:n_l], apply_i, cfg.grid)
            img_r = abd_r(batch.x_u, x_s[n_l:], conf1[n_l:], conf2[n_l:], out1[n_l:].detach(), out2[n_l:].detach(),
                          cfg.grid, cfg.top_num)
        out1_i, out2_i = self.model1(img_i).logits, self.model2(img_i).logits
        out1_r, out2_r = self.model1(img_r).logits, self.model2(img_r).logits
        prob1_r, prob2_r = out1_r.float().softmax(1), out2_r.float().softmax(1)

        sup1 = supervised_loss(out1[:n_l], batch.y_l)
        sup2 = supervised_loss(out2[:n_l], y_s)
        cps1 = dice_loss(prob1[n_l:], pseudo2[n_l:])
        cps2 = dice_loss(prob2[n_l:], pseudo1[n_l:])
        cps1_r = dice_loss(prob1_r, class_argmax(prob2_r.detach()))
        cps2_r = dice_loss(prob2_r, class_argmax(prob1_r.detach()))
        if self.abd_i_active(it):
            abd_i1, abd_i2 = supervised_loss(out1_i, lab_i), supervised_loss(out2_i, lab_i)
        else:
            abd_i1, abd_i2 = out1_i.new_zeros(()), out2_i.new_zeros(())  # official: forwards run, loss 0
        lam = self.cross_weight(it)
        loss1 = sup1 + cfg.abd_i_weight * abd_i1 + lam * (cps1 + cps1_r)
        loss2 = sup2 + cfg.abd_i_weight * abd_i2 + lam * (cps2 + cps2_r)
        loss = loss1 + loss2
        logs = {
            "loss": loss.detach(),
            "sup1": sup1.detach(),
            "sup2": sup2.detach(),
            "abd_i1": abd_i1.detach(),
            "abd_i2": abd_i2.detach(),
            "cps1": cps1.detach(),
            "cps2": cps2.detach(),
            "abd_r1": cps1_r.detach(),
            "abd_r2": cps2_r.detach(),
            "cross_weight": lam,
        }
        return StepOutput(loss, logs)
