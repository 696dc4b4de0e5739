"""Reader for the raw ACDC release (Automated Cardiac Diagnosis Challenge, MICCAI 2017).

Layout (with or without the `database/` prefix of the current release; training/ and testing/
are both read): `**/patientNNN/Info.cfg` plus, per annotated frame F (1-based, from the `ED:` and
`ES:` lines of Info.cfg), `patientNNN_frameFF.nii.gz` and `patientNNN_frameFF_gt.nii.gz`.
The 4D cine `patientNNN_4d.nii.gz` is not read.

Labels: ACDC's own 0 background, 1 RV, 2 MYO, 3 LV are the canonical order ("RV", "MYO", "LV"),
so no remapping happens here. Spacing is the NIfTI header voxel size in mm (units honoured),
reordered to (z, y, x). The `_gt` file must describe the image's voxels; a label stored with
flipped or permuted axes is reoriented onto the image grid and reported through `log`
(methods/data/nifti.py). See docs/datasets.md for the layout and pitfalls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

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
from methods.data.walk import walk

DATASET_NAME = "acdc"
CLASS_NAMES = ("RV", "MYO", "LV")
_PATIENT_FOLDER = re.compile(r"^patient\d{3}$")


def class_names(**options) -> tuple[str, ...]:
    """Foreground classes in label order (label k = k-th name)."""
    reject_options(DATASET_NAME, options)
    return CLASS_NAMES


def patient_folders(root: Path) -> dict[str, Path]:
    """patient id -> folder, for every `patientNNN/Info.cfg` under root (any depth, through
    symbolic links to folders: methods/data/walk.py)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: ACDC root folder not found")
    folders: dict[str, Path] = {}
    for folder, _, files in walk(root):
        if not (_PATIENT_FOLDER.match(folder.name) and "Info.cfg" in files):
            continue
        patient = folder.name
        if patient in folders:
            raise DatasetFormatError(
                f"{folder}: patient {patient} found twice (also {folders[patient]}); "
                "keep one copy of the ACDC tree under the root"
            )
        folders[patient] = folder
    if not folders:
        raise DatasetFormatError(
            f"{root}: no ACDC patient folders found (expected **/patientNNN/Info.cfg, e.g. "
            "database/training/patient001/Info.cfg)"
        )
    return folders


def read_info(path: Path) -> dict[str, str]:
    """Parse an Info.cfg (`Key: value` lines) and check that ED and ES are positive integers."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: cannot read Info.cfg ({error})") from error
    info: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise DatasetFormatError(f"{path}: line {number} {line!r} is not 'Key: value'")
        info[key.strip()] = value.strip()
    for key in ("ED", "ES"):
        value = info.get(key)
        if value is None or not value.isdigit() or int(value) < 1:
            raise DatasetFormatError(f"{path}: expected a line '{key}: <1-based frame number>', got {value!r}")
    return info


def list_patients(root, **options) -> list[str]:
    """Sorted patient ids (`patient001`, ...) of every patient folder under root."""
    reject_options(DATASET_NAME, options)
    return sorted(patient_folders(Path(root)))


def patient_meta(root, **options) -> dict[str, dict]:
    """Per-patient metadata from Info.cfg without reading any image: the pathology group, the
    folder it came from (training/testing) and the ED/ES frame numbers."""
    reject_options(DATASET_NAME, options)
    return {patient: _meta(folder, read_info(folder / "Info.cfg")) for patient, folder in patient_folders(Path(root)).items()}


def _meta(folder: Path, info: dict[str, str]) -> dict:
    return {
        "group": info.get("Group", ""),
        "subset": folder.parent.name,
        "ed_frame": int(info["ED"]),
        "es_frame": int(info["ES"]),
        "nb_frames": int(info["NbFrame"]) if info.get("NbFrame", "").isdigit() else None,
    }


def frame_paths(folder: Path, patient: str, frame: int) -> tuple[Path, Path]:
    """(image, label) files of 1-based frame `frame` of a patient folder."""
    return folder / f"{patient}_frame{frame:02d}.nii.gz", folder / f"{patient}_frame{frame:02d}_gt.nii.gz"


def _read_frame(folder: Path, patient: str, frame: int, phase: str, meta: dict, log: ReaderLog) -> Case:
    case_id = f"{patient}_{phase}"
    image_path, label_path = frame_paths(folder, patient, frame)
    image_file = open_nifti(image_path, ndim=3)
    label_file = open_nifti(label_path, ndim=3)
    image_geometry = read_geometry(image_file, image_path)
    alignment = align_label(image_geometry, read_geometry(label_file, label_path))
    image = read_voxels(image_file, image_path)
    check_finite_image(image, image_path, case_id)
    label = alignment.apply(integer_labels(read_voxels(label_file, label_path), label_path))
    check_label_values(label, set(range(len(CLASS_NAMES) + 1)), label_path)
    for note in alignment.notes:
        log(f"{case_id}: {note}")
    return Case(
        case_id=case_id,
        patient_id=patient,
        phase=phase,
        image=xyz_to_zyx(image),
        label=xyz_to_zyx(label),
        spacing=image_geometry.spacing_zyx,
        source=str(label_path),
        meta={**meta, "frame": frame, "spacing_unit": image_geometry.unit},
    )


def iter_cases(root, patients=None, log: ReaderLog | None = None, **options) -> Iterator[Case]:
    """One Case per annotated frame, ED then ES, patients in sorted order.

    `patients` restricts reading to those ids; an id that is not on disk is an error. `log`
    receives one line per fact a user must know (a reoriented label, a converted unit).
    """
    reject_options(DATASET_NAME, options)
    log = reader_log(log)
    folders = patient_folders(Path(root))
    wanted = select_patients(folders, patients, root, "patient folder (with Info.cfg)")
    for patient in wanted:
        folder = folders[patient]
        info = read_info(folder / "Info.cfg")
        meta = _meta(folder, info)
        for phase in ("ED", "ES"):
            yield _read_frame(folder, patient, int(info[phase]), phase, meta, log)
