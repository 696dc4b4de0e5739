"""Per-case, per-class segmentation metrics on 3D label volumes: Dice, Jaccard, HD95, ASD.

Definitions (medpy 0.5 semantics, reproduced with scipy and checked against medpy in the tests):

- Dice = 2|P∩R| / (|P| + |R|); Jaccard = |P∩R| / |P∪R|.
- surface of a mask = mask XOR binary_erosion(mask, connectivity-1 structure) (face neighbours;
  voxels outside the volume count as background);
- d(A→B) = for every surface voxel of A, the Euclidean distance (in the units of `spacing`) to
  the nearest surface voxel of B, from `scipy.ndimage.distance_transform_edt(~surface_B,
  sampling=spacing)`;
- HD95 = 95th percentile (numpy's linear interpolation) of the *pooled* distances
  d(P→R) ∪ d(R→P), exactly medpy's `hd95` (MONAI instead takes the max of the two directed
  95th percentiles, which is ≥ this value);
- ASD = mean of d(P→R), exactly medpy's `asd(pred, ref)` — directed, prediction to reference, as
  SSL4MIS/ABD/SPCL report it (the symmetric ASSD would pool both directions).

HD95 is reported twice: `hd95_mm` with the case's spacing (z, y, x) in mm, and `hd95_px` with unit
spacing — the published SSL4MIS/SPCL/UGPCL convention (medpy called without `voxelspacing`), in
voxel steps of the (z, y, x) grid. On cardiac cine MRI (z spacing 5–10 mm, in-plane ~1.5 mm) a
one-slice error is 1 px but 10 mm, so the two rankings can differ (docs/metrics.md).

Speed: distances are computed on the bounding box of P ∪ R padded by one background voxel.
This gives exactly the full-volume values: every surface voxel lies in the box, the padding makes
the erosion see the same (background) neighbours as at the volume edge, and a distance to the
nearest surface voxel does not depend on voxels that are not surface voxels.

Empty masks (`EMPTY_POLICY`, the default): medpy raises, and every public code base patches it
differently (docs/metrics.md). Here:
- both empty (the structure is absent and none is predicted): Dice = Jaccard = 1, HD95 = ASD = 0
  — a correct answer is a perfect score;
- exactly one empty (a missed or hallucinated structure): Dice = Jaccard = 0 and HD95/ASD = the
  diagonal of the volume (in mm for `*_mm`, in voxel steps for `hd95_px`), the largest distance
  two voxels of the grid can have. It is a finite worst case, so the case stays in every mean
  (NaN would be dropped silently by pandas' mean and reward a method that misses a structure
  entirely), and it is an upper bound on any HD95 a non-empty prediction can get, so missing a
  structure never scores better than finding it anywhere. BraTS uses the same rule (373.13 mm is
  the diagonal of its 240×240×155 grid).

Paper-compatible mode (`paper_compatible=True`) reproduces SPCL's evaluation code
(Jrstud203/SPCL `dgcl/metrics/metrics.py`, which agrees with SSL4MIS's `test_2D_fully.py` whenever
no mask is empty):
- an empty prediction of a present class is replaced by an all-ones mask over the whole volume
  before HD95 and ASD (`preds_ = (preds_ == 0)`), giving a large but grid-dependent distance;
  its Dice/Jaccard are 0;
- Dice and Jaccard of two empty masks are NaN (SPCL divides 0 by 0 in torch);
- HD95/ASD with an empty reference are NaN (medpy raises there, so SPCL's code would stop).
Units are unchanged: `hd95_px` is the published number (no spacing); `hd95_mm` and `asd_mm` apply
the same substitution with physical spacing. SPCL scores labels resized to 224 px; by default we
score the native grid, and `evaluation.grid: official` (methods/evaluation/inference.py, `official_grid_prediction`) scores SPCL's grid.
Not reproduced: ASD in pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from methods.results_schema import METRIC_COLUMNS

METRIC_NAMES = METRIC_COLUMNS  # the fields of ClassMetrics, as the per-case table names them

EMPTY_POLICY = (
    "both empty: dice=jaccard=1, hd95=asd=0; exactly one empty: dice=jaccard=0, "
    "hd95=asd=volume diagonal (mm, or voxel steps for hd95_px)"
)


@dataclass(frozen=True)
class ClassMetrics:
    """The metrics of one foreground class in one case (distances in mm except `hd95_px`)."""

    dice: float
    jaccard: float
    hd95_mm: float
    hd95_px: float
    asd_mm: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check_spacing(spacing: Sequence[float], ndim: int) -> np.ndarray:
    sp = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if sp.size != ndim or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be {ndim} positive numbers in array axis order, got {tuple(spacing)}")
    return sp


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    if pred.ndim == 0:
        raise ValueError("masks must have at least one dimension")
    return pred, ref


def volume_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Largest distance between two voxel centres of a grid: the worst-case surface distance."""
    sp = _check_spacing(spacing, len(shape))
    extent = (np.asarray(shape, dtype=np.float64) - 1.0) * sp
    return float(np.sqrt(np.sum(extent**2)))


