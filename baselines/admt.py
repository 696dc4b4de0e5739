"""AD-MT: alternate diverse teaching (a student and two alternately updated EMA teachers).

Paper: Z. Zhao, Z. Wang, L. Wang, Y. Yu, L. Zhou, "Alternate Diverse Teaching for
Semi-supervised Medical Image Segmentation", ECCV 2024.
Official code: https://github.com/ZhenZHAO/AD-MT (`code/train_post_2d_aut.py`,
`code/train_utils.py`, `code/dataloaders/{dataset_2d,mixaugs}.py`, `cfgs/config_2d_aut.yml`), read
at commit 03ef84c (2024-07-29; `train_post_2d_aut.py` last changed in ba09bf2, 2024-01-18).

Algorithm per iteration (`code/train_post_2d_aut.py` and `code/train_utils.py` at that commit):
1. Random period alternation (RPA): a flag says which teacher is *active*; it flips after a
   period drawn from U{1..50} iterations, redrawn at every flip (`AlternationState`).
2. Both teachers predict the weak unlabelled view (active teacher in train mode, the other in
   eval mode). Ensemble: per pixel, w_k = exp(-H_k) / (exp(-H_1) + exp(-H_2)) with H_k the log2
   entropy of teacher k (the paper, and the official code since ba09bf2 "Update bugs",
   2024-01-18); pseudo-label and confidence are the argmax / max of the weighted sum.
   Teacher conflict = the two teachers' argmaxes differ.
3. Strong view by state: teacher 1 active -> colour/blur view of the unlabelled images;
   teacher 2 active -> CutMix of the *weak* view (lambda ~ Beta(4,4), random permutation),
   which also mixes pseudo-labels, confidences and the conflict mask.
4. One student forward on [x_l; x_u weak; x_u strong].
5. Conflict-combating (CCM, `pixel_confidence`): where the teachers conflict, the ensemble
   label differs from the student's weak-view label and the student is more confident, the
   pseudo-label and confidence become the student's.
6. L = 0.5 (CE + Dice)(labelled) + 2.0 sigmoid_rampup(t // 150, 50) Dice(student strong view,
   pseudo-labels; confidence >= 0.95).
7. After the optimiser step only the active teacher is updated: EMA of parameters *and buffers*,
   decay 0 (a copy) while it // 2 < 50, then min(1 - 1/(it // 2 - 49), 0.99); then the
   alternation ticks.
The official test script (`test_2d.sh`, `--flag_check_with_best_stu`) evaluates the student.

Deviations:
- The harness backbone replaces the SSL4MIS UNet; the native setting is in `NATIVE_SCHEDULE`.
- None in the ensemble: the default is the current official code. `ensemble: mean` (variant
  `ensemble_mean`) reproduces the superseded commit a573afa (2023-12-06, "update code"), which
  multiplied *both* softmaxes by exp(-(H_1 + H_2)), i.e. the plain mean of the two teachers
  after normalisation; ba09bf2 replaced it with the entropy weights above.
- Strong colour/blur views are made on the device from the weak batch in a per-image [0, 1]
  range (baselines/_views.py); the uint8 quantisation of the official PIL pipeline is dropped.
- The student's weak prediction in the CutMix phase comes from the un-mixed image while the
  pseudo-labels are mixed (an official quirk, kept).
- The consistency ramp is in official iterations, mapped to this run's budget unless
  `schedule: native`; the EMA copy phase and alternation periods stay in real iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from baselines._schedule import NativeSchedule, check_schedule, native_time
from methods.random_streams import seeded_generator, step_generator
from baselines._views import admt_cutmix_mask, admt_strong_view, paste_from
from methods.api import Batch, Method, PseudoLabelView, StepOutput, check_choice, register_method
from methods.ema import ema_update
from methods.losses import dice_loss, sigmoid_rampup, supervised_loss
from methods.tensors import class_argmax

NATIVE_SCHEDULE = NativeSchedule(
    iterations=30000,
    labelled_batch=12,
    unlabelled_batch=12,
    img_size=256,
    network="SSL4MIS UNet (1-channel, features 16-256, dropout) for the student and both teachers",
    optimiser="SGD, momentum 0.9",
    lr=0.01,
    weight_decay=1e-4,
    lr_schedule="poly 0.9 over 30000 iterations",
    source="cfgs/config_2d_aut.yml, code/train_post_2d_aut.py",
)


@dataclass
class ADMTConfig:
    period_max: int = 50  # alternation periods ~ U{1..period_max} iterations
    ensemble: str = "entropy"  # "entropy" (paper; official since ba09bf2) | "mean" (superseded commit a573afa)
    ensemble_temp: float = 1.0
    conflict_mode: str = "pixel_confidence"  # "pixel_confidence" | "always_teacher"
    cutmix_prob: float = 1.0
    conf_threshold: float = 0.95
    consistency: float = 2.0
    rampup_unit: int = 150  # the ramp advances once per this many official iterations
    rampup_length: float = 50.0  # in ramp units: full weight at 7500
    ema_decay: float = 0.99
    ema_copy_steps: int = 50  # EMA "steps" (= it // 2) during which the active teacher copies the student
    native_iters: int = NATIVE_SCHEDULE.iterations
    schedule: str = "scaled"  # "scaled" | "native" (baselines/_schedule.py)
    eval_network: str = "student"  # official test script: the student ("teacher1" optional)

    def validate(self) -> None:
        check_schedule(self.schedule)
        check_choice("ensemble", self.ensemble, ENSEMBLES)
        check_choice("conflict_mode", self.conflict_mode, ("pixel_confidence", "always_teacher"))
        check_choice("eval_network", self.eval_network, ("student", "teacher1", "teacher2"))
        if self.period_max < 1:
            raise ValueError(f"period_max must be >= 1, got {self.period_max}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.cutmix_prob <= 1.0:
            raise ValueError(f"cutmix_prob must be in [0, 1], got {self.cutmix_prob}")
        if self.ensemble_temp <= 0:
            raise ValueError(f"ensemble_temp must be > 0, got {self.ensemble_temp}")


#: "entropy": current official code and paper; "mean": the official code before ba09bf2
ENSEMBLES = ("entropy", "mean")


class AlternationState:
    """The RPA state machine (official `AlternateUpdate` with random periods).

    `teacher1_active` starts True with a period drawn from U{1..period_max}. Each `tick()` (one
    per iteration, after the teacher update) counts one iteration; when the count reaches the
    period the flag flips, the count resets and a new period is drawn.
    """

    def __init__(self, period_max: int, generator: torch.Generator):
        self.period_max = int(period_max)
        self.generator = generator
        self.teacher1_active = True
        self.counter = 0
        self.period = self.draw_period()

    def draw_period(self) -> int:
        return int(torch.randint(1, self.period_max + 1, (1,), generator=self.generator).item())

    def tick(self) -> None:
        self.counter += 1
        if self.counter >= self.period:
            self.teacher1_active = not self.teacher1_active
            self.counter = 0
            self.period = self.draw_period()

    def state(self) -> dict:
        return {"teacher1_active": self.teacher1_active, "counter": self.counter, "period": self.period}

    def load(self, state: dict) -> None:
        self.teacher1_active = bool(state["teacher1_active"])
        self.counter = int(state["counter"])
        self.period = int(state["period"])


def log2_entropy(prob: Tensor) -> Tensor:
    """[B,C,H,W] -> [B,H,W]: -sum p log2(p + 1e-10), the official entropy."""
    return -(prob * torch.log2(prob + 1e-10)).sum(1)


def ensemble_teachers(p1: Tensor, p2: Tensor, mode: str, temp: float = 1.0) -> tuple[Tensor, Tensor]:
    """Teacher ensemble of softmaxes p1, p2 [B,C,H,W] -> (confidence [B,H,W], pseudo-label [B,H,W]).

    "entropy": w_k = exp(-H_k) / (exp(-H_1) + exp(-H_2)) per pixel, H_k in bits (the paper, and
    `train_post_2d_aut.py` since commit ba09bf2); "mean": the weights of the superseded commit
    a573afa, exp(-(H_1 + H_2)) for both teachers, i.e. the plain mean after normalisation. Then the
    official sharpening p^(1/T), renormalised."""
    h1, h2 = log2_entropy(p1), log2_entropy(p2)
    if mode == "entropy":
        w1 = torch.sigmoid(h2 - h1).unsqueeze(1)  # = e^-H1 / (e^-H1 + e^-H2)
        mixed = w1 * p1 + (1 - w1) * p2
    else:
        w = torch.exp(-(h1 + h2)).unsqueeze(1)
        mixed = w * p1 + w * p2
    mixed = mixed.pow(1.0 / temp)
    mixed = mixed / mixed.sum(1, keepdim=True).clamp_min(1e-12)
    conf, pseudo = mixed.max(1)
    return conf, pseudo


def combat_conflicts(pseudo: Tensor, conf: Tensor, pseudo_stu: Tensor, conf_stu: Tensor,
                     teacher_conflict: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """CCM `pixel_confidence`: where the teachers conflict, the ensemble label differs from the
    student's and the student is more confident, take the student's label and confidence.
    Returns (pseudo, conf, replaced mask)."""
    replace = teacher_conflict & (pseudo != pseudo_stu) & (conf_stu > conf)
    return torch.where(replace, pseudo_stu, pseudo), torch.where(replace, conf_stu, conf), replace


def official_ema_decay(it: int, copy_steps: int, max_decay: float) -> float:
    """AD-MT `update_ema_variables(alpha, iter // 2)`: 0 while it // 2 < copy_steps, then
    min(1 - 1/(it // 2 - copy_steps + 1), max_decay)."""
    step = it // 2
    if step < copy_steps:
        return 0.0
    return min(1.0 - 1.0 / (step - copy_steps + 1), max_decay)


def _frozen(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@register_method("admt")
class ADMT(Method):
    """Student + two EMA teachers updated alternately at random periods, with conflict combating."""

    Config = ADMTConfig
    embeds_projection = False  # AD-MT trains no projection head: t-SNE shows decoder features
    display_name = "AD-MT"
    description = "AD-MT (ECCV'24): two alternately updated EMA teachers (random periods), entropy ensemble, conflict combating"
    NATIVE_SCHEDULE = NATIVE_SCHEDULE
    variants = {"native": {"schedule": "native"}, "ensemble_mean": {"ensemble": "mean"}}  # mean: commit a573afa

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        self.student = net_factory()
        # official: both teachers are created (independently initialised) like the student
        self.teacher1 = _frozen(net_factory())
        self.teacher2 = _frozen(net_factory())
        self._rng = seeded_generator()
        self.alternation = AlternationState(cfg.period_max, self._rng)
        self._pl_inputs: tuple | None = None

    # ---- what is evaluated / saved --------------------------------------------------------------
    @property
    def evaluated_network(self) -> str:  # type: ignore[override]
        return self.cfg.eval_network

    def predictor(self) -> nn.Module:
        return self.selection_candidates()[self.cfg.eval_network]

    def selection_candidates(self) -> dict[str, nn.Module]:
        """The student and both teachers (methods/training/selection.py)."""
        return {"student": self.student, "teacher1": self.teacher1, "teacher2": self.teacher2}

    def optimised_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.student.parameters() if p.requires_grad]

    def get_extra_state(self):
        return {"rng": self._rng.get_state(), "alternation": self.alternation.state()}

    def set_extra_state(self, state):
        if state:
            self._rng.set_state(state["rng"])
            self.alternation.load(state["alternation"])

    def active_teacher(self) -> nn.Module:
        return self.teacher1 if self.alternation.teacher1_active else self.teacher2

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:  # official: the active teacher in train mode, the other in eval mode
            self.active_teacher().train()
            (self.teacher2 if self.alternation.teacher1_active else self.teacher1).eval()
        return self

    def unsup_weight(self, it: int) -> float:
        t = native_time(it, self.max_iters, self.cfg.native_iters, self.cfg.schedule)
        return self.cfg.consistency * sigmoid_rampup(t // self.cfg.rampup_unit, self.cfg.rampup_length)

    # ---- the step ---------------------------------------------------------------------------
    def training_step(self, batch: Batch, it: int) -> StepOutput:
        cfg = self.cfg
        n_l, n_u = batch.x_l.shape[0], batch.x_u.shape[0]
        if n_u == 0:
            raise ValueError("AD-MT needs unlabelled images (unlabelled_batch > 0)")
        dev = batch.x_u.device
        t1_active = self.alternation.teacher1_active
        self.train(self.training)  # put the active / inactive teacher in their modes
        with torch.no_grad():
            p1 = self.teacher1(batch.x_u).logits.float().softmax(1)
            p2 = self.teacher2(batch.x_u).logits.float().softmax(1)
            conflict = class_argmax(p1) != class_argmax(p2)
            conf, pseudo = ensemble_teachers(p1, p2, cfg.ensemble, cfg.ensemble_temp)
            on_x_u = (pseudo, conf, conflict)  # before any CutMix, for the pseudo-label log
            g = step_generator(self._rng, dev)
            mixed = False
            if t1_active:
                x_s = admt_strong_view(batch.x_u, g)
            elif torch.rand(1, generator=self._rng).item() < cfg.cutmix_prob:
                mixed = True
                box = admt_cutmix_mask(n_u, *batch.x_u.shape[-2:], g, dev)
                perm = torch.randperm(n_u, generator=g, device=dev)
                x_s, pseudo, conf, conflict = paste_from(box, perm, batch.x_u, pseudo, conf, conflict)
            else:
                x_s = batch.x_u.clone()

        out = self.student(torch.cat([batch.x_l, batch.x_u, x_s])).logits
        out_l, out_u, out_s = out[:n_l], out[n_l : n_l + n_u], out[n_l + n_u :]
        with torch.no_grad():
            conf_stu, pseudo_stu = out_u.detach().float().softmax(1).max(1)
            if cfg.conflict_mode == "pixel_confidence":
                pseudo, conf, replaced = combat_conflicts(pseudo, conf, pseudo_stu, conf_stu, conflict)
            else:
                replaced = torch.zeros_like(conflict)
            self._pl_inputs = (on_x_u, pseudo_stu, conf_stu, pseudo, conf, mixed)  # the view is built on request
        sup = supervised_loss(out_l, batch.y_l)
        valid = conf >= cfg.conf_threshold
        unsup = dice_loss(out_s.float().softmax(1), pseudo, valid)
        weight = self.unsup_weight(it)
        loss = sup + weight * unsup
        logs = {
            "loss": loss.detach(),
            "sup": sup.detach(),
            "unsup": unsup.detach(),
            "unsup_weight": weight,
            "teacher1_active": float(t1_active),
            "conflict_ratio": conflict.float().mean(),
            "replaced_ratio": replaced.float().mean(),
            "confident_ratio": valid.float().mean(),
        }
        return StepOutput(loss, logs)

    def _view_on_x_u(self, on_x_u, pseudo_stu, conf_stu, pseudo, conf, mixed: bool) -> PseudoLabelView:
        """The student's pseudo-labels and filter on x_u's grid: the trained ones when no CutMix moved
        them, else the same conflict combating applied to the un-mixed ensemble (no random draw)."""
        if mixed:
            pseudo, conf = on_x_u[0], on_x_u[1]
            if self.cfg.conflict_mode == "pixel_confidence":
                pseudo, conf, _ = combat_conflicts(*on_x_u[:2], pseudo_stu, conf_stu, on_x_u[2])
        return PseudoLabelView(pseudo, conf >= self.cfg.conf_threshold)

    def pseudo_label_view(self) -> PseudoLabelView | None:
        """The teachers' ensemble after conflict combating, passed where confidence >= conf_threshold."""
        return None if self._pl_inputs is None else self._view_on_x_u(*self._pl_inputs)

    def on_step_end(self, it: int) -> None:
        """Update the teacher that was active in this step, then tick the alternation."""
        teacher = self.teacher1 if self.alternation.teacher1_active else self.teacher2
        decay = official_ema_decay(it, self.cfg.ema_copy_steps, self.cfg.ema_decay)
        ema_update(teacher, self.student, decay, buffers=True)
        self.alternation.tick()
