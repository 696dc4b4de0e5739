"""NIfTI reading shared by the ACDC and M&Ms readers, with every failure turned into a
`DatasetFormatError` that names the file.

nibabel returns arrays in (x, y, z[, t]) order and `get_zooms()` in the same order; the harness
works in (z, y, x). The helpers here keep that conversion in one place so no reader can get it
half right (e.g. transposing the array but not the spacing).

Geometry is checked, not assumed (docs/datasets.md, "NIfTI geometry"):
- **Units.** The voxel size is `pixdim` (`header.get_zooms()`, what nibabel and ITK/SimpleITK
  both report as spacing) scaled by the spatial unit of `xyzt_units` to millimetres: metre x 1000,
  micron x 0.001, mm x 1. Code 0 ("unknown", i.e. unset) is read as mm, the NIfTI default that
  ITK/SimpleITK also apply; every file of the ACDC release has code 0. Codes 4-7 are not NIfTI
  length units and are refused.
- **Which affine.** nibabel's documented rule (`Nifti1Header.get_best_affine`, "Choosing the image
  affine" in nibabel's NIfTI guide): the sform when `sform_code != 0`, else the qform when
  `qform_code != 0`, else the pixdim fall-back. ITK/SimpleITK (>= 5.2, ITK PR #1868) read the
  sform when its code is 1 (scanner) and it is a rotation times a scaling, or when there is no
  qform, and otherwise the qform. Where the two rules pick transforms that differ, the file's
  geometry depends on the reader, and it is refused naming both codes; where they agree (or
  qform and sform are equal) it is read.
- **Image and label describe the same voxels**: same spatial shape, voxel size and affine
  (orientation, axis lengths, origin) within `AFFINE_TOLERANCE`. A label that differs only by an
  axis flip or permutation (its affine says so and its voxels are stored that way) is reoriented
  onto the image grid with `nibabel.orientations` and the fact is reported; any other difference
  is an error naming both files and what differs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

from methods.data.types import DatasetFormatError

# What nibabel, gzip and zlib raise on missing, truncated or corrupt files.
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, ImageFileError)

# xyzt_units & 7 -> (factor to mm, name). 0 is NIfTI's "unknown", i.e. the field was never set.
SPATIAL_UNITS = {
    0: (1.0, "unset (read as mm)"),
    1: (1000.0, "metre (converted to mm)"),
    2: (1.0, "mm"),
    3: (0.001, "micron (converted to mm)"),
}
NIFTI_XFORM_SCANNER_ANAT = 1


@dataclass(frozen=True)
class AffineTolerance:
    """How far two affines may differ and still describe the same voxels."""

    direction: float = 1e-3  # max abs difference of the unit direction cosines (~0.06 degrees)
    axis_length_rtol: float = 1e-3  # relative difference of the voxel axis lengths
    origin_voxels: float = 0.01  # origin shift, as a fraction of the smallest voxel axis length
    zooms_rtol: float = 1e-3  # relative difference of the header voxel sizes (pixdim)


AFFINE_TOLERANCE = AffineTolerance()


def open_nifti(path: Path, ndim: int) -> nib.Nifti1Image:
    """Open `path` (header only) and check it has `ndim` dimensions after dropping trailing
    singleton axes beyond `ndim` (some writers store a 3D frame as (x, y, z, 1))."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found (expected a NIfTI image here)")
    try:
        image = nib.load(str(path))
    except _READ_ERRORS as error:
        raise DatasetFormatError(f"{path}: not a readable NIfTI file ({error})") from error
    shape = image.shape
    while len(shape) > ndim and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != ndim:
        raise DatasetFormatError(f"{path}: expected a {ndim}D image, got shape {image.shape}")
    return image


def read_voxels(image: nib.Nifti1Image, path: Path, frame: int | None = None) -> np.ndarray:
    """Voxel values in nibabel order: the whole image (trailing singleton axes beyond the third
    dropped), or time index `frame` of a 4D one (only that frame is kept in memory)."""
    try:
        if frame is None:
            data = np.asanyarray(image.dataobj)
            while data.ndim > 3 and data.shape[-1] == 1:
                data = data[..., 0]
        else:
            data = np.asanyarray(image.dataobj[..., frame])
    except _READ_ERRORS as error:
        raise DatasetFormatError(f"{path}: could not read the voxel data, file truncated or corrupt ({error})") from error
    return np.asarray(data)


def xyz_to_zyx(array: np.ndarray) -> np.ndarray:
    """(x, y, z) array as nibabel returns it -> (z, y, x) array as the harness stores it."""
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)))


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