def _padded_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of `mask` (non-empty) as slices; padding is added by `_crop`."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other)) if other else np.flatnonzero(mask)
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _crop(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks on the bounding box of their union, padded by one background voxel per side."""
    box = _padded_box(pred | ref)
    return np.pad(pred[box], 1), np.pad(ref[box], 1)


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = generate_binary_structure(mask.ndim, 1)
    return mask ^ binary_erosion(mask, structure=structure, iterations=1)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (d(pred→ref), d(ref→pred)) of two non-empty binary masks.

    `spacing` is per array axis (None = unit spacing). Equal to medpy's private
    `__surface_distances(pred, ref)` and `(ref, pred)` with connectivity 1.
    """
    pred, ref = _check_pair(pred, ref)
    sp = None if spacing is None else _check_spacing(spacing, pred.ndim)
    if not pred.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks (see EMPTY_POLICY)")
    pred_c, ref_c = _crop(pred, ref)
    return _directed_pair(_surface(pred_c), _surface(ref_c), sp)


def _directed_pair(pred_surf: np.ndarray, ref_surf: np.ndarray, sp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    d_pred_to_ref = distance_transform_edt(~ref_surf, sampling=sp)[pred_surf]
    d_ref_to_pred = distance_transform_edt(~pred_surf, sampling=sp)[ref_surf]
    return d_pred_to_ref, d_ref_to_pred


def hd95_from(d_pred_to_ref: np.ndarray, d_ref_to_pred: np.ndarray) -> float:
    """medpy's HD95: 95th percentile of the pooled directed distances."""
    return float(np.percentile(np.concatenate([d_pred_to_ref, d_ref_to_pred]), 95))


def binary_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    paper_compatible: bool = False,
) -> ClassMetrics:
    """All metrics of one binary prediction against one binary reference (see module docstring).

    `spacing` is in mm per array axis, e.g. (z, y, x) for [Z, H, W] volumes.
    """
    pred, ref = _check_pair(pred, ref)
    sp = _check_spacing(spacing, pred.ndim)
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    inter = int(np.count_nonzero(pred & ref))
    union = n_pred + n_ref - inter

    if n_pred and n_ref:
        return _overlap_and_distances(pred, ref, sp, inter, n_pred + n_ref, union)
    if paper_compatible:
        return _paper_empty_case(pred, ref, sp, n_pred, n_ref)
    if not n_pred and not n_ref:
        return ClassMetrics(1.0, 1.0, 0.0, 0.0, 0.0)
    worst_mm = volume_diagonal(pred.shape, sp)
    worst_px = volume_diagonal(pred.shape, np.ones(pred.ndim))
    return ClassMetrics(0.0, 0.0, worst_mm, worst_px, worst_mm)


def _overlap_and_distances(
    pred: np.ndarray, ref: np.ndarray, sp: np.ndarray, inter: int, total: int, union: int
) -> ClassMetrics:
    pred_c, ref_c = _crop(pred, ref)
    pred_surf, ref_surf = _surface(pred_c), _surface(ref_c)
    mm_pr, mm_rp = _directed_pair(pred_surf, ref_surf, sp)
    px_pr, px_rp = _directed_pair(pred_surf, ref_surf, None)
    return ClassMetrics(
        dice=2.0 * inter / total,
        jaccard=inter / union,
        hd95_mm=hd95_from(mm_pr, mm_rp),
        hd95_px=hd95_from(px_pr, px_rp),
        asd_mm=float(mm_pr.mean()),
    )


def _paper_empty_case(pred: np.ndarray, ref: np.ndarray, sp: np.ndarray, n_pred: int, n_ref: int) -> ClassMetrics:
    """SPCL's `dgcl/metrics/metrics.py` when a mask is empty (see the module docstring)."""
    nan = math.nan
    if not n_ref:
        overlap = nan if not n_pred else 0.0  # 0/0 in SPCL's torch Dice; 0 when only pred is set
        return ClassMetrics(overlap, overlap, nan, nan, nan)
    all_ones = np.ones_like(pred)
    n_all = all_ones.size
    full = _overlap_and_distances(all_ones, ref, sp, n_ref, n_all + n_ref, n_all)
    return ClassMetrics(0.0, 0.0, full.hd95_mm, full.hd95_px, full.asd_mm)


def case_metrics(
    pred: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float],
    class_names: Sequence[str],
    paper_compatible: bool = False,
) -> list[dict[str, float | str]]:
    """One dict per foreground class (label value k = class_names[k - 1]) of one case.

    pred, label: integer label volumes of the same shape ([Z, H, W]); spacing in mm per axis.
    Returns [{"class_name": name, "dice": ..., "jaccard": ..., "hd95_mm": ..., "hd95_px": ...,
    "asd_mm": ...}, ...] in class order.
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f"prediction shape {pred.shape} != label shape {label.shape}")
    rows = []
    for k, name in enumerate(class_names, start=1):
        m = binary_metrics(pred == k, label == k, spacing, paper_compatible=paper_compatible)
        rows.append({"class_name": str(name), **m.as_dict()})
    return rows
