"""Synthetic short-axis cine MRI of the heart, written as an ACDC-format tree.

The phantom lets the whole benchmark run end to end without the real datasets: it writes
`training/patientNNN/{Info.cfg, patientNNN_frameYY.nii.gz, patientNNN_frameYY_gt.nii.gz}` for the
ED and ES frames, with labels 1 RV, 2 MYO, 3 LV (ACDC numbering), so it goes through the same
ACDC reader as real data. The model (docs/phantom.md) is built to make segmentation a shape and
context problem rather than a threshold: LV and RV blood pools are equally bright, the myocardium
is close in intensity to the chest wall and liver, papillary muscles and trabeculae sit inside the
(labelled) cavity, and a bias field, Rician noise and partial-volume blur blur the edges.

Everything is drawn from `numpy.random.default_rng([seed, patient_index])`, so a patient is the same
whatever the number of patients, and the files are identical byte for byte from the same seed
(the gzip stream is written with mtime 0 and no file name).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

PHANTOM_VERSION = 1
MANIFEST_NAME = "phantom.json"
GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")

# Tissue codes of the rendered scene; the label map keeps only the heart classes.
(AIR, SOFT, FAT, LUNG, LIVER, BONE, MARROW, AORTA, RV_WALL, RV_BLOOD, MYO, LV_BLOOD, PAPILLARY, TRABECULAE,
 STOMACH_FLUID, VESSEL) = range(16)
N_TISSUES = 16
TISSUE_TO_LABEL = np.zeros(N_TISSUES, dtype=np.uint8)
TISSUE_TO_LABEL[RV_BLOOD] = 1
TISSUE_TO_LABEL[MYO] = 2
TISSUE_TO_LABEL[[LV_BLOOD, PAPILLARY, TRABECULAE]] = 3

# Mean bSSFP-like signal per tissue, relative to blood. Myocardium sits just below chest-wall
# muscle and liver, so its outer boundary is low-contrast where it touches them.
BASE_INTENSITY = {
    AIR: 0.0, SOFT: 0.36, FAT: 0.85, LUNG: 0.06, LIVER: 0.42, BONE: 0.22, MARROW: 0.55, AORTA: 0.95,
    RV_WALL: 0.31, RV_BLOOD: 1.0, MYO: 0.30, LV_BLOOD: 1.0, PAPILLARY: 0.32, TRABECULAE: 0.62,
    STOMACH_FLUID: 0.8, VESSEL: 0.7,
}

# Per-group heart geometry (ACDC's five groups): LV cavity radius at the base (mm, ED), wall
# thickness (mm, ED), ES/ED cavity radius ratio, RV crescent depth relative to the basal LV
# epicardial radius, RV angular half-span around the septum (degrees), RV ES/ED depth ratio.
GROUP_GEOMETRY = {
    "NOR": dict(r_endo=24.0, wall=8.0, k_es=0.68, rv_depth=0.55, rv_span=72.0, rv_k_es=0.62),
    "DCM": dict(r_endo=31.0, wall=6.5, k_es=0.88, rv_depth=0.45, rv_span=62.0, rv_k_es=0.75),
    "HCM": dict(r_endo=20.0, wall=13.0, k_es=0.52, rv_depth=0.55, rv_span=70.0, rv_k_es=0.62),
    "MINF": dict(r_endo=27.0, wall=8.0, k_es=0.82, rv_depth=0.50, rv_span=68.0, rv_k_es=0.70),
    "RV": dict(r_endo=23.0, wall=8.0, k_es=0.70, rv_depth=0.95, rv_span=82.0, rv_k_es=0.85),
}


@dataclass(frozen=True)
class PhantomOptions:
    """Acquisition ranges the per-patient values are drawn from (uniformly, inclusive)."""

    matrix_range: tuple[int, int] = (128, 176)  # in-plane matrix size in pixels (rows, cols drawn separately)
    pixel_spacing_range: tuple[float, float] = (1.3, 1.75)  # in-plane mm
    slice_spacing_range: tuple[float, float] = (8.0, 10.5)  # through-plane mm
    slice_count_range: tuple[int, int] = (6, 12)
    supersample: int = 3  # in-plane rendering factor before box down-sampling (partial volume)
    noise_range: tuple[float, float] = (0.025, 0.06)  # Rician sigma relative to blood signal

    def __post_init__(self) -> None:
        for name in ("matrix_range", "pixel_spacing_range", "slice_spacing_range", "slice_count_range", "noise_range"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"PhantomOptions.{name} must be an increasing pair of non-negative numbers, got {(low, high)}")
        if self.matrix_range[0] < 16 or self.slice_count_range[0] < 2 or self.supersample < 1:
            raise ValueError("PhantomOptions: matrix >= 16 px, >= 2 slices and supersample >= 1 are required")


# Small, coarse volumes for tests and smoke runs: 48-64 px at 3.0-3.6 mm keeps the whole heart in view.
TINY_OPTIONS = PhantomOptions(matrix_range=(48, 64), pixel_spacing_range=(3.0, 3.6), slice_count_range=(4, 6), supersample=2)


@dataclass
class PatientParams:
    """Everything that defines one synthetic patient (both frames)."""

    patient_id: str
    group: str
    shape: tuple[int, int, int]  # (Z, H, W)
    spacing: tuple[float, float, float]  # (z, y, x) mm
    ed_frame: int
    es_frame: int
    n_frames: int
    height_cm: float
    weight_kg: float
    heart_centre: tuple[float, float]  # (x, y) mm from the image centre
    rotation: float  # radians, whole-scene in-plane rotation
    s_first: float  # long-axis position of the first (basal) slice, 0 = base, 1 = LV apex
    s_step: float  # long-axis step between slices
    geometry: dict
    shape_noise: dict
    intensity: np.ndarray  # [N_TISSUES] signal per tissue code
    bias: np.ndarray  # [6] bias-field polynomial coefficients
    noise_sigma: float
    gain: float
    affine_rotation: np.ndarray  # [3, 3] scanner orientation of the stack
    noise_seed: int  # seeds texture and noise, per frame
    ghost: tuple[float, int]  # ghost amplitude and row shift


def draw_patient(seed: int, index: int, options: PhantomOptions = PhantomOptions()) -> PatientParams:
    """Draw patient `index` (1-based) of the phantom with this `seed`."""
    rng = np.random.default_rng([seed, index])
    group = GROUPS[(index - 1) % len(GROUPS)]  # balanced groups, like ACDC's blocks
    n_slices = int(rng.integers(options.slice_count_range[0], options.slice_count_range[1] + 1))
    cols = int(rng.integers(options.matrix_range[0], options.matrix_range[1] + 1))
    rows = int(rng.integers(max(options.matrix_range[0], int(0.8 * cols)), cols + 1))
    # float32 values, so the spacing a reader gets from the NIfTI header is exactly the drawn one
    pixel = float(np.float32(rng.uniform(*options.pixel_spacing_range)))
    dz = float(np.float32(rng.uniform(*options.slice_spacing_range)))

    def jitter(spread: float) -> float:
        return float(np.clip(rng.normal(1.0, spread), 1 - 2.5 * spread, 1 + 2.5 * spread))

    geometry = {key: value * jitter(0.08) for key, value in GROUP_GEOMETRY[group].items()}
    geometry["k_es"] = min(geometry["k_es"], 0.95)
    geometry["rv_angle"] = math.radians(200.0 + rng.uniform(-15, 15))  # RV anterior-left of the LV
    geometry["rv_length"] = float(rng.uniform(0.68, 0.9))  # RV ends before the LV apex
    geometry["endo_length"] = float(rng.uniform(0.95, 1.05))
    geometry["epi_length"] = geometry["endo_length"] + float(rng.uniform(0.1, 0.18))
    geometry["profile_power"] = float(rng.uniform(2.0, 3.0))
    geometry["rv_anterior_reach"] = float(rng.uniform(1.05, 1.3))
    geometry["lung_gap"] = float(rng.uniform(28, 45))  # mm between the LV centre and the lungs
    geometry["fat"] = float(rng.uniform(1.0, 5.0))  # pericardial fat thickness, mm
    geometry["fat_angle"] = float(rng.uniform(0, 2 * math.pi))
    geometry["septal_bulge"] = 0.35 if group == "HCM" else 0.0
    geometry["infarct"] = 1.0 if group == "MINF" else 0.0
    geometry["infarct_angle"] = float(rng.uniform(0, 2 * math.pi))
    geometry["papillary_angle"] = geometry["rv_angle"] + math.pi + float(rng.uniform(-0.3, 0.3))
    geometry["trabeculae"] = int(rng.integers(9, 15))
    geometry["trabecular_wobble"] = rng.uniform(0.5, 3.0, 3).tolist()
    geometry["trabecular_phase"] = rng.uniform(0, 2 * math.pi, 3).tolist()
    geometry["warp"] = [(float(rng.uniform(2, 7)), float(rng.uniform(0.03, 0.07)), float(rng.uniform(0, math.pi)),
                         float(rng.uniform(0, 2 * math.pi))) for _ in range(3)]  # mm, rad/mm, direction, phase
    geometry["lung_vessels"] = [(float(side * rng.uniform(70, 110)), float(rng.uniform(-50, 40)), float(rng.uniform(1.5, 4)))
                                for side in (-1, 1, -1, 1, 1, -1)]
    geometry["stomach"] = (float(rng.uniform(45, 75)), float(rng.uniform(55, 80)))
    geometry["body"] = (float(rng.uniform(135, 165)), float(rng.uniform(100, 120)))  # body half-axes, mm
    geometry["body_offset"] = (float(rng.uniform(-25, -5)), float(rng.uniform(20, 40)))
    geometry["subcutaneous_fat"] = float(rng.uniform(6, 16))
    shape_noise = {  # smooth irregularity of the endocardium and of the wall thickness
        "endo_amp": rng.normal(0, 0.035, 3).tolist(), "endo_phase": rng.uniform(0, 2 * math.pi, 3).tolist(),
        "wall_amp": rng.normal(0, 0.10, 2).tolist(), "wall_phase": rng.uniform(0, 2 * math.pi, 2).tolist(),
    }
    # The stack spans the LV from just below the base to past the cavity apex (ending within the
    # epicardial cap), whatever the slice count.
    s_first = float(rng.uniform(0.0, 0.06))
    s_last = float(rng.uniform(1.0, 1.12)) * geometry["epi_length"] / 1.12
    s_step = (s_last - s_first) / (n_slices - 1)
    margin_x, margin_y = max(0.0, cols * pixel / 2 - 75), max(0.0, rows * pixel / 2 - 65)
    centre = (float(rng.uniform(-0.5, 0.5) * margin_x), float(rng.uniform(-0.5, 0.5) * margin_y))
    intensity = np.array([BASE_INTENSITY[t] for t in range(N_TISSUES)]) * rng.uniform(0.9, 1.1, N_TISSUES)
    intensity[LV_BLOOD] = intensity[RV_BLOOD]  # the two blood pools must be told apart by shape
    intensity[AIR] = 0.0
    n_frames = int(rng.integers(20, 31))
    return PatientParams(
        patient_id=f"patient{index:03d}",
        group=group,
        shape=(n_slices, rows, cols),
        spacing=(dz, pixel, pixel),
        ed_frame=1,
        es_frame=int(rng.integers(int(0.3 * n_frames), int(0.45 * n_frames) + 1)),
        n_frames=n_frames,
        height_cm=float(np.round(rng.uniform(150, 195), 1)),
        weight_kg=float(np.round(rng.uniform(50, 110), 1)),
        heart_centre=centre,
        rotation=float(rng.uniform(-math.radians(35), math.radians(35))),
        s_first=s_first,
        s_step=s_step,
        geometry=geometry,
        shape_noise=shape_noise,
        intensity=intensity,
        bias=rng.normal(0, [0.18, 0.18, 0.08, 0.08, 0.06, 0.1]),
        noise_sigma=float(rng.uniform(*options.noise_range)),
        gain=float(rng.uniform(250, 700)),
        affine_rotation=_random_rotation(rng),
        noise_seed=int(rng.integers(2**62)),
        ghost=(float(rng.uniform(0.0, 0.06)), int(rng.integers(rows // 4, 3 * rows // 4))),
    )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A proper rotation (det +1): the oblique short-axis orientation of the stack in the scanner."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _profile(t: float, power: float) -> float:
    """Radius factor along the long axis: 1 at the base, a rounded cap reaching 0 at t = 1."""
    t = min(max(t, 0.0), 1.0)
    return (1.0 - t**power) ** (1.0 / power)


def _slice_geometry(params: PatientParams, s: float, phase: str) -> dict:
    """Sizes (mm, radians) of the LV, myocardium and RV at long-axis position `s` for one phase."""
    g = params.geometry
    p = g["profile_power"]
    r_endo_ed = g["r_endo"] * _profile(s / g["endo_length"], p)
    r_epi_ed = max((g["r_endo"] + g["wall"]) * _profile(s / g["epi_length"], p), r_endo_ed)
    rv_factor = _profile(s / g["rv_length"], p)
    if phase == "ED":
        r_endo, r_epi, rv_depth_scale, rv_span_scale = r_endo_ed, r_epi_ed, 1.0, 1.0
    else:  # the cavity contracts; the wall keeps its area, so it thickens
        r_endo = g["k_es"] * g["r_endo"] * _profile(s / (0.9 * g["endo_length"]), p)
        r_epi = math.sqrt(r_endo**2 + r_epi_ed**2 - r_endo_ed**2)
        rv_depth_scale, rv_span_scale = g["rv_k_es"], 0.85 + 0.15 * g["rv_k_es"]
    return {
        "r_endo": r_endo,
        "thick": r_epi - r_endo,
        "thick_ed": r_epi_ed - r_endo_ed,
        "rv_depth": g["rv_depth"] * (g["r_endo"] + g["wall"]) * rv_factor * rv_depth_scale,
        "rv_span": math.radians(g["rv_span"]) * (0.6 + 0.4 * rv_factor) * rv_span_scale,
        "papillary": 0.2 <= s <= 0.75 and r_endo > 4.0,
        "contracted": phase == "ES",
        "s": s,
    }


def _angle_difference(a: np.ndarray, b: float) -> np.ndarray:
    """a - b wrapped to (-pi, pi]."""
    return np.angle(np.exp(1j * (a - b)))


class _SceneGrid:
    """Per-pixel quantities of one patient's scene that do not change between slices or phases.

    Computing the trigonometry once per grid and only comparing radii per slice is what keeps the
    phantom fast enough to render at 3x resolution.
    """

    def __init__(self, params: PatientParams, x: np.ndarray, y: np.ndarray):
        g, noise = params.geometry, params.shape_noise
        self.g = g
        cos_r, sin_r = math.cos(params.rotation), math.sin(params.rotation)
        dx, dy = x - params.heart_centre[0], y - params.heart_centre[1]
        u = (cos_r * dx + sin_r * dy).astype(np.float32)  # heart-local frame, origin at the LV centre
        v = (-sin_r * dx + cos_r * dy).astype(np.float32)
        self.background_u, self.background_v = self._warp(u, v, g["warp"])
        self.background = self._background()
        # The heart only needs the pixels within its largest possible extent.
        reach = (g["r_endo"] + g["wall"]) * (1.6 + g["rv_depth"]) + g["fat"] + 8.0
        inside = np.hypot(u, v) < reach
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        self.box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if rows.size else (slice(0, 0), slice(0, 0))
        u, v = u[self.box], v[self.box]
        self.u, self.v = u, v
        self.rho = np.hypot(u, v)
        phi = np.arctan2(v, u)
        self.endo_mod = 1.0 + sum(a * np.cos((k + 2) * phi - ph) for k, (a, ph) in enumerate(zip(noise["endo_amp"], noise["endo_phase"])))
        wall_mod = 1.0 + sum(a * np.cos((k + 1) * phi - ph) for k, (a, ph) in enumerate(zip(noise["wall_amp"], noise["wall_phase"])))
        self.wall_mod = wall_mod + g["septal_bulge"] * np.maximum(np.cos(phi - g["rv_angle"]), 0) ** 2
        self.infarct = g["infarct"] * np.exp(-((_angle_difference(phi, g["infarct_angle"]) / 0.55) ** 4))
        rv_offset = _angle_difference(phi, g["rv_angle"])
        # the anterior horn of the RV reaches further round the septum than the inferior one
        self.rv_angle = np.where(rv_offset < 0, -rv_offset / g["rv_anterior_reach"], rv_offset)
        # epicardial fat: patchy, thickest in the grooves, absent over parts of the free walls
        self.fat_mod = np.maximum(np.cos(2 * (phi - g["fat_angle"])) + 0.5 * np.cos(3 * phi - g["fat_angle"]), 0)
        # trabeculae: irregular fingers of varying depth along the endocardium
        wobble = sum(a * np.sin(k * phi + ph) for k, a, ph in zip((2, 3, 5), g["trabecular_wobble"], g["trabecular_phase"]))
        self.trabecular_comb = np.cos(g["trabeculae"] * phi + wobble) > 0.5
        self.trabecular_depth = 0.86 + 0.05 * np.cos(3 * phi + g["trabecular_phase"][0])

    @staticmethod
    def _warp(u: np.ndarray, v: np.ndarray, waves: list) -> tuple[np.ndarray, np.ndarray]:
        """Smoothly displace the background coordinates so organs are not perfect ellipses."""
        wu, wv = u.copy(), v.copy()
        for amplitude, frequency, angle, phase in waves:
            along = math.cos(angle) * u + math.sin(angle) * v
            shift = amplitude * np.sin(frequency * along + phase)
            wu += shift * -math.sin(angle)
            wv += shift * math.cos(angle)
        return wu, wv

    def _background(self) -> np.ndarray:
        """Chest wall, subcutaneous fat, lungs, spine and descending aorta (slice-independent)."""
        g, u, v = self.g, self.background_u, self.background_v
        bu, bv = u - g["body_offset"][0], v - g["body_offset"][1]
        ax, ay = g["body"]
        fat = g["subcutaneous_fat"]
        tissue = np.full(u.shape, AIR, dtype=np.uint8)
        tissue[(bu / ax) ** 2 + (bv / ay) ** 2 < 1] = FAT
        tissue[(bu / (ax - fat)) ** 2 + (bv / (ay - fat)) ** 2 < 1] = SOFT
        self.chest = (bu / (ax - fat - 14)) ** 2 + (bv / (ay - fat - 12)) ** 2 < 1
        left_lung = ((u - g["lung_gap"] - 38) / 40) ** 2 + ((v + 8) / 62) ** 2 < 1
        right_lung = ((u + g["lung_gap"] + 62) / 42) ** 2 + ((v + 12) / 58) ** 2 < 1
        lungs = (left_lung | right_lung) & self.chest
        tissue[lungs] = LUNG
        for cu, cv, radius in g["lung_vessels"]:  # pulmonary vessels: bright dots in the dark lungs
            tissue[lungs & ((u - cu) ** 2 + (v - cv) ** 2 < radius**2)] = VESSEL
        stomach = ((u - g["stomach"][0]) / 30) ** 2 + ((v - g["stomach"][1]) / 22) ** 2
        tissue[(stomach < 1) & self.chest] = SOFT
        tissue[(stomach < 0.7) & self.chest] = STOMACH_FLUID  # fluid as bright as blood, beside the heart
        spine = (bu - 5) ** 2 + (bv - ay + 38) ** 2
        tissue[spine < 16**2] = BONE
        tissue[spine < 11**2] = MARROW
        tissue[(bu - 30) ** 2 + (bv - ay + 58) ** 2 < 11**2] = AORTA
        return tissue

    def tissue(self, sg: dict) -> np.ndarray:
        """Tissue codes of one slice with slice geometry `sg`."""
        full = self.background.copy()
        s = sg["s"]
        liver_size = 0.55 + 0.6 * s  # the liver dome rises towards the apical (inferior) slices
        liver = (((self.background_u + 40) / (80 * liver_size)) ** 2
                 + ((self.background_v - 75 + 25 * s) / (50 * liver_size)) ** 2 < 1)
        full[liver & self.chest] = LIVER
        if sg["r_endo"] + sg["thick"] + sg["rv_depth"] > 0:
            self._paint_heart(full[self.box], sg)
        return full

    def _paint_heart(self, tissue: np.ndarray, sg: dict) -> None:
        """Paint epicardial fat, RV, myocardium, LV cavity, trabeculae, papillary muscles in place."""
        g, u, v, rho = self.g, self.u, self.v, self.rho
        r_endo = sg["r_endo"] * self.endo_mod
        thick = sg["thick"] * self.wall_mod
        thick = (1 - self.infarct) * thick + self.infarct * 0.5 * sg["thick_ed"] * self.wall_mod  # akinetic, thin
        r_epi = r_endo + thick
        in_epi = rho < r_epi
        # RV: a crescent wrapping the septum, thickest opposite the LV centre, tapering to the horns.
        reach = np.clip(1 - (self.rv_angle / max(sg["rv_span"], 1e-6)) ** 2, 0, None)
        rv_outer = r_epi + sg["rv_depth"] * np.sqrt(reach)
        rv_present = sg["rv_depth"] > 1.0
        rv_wall = (reach > 0) & (rho < rv_outer + 3.0) if rv_present else np.zeros(rho.shape, dtype=bool)
        heart_extent = np.where(rv_wall, rv_outer + 3.0, r_epi) if rv_present else r_epi
        tissue[rho < heart_extent + g["fat"] * self.fat_mod] = FAT
        tissue[rv_wall & ~in_epi] = RV_WALL
        if rv_present:
            tissue[(reach > 0) & (rho < rv_outer) & ~in_epi] = RV_BLOOD
        tissue[in_epi] = MYO
        cavity = rho < r_endo
        tissue[cavity] = LV_BLOOD
        if sg["r_endo"] > 2.0:  # trabeculae: partial-signal fingers along the endocardium
            tissue[cavity & (rho > self.trabecular_depth * r_endo) & self.trabecular_comb] = TRABECULAE
        if sg["papillary"]:
            radius = 0.17 * sg["r_endo"] * (1.35 if sg["contracted"] else 1.0)
            for offset in (-0.55, 0.55):
                angle = g["papillary_angle"] + offset
                cu, cv = 0.66 * sg["r_endo"] * math.cos(angle), 0.66 * sg["r_endo"] * math.sin(angle)
                tissue[cavity & ((u - cu) ** 2 + (v - cv) ** 2 < radius**2)] = PAPILLARY


def _pixel_grid(n_rows: int, n_cols: int, spacing: float, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates (mm) of the `factor`x`factor` sub-pixel centres of an n_rows x n_cols grid."""
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    rows = (np.arange(n_rows)[:, None] + sub[None, :]).ravel() - (n_rows - 1) / 2
    cols = (np.arange(n_cols)[:, None] + sub[None, :]).ravel() - (n_cols - 1) / 2
    return np.meshgrid(cols * spacing, rows * spacing, indexing="xy")