# ------------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class Geometry:
    """Where the voxels of one NIfTI file are, in millimetres (x, y, z order, as nibabel)."""

    path: Path
    shape: tuple[int, int, int]  # spatial shape (x, y, z)
    zooms: tuple[float, float, float]  # voxel size (x, y, z) in mm, from pixdim
    affine: np.ndarray  # 4x4, voxel (i, j, k) -> world mm
    affine_source: str  # "sform (code 2)", "qform (code 1)" or the pixdim fall-back
    unit: str  # the header's spatial unit, e.g. "mm", "micron (converted to mm)"
    notes: tuple[str, ...] = ()

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Voxel size in mm reordered to the harness's (z, y, x)."""
        return self.zooms[2], self.zooms[1], self.zooms[0]

    @property
    def axcodes(self) -> str:
        return "".join(aff2axcodes(self.affine))


def affine_differences(reference: np.ndarray, other: np.ndarray, tolerance: AffineTolerance = AFFINE_TOLERANCE) -> list[str]:
    """What differs between two voxel-to-world affines beyond `tolerance` (empty: the same)."""
    cols_ref, cols_other = reference[:3, :3], other[:3, :3]
    len_ref = np.linalg.norm(cols_ref, axis=0)
    len_other = np.linalg.norm(cols_other, axis=0)
    if np.any(len_ref <= 0) or np.any(len_other <= 0):
        return [f"degenerate affine (a voxel axis has length 0): {_fmt(len_other)} vs {_fmt(len_ref)}"]
    differences = []
    if not np.allclose(len_other, len_ref, rtol=tolerance.axis_length_rtol, atol=0.0):
        differences.append(f"voxel axis lengths in the affine {_fmt(len_other)} vs {_fmt(len_ref)} mm")
    direction_gap = float(np.abs(cols_other / len_other - cols_ref / len_ref).max())
    if direction_gap > tolerance.direction:
        codes_other, codes_ref = "".join(aff2axcodes(other)), "".join(aff2axcodes(reference))
        differences.append(f"orientation {codes_other} vs {codes_ref} (direction cosines differ by up to {direction_gap:.3g})")
    offset = other[:3, 3] - reference[:3, 3]
    origin_tolerance = tolerance.origin_voxels * float(len_ref.min())
    if float(np.abs(offset).max()) > origin_tolerance:
        differences.append(f"origin {_fmt(other[:3, 3])} vs {_fmt(reference[:3, 3])} mm (off by {_fmt(offset)} mm, "
                           f"tolerance {origin_tolerance:.3g} mm)")
    return differences


def _is_rotation_times_scaling(affine: np.ndarray) -> bool:
    """Columns orthogonal: what ITK needs to read an sform (rotation x pixdim + translation)."""
    cols = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return bool(np.allclose(cols.T @ cols, np.eye(3), atol=1e-4))


def _chosen_affine(header, path: Path) -> tuple[np.ndarray, str, list[str]]:
    """The affine by nibabel's rule, refused when ITK/SimpleITK would read a different one."""
    sform, s_code = header.get_sform(coded=True)
    qform, q_code = header.get_qform(coded=True)
    s_code, q_code = int(s_code), int(q_code)
    notes: list[str] = []
    if s_code == 0 and q_code == 0:
        return header.get_base_affine(), "pixdim fall-back (qform_code and sform_code are 0)", notes
    if s_code == 0:
        return qform, f"qform (code {q_code})", notes
    if q_code == 0:
        return sform, f"sform (code {s_code})", notes
    differences = affine_differences(sform, qform)
    if not differences:
        return sform, f"sform (code {s_code}; the qform agrees)", notes
    itk_reads_sform = s_code == NIFTI_XFORM_SCANNER_ANAT and _is_rotation_times_scaling(sform)
    if not itk_reads_sform:
        raise DatasetFormatError(
            f"{path}: the qform (code {q_code}) and the sform (code {s_code}) disagree ({'; '.join(differences)}). "
            "nibabel reads the sform whenever sform_code != 0; ITK/SimpleITK read the qform unless the sform "
            "has code 1 (scanner) and is a rotation times the voxel size. The two would place this file's voxels "
            "differently, so it is refused: rewrite the header so that both transforms agree, or set the code "
            "of the wrong one to 0"
        )
    notes.append(f"{path.name}: qform (code {q_code}) disagrees with the sform ({'; '.join(differences)}); the sform "
                 "(code 1, scanner) is used, as nibabel and ITK/SimpleITK both do")
    return sform, f"sform (code {s_code}; the qform disagrees and is ignored)", notes


