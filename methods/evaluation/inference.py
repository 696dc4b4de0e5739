"""Whole-case inference: a label volume on the case's native grid, slice by slice on the training grid.

Each short-axis slice goes through the run's region stage (`methods.data.region`: the whole slice
resized to `img_size`, or a field of view in mm around a label-free centre at a fixed pixel size);
the logits are mapped back to the native slice by the region's exact inverse (bilinear; outside a
crop's field of view is background), and the argmax gives the label on the native grid, where
methods/evaluation/evaluate.py scores it with the case's spacing. With the `two_pass` centre the
first prediction places the crop of the second. Slices go through the network in batches, in eval
mode, under `torch.inference_mode`, in the numeric path the run trained in (methods/precision.py).
`official_grid_prediction` is the official SPCL test loop's grid instead (a reported variant).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.data.loaders import as_region
from methods.data.region import Region
from methods.data.types import Case
from methods.errors import ConfigError
from methods.precision import FP32, Numerics
from methods.tensors import class_argmax

GRIDS = ("native", "official")
OFFICIAL_GRID_SIZE = 224
DEFAULT_BATCH_SIZE = 16


# --- device and inference context -----------------------------------------------------------------
def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' = CUDA when available, else CPU; 'cuda' without a GPU is an error, not a fallback."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return device


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """Eval mode and inference mode for the duration; the module's previous mode is restored."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def slice_batches(n: int, batch_size: int) -> Iterable[slice]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    return (slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size))


# --- inference --------------------------------------------------------------------------------------
def predict_case(
    predictor: nn.Module,
    case: Case,
    region: Region | int,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    numerics: Numerics = FP32,
) -> np.ndarray:
    """Label volume uint8 [Z, H, W] on the case's native grid (see the module docstring).

    `predictor` is a network whose forward returns a `NetOutput` (`method.predictor()`); it must
    already be on `device`. `region` (an int: the whole slice at that size) places the network's
    input; its `two_pass` centre is found here, from the network's own first-pass prediction.
    The case's label is never read.
    """
    return predict_case_with_centre(predictor, case, region, device, batch_size, numerics)[0]


def predict_case_with_centre(predictor, case, region, device="cpu", batch_size=DEFAULT_BATCH_SIZE, numerics=FP32):
    """`predict_case` and the centre (native y, x pixels) of the crop it used (None: whole slice)."""
    region = as_region(region)
    region.check_spacing(case.spacing, case.source or case.case_id)
    device = torch.device(device)
    centre = region.evaluation_centre(case)
    pred = _predict_at(predictor, case, region, centre, device, batch_size, numerics)
    if region.needs_first_pass:
        centre = region.refine_centre(pred, centre)
        pred = _predict_at(predictor, case, region, centre, device, batch_size, numerics)
    return pred, centre


def _predict_at(predictor, case, region: Region, centre, device, batch_size, numerics) -> np.ndarray:
    z, h, w = case.image.shape
    x = region.images(case.image, case.spacing, centre)  # [Z, 1, S, S] on the CPU
    pred = torch.empty((z, h, w), dtype=torch.uint8)
    with evaluating(predictor):
        for sl in slice_batches(z, batch_size):
            with numerics.autocast(device):
                logits = predictor(numerics.format_input(x[sl].to(device, non_blocking=True))).logits
            native = region.to_native(logits.float(), (h, w), case.spacing, region.centre_slice(centre, sl))
            pred[sl] = native.to(torch.uint8).cpu()
    return pred.numpy()


def official_grid_prediction(predictor, case: Case, region: Region, centre, size: int = OFFICIAL_GRID_SIZE,
                             device="cpu", batch_size: int = DEFAULT_BATCH_SIZE, numerics: Numerics = FP32):
    """The official SPCL test loop's grid: (pred, label, spacing) on the region's field of view
    resampled to `size` x `size` px, uint8 [Z, size, size] both, spacing (z, y, x) in mm.

    As the official validation (Jrstud203/SPCL, after U2PL's): the label is zoomed to `size` with
    order 0 from the same window the network sees, the logits are resized bilinearly to `size`
    (align_corners=True, U2PL's convention), and the argmax is scored there. Units: the published
    HD95 is `hd95_px` on this grid; `hd95_mm` uses this grid's pixel size.
    """
    if size < 8:
        raise ConfigError(f"evaluation.grid_size must be >= 8 px, got {size}")
    device = torch.device(device)
    grid = region.official_grid(size)
    x = region.images(case.image, case.spacing, centre)
    z = x.shape[0]
    pred = torch.empty((z, size, size), dtype=torch.uint8)
    with evaluating(predictor):
        for sl in slice_batches(z, batch_size):
            with numerics.autocast(device):
                logits = predictor(numerics.format_input(x[sl].to(device, non_blocking=True))).logits
            logits = F.interpolate(logits.float(), size=(size, size), mode="bilinear", align_corners=True)
            pred[sl] = class_argmax(logits).to(torch.uint8).cpu()
    label = grid.labels(case.label, case.spacing, centre).numpy()
    sy, sx = grid.grid_spacing_mm(case.spacing, case.image.shape[-2:])
    spacing = (float(case.spacing[0]) if case.has_spacing else 1.0, sy, sx)
    return pred.numpy(), label, spacing
