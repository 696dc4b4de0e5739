"""Reader for the M&Ms-1 open dataset (Multi-Centre, Multi-Vendor & Multi-Disease, STACOM 2020).

Layout under root (the unpacked `OpenDataset/` folder):
    <information>.csv                               one row per subject, read by column name
    Training/Labeled/<CODE>/<CODE>_sa.nii.gz        4D (x, y, z, t) cine
                            <CODE>_sa_gt.nii.gz     4D labels, non-zero only at t = ED and ES
    Training/Unlabeled/<CODE>/...                   vendor C subjects without labels: not read
    Validation/<CODE>/..., Testing/<CODE>/...       same as Labeled

ED and ES in the CSV are 0-based indices into t (unlike ACDC's 1-based frame numbers).
M&Ms labels are 1 LV, 2 MYO, 3 RV; they are remapped to the canonical ("RV", "MYO", "LV") order
(1 RV, 2 MYO, 3 LV) shared with ACDC. Each Case carries the subject's vendor and centre in `meta`
(the split code stratifies by vendor). Geometry (units, image/label voxels, qform/sform) is
checked as for ACDC (methods/data/nifti.py). See docs/datasets.md for pitfalls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from methods.data.nifti import align_label, integer_labels, open_nifti, read_geometry, read_voxels, xyz_to_zyx
from methods.data.types import (
    Case,
    DatasetFormatError,
    ReaderLog,
    check_finite_image,
    check_label_values,
    reader_log,
    reject_options,
    select_patients,
)

DATASET_NAME = "mnms"
CLASS_NAMES = ("RV", "MYO", "LV")
# M&Ms label value -> canonical label value: LV 1 -> 3, MYO 2 -> 2, RV 3 -> 1.
MNMS_TO_CANONICAL = np.array([0, 3, 2, 1], dtype=np.uint8)
LABELLED_FOLDERS = ("Training/Labeled", "Validation", "Testing")
UNLABELLED_FOLDERS = ("Training/Unlabeled",)

# Canonical column -> accepted spellings after normalisation (lower case, no spaces/_/-/&).
# Seen: "External code" (2020 and 2021 CSVs), "ExternalCode"/"External_code" in re-exports,
# "Centre"/"Center"; the 2021 file has a leading unnamed index column, which is ignored.
_COLUMN_ALIASES = {
    "code": ("externalcode", "code", "subjectcode"),
    "vendor": ("vendor",),
    "vendor_name": ("vendorname",),
    "centre": ("centre", "center"),
    "ed": ("ed", "edframe", "edindex"),
    "es": ("es", "esframe", "esindex"),
    "pathology": ("pathology",),
}
_REQUIRED_COLUMNS = ("code", "vendor", "centre", "ed", "es")


def class_names(**options) -> tuple[str, ...]:
    """Foreground classes in canonical label order (label k = k-th name)."""
    reject_options(DATASET_NAME, options)
    return CLASS_NAMES


def _normalise(column: str) -> str:
    return re.sub(r"[\s_\-&]+", "", str(column)).lower()


def _column_map(columns, path: Path) -> dict[str, str]:
    """Canonical column name -> the CSV's own header for it."""
    by_normal = {_normalise(c): c for c in columns}
    found = {}
    for canonical, aliases in _COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_normal:
                found[canonical] = by_normal[alias]
                break
    missing = [c for c in _REQUIRED_COLUMNS if c not in found]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing column(s) {missing}; expected at least 'External code', 'Vendor', "
            f"'Centre', 'ED', 'ES' (found {list(columns)})"
        )
    return found


def find_information_csv(root: Path) -> Path:
    """The subject information CSV directly under root: the one `.csv` whose header has an
    'External code' column (other CSVs, e.g. the user's own notes, are ignored)."""
    candidates = []
    for path in sorted(Path(root).glob("*.csv")):
        try:
            header = pd.read_csv(path, nrows=0).columns
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
            continue
        if any(_normalise(c) in _COLUMN_ALIASES["code"] for c in header):
            candidates.append(path)
    if not candidates:
        raise DatasetFormatError(
            f"{root}: no M&Ms information CSV (a .csv with an 'External code' column, e.g. "
            "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv) directly under the root"
        )
    if len(candidates) > 1:
        raise DatasetFormatError(f"{root}: several M&Ms information CSVs {[c.name for c in candidates]}; keep one")
    return candidates[0]


def _subject_folder(root: Path, code: str) -> tuple[str, Path] | None:
    """(folder group, subject folder) of `code`, or None when no folder holds its image."""
    hits = [
        (group, root / group / code)
        for group in LABELLED_FOLDERS + UNLABELLED_FOLDERS
        if (root / group / code / f"{code}_sa.nii.gz").is_file()
    ]
    if len(hits) > 1:
        raise DatasetFormatError(f"{root}: subject {code} found in several folders {[g for g, _ in hits]}")
    return hits[0] if hits else None