def render_patient(params: PatientParams, options: PhantomOptions = PhantomOptions()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Render both frames: {"ED": (image int16 [Z,H,W], label uint8 [Z,H,W]), "ES": (...)}.

    Labels are the tissue at each pixel centre in the middle of the slice; the image averages the
    signal over `supersample`^2 sub-pixels and two positions across the slice thickness.
    """
    n_slices, rows, cols = params.shape
    factor = options.supersample
    fine = _SceneGrid(params, *_pixel_grid(rows, cols, params.spacing[1], factor))
    coarse = _SceneGrid(params, *_pixel_grid(rows, cols, params.spacing[1], 1))
    half_thickness = 0.2 * params.s_step  # slice profile: two samples across ~40% of the step
    frames = {}
    for phase_index, phase in enumerate(("ED", "ES")):
        image = np.empty(params.shape, dtype=np.float64)
        label = np.empty(params.shape, dtype=np.uint8)
        for k in range(n_slices):
            s = params.s_first + k * params.s_step
            label[k] = TISSUE_TO_LABEL[coarse.tissue(_slice_geometry(params, s, phase))]
            signal = sum(params.intensity[fine.tissue(_slice_geometry(params, s + ds, phase))]
                         for ds in (-half_thickness, half_thickness))
            image[k] = signal.reshape(rows, factor, cols, factor).mean(axis=(1, 3)) / 2
        rng = np.random.default_rng([params.noise_seed, phase_index])
        frames[phase] = (_acquisition(image, params, rng), label)
    return frames


def _acquisition(image: np.ndarray, params: PatientParams, rng: np.random.Generator) -> np.ndarray:
    """Tissue texture, a smooth multiplicative bias field, a motion ghost and Rician noise; int16."""
    n_slices, rows, cols = image.shape
    texture = ndimage.gaussian_filter(rng.standard_normal(image.shape), sigma=(0, 1.5, 1.5))
    texture /= max(texture.std(), 1e-12)
    image = image * (1.0 + 0.05 * texture)
    zz, yy, xx = np.meshgrid(np.linspace(-1, 1, n_slices), np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    c = params.bias
    bias = np.exp(c[0] * xx + c[1] * yy + c[2] * xx**2 + c[3] * yy**2 + c[4] * xx * yy + c[5] * zz)
    image = image * bias
    # motion ghost: a faint copy of the moving heart displaced along the phase-encoding direction
    image = image + params.ghost[0] * np.roll(image, params.ghost[1], axis=1)
    sigma = params.noise_sigma * params.intensity[LV_BLOOD]
    real = image + sigma * rng.standard_normal(image.shape)
    imaginary = sigma * rng.standard_normal(image.shape)
    magnitude = np.hypot(real, imaginary) * params.gain
    return np.clip(np.round(magnitude), 0, np.iinfo(np.int16).max).astype(np.int16)


def _nifti_bytes(array_zyx: np.ndarray, params: PatientParams) -> bytes:
    """Gzipped NIfTI-1 of a (z, y, x) array stored as (x, y, z), with a deterministic gzip header."""
    dz, dy, dx = params.spacing
    affine = np.eye(4)
    affine[:3, :3] = params.affine_rotation @ np.diag([dx, dy, dz])
    affine[:3, 3] = params.affine_rotation @ -np.array([dx * params.shape[2], dy * params.shape[1], dz * params.shape[0]]) / 2
    image = nib.Nifti1Image(np.ascontiguousarray(array_zyx.transpose(2, 1, 0)), affine)
    image.header.set_zooms((dx, dy, dz))
    image.header.set_xyzt_units("mm", "sec")
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)


def _info_cfg(params: PatientParams) -> str:
    return (f"ED: {params.ed_frame}\nES: {params.es_frame}\nGroup: {params.group}\nHeight: {params.height_cm}\n"
            f"NbFrame: {params.n_frames}\nWeight: {params.weight_kg}\n")


def write_patient(folder: Path, params: PatientParams, options: PhantomOptions) -> None:
    """Write one patient's Info.cfg and ED/ES image and label NIfTI files into `folder`."""
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(_info_cfg(params))
    frames = render_patient(params, options)
    for phase, frame in (("ED", params.ed_frame), ("ES", params.es_frame)):
        image, label = frames[phase]
        stem = f"{params.patient_id}_frame{frame:02d}"
        (folder / f"{stem}.nii.gz").write_bytes(_nifti_bytes(image, params))
        (folder / f"{stem}_gt.nii.gz").write_bytes(_nifti_bytes(label, params))


def generate_phantom(root: str | Path, n_patients: int, seed: int = 0, options: PhantomOptions = PhantomOptions()) -> Path:
    """Write an ACDC-format phantom of `n_patients` under `root/training/`; return `root`.

    `root` must not exist (or be an empty folder). The tree is built in a temporary sibling folder
    and renamed at the end, so a failure leaves nothing behind. `root/phantom.json` records the
    generator settings.
    """
    root = Path(root)
    if not 1 <= n_patients <= 999:
        raise ValueError(f"n_patients must be between 1 and 999 (3-digit ACDC ids), got {n_patients}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root}: exists and is not an empty folder; the phantom needs a fresh folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        for index in range(1, n_patients + 1):
            params = draw_patient(seed, index, options)
            write_patient(staging / "training" / params.patient_id, params, options)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest(n_patients, seed, options), indent=1) + "\n")
        if root.exists():
            root.rmdir()
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def manifest(n_patients: int, seed: int, options: PhantomOptions) -> dict:
    """The settings that fully determine a generated phantom tree."""
    return {"generator": "methods.data.phantom", "version": PHANTOM_VERSION, "n_patients": n_patients,
            "seed": seed, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}}


