"""Exponential-moving-average teachers."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A detached copy of `student` whose parameters never receive gradients."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def official_decay(step_since_start: int, max_decay: float) -> float:
    """SPCL/DGCL/U2PL schedule: min(1 - 1/(t + 1), max_decay); t = 0 copies the student."""
    return min(1.0 - 1.0 / (step_since_start + 1), max_decay)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float, buffers: bool = False) -> None:
    """teacher = decay * teacher + (1 - decay) * student, on parameters (and floating buffers if
    `buffers`; otherwise the teacher's BN statistics come from its own forward passes)."""
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(t_params, decay)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - decay)
    if buffers:
        for tb, sb in zip(teacher.buffers(), student.buffers()):
            if tb.dtype.is_floating_point:
                tb.mul_(decay).add_(sb.detach(), alpha=1.0 - decay)
            else:
                tb.copy_(sb)
