"""AD-MT: the alternation state machine, which teacher updates when, the ensemble, conflict
combating on a tiny tensor, the EMA schedule and a tiny run."""

import math

import pytest
import torch

from _tiny_run import TINY_NET, assert_logged_and_finite, train_tiny
from baselines.admt import (
    ADMT,
    AlternationState,
    combat_conflicts,
    ensemble_teachers,
    official_ema_decay,
)
from methods.api import build_config
from methods.nets import NetFactory, NetworkProfile


def flags_over(state: AlternationState, n: int) -> list[bool]:
    """The active-teacher flag seen by n consecutive iterations (read before each tick)."""
    out = []
    for _ in range(n):
        out.append(state.teacher1_active)
        state.tick()
    return out


def test_alternation_flips_when_the_drawn_period_is_used_up():
    state = AlternationState(50, torch.Generator().manual_seed(0))
    state.period = 3  # hand-set period: teacher 1 for 3 iterations, then teacher 2
    assert flags_over(state, 3) == [True, True, True]
    assert state.teacher1_active is False and state.counter == 0
    assert 1 <= state.period <= 50


def test_alternation_periods_are_uniform_draws_from_one_to_period_max():
    state = AlternationState(4, torch.Generator().manual_seed(11))
    ref = torch.Generator().manual_seed(11)
    periods = [int(torch.randint(1, 5, (1,), generator=ref).item()) for _ in range(4)]
    expected = [True] * periods[0] + [False] * periods[1] + [True] * periods[2]
    assert flags_over(state, len(expected)) == expected
    assert state.period == periods[3]
    assert AlternationState(1, torch.Generator()).period == 1
    assert flags_over(AlternationState(1, torch.Generator()), 4) == [True, False, True, False]


def test_alternation_state_round_trips_through_extra_state():
    m = ADMT(cfg=build_config(ADMT.Config, {}), net_factory=_tiny_factory(), num_classes=4, max_iters=10)
    for _ in range(7):
        m.alternation.tick()
    saved = m.get_extra_state()
    ahead = flags_over(m.alternation, 60)
    m.set_extra_state(saved)
    assert flags_over(m.alternation, 60) == ahead


def _tiny_factory() -> NetFactory:
    return NetFactory(NetworkProfile.from_dict(TINY_NET), 4)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_only_the_active_teacher_follows_the_student():
    torch.manual_seed(0)
    m = ADMT(cfg=build_config(ADMT.Config, {"period_max": 1}), net_factory=_tiny_factory(), num_classes=4,
             max_iters=10)  # period 1: teacher 1, teacher 2, teacher 1, ...
    t2_before = {k: v.clone() for k, v in m.teacher2.state_dict().items()}
    m.on_step_end(0)  # it // 2 = 0 < 50: the update is a copy (parameters and buffers)
    assert _same(m.teacher1, m.student)
    assert all(torch.equal(v, t2_before[k]) for k, v in m.teacher2.state_dict().items())
    with torch.no_grad():
        for p in m.student.parameters():
            p.add_(1.0)
    m.on_step_end(1)
    assert _same(m.teacher2, m.student) and not _same(m.teacher1, m.student)
    assert m.alternation.teacher1_active


def test_teacher_modes_follow_the_alternation():
    m = ADMT(cfg=build_config(ADMT.Config, {"period_max": 1}), net_factory=_tiny_factory(), num_classes=4,
             max_iters=10)
    m.train()
    assert m.teacher1.training and not m.teacher2.training
    m.alternation.tick()
    m.train()
    assert m.teacher2.training and not m.teacher1.training
    m.eval()
    assert not (m.teacher1.training or m.teacher2.training or m.student.training)


def test_ema_decay_copies_for_the_first_100_iterations_then_warms_up():
    assert [official_ema_decay(it, 50, 0.99) for it in (0, 99, 100, 101)] == [0.0, 0.0, 0.0, 0.0]
    assert official_ema_decay(102, 50, 0.99) == 0.5  # it // 2 = 51: 1 - 1/2
    assert official_ema_decay(106, 50, 0.99) == pytest.approx(0.75)
    assert official_ema_decay(30000, 50, 0.99) == 0.99


def test_conflict_combating_on_a_tiny_tensor():
    pseudo = torch.tensor([[[1, 1, 2, 0]]])
    conf = torch.tensor([[[0.6, 0.6, 0.9, 0.5]]])
    pseudo_stu = torch.tensor([[[1, 2, 3, 3]]])
    conf_stu = torch.tensor([[[0.9, 0.9, 0.8, 0.7]]])
    teachers_disagree = torch.tensor([[[True, True, True, False]]])
    # pixel 0: student agrees; 1: replaced; 2: student less confident; 3: teachers agree
    new_pseudo, new_conf, replaced = combat_conflicts(pseudo, conf, pseudo_stu, conf_stu, teachers_disagree)
    assert new_pseudo.tolist() == [[[1, 2, 2, 0]]]
    assert new_conf.tolist() == [[[pytest.approx(0.6), pytest.approx(0.9), pytest.approx(0.9), pytest.approx(0.5)]]]
    assert replaced.tolist() == [[[False, True, False, False]]]


def test_entropy_weighted_ensemble_and_the_superseded_mean():
    p1 = torch.tensor([0.9, 0.1]).view(1, 2, 1, 1)
    p2 = torch.tensor([0.3, 0.7]).view(1, 2, 1, 1)

    def h(p):
        return -sum(q * math.log2(q + 1e-10) for q in p)

    w1 = math.exp(-h([0.9, 0.1])) / (math.exp(-h([0.9, 0.1])) + math.exp(-h([0.3, 0.7])))
    conf, pseudo = ensemble_teachers(p1, p2, "entropy")
    assert pseudo.item() == 0 and conf.item() == pytest.approx(w1 * 0.9 + (1 - w1) * 0.3, rel=1e-5)
    conf, pseudo = ensemble_teachers(p1, p2, "mean")  # commit a573afa: exp(-(H1 + H2)) on both = the mean
    assert pseudo.item() == 0 and conf.item() == pytest.approx(0.6, rel=1e-5)
    assert ADMT.variants["ensemble_mean"] == {"ensemble": "mean"} and ADMT.Config().ensemble == "entropy"


def test_admt_trains_both_phases_on_the_tiny_cache(tiny_cache, tiny_split, tmp_path):
    rows = train_tiny("admt", {"period_max": 1}, tiny_cache, tiny_split, tmp_path / "run")
    keys = ["loss", "sup", "unsup", "unsup_weight", "teacher1_active", "conflict_ratio", "replaced_ratio",
            "confident_ratio"]
    assert_logged_and_finite(rows, keys, 2)
    # iteration 0: teacher 1 active (colour/blur view); iteration 1: teacher 2 (CutMix view)
    assert [float(r["teacher1_active"]) for r in rows] == [1.0, 0.0]
