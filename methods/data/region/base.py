"""The region stage's contract (`Region`, `RegionSpec`) and its two label-free modes: which part of
each short-axis slice the network sees, at what pixel size, and the exact way back to the native
grid. The package (`methods.data.region`) picks a mode; `label_centred` is the third.

Between the prepared cache (native grids, spacing in mm) and the network sit two modes:

- `whole` (the phantom default, SSL4MIS's input): every slice is resized as a whole to
  `img_size` x `img_size` (bilinear, antialiased when shrinking; labels nearest-exact), so a
  non-square slice is stretched and the pixel size depends on each case's field of view.
- `crop`: a square field of view of `fov_mm` millimetres, resampled to `spacing_mm` millimetres
  per pixel (`img_size = fov_mm / spacing_mm`), centred on a label-free point. Pixel size and
  anatomy size in pixels are then the same for every case, whatever its acquisition grid.
  Anisotropic in-plane spacing is honoured per axis. Centres (`centre`):
    - `image`: the centre of the slice;
    - `labelled_mean`: the image centre plus the mean offset (mm) of the heart's centroid from the
      image centre over the labelled training cases, computed when the split is made and stored in
      the split file (`heart_centre`); no label of any other case is read;
    - `two_pass`: training crops use `labelled_mean`; at evaluation a first pass at that centre
      predicts the heart, and the crop is re-centred on the centroid of that prediction (one
      centre per 3D case; the first pass's centre when it predicts no foreground).

Geometry of a crop (pixel k of an axis has its centre at coordinate k): network pixel i of an axis
samples the native coordinate `c + (i - (S - 1) / 2) * t / s` (c the centre in native pixels,
t the target and s the native spacing in mm), and native pixel y reads the network grid at
`(y - c) * s / t + (S - 1) / 2`. Images are resampled bilinearly after a Gaussian pre-filter
when shrinking (sigma = (t / s - 1) / 2 native pixels, scikit-image's `resize` anti-aliasing rule);
outside the native slice the image is 0 (the normalised minimum). Labels are sampled nearest.
`to_native` resamples the network's logits bilinearly to every native pixel inside the field of
view and labels every pixel outside it background, so metrics stay native-grid 3D metrics with the
case's spacing. With t = s and a centre on the pixel lattice both directions are exact copies.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from methods.errors import ConfigError
from methods.tensors import class_argmax

REGION_MODES = ("whole", "crop", "label_centred")
CENTRES = ("image", "labelled_mean", "two_pass")
TEST_CENTRES = ("label", "predicted")  # label_centred only
#: the official crop: 160 native pixels, window moved up by 24 rows (rows c-104 .. c+55)
OFFICIAL_CROP_PX = 160
OFFICIAL_ROW_SHIFT = 24
SPLIT_KEY = "heart_centre"


# --- whole-slice resizing (the `whole` mode; also used by the loaders' helpers) ---------------------
def resize_images(images: Tensor, img_size: int) -> Tensor:
    """[N, H, W] float -> [N, 1, S, S] float32, bilinear (antialiased when shrinking)."""
    x = images.float()[:, None]
    if tuple(x.shape[-2:]) == (img_size, img_size):
        return x.contiguous()
    return F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True)


def resize_labels(labels: Tensor, img_size: int) -> Tensor:
    """[N, H, W] integer -> [N, S, S] uint8, nearest-exact (pixel-centre aligned, like scipy order 0)."""
    y = labels[:, None].float()
    if tuple(y.shape[-2:]) != (img_size, img_size):
        y = F.interpolate(y, size=(img_size, img_size), mode="nearest-exact")
    return y[:, 0].round().to(torch.uint8)


def resize_to_native(logits: Tensor, native_hw: tuple[int, int]) -> Tensor:
    """Undo the whole-slice resize for evaluation: [N, C, S, S] -> [N, C, H, W], bilinear."""
    if tuple(logits.shape[-2:]) == tuple(native_hw):
        return logits
    return F.interpolate(logits, size=tuple(native_hw), mode="bilinear", align_corners=False)


# --- heart-centre statistics of the labelled training cases -----------------------------------------
def heart_offset_mm(label: np.ndarray, spacing: Sequence[float]) -> tuple[float, float] | None:
    """Offset (dy, dx) in mm of the foreground centroid of a label volume [Z, H, W] from the slice
    centre; None when the volume has no foreground."""
    zz, yy, xx = np.nonzero(label)
    if yy.size == 0:
        return None
    _, h, w = label.shape
    return (float(yy.mean() - (h - 1) / 2) * float(spacing[1]), float(xx.mean() - (w - 1) / 2) * float(spacing[2]))


def labelled_heart_centre(cache, patient_ids: Sequence[str]) -> dict:
    """The split's `heart_centre` record: mean foreground-centroid offset (mm) of the cases of the
    labelled training patients. Raises ConfigError when there is none to average."""
    offsets, used = [], []
    for case_id in cache.cases_of(patient_ids) if patient_ids else []:
        case = cache.load(case_id)
        offset = heart_offset_mm(case.label, case.spacing)
        if offset is not None:
            offsets.append(offset)
            used.append(case_id)
    if not offsets:
        raise ConfigError(
            f"cache {cache.root}: the labelled training patients {list(patient_ids)[:5]} have no foreground "
            "voxel, so there is no heart-centre statistic for the crop (data.centre: labelled_mean)"
        )
    mean = np.mean(np.asarray(offsets), axis=0)
    return {
        "offset_mm": [round(float(mean[0]), 4), round(float(mean[1]), 4)],
        "cases": used,
        "rule": "mean over the labelled training cases of (foreground centroid - slice centre), mm, (y, x)",
    }


# --- the configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegionSpec:
    """What `data.region`, `spacing_mm`, `fov_mm`, `centre` and `img_size` of a run config say."""

    mode: str = "whole"
    img_size: int = 256
    spacing_mm: float = 0.0
    fov_mm: float = 0.0
    centre: str = "image"
    crop_px: int = OFFICIAL_CROP_PX  # label_centred only
    test_centre: str = "label"  # label_centred only

    @property
    def uses_test_label(self) -> bool:
        """True when the evaluated case's own label places its input (label_centred, centre 'label')."""
        return self.mode == "label_centred" and self.test_centre == "label"

    def validate(self) -> None:
        if self.mode not in REGION_MODES:
            raise ConfigError(f"data.region must be one of {list(REGION_MODES)}, got {self.mode!r}")
        if self.mode == "whole":
            return
        if self.mode == "label_centred":
            if not (isinstance(self.crop_px, int) and self.crop_px >= 8):
                raise ConfigError(f"data.crop_px must be an integer number of native pixels >= 8, got {self.crop_px!r}")
            if self.test_centre not in TEST_CENTRES:
                raise ConfigError(f"data.test_centre must be one of {list(TEST_CENTRES)}, got {self.test_centre!r}")
            return
        if not (self.spacing_mm > 0 and math.isfinite(self.spacing_mm)):
            raise ConfigError(f"data.spacing_mm must be a positive number of mm per pixel for region 'crop', got {self.spacing_mm!r}")
        if not (self.fov_mm > 0 and math.isfinite(self.fov_mm)):
            raise ConfigError(f"data.fov_mm must be a positive field of view in mm for region 'crop', got {self.fov_mm!r}")
        if self.centre not in CENTRES:
            raise ConfigError(f"data.centre must be one of {list(CENTRES)}, got {self.centre!r}")
        pixels = self.fov_mm / self.spacing_mm
        if abs(pixels - self.img_size) > 1e-6 * max(1.0, pixels):
            raise ConfigError(
                f"data.fov_mm {self.fov_mm:g} / data.spacing_mm {self.spacing_mm:g} = {pixels:g} px, "
                f"but data.img_size is {self.img_size}; they must agree"
            )

    def describe(self) -> str:
        """One line for logs, CSV provenance and reports."""
        if self.mode == "whole":
            return f"whole slice resized to {self.img_size} px"
        if self.mode == "label_centred":
            at_test = ("the test label places the test crop" if self.test_centre == "label"
                       else "the test crop is placed by a first-pass prediction")
            return (f"label-centred {self.crop_px} px crop zoomed to {self.img_size} px (official SPCL input; "
                    f"{at_test})")
        return f"crop {self.fov_mm:g} mm at {self.spacing_mm:g} mm/px ({self.img_size} px), centre {self.centre}"


