"""Small tensor helpers that PyTorch's CPU kernels make worth having."""

from __future__ import annotations

from torch import Tensor


def class_argmax(scores: Tensor, dim: int = 1) -> Tensor:
    """`scores.argmax(dim)`, computed as `scores.max(dim).indices`: the same indices (the first
    maximum on ties, NaN counted as the maximum; tests/test_precision.py), but on the CPU argmax
    over the channel dimension of an NCHW map takes a slow path, 6 ms against 0.8 ms for
    [8, 4, 80, 80] with one thread (torch 2.14)."""
    return scores.max(dim).indices
