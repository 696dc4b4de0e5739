"""Strong views for grey-level MRI, made on the device from the weak (common-augmented) batch.

The official AD-MT and ABD pipelines build their strong views on the CPU from images in [0, 1]
(SSL4MIS slices), with torchvision's ColorJitter, PIL's GaussianBlur and a grey-noise cutout.
The harness images are normalised differently (see methods/data), so every operation here maps
each image to [0, 1] by its own min and max, applies the published operation there (including
ColorJitter's clamping to [0, 1]) and maps back. On a one-channel image ColorJitter's saturation
and hue are identities (torchvision returns grey images unchanged), so only brightness and
contrast act, in a random order per image as ColorJitter's random permutation gives. AD-MT's
round trip through uint8 (quantisation to 1/255) is not reproduced.

All draws are per image and vectorised; boxes become masks by broadcasting, never by loops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.augment import grey_jitter

# --- per-image intensity range --------------------------------------------------------------


def to_unit_range(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """x [B,1,H,W] -> (x in [0,1] per image, lo, span) so that x = lo + span * unit."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp(min=1e-6)
    return (x - lo) / span, lo, span


def uniform(b: int, low: float, high: float, g: torch.Generator, device) -> Tensor:
    return low + (high - low) * torch.rand(b, generator=g, device=device)


# --- ColorJitter and blur ---------------------------------------------------------------------


def colour_jitter_grey(unit: Tensor, brightness: float, contrast: float, g: torch.Generator) -> Tensor:
    """torchvision ColorJitter(brightness, contrast, *, *) on grey images in [0,1], per image.

    Factors are drawn uniformly in [max(0, 1 - s), 1 + s]; the arithmetic is the common
    augmentation's `grey_jitter` (brightness multiplies, contrast blends with the mean grey
    level, both clamp to [0, 1], random order per image).
    """
    b, dev = unit.shape[0], unit.device
    fb = uniform(b, max(0.0, 1 - brightness), 1 + brightness, g, dev).view(b, 1, 1, 1)
    fc = uniform(b, max(0.0, 1 - contrast), 1 + contrast, g, dev).view(b, 1, 1, 1)
    brightness_first = (torch.rand(b, generator=g, device=dev) < 0.5).view(b, 1, 1, 1)
    return grey_jitter(unit, fb, fc, brightness_first)


def gaussian_blur(x: Tensor, sigma: Tensor, max_sigma: float) -> Tensor:
    """Separable Gaussian blur with a per-image sigma [B], edge-replicated borders (as PIL)."""
    b, c, h, w = x.shape
    radius = int(math.ceil(3 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None].to(x.dtype)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, K]
    flat = x.reshape(1, b * c, h, w)
    k = kernel.repeat_interleave(c, dim=0)
    flat = F.pad(flat, (radius, radius, 0, 0), mode="replicate")
    flat = F.conv2d(flat, k.view(b * c, 1, 1, -1), groups=b * c)
    flat = F.pad(flat, (0, 0, radius, radius), mode="replicate")
    flat = F.conv2d(flat, k.view(b * c, 1, -1, 1), groups=b * c)
    return flat.view(b, c, h, w)


def chosen(p: float, b: int, g: torch.Generator, device) -> Tensor:
    """[B,1,1,1] bool: which images an operation applied with probability p acts on."""
    return (torch.rand(b, generator=g, device=device) < p).view(b, 1, 1, 1)


# --- boxes ------------------------------------------------------------------------------------


def box_mask(y0: Tensor, y1: Tensor, x0: Tensor, x1: Tensor, h: int, w: int) -> Tensor:
    """[B,H,W] bool, True inside the half-open boxes [y0, y1) x [x0, x1) (one per image)."""
    rows = torch.arange(h, device=y0.device).view(1, h, 1)
    cols = torch.arange(w, device=y0.device).view(1, 1, w)
    inside_r = (rows >= y0.view(-1, 1, 1)) & (rows < y1.view(-1, 1, 1))
    inside_c = (cols >= x0.view(-1, 1, 1)) & (cols < x1.view(-1, 1, 1))
    return inside_r & inside_c