def save_figure(path: str | Path, seed: int = 0, n_patients: int = 4, options: PhantomOptions = PhantomOptions()) -> Path:
    """Save a figure of basal, mid and apical ED slices and a mid ES slice with label contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {1: "tab:blue", 2: "tab:green", 3: "tab:red"}
    fig, axes = plt.subplots(n_patients, 5, figsize=(12.5, 2.6 * n_patients), squeeze=False)
    for row in range(n_patients):
        params = draw_patient(seed, row + 1, options)
        frames = render_patient(params, options)
        n_slices = params.shape[0]
        panels = [("ED", 1, False), ("ED", n_slices // 2, False), ("ED", n_slices // 2, True),
                  ("ES", n_slices // 2, True), ("ED", n_slices - 2, True)]
        for col, (phase, k, overlay) in enumerate(panels):
            image, label = frames[phase]
            ax = axes[row, col]
            ax.imshow(image[k], cmap="gray", interpolation="nearest")
            if overlay:
                for value, colour in colours.items():
                    if (label[k] == value).any():
                        ax.contour(label[k] == value, levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_title(f"{params.patient_id} {params.group} {phase} z={k}/{n_slices}", fontsize=8)
            ax.axis("off")
    fig.suptitle("spcl-bench phantom (contours: RV blue, MYO green, LV red)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m methods.data.phantom", description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=Path, help="write a figure of phantom slices to this PNG")
    parser.add_argument("--out", type=Path, help="write an ACDC-format phantom tree here")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.figure and not args.out:
        parser.error("give --figure PATH and/or --out DIR")
    if args.figure:
        print(f"wrote {save_figure(args.figure, seed=args.seed)}")
    if args.out:
        print(f"wrote {generate_phantom(args.out, args.patients, args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
