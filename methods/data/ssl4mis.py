"""Reader for SSL4MIS's preprocessed ACDC (HiLab-git/SSL4MIS `data/ACDC`, the copy most
semi-supervised segmentation code and several of the baselines train on). ACDC: Bernard et al.,
IEEE TMI 2018.

Layout under root (the unpacked `data/ACDC` folder):
    train_slices.list, train.list, val.list, test.list   one name per line, no extension
    data/slices/patientNNN_frameFF_slice_K.h5   one 2D slice: image float32 (H, W), label (H, W)
    data/patientNNN_frameFF.h5                  one 3D volume: image float32 (Z, H, W), label (Z, H, W)
Some public copies keep the slice files directly in `data/`; the file name, not the folder, tells a
slice from a volume. WSL4MIS's copy (HiLab-git/WSL4MIS, commit 027198c, `code/dataloaders/
acdc_data_processing.py`) is read too: `ACDC_training_volumes/` and `ACDC_training_slices/` (slices
from 0), no list files, an extra `scribble` dataset (not read), images clipped at their 99th
percentile before min-max (a reader note says so). An h5 file in those folders named neither way
is an error, so no file is skipped without a word.
Both h5 datasets are named `image` and `label` (gzip). Arrays are SimpleITK's (z, y, x) order
(`sitk.GetArrayFromImage` in `code/dataloaders/acdc_data_processing.py`), i.e. the raw NIfTI
array transposed, which is the harness's order already; images are min-max normalised per 3D
volume; labels keep ACDC's values (1 RV, 2 MYO, 3 LV), the canonical order.

Cases. One per (patient, annotated frame), read from the volume file when there is one, else by
stacking the frame's slice files in index order (indices must run 0..Z-1 or 1..Z without a gap:
the repository's script writes 0-based names, its train_slices.list is 1-based). When both exist,
they must hold the same number of slices. Patient ids come from the file names.

Frames. SSL4MIS renames the two annotated frames frame01 and frame02 in frame order; in every
ACDC patient ED comes before ES, so frame01 is ED and frame02 is ES (patient090, whose ED is raw
frame 04 in its Info.cfg, is frame01 too). A copy that keeps the raw frame numbers (WSL4MIS) is
read the same way: the lower number is ED. With `spacing_from` the mapping is checked against
each patient's Info.cfg, and the label against the raw ground truth of that frame.

Spacing. The h5 files carry none. `spacing_from=<raw ACDC root>` takes it from the raw image
headers (units honoured, methods/data/nifti.py) and checks the shapes agree. Without it the cache
is pixel-only (`pixel_only_reason`): spacing NaN, so mm metrics are undefined while pixel metrics,
and the paper-compatible mode that uses no spacing, still work.

The lists give each patient's SSL4MIS split (`meta["ssl4mis_split"]`). A list naming a frame whose
files are missing is an error; slice names in train_slices.list that do not match the slice files
(e.g. a 1-based list beside 0-based files) are reported, since the volume is built from the files.
The cache is written under the dataset name `acdc` (prepare.CACHE_NAMES): same patients, case ids,
classes and, with `spacing_from`, spacing as the raw release.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from methods.data import acdc
from methods.data.nifti import integer_labels, open_nifti, read_geometry, read_voxels, xyz_to_zyx
from methods.data.types import (
    Case,
    DatasetFormatError,
    ReaderLog,
    check_finite_image,
    check_label_values,
    reader_log,
    select_patients,
)

DATASET_NAME = "ssl4mis_acdc"
CLASS_NAMES = acdc.CLASS_NAMES
LIST_FILES = {"train_slices.list": "train", "train.list": "train", "val.list": "val", "test.list": "test"}
_VOLUME = re.compile(r"^(patient\d{3})_frame(\d{2})\.h5$")
_SLICE = re.compile(r"^(patient\d{3})_frame(\d{2})_slice_(\d+)\.h5$")
_FRAME_NAME = re.compile(r"^(patient\d{3})_frame(\d{2})$")
_SLICE_NAME = re.compile(r"^(patient\d{3})_frame(\d{2})_slice_(\d+)$")
PIXEL_ONLY_REASON = (
    "SSL4MIS's h5 files carry no voxel size and no spacing_from (raw ACDC root) was given: HD95 and ASD "
    "in mm are undefined (NaN); Dice, Jaccard and HD95 in pixels, and the paper-compatible mode, are not affected"
)


def _options(options: dict) -> Path | None:
    unknown = set(options) - {"spacing_from"}
    if unknown:
        raise TypeError(f"unknown {DATASET_NAME} reader option(s) {sorted(unknown)}; known: spacing_from")
    value = options.get("spacing_from")
    return None if value is None else Path(value)


def class_names(**options) -> tuple[str, ...]:
    """ACDC's classes in ACDC's label order (SSL4MIS keeps the gt values)."""
    _options(options)
    return CLASS_NAMES


def pixel_only_reason(**options) -> str | None:
    """Why the cache has no spacing (None when `spacing_from` gives it)."""
    return None if _options(options) is not None else PIXEL_ONLY_REASON


# ----------------------------------------------------------------------------------------------
# layout


class _Frame:
    """The files of one (patient, SSL4MIS frame name)."""

    def __init__(self, patient: str, number: int):
        self.patient = patient
        self.number = number
        self.volume: Path | None = None
        self.slices: dict[int, Path] = {}

    @property
    def name(self) -> str:
        return f"{self.patient}_frame{self.number:02d}"


#: folders under root that hold h5 files, per layout: SSL4MIS's own (`data/` volumes, `data/slices/`
#: slices; some copies keep the slices directly in `data/`) and WSL4MIS's. A file's name, not its
#: folder, says whether it is a volume or a slice.
LAYOUTS = {
    "SSL4MIS": ("data", "data/slices"),
    "WSL4MIS": ("ACDC_training_volumes", "ACDC_training_slices"),
}
WSL4MIS_NOTE = (
    "WSL4MIS layout (ACDC_training_volumes/, ACDC_training_slices/): no list files (WSL4MIS splits by patient "
    "ids in code); its images were clipped at their 99th intensity percentile before min-max "
    "(HiLab-git/WSL4MIS code/dataloaders/acdc_data_processing.py), so intensities differ from SSL4MIS's; "
    "the 'scribble' dataset is not read, 'label' is the full ground truth"
)


def _h5_folders(root: Path) -> tuple[str, list[Path]]:
    """(layout name, the folders of that layout present under root)."""
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: SSL4MIS ACDC root folder not found")
    present = {name: [root / f for f in folders if (root / f).is_dir()] for name, folders in LAYOUTS.items()}
    found = [name for name, folders in present.items() if folders]
    if len(found) > 1:
        raise DatasetFormatError(f"{root}: holds both an SSL4MIS data/ folder and WSL4MIS's ACDC_training_* folders; "
                                 "keep one copy (point root at a folder that holds one of them)")
    if not found:
        loose = sorted(p.name for p in root.glob("*.h5"))[:3]
        hint = (f" It holds h5 files itself (e.g. {loose}): point root at the folder above it." if loose else "")
        raise DatasetFormatError(f"{root}: no data/ folder (SSL4MIS: data/patientNNN_frameFF.h5 and "
                                 "data/slices/patientNNN_frameFF_slice_K.h5, or the slices in data/ itself) and no "
                                 "ACDC_training_volumes/ or ACDC_training_slices/ folder (WSL4MIS)." + hint)
    return found[0], present[found[0]]


def _scan(root: Path) -> dict[str, dict[int, _Frame]]:
    """patient -> SSL4MIS frame number -> files, from the file names in the layout's folders. Every
    h5 file there must be named as a volume or a slice: none is skipped without a word."""
    _, folders = _h5_folders(root)
    frames: dict[str, dict[int, _Frame]] = {}

    def frame(patient: str, number: str) -> _Frame:
        return frames.setdefault(patient, {}).setdefault(int(number), _Frame(patient, int(number)))

    for folder in folders:
        for path in sorted(folder.glob("*.h5")):
            volume, one_slice = _VOLUME.match(path.name), _SLICE.match(path.name)
            if volume:
                entry = frame(volume[1], volume[2])
                if entry.volume is not None:
                    raise DatasetFormatError(f"{path}: {entry.name} found twice (also {entry.volume}); keep one copy")
                entry.volume = path
            elif one_slice:
                entry, index = frame(one_slice[1], one_slice[2]), int(one_slice[3])
                if index in entry.slices:
                    raise DatasetFormatError(f"{path}: slice {index} of {entry.name} found twice (also "
                                             f"{entry.slices[index]}); keep one copy")
                entry.slices[index] = path
            else:
                raise DatasetFormatError(f"{path}: not an SSL4MIS ACDC file name (patientNNN_frameFF.h5 or "
                                         "patientNNN_frameFF_slice_K.h5); move other files out of the data folders")
    if not frames:
        raise DatasetFormatError(f"{root}: no SSL4MIS ACDC h5 files in {[str(f) for f in folders]} (expected "
                                 "patientNNN_frameFF.h5 or patientNNN_frameFF_slice_K.h5)")
    for patient, by_number in frames.items():
        if len(by_number) != 2:
            names = [f.name for f in by_number.values()]
            raise DatasetFormatError(f"{root}: patient {patient} has {len(by_number)} annotated frame(s) {names} in "
                                     f"{[str(f) for f in folders]}; expected two (ED and ES)")
    return frames


def _read_lists(root: Path, frames: dict[str, dict[int, _Frame]], log: ReaderLog | None) -> dict[str, str]:
    """patient -> SSL4MIS split from the list files present; check they match the files."""
    splits: dict[str, str] = {}
    unmatched_slices: list[str] = []
    for list_name, split in LIST_FILES.items():
        path = root / list_name
        if not path.is_file():
            continue
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise DatasetFormatError(f"{path}: cannot read the list ({error})") from error
        for number, line in enumerate(lines, start=1):
            name = line.strip()
            if not name:
                continue
            slice_match = _SLICE_NAME.match(name) if list_name == "train_slices.list" else None
            match = slice_match or _FRAME_NAME.match(name)
            if match is None:
                expected = "patientNNN_frameFF_slice_K" if list_name == "train_slices.list" else "patientNNN_frameFF"
                raise DatasetFormatError(f"{path}: line {number} {name!r} is not a name like {expected}")
            patient, frame_number = match[1], int(match[2])
            entry = frames.get(patient, {}).get(frame_number)
            if entry is None:
                raise DatasetFormatError(f"{path}: line {number} names {match[1]}_frame{match[2]}, which has no h5 "
                                         f"file in {[str(f) for f in _h5_folders(root)[1]]}")
            if slice_match is not None and int(slice_match[3]) not in entry.slices:
                unmatched_slices.append(name)
            if splits.setdefault(patient, split) != split:
                raise DatasetFormatError(f"{path}: line {number}: {patient} is also in the {splits[patient]} list")
    if unmatched_slices and log is not None:
        log(f"train_slices.list names {len(unmatched_slices)} slice(s) that have no slice file "
            f"(e.g. {unmatched_slices[0]}): its numbering does not match the files; volumes are built from the files")
    return splits


def list_patients(root, **options) -> list[str]:
    """Sorted patient ids found in the h5 file names."""
    _options(options)
    return sorted(_scan(Path(root)))


def patient_meta(root, **options) -> dict[str, dict]:
    """patient -> {"ssl4mis_split": train/val/test (from the lists, "" when in none)}, without
    reading any array."""
    _options(options)
    root = Path(root)
    frames = _scan(root)
    splits = _read_lists(root, frames, None)
    return {patient: {"ssl4mis_split": splits.get(patient, "")} for patient in sorted(frames)}


# ----------------------------------------------------------------------------------------------
# arrays


def _read_h5(path: Path, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label int64) of one SSL4MIS h5 file, checked."""
    try:
        with h5py.File(path, "r") as f:
            missing = [key for key in ("image", "label") if key not in f]
            if missing:
                raise DatasetFormatError(f"{path}: no dataset {missing} (SSL4MIS files hold 'image' and 'label'; "
                                         f"found {sorted(f.keys())})")
            image, label = f["image"][()], f["label"][()]
    except DatasetFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise DatasetFormatError(f"{path}: not a readable HDF5 file, truncated or corrupt ({error})") from error
    if image.ndim != ndim or label.shape != image.shape:
        kind = "slice (H, W)" if ndim == 2 else "volume (Z, H, W)"
        raise DatasetFormatError(f"{path}: expected a {kind} with image and label of the same shape, got image "
                                 f"{image.shape} and label {label.shape}")
    if not np.issubdtype(image.dtype, np.number):
        raise DatasetFormatError(f"{path}: image must hold numbers, got dtype {image.dtype}")
    match = _VOLUME.match(path.name) or _SLICE.match(path.name)
    check_finite_image(image, path, f"{match[1]}_frame{match[2]}" if match else path.stem)
    label = integer_labels(label, path)
    check_label_values(label, set(range(len(CLASS_NAMES) + 1)), path)
    return image.astype(np.float32), label


