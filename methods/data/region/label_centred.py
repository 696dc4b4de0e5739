"""The official SPCL input as a region mode: `data.region: label_centred`.

The official loader (Jrstud203/SPCL, `centerAlignAndDataAugVal` -> `centerCrop128Slice`) crops
every 2D slice around its **ground-truth** heart, in training and at test time:

1. centre (per slice, native pixels, truncated to integers as `int(mean)`): the centroid of the
   LV cavity; where the slice has none, of the myocardium; else of the RV, moved 10 rows down;
2. window: `crop_px` x `crop_px` native pixels (official 160), rows `c_y - 80 - 24 .. c_y + 80 - 24`
   (moved up by 24 rows, scaled with `crop_px`), columns `c_x - 80 .. c_x + 80`; outside the slice
   the edge row/column is repeated;
3. per-slice min-max of the cropped image to [0, 1];
4. zoom to `img_size` with order 0 (nearest), image and label (`scipy.ndimage.zoom`, as the official
   `RandomGenerator`); the grey slice is repeated to 3 channels by the official network itself
   (`network: paper_official`), not here.

The class names of the cache pick the structures (LV, then MYO, then RV); a dataset without them
(never the case for ACDC, M&Ms, SCD and the phantom) centres on all foreground.

Deliberate additions, both documented in docs/methods.md:
- a slice without any foreground takes the centre of the nearest slice (by index) that has one;
  the official code would fail there (its ACDC_aligned slices all contain the heart). A case with
  no foreground at all is a `ConfigError`: there is no label to centre on.
- `data.test_centre: predicted` keeps the label-centred crops in training but places each test
  crop without the test label: a first pass on a crop at the slice centre, then each slice is
  re-centred by the same rule applied to that prediction (the decomposition experiment's
  "test-time crop" step). `test_centre: label` is the official behaviour.

`to_native` inverts the zoom and the crop exactly (native pixel a of the window reads the network
grid at a (S - 1) / (P - 1), bilinear on the logits); native pixels outside the window are
background, so metrics stay native-grid metrics with the case's spacing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from methods.data.region.base import OFFICIAL_CROP_PX, OFFICIAL_ROW_SHIFT, Region, RegionSpec
from methods.errors import ConfigError
from methods.tensors import class_argmax

#: the official order of structures to centre on, and the row offset of the RV fallback
CENTRE_PRIORITY = ("LV", "MYO", "RV")
RV_ROW_OFFSET = 10


def centre_labels(class_names: Sequence[str]) -> list[tuple[int, int]]:
    """[(label value, row offset)] in the official priority order, from the cache's names."""
    values = {str(n).upper(): k for k, n in enumerate(class_names, start=1)}
    return [(values[n], RV_ROW_OFFSET if n == "RV" else 0) for n in CENTRE_PRIORITY if n in values]


