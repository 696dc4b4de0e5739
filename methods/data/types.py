"""Types shared by every dataset reader: one annotated 3D frame (`Case`) and the error type.

Readers yield `Case` objects with labels already mapped to the dataset's canonical class order,
so nothing downstream needs to know that ACDC and M&Ms number RV and LV in opposite orders.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# Where readers report what a user must know about a case (a reoriented label, a unit converted,
# frames or slices left out). `prepare` passes its own `log`; without one, messages go to this
# logger at WARNING level, which Python prints to stderr even when logging is not configured.
LOGGER = logging.getLogger("methods.data")
ReaderLog = Callable[[str], None]


class DatasetFormatError(ValueError):
    """A dataset on disk does not have the expected layout or content.

    The message always names the offending file (or folder) and what was expected.
    """


@dataclass
class Case:
    """One annotated frame (ED or ES) of one patient, in array order (z, y, x).

    image:   float32 [Z, H, W], raw intensities as read (normalisation happens at `prepare`).
    label:   uint8 [Z, H, W]; 0 = background, k = k-th name of the dataset's CLASS_NAMES.
    spacing: (z, y, x) in mm, from the file headers; (nan, nan, nan) when the files carry no voxel
             size at all (a pixel-only source such as SSL4MIS's h5 files, see `has_spacing`).
    """

    case_id: str  # "<patient>_<phase>", e.g. "patient001_ED"
    patient_id: str
    phase: str  # "ED" or "ES"
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    source: str = ""  # the file(s) it came from, for error messages
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.phase not in ("ED", "ES"):
            raise DatasetFormatError(f"{self.source or self.case_id}: phase must be ED or ES, got {self.phase!r}")
        if self.image.ndim != 3:
            raise DatasetFormatError(f"{self.source or self.case_id}: image must be 3D [Z,H,W], got shape {self.image.shape}")
        if self.image.shape != self.label.shape:
            raise DatasetFormatError(
                f"{self.source or self.case_id}: image shape {self.image.shape} != label shape {self.label.shape}"
            )
        unknown = len(self.spacing) == 3 and all(math.isnan(float(s)) for s in self.spacing)
        if len(self.spacing) != 3 or not (unknown or all(np.isfinite(s) and s > 0 for s in self.spacing)):
            raise DatasetFormatError(f"{self.source or self.case_id}: spacing must be 3 positive numbers "
                                     f"(or 3 NaN: unknown), got {self.spacing}")
        self.image = np.ascontiguousarray(self.image, dtype=np.float32)
        self.label = np.ascontiguousarray(self.label, dtype=np.uint8)
        self.spacing = tuple(float(s) for s in self.spacing)

    @property
    def has_spacing(self) -> bool:
        """False for a pixel-only case (spacing unknown, stored as NaN): mm metrics are undefined."""
        return not any(math.isnan(s) for s in self.spacing)


def reader_log(log: ReaderLog | None) -> ReaderLog:
    """The `log` a reader was given, or LOGGER.warning."""
    return log if log is not None else LOGGER.warning


def check_label_values(label: np.ndarray, allowed: set[int], where: str | Path) -> None:
    """Raise a DatasetFormatError naming `where` if `label` holds values outside `allowed`."""
    present = set(np.unique(label).tolist())
    extra = present - set(allowed)
    if extra:
        raise DatasetFormatError(
            f"{where}: label values {sorted(extra)} are outside the expected set {sorted(allowed)}"
        )


def check_finite_image(image: np.ndarray, where: str | Path, case_id: str) -> None:
    """Raise a DatasetFormatError naming `where` and `case_id` if `image` holds NaN or infinite
    voxels (with how many): such a frame cannot be normalised, and the file must be fixed."""
    values = np.asarray(image)
    if not np.issubdtype(values.dtype, np.floating):
        return
    nan = int(np.count_nonzero(np.isnan(values)))
    inf = int(np.count_nonzero(np.isinf(values)))
    if nan or inf:
        raise DatasetFormatError(
            f"{where}: the image of case {case_id} holds {nan} NaN and {inf} infinite voxel(s) of {values.size}; "
            "cannot normalise it (repair or remove that file)"
        )


def reject_options(dataset: str, options: dict) -> None:
    """Readers without options refuse any (a typo must not be silently ignored)."""
    if options:
        raise TypeError(f"the {dataset} reader takes no options, got {sorted(options)}")


def select_patients(available, patients, root, what: str) -> list[str]:
    """All of `available` in sorted order, or the requested `patients`; an id that is not
    available is a DatasetFormatError naming the root and `what` was looked for."""
    wanted = sorted(available) if patients is None else list(patients)
    missing = [p for p in wanted if p not in available]
    if missing:
        raise DatasetFormatError(f"{root}: no {what} for {missing}")
    return wanted