def _slice_stack(frame: _Frame) -> tuple[np.ndarray, np.ndarray, str]:
    indices = sorted(frame.slices)
    base = indices[0]
    if base not in (0, 1) or indices != list(range(base, base + len(indices))):
        gaps = sorted(set(range(base, indices[-1] + 1)) - set(indices))
        raise DatasetFormatError(f"{next(iter(frame.slices.values())).parent}: slices of {frame.name} are numbered "
                                 f"{indices[0]}..{indices[-1]} with {'gaps at ' + str(gaps) if gaps else 'an offset'}; "
                                 "expected 0..Z-1 or 1..Z")
    pairs = [_read_h5(frame.slices[k], ndim=2) for k in indices]
    shapes = {p[0].shape for p in pairs}
    if len(shapes) != 1:
        raise DatasetFormatError(f"{frame.slices[indices[0]].parent}: slices of {frame.name} differ in size {sorted(shapes)}")
    source = str(frame.slices[indices[0]].with_name(f"{frame.name}_slice_{{{base}..{indices[-1]}}}.h5"))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), source


def _frame_arrays(frame: _Frame) -> tuple[np.ndarray, np.ndarray, str]:
    """(image (Z, H, W), label (Z, H, W), source) of one frame."""
    if frame.volume is None:
        return _slice_stack(frame)
    image, label = _read_h5(frame.volume, ndim=3)
    if frame.slices and len(frame.slices) != image.shape[0]:
        raise DatasetFormatError(f"{frame.volume}: {image.shape[0]} slices, but there are {len(frame.slices)} "
                                 f"slice files for {frame.name}; the two copies disagree")
    return image, label, str(frame.volume)