def slice_centres(label: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Official per-slice centres of a label volume [Z, H, W]: int64 [Z, 2] (row, column); a row
    of -1 where the slice has no foreground."""
    order = centre_labels(class_names)
    out = np.full((label.shape[0], 2), -1, dtype=np.int64)
    for z, sl in enumerate(label):
        for value, row_offset in order or [(None, 0)]:
            mask = sl > 0 if value is None else sl == value
            rows, cols = np.nonzero(mask)
            if rows.size:
                out[z] = (int(rows.mean()) + row_offset, int(cols.mean()))
                break
    return out


def fill_missing(centres: np.ndarray, where: str) -> np.ndarray:
    """Slices without a centre (-1) take the nearest slice's (lower index first on ties)."""
    have = np.flatnonzero(centres[:, 0] >= 0)
    if have.size == 0:
        raise ConfigError(f"{where}: the label has no foreground voxel, so data.region 'label_centred' has nothing to centre on")
    out = centres.copy()
    for z in np.flatnonzero(centres[:, 0] < 0):
        out[z] = centres[have[np.argmin(np.abs(have - z))]]
    return out


class LabelCentredRegion(Region):
    """`data.region: label_centred` (module docstring). Centres are int64 [Z, 2] arrays."""

    def __init__(self, spec: RegionSpec, class_names: Sequence[str] = ()):
        self.spec = spec
        self.class_names = tuple(class_names)
        self.crop_px = int(spec.crop_px)
        self.row_shift = int(round(OFFICIAL_ROW_SHIFT * self.crop_px / OFFICIAL_CROP_PX))

    # ---- centres ------------------------------------------------------------------------------------
    def label_centres(self, label: np.ndarray | None, where: str) -> np.ndarray:
        if label is None:
            raise ConfigError(f"{where}: data.region 'label_centred' needs the case's label, and the case has none")
        return fill_missing(slice_centres(np.asarray(label), self.class_names), where)

    def training_centre(self, case):
        return self.label_centres(case.label, case.source or case.case_id)

    @property
    def needs_first_pass(self) -> bool:
        return self.spec.test_centre == "predicted"

    def evaluation_centre(self, case):
        if self.spec.test_centre == "label":
            return self.label_centres(case.label, case.source or case.case_id)
        z, h, w = case.image.shape
        return np.tile(np.array([[h // 2 + self.row_shift, w // 2]], dtype=np.int64), (z, 1))

    def refine_centre(self, pred, centre):
        found = slice_centres(np.asarray(pred), self.class_names)
        if (found[:, 0] < 0).all():
            return centre
        return fill_missing(found, "first-pass prediction")

    def describe_centre(self, centre) -> str:
        c = np.asarray(centre, dtype=np.float64)
        return f"{c[:, 0].mean():.2f};{c[:, 1].mean():.2f} (mean of per-slice centres)"

    def centre_slice(self, centre, sl: slice):
        return np.asarray(centre)[sl]

    def base_centre(self, shape, spacing):
        raise ConfigError("data.region 'label_centred' has no label-free centre; it centres on each slice's label")

    def _centres(self, centre, z: int) -> np.ndarray:
        if centre is None:
            raise ConfigError("data.region 'label_centred' needs per-slice centres (Region.training_centre)")
        c = np.asarray(centre, dtype=np.int64).reshape(-1, 2)
        if c.shape[0] != z:
            raise ValueError(f"label_centred: {c.shape[0]} centres for {z} slices")
        return c

    # ---- the window ---------------------------------------------------------------------------------
    def _window(self, c: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Native row and column indices [P] of one slice's window, edge-replicated (clipped)."""
        half = self.crop_px // 2
        r0, c0 = int(c[0]) - half - self.row_shift, int(c[1]) - half
        rows = np.clip(np.arange(r0, r0 + self.crop_px), 0, hw[0] - 1)
        cols = np.clip(np.arange(c0, c0 + self.crop_px), 0, hw[1] - 1)
        return rows, cols

    def _crops(self, volume: np.ndarray, centres: np.ndarray) -> np.ndarray:
        return np.stack([sl[np.ix_(*self._window(c, sl.shape))] for sl, c in zip(volume, centres)])

    def _zoom(self, crops: np.ndarray) -> np.ndarray:
        f = self.img_size / self.crop_px
        return ndimage.zoom(crops, (1, f, f), order=0)

    def images(self, image, spacing, centre=None):
        crops = self._crops(np.asarray(image, dtype=np.float32), self._centres(centre, image.shape[0]))
        lo = crops.min(axis=(1, 2), keepdims=True)
        span = crops.max(axis=(1, 2), keepdims=True) - lo
        crops = np.where(span > 0, (crops - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(self._zoom(crops)))[:, None]

    def labels(self, label, spacing, centre=None):
        crops = self._crops(np.asarray(label), self._centres(centre, label.shape[0]))
        return torch.from_numpy(np.ascontiguousarray(self._zoom(crops)).astype(np.uint8))

    def to_native(self, logits: Tensor, native_hw, spacing, centre=None) -> Tensor:
        h, w = native_hw
        n, s, p = logits.shape[0], self.img_size, self.crop_px
        centres = self._centres(centre, n)
        half = p // 2
        r0 = torch.as_tensor(centres[:, 0] - half - self.row_shift, dtype=torch.float64)  # [N]
        c0 = torch.as_tensor(centres[:, 1] - half, dtype=torch.float64)
        a_y = torch.arange(h, dtype=torch.float64)[None] - r0[:, None]  # [N, H] window index of each native row
        a_x = torch.arange(w, dtype=torch.float64)[None] - c0[:, None]  # [N, W]
        inside = ((a_y >= 0) & (a_y <= p - 1))[:, :, None] & ((a_x >= 0) & (a_x <= p - 1))[:, None, :]
        scale = (s - 1) / (p - 1)  # scipy zoom (grid_mode=False) maps corner pixels onto corner pixels
        gy = 2 * (a_y * scale) / (s - 1) - 1
        gx = 2 * (a_x * scale) / (s - 1) - 1
        grid = torch.stack([gx[:, None, :].expand(n, h, w), gy[:, :, None].expand(n, h, w)], dim=-1)
        native = F.grid_sample(logits.float(), grid.to(logits.device, torch.float32), mode="bilinear",
                               padding_mode="border", align_corners=True)
        labels = class_argmax(native)
        return torch.where(inside.to(labels.device), labels, torch.zeros_like(labels))

    def grid_spacing_mm(self, spacing, native_hw):
        return (self.crop_px * float(spacing[-2]) / self.img_size, self.crop_px * float(spacing[-1]) / self.img_size)

    def official_grid(self, size):
        return LabelCentredRegion(replace(self.spec, img_size=int(size)), self.class_names)