def cutout_boxes(b: int, h: int, w: int, g: torch.Generator, device, tries: int = 64,
                 size_range=(0.02, 0.4), ratio_range=(0.3, 1 / 0.3)) -> tuple[Tensor, Tensor]:
    """ABD's `cutout_gray` box: area fraction U(0.02, 0.4), aspect U(0.3, 1/0.3), top-left corner
    uniform over the image, redrawn (size, aspect and corner together) until the box fits.

    The rejection loop is run as `tries` candidates per image at once, keeping the first that
    fits: the same distribution as the official loop. Returns (mask [B,H,W], found [B]); an image
    whose candidates all fail (probability below 1e-9 at 64 tries) gets no box.
    """
    size = uniform(b * tries, *size_range, g, device).view(b, tries) * h * w
    ratio = uniform(b * tries, *ratio_range, g, device).view(b, tries)
    bw = torch.sqrt(size / ratio).floor().long()
    bh = torch.sqrt(size * ratio).floor().long()
    x0 = (torch.rand(b, tries, generator=g, device=device) * w).floor().long()
    y0 = (torch.rand(b, tries, generator=g, device=device) * h).floor().long()
    fits = (x0 + bw <= w) & (y0 + bh <= h)
    first = torch.argmax(fits.int(), dim=1, keepdim=True)  # first fitting candidate (0 if none)
    found = fits.gather(1, first).squeeze(1)
    pick = [t.gather(1, first).squeeze(1) for t in (y0, bh, x0, bw)]
    y0_, bh_, x0_, bw_ = pick
    mask = box_mask(y0_, y0_ + bh_, x0_, x0_ + bw_, h, w) & found.view(b, 1, 1)
    return mask, found


def beta44(n: int, g: torch.Generator, device) -> Tensor:
    """Beta(4, 4) draws as the 4th smallest of 7 uniforms (exact for integer parameters)."""
    return torch.rand(n, 7, generator=g, device=device).sort(dim=1).values[:, 3]


def admt_cutmix_mask(b: int, h: int, w: int, g: torch.Generator, device) -> Tensor:
    """AD-MT's `rand_bbox`: one lambda ~ Beta(4,4) per batch, box side int(S * sqrt(1 - lambda)),
    per-image centre in [S/8, S), box [c - side//2, c + side//2) clipped to the image."""
    lam = beta44(1, g, device)
    cut_h = (h * torch.sqrt(1 - lam)).floor().long()
    cut_w = (w * torch.sqrt(1 - lam)).floor().long()
    cy = torch.randint(int(h / 8), h, (b,), generator=g, device=device)
    cx = torch.randint(int(w / 8), w, (b,), generator=g, device=device)
    y0, y1 = (cy - cut_h // 2).clamp(0, h), (cy + cut_h // 2).clamp(0, h)
    x0, x1 = (cx - cut_w // 2).clamp(0, w), (cx + cut_w // 2).clamp(0, w)
    return box_mask(y0, y1, x0, x1, h, w)


def paste_from(mask: Tensor, perm: Tensor, *tensors: Tensor) -> list[Tensor]:
    """Inside `mask` [B,H,W], take each tensor's content from image perm[i] (CutMix paste)."""
    out = []
    for t in tensors:
        m = mask if t.dim() == 3 else mask.unsqueeze(1)
        out.append(torch.where(m, t[perm], t))
    return out


# --- the two published strong views -------------------------------------------------------------


def admt_strong_view(x: Tensor, g: torch.Generator) -> Tensor:
    """AD-MT `func_strong_augs(p_color=0.8, p_blur=0.2)`: ColorJitter(0.5, 0.5, 0.5, 0.25) with
    p = 0.8, then a Gaussian blur with sigma U(0.1, 2) with p = 0.2."""
    b, dev = x.shape[0], x.device
    unit, lo, span = to_unit_range(x)
    jittered = colour_jitter_grey(unit, 0.5, 0.5, g)
    unit = torch.where(chosen(0.8, b, g, dev), jittered, unit)
    sigma = uniform(b, 0.1, 2.0, g, dev)
    unit = torch.where(chosen(0.2, b, g, dev), gaussian_blur(unit, sigma, 2.0), unit)
    return lo + span * unit


def abd_strong_view(x: Tensor, y: Tensor | None, g: torch.Generator, cutout_p: float = 0.5) -> tuple[Tensor, Tensor | None]:
    """ABD `WeakStrongAugment` strong branch: `cutout_gray` with p = 0.5 (box filled with per-pixel
    random 0/1 grey levels, i.e. the image's own min/max here, and its label set to background),
    then ColorJitter(0.8, 0.8, 0.8, 0.2), always. `y` [B,H,W] may be None (unlabelled images)."""
    b, _, h, w = x.shape
    dev = x.device
    unit, lo, span = to_unit_range(x)
    box, _ = cutout_boxes(b, h, w, g, dev)
    box = box & chosen(cutout_p, b, g, dev).view(b, 1, 1)
    noise = (torch.rand(b, 1, h, w, generator=g, device=dev) < 0.5).to(unit.dtype)
    unit = torch.where(box.unsqueeze(1), noise, unit)
    unit = colour_jitter_grey(unit, 0.8, 0.8, g)
    y_strong = None if y is None else torch.where(box, torch.zeros_like(y), y)
    return lo + span * unit, y_strong