# ----------------------------------------------------------------------------------------------
# raw ACDC (spacing_from)


def _raw_frames(raw_root: Path, patient: str, numbers: tuple[int, int], raw_folders: dict[str, Path]) -> tuple[Path, dict]:
    """(patient folder, {"ED": raw frame, "ES": raw frame}) with the SSL4MIS naming checked."""
    if patient not in raw_folders:
        raise DatasetFormatError(f"{raw_root}: no ACDC patient folder for {patient} (spacing_from must be the raw ACDC "
                                 "release holding every patient of the SSL4MIS copy)")
    folder = raw_folders[patient]
    info = acdc.read_info(folder / "Info.cfg")
    ed, es = int(info["ED"]), int(info["ES"])
    if numbers == (1, 2):
        if ed >= es:
            raise DatasetFormatError(f"{folder / 'Info.cfg'}: ED {ed} is not before ES {es}, so SSL4MIS's frame01/frame02 "
                                     "cannot be mapped to ED/ES")
    elif numbers != (ed, es):
        raise DatasetFormatError(f"{folder / 'Info.cfg'}: ED {ed} and ES {es}, but the SSL4MIS copy names {patient}'s "
                                 f"frames {numbers[0]:02d} and {numbers[1]:02d} (expected 01/02 or the raw numbers)")
    return folder, {"ED": ed, "ES": es}


