"""Subclass memory banks (paper Sec. 2.2): per class an inner and a boundary FIFO queue of centroids.

Each image of a batch adds, for each subclass (c, s) it contains, one entry: the centroid of its
reliable pixels of that subclass, z_bar = mean of the projection features, L2-normalised (the official
`FeatureMemory.update(b_update='mean')`: mean of the un-normalised `rep`, then normalised). A queue
holds the newest `size` entries (the official 400).

Order within a batch, as the official code (`dgcl/bcl/spcl.py`, commit 23c6a8a): `update` stacks a
batch's centroids in image order and prepends them, `memory = cat((new, memory))[:size]`, so image 0
counts as the newest entry of its batch and image B - 1 as the oldest. When the window cuts through
a batch, the older batch's *last* images leave first, and a batch with more than `size` entries keeps
its first `size` images. `push` enqueues image B - 1 first and image 0 last, so the queue holds the
same entries as the official list after every update.

Storage is one buffer [G * size + 1, D] (G = 2C subclasses, index 2c + s; subclass g owns rows
g * size ... g * size + size - 1, used as a ring), plus fill counts and write heads, so the bank is in
the method's state_dict and a push is a single `index_put_` on the device: centroids an image does
not have go to the last row, a sink that is never read, instead of being filtered out with a
host-synchronising boolean index; `features()` is a contiguous view of the other rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SubclassMemoryBank(nn.Module):
    def __init__(self, num_classes: int, size: int, dim: int):
        super().__init__()
        if size < 1 or dim < 1 or num_classes < 1:
            raise ValueError(f"memory bank needs positive num_classes, size and dim, got {num_classes}, {size}, {dim}")
        self.num_classes, self.size, self.dim = int(num_classes), int(size), int(dim)
        groups = 2 * self.num_classes
        self.register_buffer("entries", torch.zeros(groups * self.size + 1, self.dim))
        self.register_buffer("count", torch.zeros(groups, dtype=torch.long))
        self.register_buffer("head", torch.zeros(groups, dtype=torch.long))

    @property
    def num_subclasses(self) -> int:
        return 2 * self.num_classes

    def features(self) -> Tensor:
        """[G, size, D]; rows beyond a subclass's count are zeros and must be masked by `valid()`."""
        return self.entries[:-1].view(self.num_subclasses, self.size, self.dim)

    def valid(self) -> Tensor:
        """[G, size] bool: which slots hold an entry."""
        return torch.arange(self.size, device=self.count.device)[None, :] < self.count[:, None]

    def is_full(self, subclasses: Tensor | None = None) -> Tensor:
        """0-d bool tensor: every subclass (or every one selected by the [G] bool mask) holds `size` entries."""
        full = self.count >= self.size
        if subclasses is not None:
            full = full | ~subclasses
        return full.all()

    def fill_fraction(self) -> Tensor:
        return self.count.float().mean() / self.size

    @torch.no_grad()
    def push(self, centroids: Tensor, present: Tensor) -> None:
        """Enqueue centroids [B, G, D] where `present` [B, G]; image B - 1 is enqueued first (the
        oldest of the batch) and image 0 last (the newest), the official order (module docstring)."""
        b, g, d = centroids.shape
        if g != self.num_subclasses or d != self.dim or present.shape != (b, g):
            raise ValueError(
                f"push expects centroids [B, {self.num_subclasses}, {self.dim}] and present [B, {self.num_subclasses}], "
                f"got {tuple(centroids.shape)} and {tuple(present.shape)}"
            )
        present = present.bool()
        rank = present.long().flip(0).cumsum(0).flip(0) - 1  # enqueue order within its subclass: last image first
        new = present.long().sum(0)  # [G]
        keep = present & (rank >= (new - self.size)[None, :])  # more than `size` new: the newest (first images) win
        group = torch.arange(g, device=rank.device)[None, :]
        row = group * self.size + (self.head[None, :] + rank) % self.size
        row = torch.where(keep, row, torch.full_like(row, g * self.size))  # absent: the sink row
        self.entries.index_put_((row,), centroids.to(self.entries.dtype))
        self.head.copy_((self.head + new) % self.size)
        self.count.copy_(torch.clamp(self.count + new, max=self.size))

    def ordered(self, group: int) -> Tensor:
        """The entries of one subclass, oldest first (for tests and inspection; not used in training)."""
        n = int(self.count[group])
        if n < self.size:
            return self.features()[group, :n]
        order = (int(self.head[group]) + torch.arange(self.size, device=self.entries.device)) % self.size
        return self.features()[group, order]


def subclass_centroids(features: Tensor, subclass: Tensor, num_subclasses: int) -> tuple[Tensor, Tensor]:
    """Per image and subclass, the L2-normalised mean feature of its pixels.

    features [B, D, H, W] (un-normalised projections); subclass [B, H, W] long with -1 for pixels that
    must not contribute (unreliable, excluded class). Returns centroids [B, G, D] and present [B, G].
    """
    member = F.one_hot((subclass + 1).flatten(1), num_subclasses + 1)[..., 1:].to(features.dtype)  # [B, N, G]
    sums = torch.bmm(features.flatten(2), member).transpose(1, 2)  # [B, G, D]
    counts = member.sum(1)  # [B, G]
    centroids = F.normalize(sums / counts.clamp(min=1.0)[..., None], dim=-1)
    return centroids, counts > 0