def read_geometry(image: nib.Nifti1Image, path: Path) -> Geometry:
    """Shape, voxel size (mm) and affine (mm) of an opened NIfTI file, with its units checked."""
    header = image.header
    code = int(header["xyzt_units"]) & 0x07
    if code not in SPATIAL_UNITS:
        raise DatasetFormatError(
            f"{path}: xyzt_units has spatial unit code {code}, which is not a NIfTI length unit "
            "(0 unset, 1 metre, 2 mm, 3 micron); the voxel size in mm is unknown"
        )
    scale, unit = SPATIAL_UNITS[code]
    raw_zooms = tuple(float(z) for z in header.get_zooms()[:3])
    if len(raw_zooms) != 3 or not all(np.isfinite(z) and z > 0 for z in raw_zooms):
        raise DatasetFormatError(f"{path}: header voxel sizes {raw_zooms} are not 3 positive numbers")
    affine, source, notes = _chosen_affine(header, path)
    affine = np.array(affine, dtype=np.float64)
    affine[:3, :] *= scale
    if scale != 1.0:
        notes.append(f"{path.name}: voxel size stored in {unit.split(' ')[0]}s {_fmt(raw_zooms)}, "
                     f"converted to mm {_fmt(z * scale for z in raw_zooms)}")
    return Geometry(
        path=path,
        shape=tuple(int(n) for n in image.shape[:3]),
        zooms=tuple(z * scale for z in raw_zooms),
        affine=affine,
        affine_source=source,
        unit=unit,
        notes=tuple(notes),
    )


def _describe_transform(transform: np.ndarray) -> str:
    """'flip y', 'axes (x, y, z) -> (y, x, z)', ... for an orientation transform."""
    names = "xyz"
    parts = []
    target = [names[int(transform[i, 0])] for i in range(3)]
    if target != list(names):
        parts.append(f"axes (x, y, z) -> ({', '.join(target)})")
    flips = [names[i] for i in range(3) if transform[i, 1] < 0]
    if flips:
        parts.append("flip " + ", ".join(flips))
    return "; ".join(parts)


@dataclass(frozen=True)
class LabelAlignment:
    """How to bring label voxels (nibabel order) onto the image grid: nothing, or an axis
    flip/permutation (`transform`, a nibabel orientation transform)."""

    transform: np.ndarray | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def apply(self, label_xyz: np.ndarray) -> np.ndarray:
        if self.transform is None:
            return label_xyz
        return np.ascontiguousarray(apply_orientation(label_xyz, self.transform))


def _grid_differences(image: Geometry, label_shape, label_zooms, label_affine, tolerance: AffineTolerance) -> list[str]:
    differences = []
    if tuple(label_shape) != tuple(image.shape):
        differences.append(f"label shape {tuple(label_shape)} != image shape {tuple(image.shape)}")
    if not np.allclose(label_zooms, image.zooms, rtol=tolerance.zooms_rtol, atol=0.0):
        differences.append(f"voxel size (z, y, x) {_fmt(label_zooms[::-1])} mm != image {_fmt(image.zooms[::-1])} mm")
    differences += [f"affine: {d}" for d in affine_differences(image.affine, label_affine, tolerance)]
    return differences


def align_label(image: Geometry, label: Geometry, tolerance: AffineTolerance = AFFINE_TOLERANCE) -> LabelAlignment:
    """Check that `label` describes the voxels of `image`; reorient it when it differs only by an
    axis flip or permutation; otherwise raise a DatasetFormatError naming both files."""
    notes = image.notes + label.notes
    transform = ornt_transform(io_orientation(label.affine), io_orientation(image.affine))
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        differences = _grid_differences(image, label.shape, label.zooms, label.affine, tolerance)
        if differences:
            raise DatasetFormatError(
                f"{label.path}: {'; '.join(differences)}: the label does not describe the same voxels as the image "
                f"{image.path} (label affine from its {label.affine_source}, image affine from its {image.affine_source})"
            )
        return LabelAlignment(None, notes)
    new_shape = [0, 0, 0]
    new_zooms = [0.0, 0.0, 0.0]
    for axis in range(3):
        new_shape[int(transform[axis, 0])] = label.shape[axis]
        new_zooms[int(transform[axis, 0])] = label.zooms[axis]
    new_affine = label.affine @ inv_ornt_aff(transform, label.shape)
    differences = _grid_differences(image, new_shape, new_zooms, new_affine, tolerance)
    if differences:
        raise DatasetFormatError(
            f"{label.path}: stored as {label.axcodes} while the image is {image.axcodes}, and even after reorienting "
            f"its axes ({_describe_transform(transform)}) it does not describe the same voxels as the image "
            f"{image.path}: {'; '.join(differences)}"
        )
    note = (f"{label.path.name}: label voxels stored as {label.axcodes}, image {image.path.name} as {image.axcodes}; "
            f"label reoriented onto the image grid ({_describe_transform(transform)}, nibabel.orientations)")
    return LabelAlignment(transform, notes + (note,))


def integer_labels(values: np.ndarray, path: Path) -> np.ndarray:
    """Label voxels as int64, refusing non-integral values (a float image passed as a label)."""
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise DatasetFormatError(f"{path}: label file holds non-integer values (is it an image, not a segmentation?)")
    return values.astype(np.int64)
