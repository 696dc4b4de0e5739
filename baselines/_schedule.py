"""Schedules shared by the UGPCL, AD-MT and ABD baselines.

Native schedules. Each method's official code counts its ramps and switches in its own
iterations (UGPCL 10k, AD-MT 30k, ABD 30k), while the harness gives every method the same
budget (`max_iters`, e.g. 6000). A method config's `schedule` option decides how those counts
are read:

- "scaled" (default, the common-harness profile): a count of the official run is mapped to the
  same *fraction* of this run, i.e. official iteration t_native = it * native_iters / max_iters.
  A ramp that ends at 25% of the official run ends at 25% of ours.
- "native": counts are taken literally, in this run's iterations (t_native = it). A run that
  reproduces the official setting sets the engine's iterations, batch and learning-rate schedule
  to the method's `NATIVE_SCHEDULE` (recorded as data next to each method; the engine owns them).

EMA decays and alternation periods are per-update quantities and stay in real iterations in
both modes.

Random streams. Every random choice a method makes (views, boxes, patch picks, periods) comes
from one CPU `torch.Generator` that the method keeps in its extra state, and pixel-level draws
from a device generator seeded from it once per step (methods/random_streams.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from methods.api import check_choice

SCHEDULE_MODES = ("scaled", "native")


@dataclass(frozen=True)
class NativeSchedule:
    """A method's own training schedule on ACDC, as its official code runs it (data, not code)."""

    iterations: int
    labelled_batch: int
    unlabelled_batch: int
    img_size: int
    lr: float
    weight_decay: float
    lr_schedule: str
    optimiser: str
    network: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self)

    def run_overrides(self) -> dict:
        """The run-config keys (docs/architecture.md) a native run sets: deep-merge this over a
        profile to train with the method's own budget, batch, input size and optimiser settings.
        The official networks are not harness profiles, so `network` stays the run's own."""
        return {
            "variant": "native",
            "data": {"img_size": self.img_size, "labelled_batch": self.labelled_batch,
                     "unlabelled_batch": self.unlabelled_batch},
            "train": {"iterations": self.iterations, "lr": self.lr, "weight_decay": self.weight_decay},
        }


def check_schedule(mode: str) -> None:
    check_choice("schedule", mode, SCHEDULE_MODES)


def native_time(it: int, max_iters: int, native_iters: int, mode: str) -> float:
    """This run's iteration `it` expressed in the official run's iterations (see module doc)."""
    if mode == "native" or max_iters <= 0:
        return float(it)
    return it * native_iters / max_iters
