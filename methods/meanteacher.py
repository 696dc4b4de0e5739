"""Mean teacher: the shared skeleton that SPCL, DGCL, BUS and BASS extend.

Follows SPCL's official training loop (github.com/Jrstud203/SPCL, commit 23c6a8a, `train_spcl.py`;
docs/methods.md, "The mean-teacher skeleton", compares the two element by element):

- supervised-only warm-up for `warmup_iters` iterations (-1 = one official "epoch" = as many
  iterations as there are labelled slices); during it the teacher runs on the labelled images in
  train mode only to update its BN statistics;
- EMA teacher, decay min(1 - 1/(t + 1), 0.999) with t counted from the first semi-supervised step
  (t = 0 copies the student's parameters); parameters only, the teacher's BN buffers come from its
  own train-mode forwards (`teacher_mode="train"`, the official behaviour). With
  `teacher_mode="eval"` the teacher never runs in train mode, so its BN running statistics are
  averaged from the student's with the same decay (otherwise they would stay at their initial
  values and every pseudo-label would come from an un-normalised network);
- teacher pseudo-labels on the unlabelled images; pixels below `conf_threshold` (0.95) ignored;
- CutMix with probability 0.5: one box of half the image area, pasted from the next unlabelled
  image (i + 1 mod B); pseudo-labels and confidences are mixed the same way;
- one student forward on [x_l; x_u; x_u_aug] (one BN batch, as the official code);
- L = 0.5 (CE + Dice)(labelled) + 0.3 Dice(student on x_u_aug, pseudo-labels) + extra;
- the student is evaluated (`eval_network`, "teacher" as an option): one rule for every method.
  With the official EMA schedule the teacher is a running mean of all student weights for the
  first 1000 semi-supervised steps, which lags badly in short (CPU) runs.

Subclasses change the unsupervised term (`unsupervised_loss`), add their own terms
(`extra_loss`), and update memories after the optimiser step (`after_update`), all from one
`MTContext` built once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from methods.api import Batch, Method, PseudoLabelView, StepOutput, check_choice, register_method
from methods.ema import ema_update, make_teacher, official_decay
from methods.losses import dice_loss, supervised_loss
from methods.nets import NetOutput
from methods.random_streams import seeded_generator


@dataclass
class MeanTeacherConfig:
    warmup_iters: int = -1  # -1: one official epoch (= number of labelled slices); 0: none
    ema_decay: float = 0.999
    teacher_mode: str = "train"  # "train" (official: BN batch stats + dropout) | "eval"
    conf_threshold: float = 0.95
    cutmix_prob: float = 0.5
    unsup_weight: float = 0.3
    # Which network is evaluated. The harness evaluates the network trained by gradient for every
    # method (AD-MT's and ABD's official test scripts do too; SPCL's code keeps the best of both
    # on the test set, which a fair harness cannot do). "teacher" evaluates the EMA teacher.
    eval_network: str = "student"

    def validate(self) -> None:
        check_choice("teacher_mode", self.teacher_mode, ("train", "eval"))
        check_choice("eval_network", self.eval_network, ("teacher", "student"))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.cutmix_prob <= 1.0:
            raise ValueError(f"cutmix_prob must be in [0, 1], got {self.cutmix_prob}")


@dataclass
class MTContext:
    """Everything one semi-supervised step computed, for subclasses' losses and memory updates.

    Student outputs are split per stream: `s_l` (labelled), `s_u` (unlabelled, un-mixed view),
    `s_aug` (the CutMix view). Teacher outputs: `t_l`, `t_u` (NetOutput, no grad).
    `t_prob_u` [B,C,H,W] teacher softmax on x_u; `pseudo_u`/`conf_u` its argmax / max;
    `pseudo_aug`/`conf_aug` the same after CutMix; `cut_mask` [B,H,W] bool, True where the
    pasted box is (all False when CutMix was not applied).
    """

    it: int
    batch: Batch
    x_aug: Tensor
    s_l: NetOutput
    s_u: NetOutput
    s_aug: NetOutput
    t_l: NetOutput
    t_u: NetOutput
    t_prob_u: Tensor
    pseudo_u: Tensor
    conf_u: Tensor
    pseudo_aug: Tensor
    conf_aug: Tensor
    cut_mask: Tensor


def cutmix_box_mask(b: int, h: int, w: int, generator: torch.Generator | None, device) -> Tensor:
    """Per-image boxes of half the image area (official `generate_unsup_data(mode='cutmix')`):
    width drawn uniformly in [W/2, W], height = area / width, random position. [B,H,W] bool.
    Drawn on the CPU generator (resume-exact), built without a per-image loop."""
    r = torch.rand(b, 3, generator=generator)
    bw = torch.round(w / 2 + r[:, 0] * (w / 2)).clamp(1, w)
    bh = torch.round(h * w / 2 / bw).clamp(1, h)
    y0 = torch.floor(r[:, 1] * (h - bh + 1))
    x0 = torch.floor(r[:, 2] * (w - bw + 1))
    ys = torch.arange(h, dtype=bw.dtype)[None, :, None]
    xs = torch.arange(w, dtype=bw.dtype)[None, None, :]
    inside_y = (ys >= y0[:, None, None]) & (ys < (y0 + bh)[:, None, None])
    inside_x = (xs >= x0[:, None, None]) & (xs < (x0 + bw)[:, None, None])
    return (inside_y & inside_x).to(device)


def apply_cutmix(mask: Tensor, *tensors: Tensor) -> list[Tensor]:
    """Paste, inside `mask`, the content of the next image in the batch (i + 1 mod B)."""
    out = []
    for t in tensors:
        src = torch.roll(t, shifts=-1, dims=0)
        m = mask if t.dim() == 3 else mask.unsqueeze(1)
        out.append(torch.where(m, src, t))
    return out


@register_method("meanteacher")
class MeanTeacher(Method):
    """Mean teacher with SPCL's skeleton: warm-up, EMA teacher, 0.95 pseudo-labels, CutMix, Dice."""

    Config = MeanTeacherConfig
    embeds_projection = False  # plain mean teacher never trains the projection head
    display_name = "Mean teacher"
    description = "Mean teacher (SPCL's skeleton): EMA teacher, conf>=0.95 pseudo-labels, CutMix p=0.5, Dice x0.3"

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        self.student = net_factory()
        self.teacher = make_teacher(self.student)
        if cfg.warmup_iters < 0:
            self.warmup_iters = int(self.data_info.get("labelled_slices", 0))
        else:
            self.warmup_iters = int(cfg.warmup_iters)
        self.warmup_iters = min(self.warmup_iters, max(self.max_iters - 1, 0))
        self._cutmix_gen = seeded_generator()  # seeded from the run's seed (methods/random_streams.py)
        self._last_ctx: MTContext | None = None
        self._pl_view: PseudoLabelView | None = None

    # ---- what is evaluated --------------------------------------------------------------------
    @property
    def evaluated_network(self) -> str:  # type: ignore[override]
        return self.cfg.eval_network

    def predictor(self) -> nn.Module:
        return self.teacher if self.cfg.eval_network == "teacher" else self.student

    def selection_candidates(self) -> dict[str, nn.Module]:
        """Both networks, as the official script evaluates them (methods/training/selection.py)."""
        return {"student": self.student, "teacher": self.teacher}

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.cfg.teacher_mode == "eval":
            self.teacher.eval()
        return self

    def get_extra_state(self):
        return {"cutmix_gen": self._cutmix_gen.get_state()}

    def set_extra_state(self, state):
        if state and "cutmix_gen" in state:
            self._cutmix_gen.set_state(state["cutmix_gen"])

    # ---- the step -----------------------------------------------------------------------------
    def in_warmup(self, it: int) -> bool:
        return it < self.warmup_iters

    def training_step(self, batch: Batch, it: int) -> StepOutput:
        if self.in_warmup(it) or batch.x_u.shape[0] == 0:
            return self.warmup_step(batch, it)
        if it == self.warmup_iters:
            # official: the student's parameters are copied into the teacher at the start of the
            # first semi-supervised step, so its pseudo-labels already come from the trained student
            # (with teacher_mode="eval" the BN statistics too, which that teacher cannot gather)
            ema_update(self.teacher, self.student, 0.0, buffers=self.cfg.teacher_mode == "eval")
        ctx = self.build_context(batch, it)
        loss_sup = supervised_loss(ctx.s_l.logits, batch.y_l)
        loss_unsup = self.unsupervised_loss(ctx)
        extra, extra_logs = self.extra_loss(ctx)
        loss = loss_sup + self.cfg.unsup_weight * loss_unsup + extra
        self._last_ctx = ctx
        self._pl_view = PseudoLabelView(ctx.pseudo_u.detach(), self.pseudo_label_passed(ctx).detach())
        logs = {"loss": loss.detach(), "sup": loss_sup.detach(), "unsup": loss_unsup.detach(), **extra_logs}
        return StepOutput(loss, logs)

    def warmup_step(self, batch: Batch, it: int) -> StepOutput:
        self._last_ctx = None
        self._pl_view = None
        out = self.student(batch.x_l)
        loss = supervised_loss(out.logits, batch.y_l)
        if self.cfg.teacher_mode == "train":
            with torch.no_grad():
                self.teacher(batch.x_l)  # official: only refreshes the teacher's BN statistics
        return StepOutput(loss, {"loss": loss.detach(), "sup": loss.detach()})

    def build_context(self, batch: Batch, it: int) -> MTContext:
        n_l, n_u = batch.x_l.shape[0], batch.x_u.shape[0]
        with torch.no_grad():
            t_out = self.teacher(torch.cat([batch.x_l, batch.x_u]))
            t_l = NetOutput(*(t[:n_l] for t in t_out))
            t_u = NetOutput(*(t[n_l:] for t in t_out))
            t_prob_u = t_u.logits.float().softmax(1)
            conf_u, pseudo_u = t_prob_u.max(1)
            h, w = batch.x_u.shape[-2:]
            if torch.rand(1, generator=self._cutmix_gen).item() < self.cfg.cutmix_prob:
                cut = cutmix_box_mask(n_u, h, w, self._cutmix_gen, batch.x_u.device)
            else:
                cut = torch.zeros(n_u, h, w, dtype=torch.bool, device=batch.x_u.device)
            x_aug, pseudo_aug, conf_aug = apply_cutmix(cut, batch.x_u, pseudo_u, conf_u)
        s_out = self.student(torch.cat([batch.x_l, batch.x_u, x_aug]))
        s_l, s_u, s_aug = (NetOutput(*(t[a:b] for t in s_out)) for a, b in ((0, n_l), (n_l, n_l + n_u), (n_l + n_u, n_l + 2 * n_u)))
        return MTContext(it, batch, x_aug, s_l, s_u, s_aug, t_l, t_u, t_prob_u, pseudo_u, conf_u, pseudo_aug, conf_aug, cut)

    def pseudo_label_view(self) -> PseudoLabelView | None:
        return self._pl_view

    # ---- extension points ---------------------------------------------------------------------
    def pseudo_label_passed(self, ctx: MTContext) -> Tensor:
        """[B_u, H, W] bool: which teacher pseudo-labels of the un-mixed view `x_u` pass this
        method's reliability filter (the skeleton's: confidence >= `conf_threshold`). Logged by the
        engine (coverage, precision); a method with another filter overrides it."""
        return ctx.conf_u >= self.cfg.conf_threshold

    def unsupervised_loss(self, ctx: MTContext) -> Tensor:
        """Dice of the student on the CutMix view against confident teacher pseudo-labels."""
        valid = ctx.conf_aug >= self.cfg.conf_threshold
        return dice_loss(ctx.s_aug.logits.float().softmax(1), ctx.pseudo_aug, valid)

    def extra_loss(self, ctx: MTContext) -> tuple[Tensor, dict[str, Tensor]]:
        """Additional weighted loss terms (contrastive losses); returns (sum, named logs)."""
        return ctx.s_l.logits.new_zeros(()), {}

    def after_update(self, ctx: MTContext, it: int) -> None:
        """After the optimiser step, before the EMA update: memory banks, queues."""

    def on_step_end(self, it: int) -> None:
        if self.in_warmup(it):
            return
        if self._last_ctx is not None:
            self.after_update(self._last_ctx, it)
            self._last_ctx = None
        decay = official_decay(it - self.warmup_iters, self.cfg.ema_decay)
        ema_update(self.teacher, self.student, decay, buffers=self.cfg.teacher_mode == "eval")