def _read_subjects(root) -> dict[str, dict]:
    """code -> metadata for every CSV row; every row must have its files on disk."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: M&Ms root folder not found")
    csv_path = find_information_csv(root)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DatasetFormatError(f"{csv_path}: cannot parse the CSV ({error})") from error
    columns = _column_map(table.columns, csv_path)
    subjects: dict[str, dict] = {}
    for row_number, row in enumerate(table.to_dict("records"), start=2):
        code = row[columns["code"]].strip()
        if not code:
            raise DatasetFormatError(f"{csv_path}: line {row_number} has an empty 'External code'")
        if code in subjects:
            raise DatasetFormatError(f"{csv_path}: subject {code} listed twice")
        location = _subject_folder(root, code)
        if location is None:
            expected = " or ".join(str(root / g / code / f"{code}_sa.nii.gz") for g in LABELLED_FOLDERS + UNLABELLED_FOLDERS)
            raise DatasetFormatError(f"{csv_path}: subject {code} has no image on disk; expected {expected}")
        group, folder = location
        frames = {"ed": None, "es": None}
        for key in frames:
            value = row[columns[key]].strip()
            if re.fullmatch(r"\d+(\.0*)?", value):  # "3", or "3.0" from a spreadsheet re-export
                frames[key] = int(float(value))
            elif group in LABELLED_FOLDERS:  # unlabelled subjects are never read: their ED/ES may be blank
                raise DatasetFormatError(
                    f"{csv_path}: line {row_number} ({code}): {columns[key]} must be a 0-based time index, got {value!r}"
                )
        subjects[code] = {
            "vendor": row[columns["vendor"]].strip(),
            "vendor_name": row[columns["vendor_name"]].strip() if "vendor_name" in columns else "",
            "centre": row[columns["centre"]].strip(),
            "pathology": row[columns["pathology"]].strip() if "pathology" in columns else "",
            "subset": group,
            "ed_index": frames["ed"],
            "es_index": frames["es"],
            "folder": folder,
        }
    return subjects


def _labelled(subjects: dict[str, dict]) -> dict[str, dict]:
    return {code: s for code, s in subjects.items() if s["subset"] in LABELLED_FOLDERS}


def list_patients(root, **options) -> list[str]:
    """Sorted subject codes with ground truth (Training/Labeled, Validation, Testing)."""
    reject_options(DATASET_NAME, options)
    return sorted(_labelled(_read_subjects(root)))


def patient_meta(root, **options) -> dict[str, dict]:
    """code -> vendor, vendor_name, centre, pathology, subset, ed_index, es_index for the
    labelled subjects, from the CSV only (no image is read)."""
    reject_options(DATASET_NAME, options)
    return {
        code: {k: v for k, v in s.items() if k != "folder"}
        for code, s in sorted(_labelled(_read_subjects(root)).items())
    }


def _annotated_times(label_file, path: Path) -> list[int]:
    """The t indices whose labels are not all background (only read to explain an error)."""
    volume = read_voxels(label_file, path)
    return [t for t in range(volume.shape[3]) if np.any(volume[..., t])] if volume.ndim == 4 else []


def _read_subject(code: str, subject: dict, log: ReaderLog) -> Iterator[Case]:
    folder = subject["folder"]
    image_path = folder / f"{code}_sa.nii.gz"
    label_path = folder / f"{code}_sa_gt.nii.gz"
    image_file = open_nifti(image_path, ndim=4)
    label_file = open_nifti(label_path, ndim=4)
    if image_file.shape[3:] != label_file.shape[3:]:
        raise DatasetFormatError(f"{label_path}: label shape {label_file.shape} != image shape {image_file.shape} of "
                                 f"{image_path.name} (different numbers of time points)")
    image_geometry = read_geometry(image_file, image_path)
    alignment = align_label(image_geometry, read_geometry(label_file, label_path))
    spacing = image_geometry.spacing_zyx
    n_times = image_file.shape[3]
    meta = {k: v for k, v in subject.items() if k != "folder"}
    for phase, t in (("ED", subject["ed_index"]), ("ES", subject["es_index"])):
        if t >= n_times:
            raise DatasetFormatError(
                f"{image_path}: {phase} index {t} (0-based, from the CSV) is outside the {n_times} time points"
            )
        label = alignment.apply(integer_labels(read_voxels(label_file, label_path, frame=t), label_path))
        check_label_values(label, set(range(len(CLASS_NAMES) + 1)), label_path)
        if not label.any():
            raise DatasetFormatError(
                f"{label_path}: no labels at {phase} t={t} (the CSV's 0-based index); labelled t indices "
                f"are {_annotated_times(label_file, label_path)}"
            )
        image = read_voxels(image_file, image_path, frame=t)
        check_finite_image(image, f"{image_path} (t={t})", f"{code}_{phase}")
        for note in alignment.notes:
            log(f"{code}_{phase}: {note}")
        yield Case(
            case_id=f"{code}_{phase}",
            patient_id=code,
            phase=phase,
            image=xyz_to_zyx(image),
            label=xyz_to_zyx(MNMS_TO_CANONICAL[label]),
            spacing=spacing,
            source=str(label_path),
            meta={**meta, "t_index": t, "spacing_unit": image_geometry.unit},
        )


def iter_cases(root, patients=None, log: ReaderLog | None = None, **options) -> Iterator[Case]:
    """One Case per annotated frame (ED then ES) of each labelled subject, in sorted order.

    `patients` restricts reading to those codes; a code that is not a labelled subject is an error.
    `log` receives one line per fact a user must know (a reoriented label, a converted unit).
    """
    reject_options(DATASET_NAME, options)
    log = reader_log(log)
    subjects = _labelled(_read_subjects(root))
    wanted = select_patients(subjects, patients, root, "labelled M&Ms subject (CSV row + files)")
    for code in wanted:
        yield from _read_subject(code, subjects[code], log)
