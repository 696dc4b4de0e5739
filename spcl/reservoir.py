"""A bounded reservoir of recent anchor-positive / anchor-negative similarities (for the paper's Fig. 3).

Each training step adds a fixed number of randomly drawn (anchor, bank entry) pairs with a kind flag
(0 = neither or not used, 1 = positive, 2 = negative); the values stay on the device in a ring buffer
and are only copied to the host when `arrays()` is called (at the end of training), so recording
costs no host synchronisation. Pairs drawn uniformly from all (anchor, entry) pairs sample both
distributions without bias, in proportion to how often the loss used them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

POSITIVE, NEGATIVE = 1, 2


class SimilarityReservoir(nn.Module):
    def __init__(self, capacity: int):
        super().__init__()
        if capacity < 1:
            raise ValueError(f"similarity reservoir capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.register_buffer("value", torch.zeros(self.capacity))
        self.register_buffer("kind", torch.zeros(self.capacity, dtype=torch.int8))
        self.written = 0

    def add(self, values: Tensor, kinds: Tensor) -> None:
        n = values.numel()
        if n > self.capacity:
            raise ValueError(f"cannot add {n} similarities to a reservoir of {self.capacity}")
        slots = (self.written + torch.arange(n, device=self.value.device)) % self.capacity
        self.value[slots] = values.detach().reshape(-1).to(self.value.dtype)
        self.kind[slots] = kinds.reshape(-1).to(torch.int8)
        self.written += n

    def arrays(self) -> dict[str, np.ndarray] | None:
        """{"positive", "negative"}: 1-D float32 arrays of the recorded similarities, or None if empty."""
        filled = min(self.written, self.capacity)
        value = self.value[:filled].cpu().numpy()
        kind = self.kind[:filled].cpu().numpy()
        pos, neg = value[kind == POSITIVE], value[kind == NEGATIVE]
        if pos.size == 0 and neg.size == 0:
            return None
        return {"positive": pos.astype(np.float32), "negative": neg.astype(np.float32)}

    def get_extra_state(self):
        return {"written": self.written}

    def set_extra_state(self, state):
        self.written = int(state.get("written", 0)) if state else 0
