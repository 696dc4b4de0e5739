"""The shared mean-teacher skeleton: CutMix boxes, EMA schedule, warm-up, the step's losses."""

import copy

import pytest
import torch

from methods.api import Batch, get_method, resolve_variant
from methods.ema import ema_update, make_teacher, official_decay
from methods.meanteacher import apply_cutmix, cutmix_box_mask
from methods.nets import NetFactory, NetworkProfile

TINY = NetworkProfile(arch="unet", encoder="resnet18", encoder_depth=3, decoder_channels=(16, 8, 8), proj_hidden=8, proj_dim=8)


def test_cutmix_box_is_half_the_image_and_one_rectangle():
    gen = torch.Generator().manual_seed(3)
    mask = cutmix_box_mask(6, 20, 24, gen, "cpu")
    for m in mask:
        rows = m.any(1).nonzero().flatten()
        cols = m.any(0).nonzero().flatten()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert m.sum() == h * w  # a filled rectangle
        assert 12 <= w <= 24  # width in [W/2, W]
        assert abs(int(m.sum()) - 240) <= 20  # half of 20 x 24, up to rounding of the height


def test_cutmix_pastes_the_next_image_inside_the_box():
    x = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 4, 4).clone()
    y = torch.arange(3).view(3, 1, 1).expand(3, 4, 4).clone()
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[:, :2, :2] = True
    xm, ym = apply_cutmix(mask, x, y)
    assert xm[0, 0, 0, 0] == 1 and xm[2, 0, 0, 0] == 0  # image i gets image i+1 mod B
    assert xm[0, 0, 3, 3] == 0 and ym[1, 0, 0] == 2 and ym[1, 3, 3] == 1


def test_official_ema_decay_copies_then_ramps():
    assert official_decay(0, 0.999) == 0.0
    assert official_decay(1, 0.999) == pytest.approx(0.5)
    assert official_decay(9, 0.999) == pytest.approx(0.9)
    assert official_decay(10_000, 0.999) == 0.999
    student = torch.nn.Linear(2, 2)
    teacher = make_teacher(student)
    with torch.no_grad():
        teacher.weight.zero_()
    ema_update(teacher, student, 0.0)
    assert torch.equal(teacher.weight, student.weight)
    assert not any(p.requires_grad for p in teacher.parameters())


def _method(**overrides):
    cls = get_method("meanteacher")
    cfg = resolve_variant(cls, "default", overrides)
    torch.manual_seed(0)
    return cls(cfg=cfg, net_factory=NetFactory(TINY, 4), num_classes=4, max_iters=10,
               data_info={"labelled_slices": 3})


def _batch():
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(2, 1, 32, 32, generator=g), torch.randint(0, 4, (2, 32, 32), generator=g),
                 torch.randn(2, 1, 32, 32, generator=g))


def test_warmup_is_one_labelled_epoch_and_supervised_only():
    m = _method()
    assert m.warmup_iters == 3  # -1 means one official epoch = number of labelled slices
    out = m.training_step(_batch(), 0)
    assert set(out.logs) == {"loss", "sup"}
    out = m.training_step(_batch(), 3)
    assert {"sup", "unsup"} <= set(out.logs)
    assert torch.isfinite(out.loss)


def test_first_semi_supervised_pseudo_labels_come_from_the_student():
    m = _method(warmup_iters=1)
    m.train()
    with torch.no_grad():
        for p in m.student.parameters():
            p.add_(1.0)
    m.training_step(_batch(), 1)
    ctx = m._last_ctx
    # the teacher already holds the student's parameters when it labels the unlabelled images
    for ps, pt in zip(m.student.parameters(), m.teacher.parameters()):
        assert torch.equal(ps, pt)
    with torch.no_grad():
        expected = m.teacher(torch.cat([_batch().x_l, _batch().x_u])).logits[2:].softmax(1)
    assert torch.allclose(ctx.t_prob_u, expected, atol=1e-6)
    m.on_step_end(1)  # decay 0 at the first semi-supervised step: still the student's parameters
    for ps, pt in zip(m.student.parameters(), m.teacher.parameters()):
        assert torch.equal(ps, pt)


def test_eval_mode_teacher_averages_the_students_bn_statistics():
    m = _method(warmup_iters=0, teacher_mode="eval")
    bn_t = [b for b in m.teacher.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    bn_s = [b for b in m.student.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    m.train()
    assert not m.teacher.training  # never a train-mode forward: BN statistics cannot come from it
    with torch.no_grad():
        m.student(_batch().x_l)  # the student's statistics move away from their initial values
    before_step = copy.deepcopy(m.student).eval()
    m.training_step(_batch(), 0)
    # the first pseudo-labels already come from the student's parameters and BN statistics
    with torch.no_grad():
        expected = before_step(_batch().x_u).logits.softmax(1)
    assert torch.allclose(m._last_ctx.t_prob_u, expected, atol=1e-5)
    m.on_step_end(0)  # decay 0: the teacher becomes the student, buffers included
    for t, s in zip(bn_t, bn_s):
        assert torch.equal(t.running_mean, s.running_mean) and torch.equal(t.running_var, s.running_var)
    assert any(float(t.running_mean.abs().sum()) > 0 for t in bn_t)
    before = [t.running_mean.clone() for t in bn_t]
    m.training_step(_batch(), 1)
    m.on_step_end(1)  # decay 1/2: the mean of the two
    for t, s, b in zip(bn_t, bn_s, before):
        assert torch.allclose(t.running_mean, 0.5 * b + 0.5 * s.running_mean, atol=1e-6)


def test_train_mode_teacher_keeps_its_own_bn_statistics():
    m = _method(warmup_iters=0)
    m.train()
    m.training_step(_batch(), 0)
    m.on_step_end(0)
    bn_t = [b for b in m.teacher.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    bn_s = [b for b in m.student.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    # the teacher saw [x_l; x_u], the student [x_l; x_u; x_aug]: official, parameters-only EMA
    assert any(not torch.equal(t.running_mean, s.running_mean) for t, s in zip(bn_t, bn_s))


def test_unsup_loss_ignores_unconfident_pseudo_labels():
    m = _method(warmup_iters=0, conf_threshold=1.01)  # nothing is confident: Dice over no pixel
    out = m.training_step(_batch(), 0)
    assert float(out.logs["unsup"]) == pytest.approx(0.0, abs=1e-6)