def _raw_geometry_and_label(folder: Path, patient: str, frame: int, shape_zyx, h5_source: str, label: np.ndarray):
    """Spacing (z, y, x) mm and unit from the raw image, after checking shape and ground truth."""
    image_path, label_path = acdc.frame_paths(folder, patient, frame)
    image_file = open_nifti(image_path, ndim=3)
    geometry = read_geometry(image_file, image_path)
    raw_shape = tuple(geometry.shape[::-1])
    if tuple(shape_zyx) != raw_shape:
        raise DatasetFormatError(f"{h5_source}: shape (Z, H, W) {tuple(shape_zyx)} differs from the raw frame "
                                 f"{image_path} {raw_shape}; not the same image")
    raw_label = xyz_to_zyx(integer_labels(read_voxels(open_nifti(label_path, ndim=3), label_path), label_path))
    differing = int(np.count_nonzero(raw_label != label))
    if differing:
        raise DatasetFormatError(f"{h5_source}: label differs from the raw ground truth {label_path} in {differing} voxels; "
                                 "the SSL4MIS frame is not that ACDC frame")
    return geometry.spacing_zyx, geometry.unit, str(image_path)


# ----------------------------------------------------------------------------------------------


def iter_cases(root, patients=None, log: ReaderLog | None = None, **options) -> Iterator[Case]:
    """One Case per annotated frame (ED then ES), patients in sorted order; see the module
    docstring. `log` receives what a user must know (list/file mismatches)."""
    raw_root = _options(options)
    log = reader_log(log)
    root = Path(root)
    frames = _scan(root)
    splits = _read_lists(root, frames, log)
    if _h5_folders(root)[0] == "WSL4MIS":
        log(WSL4MIS_NOTE)
    elif not any((root / name).is_file() for name in LIST_FILES):
        log(f"no list files ({', '.join(LIST_FILES)}) under {root}: every patient's ssl4mis_split is empty")
    wanted = select_patients(frames, patients, root, "SSL4MIS ACDC patient (h5 files)")
    raw_folders = acdc.patient_folders(raw_root) if raw_root is not None else {}
    for patient in wanted:
        numbers = tuple(sorted(frames[patient]))
        raw = _raw_frames(raw_root, patient, numbers, raw_folders) if raw_root is not None else None
        for phase, number in zip(("ED", "ES"), numbers):
            frame = frames[patient][number]
            image, label, source = _frame_arrays(frame)
            meta = {"ssl4mis_split": splits.get(patient, ""), "ssl4mis_name": frame.name}
            if raw is None:
                spacing = (float("nan"),) * 3
                meta["spacing_source"] = "none (pixel-only)"
            else:
                folder, raw_frames = raw
                spacing, unit, raw_image = _raw_geometry_and_label(folder, patient, raw_frames[phase], image.shape,
                                                                   source, label)
                meta.update({"frame": raw_frames[phase], "spacing_source": raw_image, "spacing_unit": unit})
            yield Case(
                case_id=f"{patient}_{phase}",
                patient_id=patient,
                phase=phase,
                image=image,
                label=label,
                spacing=spacing,
                source=source,
                meta=meta,
            )
