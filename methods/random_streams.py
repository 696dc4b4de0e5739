"""The random streams of a method, kept in its checkpoint so that a resumed run draws exactly what
an uninterrupted one would (tests/test_resume_contract.py checks every registered method).

Seeding: every stream gets one seed, an integer in [0, 2**62) drawn from the global torch RNG
(`draw_seed`), which the engine seeds with the run's seed before it builds the method
(methods/training/engine.py, `seed_everything`). A method's streams therefore depend only on the run's seed
and on the order in which its constructor asks for them.

Three kinds:
- `seeded_generator()`: a CPU `torch.Generator` for the few numbers a step draws (CutMix boxes,
  views, periods); the method stores `get_state()` in its extra state (`GeneratorStateMixin` does
  it for a method whose draws all come from `self._rng`).
- `step_generator(cpu_gen, device)`: a generator on the device for one step's pixel-level draws,
  seeded from a CPU stream; it is rebuilt every step, so nothing of it is saved and no large
  random tensor crosses the bus.
- `DeviceGenerator`: one long-lived generator on the device of the data, created on first use (so
  pixel-level sampling never copies random numbers from the host), saved with its seed and state.
"""

from __future__ import annotations

import torch

SEED_RANGE = 2**62


def draw_seed() -> int:
    """One seed from the global torch RNG (seeded by the engine from the run's seed)."""
    return int(torch.randint(0, SEED_RANGE, (1,)).item())


def seeded_generator() -> torch.Generator:
    """A CPU generator seeded with `draw_seed()`."""
    return torch.Generator().manual_seed(draw_seed())


def step_generator(cpu_gen: torch.Generator, device: torch.device | str) -> torch.Generator:
    """A generator on `device` for this step's pixel-level draws, seeded from `cpu_gen`."""
    seed = int(torch.randint(0, SEED_RANGE, (1,), generator=cpu_gen).item())
    return torch.Generator(device=device).manual_seed(seed)


class GeneratorStateMixin:
    """For methods whose random draws all come from `self._rng` (a CPU torch.Generator): keep its
    state in the checkpoint (nn.Module extra state, key "rng")."""

    def get_extra_state(self):
        return {"rng": self._rng.get_state()}

    def set_extra_state(self, state):
        if state and "rng" in state:
            self._rng.set_state(state["rng"])


class DeviceGenerator:
    """A torch.Generator on the data's device, seeded with `seed` (default: `draw_seed()`).

    Created on first use on the device of the data (`on(device)`); a state restored before that
    (`load`) is applied on creation. `state()` is `{"seed", "pending"}` with `pending` None before
    the first use, else `{"device_type", "state"}`: what a checkpoint stores."""

    def __init__(self, seed: int | None = None):
        self.seed = draw_seed() if seed is None else int(seed)
        self._gen: torch.Generator | None = None
        self._pending: dict | None = None

    def on(self, device: torch.device | str) -> torch.Generator:
        device = torch.device(device)
        if self._gen is None or self._gen.device.type != device.type:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            if self._pending is not None and self._pending["device_type"] == device.type:
                gen.set_state(self._pending["state"])
            self._pending = None
            self._gen = gen
        return self._gen

    def state(self) -> dict:
        if self._gen is None:
            return {"seed": self.seed, "pending": self._pending}
        return {"seed": self.seed, "pending": {"device_type": self._gen.device.type, "state": self._gen.get_state()}}

    def load(self, state: dict | None) -> None:
        if not state:
            return
        self.seed = int(state["seed"])
        self._gen = None
        self._pending = state.get("pending")
