"""The numeric path of a run: precision (bf16 autocast or fp32) and the networks' memory format.

Decided once per process from `train.amp`, `train.channels_last` and the device, recorded beside
the run's config in every checkpoint (`numerics`), in `environment.json` and in the per-case CSV,
and checked before a run resumes or a finished `final.pt` is accepted: a result trained in one
precision is never taken for one trained in another.

- `train.amp: auto` is bf16 autocast where the hardware computes in bf16 natively: every CUDA
  device, and x86-64 CPUs with AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo), where oneDNN's
  bf16 convolutions run at about twice the fp32 speed (benchmarks/README.md). Everything else
  (older x86 CPUs, ARM, macOS) trains in fp32. `bf16` forces autocast, and is refused on a CPU
  without native bf16, where it would be emulated several times slower than fp32; `off` is fp32.
- `train.channels_last: auto` stores the networks' 4-D weights and the input batches channels-last
  (NHWC) on the CPU, where oneDNN's convolutions need no layout reorders then; on CUDA `auto`
  keeps the default layout (not measured faster there). `on` / `off` force it.
- Losses that need float32 (the contrastive logits) leave autocast themselves; the metrics are
  computed in float64 on the host, from the argmax of the logits.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from methods.errors import ConfigError

AMP_CHOICES = ("auto", "bf16", "off")
CHANNELS_LAST_CHOICES = ("auto", "on", "off")
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor entry (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True on x86-64 CPUs that compute in bf16 natively (AVX512-BF16 or AMX-BF16)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return any(flag in cpu_flags() for flag in _NATIVE_BF16_FLAGS)


@dataclass(frozen=True)
class Numerics:
    """What a run computes in: `precision` "bf16" | "fp32", `memory_format` "channels_last" | "contiguous"."""

    precision: str
    memory_format: str

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def channels_last(self) -> bool:
        return self.memory_format == "channels_last"

    def as_dict(self) -> dict[str, str]:
        return {"precision": self.precision, "memory_format": self.memory_format}

    @classmethod
    def from_dict(cls, d: dict) -> "Numerics":
        return cls(str(d["precision"]), str(d["memory_format"]))

    def label(self) -> str:
        """One word for tables and logs: 'bf16', 'fp32', 'bf16+channels_last', ..."""
        return self.precision + ("+channels_last" if self.channels_last else "")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def format_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module's 4-D parameters and buffers in this memory format (in place; returned)."""
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def format_input(self, x: torch.Tensor) -> torch.Tensor:
        """A 4-D batch [B, C, H, W] in this memory format (other tensors unchanged)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


#: The path of a checkpoint written without a `numerics` record, and of bare networks in tests.
FP32 = Numerics("fp32", "contiguous")


def recorded_numerics(run_cfg: dict) -> Numerics:
    """The numeric path a checkpoint's config records (`FP32` where it has none)."""
    record = run_cfg.get("numerics")
    return Numerics.from_dict(record) if record else FP32


def resolve_numerics(device: torch.device, amp: str, channels_last: str, where: str = "train") -> Numerics:
    """The numeric path for `device` from the `amp` and `channels_last` settings (module docstring)."""
    if amp not in AMP_CHOICES:
        raise ConfigError(f"{where}.amp must be one of {list(AMP_CHOICES)}, got {amp!r}")
    if channels_last not in CHANNELS_LAST_CHOICES:
        raise ConfigError(f"{where}.channels_last must be one of {list(CHANNELS_LAST_CHOICES)}, got {channels_last!r}")
    on_cpu = device.type == "cpu"
    native = cpu_has_native_bf16() if on_cpu else True
    if amp == "bf16" and not native:
        raise ConfigError(
            f"{where}.amp is 'bf16' but this CPU has no native bf16 (neither {' nor '.join(_NATIVE_BF16_FLAGS)} "
            f"in /proc/cpuinfo): bf16 would be emulated, several times slower than fp32. Use {where}.amp: auto "
            "(fp32 here) or off"
        )
    bf16 = amp == "bf16" or (amp == "auto" and native)
    last = channels_last == "on" or (channels_last == "auto" and on_cpu)
    return Numerics("bf16" if bf16 else "fp32", "channels_last" if last else "contiguous")