class Region(ABC):
    """Maps a case's native slices to the network grid and network outputs back (module docstring)."""

    spec: RegionSpec

    @property
    def img_size(self) -> int:
        return self.spec.img_size

    @property
    def needs_first_pass(self) -> bool:
        """True when evaluation re-centres on a first-pass prediction (`two_pass`)."""
        return False

    def describe(self) -> str:
        return self.spec.describe()

    @property
    def uses_test_label(self) -> bool:
        """True when an evaluated case's own label places its input (flagged in CSVs and reports)."""
        return self.spec.uses_test_label

    def base_centre(self, shape: tuple[int, int], spacing: Sequence[float]) -> tuple[float, float] | None:
        """The label-free centre (native pixel coordinates y, x) of a case; None for `whole`."""
        return None

    def training_centre(self, case):
        """Where a training case's input is placed (None: `base_centre`)."""
        return None

    def evaluation_centre(self, case):
        """Where an evaluated case's (first-pass) input is placed."""
        return self.base_centre(case.image.shape[-2:], case.spacing)

    def refine_centre(self, pred: np.ndarray, centre):
        """The second-pass centre from a first-pass prediction [Z, H, W] (`needs_first_pass`)."""
        return prediction_centre(pred, centre)

    def centre_slice(self, centre, sl: slice):
        """The part of a case's centre that belongs to slices `sl` (per-slice centres are sliced)."""
        return centre

    def describe_centre(self, centre) -> str:
        """The CSV's `region_centre`: native "y;x" pixels, empty for the whole slice."""
        return "" if centre is None else f"{centre[0]:.2f};{centre[1]:.2f}"

    @abstractmethod
    def grid_spacing_mm(self, spacing: Sequence[float], native_hw: tuple[int, int]) -> tuple[float, float]:
        """In-plane pixel size (mm; y, x) of this region's network grid for a case."""

    def official_grid(self, size: int) -> "Region":
        """This region with its network grid resampled to `size` px over the same field of view:
        the grid the official evaluation scores on (methods/official_eval.py)."""
        raise ConfigError(f"the official evaluation grid is not defined for data.region {self.spec.mode!r}")

    # not abstract on purpose: a region that needs no spacing accepts every case (B027)
    def check_spacing(self, spacing: Sequence[float], where: str) -> None:  # noqa: B027
        """Raise ConfigError naming `where` when the region needs a spacing the case lacks."""

    def check_cache(self, cache) -> None:
        """`check_spacing` on every case a prepared cache lists (before any training starts)."""
        for case_id in cache.case_ids:
            self.check_spacing(cache.entry(case_id).get("spacing", ()), f"{cache.root}/dataset.json, case {case_id}")

    @abstractmethod
    def images(self, image: np.ndarray, spacing: Sequence[float], centre=None) -> Tensor:
        """[Z, H, W] float native slices -> [Z, 1, S, S] float32 network input."""

    @abstractmethod
    def labels(self, label: np.ndarray, spacing: Sequence[float], centre=None) -> Tensor:
        """[Z, H, W] integer native labels -> [Z, S, S] uint8 on the network grid."""

    @abstractmethod
    def to_native(self, logits: Tensor, native_hw: tuple[int, int], spacing: Sequence[float], centre=None) -> Tensor:
        """[N, C, S, S] network logits -> [N, H, W] int64 native labels; `centre` (native y, x
        pixels) defaults to `base_centre`."""


