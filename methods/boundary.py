"""The thick class boundary of label maps, one definition for SPCL's `thick` subclasses, BASS's
`thick` edge and boundary weights, and the `boundary` tag of evaluation's feature sample.

A pixel is a boundary pixel iff one of its 4 neighbours inside the image has another value:
scikit-image's `find_boundaries(labels, connectivity=1, mode="thick")` per 2D map, the operator
the official SPCL code uses (`train_spcl.py`, commit 23c6a8a). Pixels outside the image are not
neighbours, so the image border is not a boundary. On a binary mask it is dilation minus erosion
by the 4-neighbourhood cross: both sides of the mask's edge, and the whole of a one-pixel-wide
structure. Computed by comparing shifted maps on the device (no float conversion, no padding).
"""

from __future__ import annotations

import torch
from torch import Tensor


def thick_boundary(labels: Tensor) -> Tensor:
    """[..., H, W] label maps (integer labels or bool masks) -> bool [..., H, W], True where a
    4-neighbour inside the image has another value."""
    if labels.dim() < 2:
        raise ValueError(f"labels must be [..., H, W], got shape {tuple(labels.shape)}")
    boundary = torch.zeros_like(labels, dtype=torch.bool)
    vertical = labels[..., 1:, :] != labels[..., :-1, :]
    horizontal = labels[..., :, 1:] != labels[..., :, :-1]
    boundary[..., 1:, :] |= vertical
    boundary[..., :-1, :] |= vertical
    boundary[..., :, 1:] |= horizontal
    boundary[..., :, :-1] |= horizontal
    return boundary
