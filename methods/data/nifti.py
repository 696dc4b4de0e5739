"""NIfTI reading shared by the ACDC and M&Ms readers, with every failure turned into a
`DatasetFormatError` that names the file.

nibabel returns arrays in (x, y, z[, t]) order and `get_zooms()` in the same order; the harness
works in (z, y, x). The helpers here keep that conversion in one place so no reader can get it
half right (e.g. transposing the array but not the spacing).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from methods.data.types import DatasetFormatError

# What nibabel, gzip and zlib raise on missing, truncated or corrupt files.
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, ImageFileError)


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


def spacing_zyx(image: nib.Nifti1Image, path: Path) -> tuple[float, float, float]:
    """Voxel size in mm from the header, reordered from nibabel's (x, y, z) to (z, y, x)."""
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    if len(zooms) != 3 or not all(np.isfinite(z) and z > 0 for z in zooms):
        raise DatasetFormatError(f"{path}: header voxel sizes {zooms} are not 3 positive numbers")
    return zooms[2], zooms[1], zooms[0]


def check_same_spacing(image_path: Path, image_spacing, label_path: Path, label_spacing) -> None:
    """Image and label of one frame must share their voxel size: a mismatch means the files do
    not belong together (HD95 in mm would silently use the wrong one)."""
    if not np.allclose(image_spacing, label_spacing, rtol=1e-3, atol=1e-4):
        raise DatasetFormatError(
            f"{label_path}: voxel size (z, y, x) {tuple(label_spacing)} differs from "
            f"{image_path.name} {tuple(image_spacing)}"
        )


def integer_labels(values: np.ndarray, path: Path) -> np.ndarray:
    """Label voxels as int64, refusing non-integral values (a float image passed as a label)."""
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise DatasetFormatError(f"{path}: label file holds non-integer values (is it an image, not a segmentation?)")
    return values.astype(np.int64)