class WholeSlice(Region):
    def __init__(self, spec: RegionSpec):
        self.spec = spec

    def images(self, image, spacing, centre=None):
        return resize_images(torch.from_numpy(np.ascontiguousarray(image)), self.img_size)

    def labels(self, label, spacing, centre=None):
        return resize_labels(torch.from_numpy(np.ascontiguousarray(label)), self.img_size)

    def to_native(self, logits, native_hw, spacing, centre=None):
        return class_argmax(resize_to_native(logits.float(), native_hw))

    def official_grid(self, size):
        return WholeSlice(replace(self.spec, img_size=int(size)))

    def grid_spacing_mm(self, spacing, native_hw):
        return (native_hw[0] * float(spacing[-2]) / self.img_size, native_hw[1] * float(spacing[-1]) / self.img_size)


class CropRegion(Region):
    def __init__(self, spec: RegionSpec, offset_mm: tuple[float, float] = (0.0, 0.0)):
        self.spec = spec
        self.offset_mm = offset_mm

    @property
    def needs_first_pass(self) -> bool:
        return self.spec.centre == "two_pass"

    def check_spacing(self, spacing, where):
        values = list(spacing) if spacing is not None else []
        ok = len(values) >= 2 and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values[-2:])
        if not ok:
            raise ConfigError(
                f"{where}: in-plane spacing {values[-2:] if values else 'missing'} is not a positive number of mm, "
                f"which data.region 'crop' needs to resample to {self.spec.spacing_mm:g} mm per pixel"
            )

    def grid_spacing_mm(self, spacing, native_hw):
        return (self.spec.spacing_mm, self.spec.spacing_mm)

    def official_grid(self, size):
        return CropRegion(replace(self.spec, img_size=int(size), spacing_mm=self.spec.fov_mm / int(size)), self.offset_mm)

    def base_centre(self, shape, spacing):
        h, w = shape[-2:]
        return ((h - 1) / 2 + self.offset_mm[0] / float(spacing[-2]), (w - 1) / 2 + self.offset_mm[1] / float(spacing[-1]))

    def _centre(self, shape, spacing, centre):
        return self.base_centre(shape, spacing) if centre is None else centre

    def _native_coords(self, spacing, centre) -> tuple[Tensor, Tensor]:
        """Native coordinates (y [S], x [S]) of the network grid's pixel centres."""
        s, t = self.img_size, self.spec.spacing_mm
        steps = torch.arange(s, dtype=torch.float64) - (s - 1) / 2
        return centre[0] + steps * t / float(spacing[-2]), centre[1] + steps * t / float(spacing[-1])

    @staticmethod
    def _sample(volume: Tensor, ys: Tensor, xs: Tensor, hw: tuple[int, int], mode: str) -> Tensor:
        """grid_sample of [N, C, H, W] at the native coordinates ys [Ho], xs [Wo]; zero outside."""
        h, w = hw
        gy = (2 * ys / max(h - 1, 1) - 1) if h > 1 else torch.zeros_like(ys)
        gx = (2 * xs / max(w - 1, 1) - 1) if w > 1 else torch.zeros_like(xs)
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)  # [Ho, Wo, 2] as (x, y)
        grid = grid.to(volume.device, torch.float32)[None].expand(volume.shape[0], -1, -1, -1)
        return F.grid_sample(volume, grid, mode=mode, padding_mode="zeros", align_corners=True)

    def images(self, image, spacing, centre=None):
        z, h, w = image.shape
        centre = self._centre((h, w), spacing, centre)
        sigma = [0.0, *(max(0.0, (self.spec.spacing_mm / float(s) - 1) / 2) for s in spacing[-2:])]
        smoothed = ndimage.gaussian_filter(image.astype(np.float32), sigma, mode="nearest") if max(sigma) > 0 else image
        ys, xs = self._native_coords(spacing, centre)
        x = torch.from_numpy(np.ascontiguousarray(smoothed, dtype=np.float32))[:, None]
        return self._sample(x, ys, xs, (h, w), "bilinear").contiguous()

    def labels(self, label, spacing, centre=None):
        z, h, w = label.shape
        centre = self._centre((h, w), spacing, centre)
        ys, xs = self._native_coords(spacing, centre)
        y = torch.from_numpy(np.ascontiguousarray(label)).float()[:, None]
        return self._sample(y, ys.round(), xs.round(), (h, w), "nearest")[:, 0].round().to(torch.uint8)

    def to_native(self, logits, native_hw, spacing, centre=None):
        h, w = native_hw
        centre = self._centre((h, w), spacing, centre)
        s, t = self.img_size, self.spec.spacing_mm
        # network-grid coordinates of every native row and column
        gy = (torch.arange(h, dtype=torch.float64) - centre[0]) * float(spacing[-2]) / t + (s - 1) / 2
        gx = (torch.arange(w, dtype=torch.float64) - centre[1]) * float(spacing[-1]) / t + (s - 1) / 2
        inside = ((gy >= -0.5) & (gy <= s - 0.5))[:, None] & ((gx >= -0.5) & (gx <= s - 0.5))[None, :]
        grid = torch.stack(torch.meshgrid(2 * gy / (s - 1) - 1, 2 * gx / (s - 1) - 1, indexing="ij")[::-1], dim=-1)
        grid = grid.to(logits.device, torch.float32)[None].expand(logits.shape[0], -1, -1, -1)
        native = F.grid_sample(logits.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
        labels = class_argmax(native)
        return torch.where(inside.to(labels.device)[None], labels, torch.zeros_like(labels))


def prediction_centre(pred: np.ndarray, fallback: tuple[float, float]) -> tuple[float, float]:
    """Foreground centroid (y, x) in native pixels of a predicted label volume [Z, H, W] (the
    `two_pass` re-centring); `fallback` when nothing is predicted."""
    _, yy, xx = np.nonzero(pred)
    if yy.size == 0:
        return fallback
    return float(yy.mean()), float(xx.mean())
