"""The common augmentation every method gets, applied on the device to a whole batch.

As in SPCL's official training loop: a random rotation by U(-max_deg, max_deg) degrees about the
image centre with zero fill (`TF.rotate` there; here bilinear for images, nearest for labels) and a
horizontal flip with probability `hflip` (official: 0.5); a vertical flip (`vflip`, default 0) is
available for other protocols. The flips are folded into the same affine matrix, so one
`affine_grid` + `grid_sample` call transforms the batch, and image and label share the grid.
Also as there, before the geometric transform and with probability `jitter` (official 0.8),
torchvision's `ColorJitter(0.4, 0.4, 0.4, 0.1)`, which on a grey slice copied to three channels
is a brightness and a contrast factor in U(0.6, 1.4) in random order (saturation and hue are
identities on grey); `jitter: 0` turns it off and draws nothing. See docs/methods.md.

Random parameters are drawn on the CPU from a `torch.Generator` that the engine owns and
checkpoints, so augmentation is identical on resume and independent of the device.

With `rotate_deg: 0` the affine is a pure flip, applied by index reversal (`torch.flip`) instead
of resampling, so images are bit-exact mirrors and a method that rotates inside its own step
(UGPCL) resamples its images once. A method changes the common augmentation for its own runs
through `Method.augment_overrides()` (`with_overrides` below; the engine applies it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.errors import ConfigError


@dataclass
class AugmentConfig:
    rotate_deg: float = 20.0
    hflip: float = 0.5
    vflip: float = 0.0
    jitter: float = 0.8  # probability of the official grey ColorJitter (SPCL's pipeline: 0.8)
    brightness: float = 0.4
    contrast: float = 0.4

    def validate(self) -> None:
        if self.rotate_deg < 0 or self.rotate_deg > 180:
            raise ValueError(f"rotate_deg must be in [0, 180], got {self.rotate_deg}")
        for name in ("brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (a ColorJitter strength), got {getattr(self, name)}")
        for name in ("hflip", "vflip", "jitter"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def with_overrides(cfg: AugmentConfig, overrides: Mapping[str, Any], who: str = "method") -> AugmentConfig:
    """`cfg` with the fields in `overrides` replaced (a method's `augment_overrides()`), validated.
    Unknown keys and invalid values are a ConfigError naming `who`."""
    if not overrides:
        return cfg
    names = {f.name for f in fields(AugmentConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{who}: augment_overrides has unknown key(s) {unknown}; valid keys: {sorted(names)}")
    out = replace(cfg, **{k: float(v) for k, v in overrides.items()})
    try:
        out.validate()
    except ValueError as exc:
        raise ConfigError(f"{who}: augment_overrides: {exc}") from exc
    return out


def random_affines(n: int, h: int, w: int, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """[n, 2, 3] matrices for `affine_grid` (normalised coordinates, no translation).

    The rotation is corrected for the aspect ratio so it is a true rotation in pixel space for
    non-square images too; flips are sign changes of the output x / y coordinates.
    """
    r = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    angle = (2 * r[:, 0] - 1) * math.radians(cfg.rotate_deg)
    fx = torch.where(r[:, 1] < cfg.hflip, -1.0, 1.0).double()
    fy = torch.where(r[:, 2] < cfg.vflip, -1.0, 1.0).double()
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos * fx
    theta[:, 0, 1] = -sin * (h / w) * fy
    theta[:, 1, 0] = sin * (w / h) * fx
    theta[:, 1, 1] = cos * fy
    return theta.float()


def flip_only(x: Tensor, y: Tensor | None, theta: Tensor) -> tuple[Tensor, Tensor | None]:
    """The flips of rotation-free affines `theta` [B, 2, 3] (diagonal +-1) by index reversal:
    exactly what `warp` computes for them (output pixel j reads input pixel W - 1 - j), without
    resampling. x [B, C, H, W], y [B, H, W]."""
    fx = (theta[:, 0, 0] < 0).to(x.device)
    fy = (theta[:, 1, 1] < 0).to(x.device)

    def apply(t: Tensor, m_x: Tensor, m_y: Tensor) -> Tensor:
        t = torch.where(m_x, t.flip(-1), t)
        return torch.where(m_y, t.flip(-2), t)

    x_out = apply(x, fx.view(-1, 1, 1, 1), fy.view(-1, 1, 1, 1))
    y_out = None if y is None else apply(y, fx.view(-1, 1, 1), fy.view(-1, 1, 1))
    return x_out, y_out


def warp(x: Tensor, y: Tensor | None, theta: Tensor) -> tuple[Tensor, Tensor | None]:
    """Apply per-image affines: x [B, C, H, W] bilinear, y [B, H, W] integer nearest; zero fill."""
    grid = F.affine_grid(theta.to(x.device, torch.float32), list(x.shape), align_corners=False)
    x_out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)
    if y is None:
        return x_out, None
    y_out = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x_out, y_out[:, 0].round().to(y.dtype)


class CommonAugment:
    """Callable `(x, y | None) -> (x, y | None)`; draws one transform per image from `generator`."""

    def __init__(self, cfg: AugmentConfig, generator: torch.Generator):
        cfg.validate()
        self.cfg = cfg
        self.generator = generator

    @property
    def active(self) -> bool:
        return self.cfg.rotate_deg > 0 or self.cfg.hflip > 0 or self.cfg.vflip > 0 or self.cfg.jitter > 0

    def __call__(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if x.shape[0] == 0 or not self.active:
            return x, y
        if self.cfg.jitter > 0:
            x = grey_jitter(x, *random_jitter(x.shape[0], self.cfg, self.generator, x.device))
        theta = random_affines(x.shape[0], x.shape[-2], x.shape[-1], self.cfg, self.generator)
        if self.cfg.rotate_deg == 0:
            return flip_only(x, y, theta)
        return warp(x, y, theta)


def random_jitter(n: int, cfg: AugmentConfig, generator: torch.Generator, device) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image ColorJitter draws on the CPU generator: brightness and contrast factors (1 where
    the jitter is not applied) and whether brightness comes first. [n,1,1,1] each."""
    r = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    applied = r[:, 0] < cfg.jitter

    def factor(u: Tensor, strength: float) -> Tensor:  # U(max(0, 1 - s), 1 + s) where applied
        low = max(0.0, 1 - strength)
        return torch.where(applied, low + u * (1 + strength - low), 1.0).float()

    fb, fc, first = factor(r[:, 1], cfg.brightness), factor(r[:, 2], cfg.contrast), r[:, 3] < 0.5
    return tuple(t.view(n, 1, 1, 1).to(device) for t in (fb, fc, first))


def grey_jitter(x: Tensor, fb: Tensor, fc: Tensor, brightness_first: Tensor) -> Tensor:
    """torchvision ColorJitter's brightness and contrast on grey images in [0, 1] (saturation and
    hue do nothing to a grey slice copied to three channels): brightness multiplies, contrast
    blends with the image's mean grey level, each clamps to [0, 1]; per-image order."""

    def bright(t: Tensor) -> Tensor:
        return (t * fb).clamp(0, 1)

    def contr(t: Tensor) -> Tensor:
        return (fc * t + (1 - fc) * t.mean(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)

    return torch.where(brightness_first, contr(bright(x)), bright(contr(x)))
