"""Reader for the Sunnybrook Cardiac Data (SCD, MICCAI 2009 LV Segmentation Challenge, Radau et al.).

Two on-disk layouts are read; the contour tree is the same in both:
    .../<Training|Validation|Online>DataContours/SC-HF-I-01/contours-manual/IRCCI-expert/
        IM-0001-NNNN-icontour-manual.txt     endocardium, one "x y" vertex per line (pixels)
        IM-0001-NNNN-ocontour-manual.txt     epicardium (on real data: ED frames only, and not on
                                             every ED slice)
        IM-0001-NNNN-p1contour-manual.txt    papillary muscles (ignored; so is -p2contour-)
  A (MICCAI 2009 release): .../SC-HF-I-01/DICOM/IM-0001-NNNN.dcm
  B (Kaggle Data Science Bowl copy): .../SC-HF-I-1/IM-<series>-NNNN.dcm, where the case's
    short-axis series comes from `SAX_SERIES` (the folder mixes several series). Public copies of
    that table disagree for SC-N-6 (0981 in the Kaggle tutorial's dict, 0984 in e.g.
    vuptran/cardiac-segmentation's SAX_series.txt): both are accepted, the one whose files hold
    the contoured images is read.
The Cardiac Atlas Project re-release (SCD_IMAGES_0X/SCD0000101/CINESAX_*) is not read; see
docs/datasets.md.

Frames. NNNN = slice * P + phase + 1 with P = 20 phases per slice (option `phases_per_slice`).
Contoured images are grouped by phase index; a case must have exactly two contoured phases. The
phase whose endocardial cavity is larger on the slices contoured in both phases is ED (maximal LV
volume), the other ES. Phase index 0 is not assumed to be ED: public file lists show e.g.
SC-HF-I-01 contoured at images 0048/0059, i.e. phases 7 and 18 of 20.

Slices. Only contoured slices are kept (as SSL code on SCD does): an unannotated slice has no
ground truth, and filling it with background would teach and score "no LV" there. The kept slices
are ordered by ascending position along the slice normal (ImageOrientationPatient row x column
direction, dotted with ImagePositionPatient). z spacing is the median distance between
consecutive kept slices (SpacingBetweenSlices, then SliceThickness, for a single slice); on the
real release it is 8 or 10 mm. `meta["slice_positions_mm"]` keeps the exact positions, and
`meta["uniform_z"]` is False when a gap (an uncontoured slice in between) makes the stack
non-uniform.

Rasterisation. A vertex (x, y) is column x, row y. Option `contour_convention` says where pixel
centres are (pixel = row r, column c, 0-based):
- "one_based" (default): at (x = c + 1, y = r + 1), MATLAB's image coordinates. The challenge's own
  evaluation code (compare_contours.m, Radau and Lu, 2009) loads the files and fills them with
  MATLAB's `poly2mask` as they are, and on the real images the contours follow the image edges
  best when shifted by -1 px in x and y (docs/datasets.md, "Contour convention").
- "zero_based": at (x = c, y = r), what `cv2.fillPoly` / `skimage.draw.polygon` loaders assume
  (one pixel right of and below the default).
- "pixel_corner": at (x = c + 0.5, y = r + 0.5), (0, 0) being the corner of the first pixel.
A pixel belongs to the polygon when its centre is inside or on it (`skimage.draw.polygon2mask`).

Classes. Default `classes="lv"`: ("LV",) = filled endocardial contour (papillary muscles and
trabeculations are inside, as drawn; the p1/p2 papillary files are ignored). `classes="lv_myo"`:
("LV", "MYO") with MYO = filled epicardium minus filled endocardium. Only slices with both
contours can be labelled, so the other slices of a frame are left out, a frame without any such
slice (on real data, every ES frame) is left out, and each is reported through `log`; it is an
error only when nothing at all is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pydicom
from skimage.draw import polygon2mask

from methods.data.types import Case, DatasetFormatError, ReaderLog, reader_log, select_patients
from methods.data.walk import walk

DATASET_NAME = "scd"
CLASS_OPTIONS = {"lv": ("LV",), "lv_myo": ("LV", "MYO")}
DEFAULT_PHASES_PER_SLICE = 20
# contour_convention -> the contour coordinate of the centre of pixel 0 (subtracted from vertices).
CONTOUR_CONVENTIONS = {"one_based": 1.0, "zero_based": 0.0, "pixel_corner": 0.5}
DEFAULT_CONTOUR_CONVENTION = "one_based"

# Layout B (Kaggle) case -> (short-axis series numbers accepted, challenge subset). Case names are
# the unpadded ones of that copy. Source: the Kaggle "FCN for LV segmentation" tutorial's SAX_SERIES
# table, reproduced in several public repositories; the subsets follow that table's comments.
# SC-N-6 is 0981 there and 0984 in other copies (e.g. vuptran/cardiac-segmentation SAX_series.txt):
# both are accepted and the files decide (`_image_prefix`).
SAX_SERIES = {
    "SC-HF-I-1": (("0004",), "training"), "SC-HF-I-2": (("0106",), "training"),
    "SC-HF-I-4": (("0116",), "training"), "SC-HF-I-40": (("0134",), "training"),
    "SC-HF-NI-3": (("0379",), "training"), "SC-HF-NI-4": (("0501",), "training"),
    "SC-HF-NI-34": (("0446",), "training"), "SC-HF-NI-36": (("0474",), "training"),
    "SC-HYP-1": (("0550",), "training"), "SC-HYP-3": (("0650",), "training"),
    "SC-HYP-38": (("0734",), "training"), "SC-HYP-40": (("0755",), "training"),
    "SC-N-2": (("0898",), "training"), "SC-N-3": (("0915",), "training"), "SC-N-40": (("0944",), "training"),
    "SC-HF-I-5": (("0156",), "validation"), "SC-HF-I-6": (("0180",), "validation"),
    "SC-HF-I-7": (("0209",), "validation"), "SC-HF-I-8": (("0226",), "validation"),
    "SC-HF-NI-7": (("0523",), "validation"), "SC-HF-NI-11": (("0270",), "validation"),
    "SC-HF-NI-31": (("0401",), "validation"), "SC-HF-NI-33": (("0424",), "validation"),
    "SC-HYP-6": (("0767",), "validation"), "SC-HYP-7": (("0007",), "validation"),
    "SC-HYP-8": (("0796",), "validation"), "SC-HYP-37": (("0702",), "validation"),
    "SC-N-5": (("0963",), "validation"), "SC-N-6": (("0981", "0984"), "validation"),
    "SC-N-7": (("1009",), "validation"),
    "SC-HF-I-9": (("0241",), "online"), "SC-HF-I-10": (("0024",), "online"),
    "SC-HF-I-11": (("0043",), "online"), "SC-HF-I-12": (("0062",), "online"),
    "SC-HF-NI-12": (("0286",), "online"), "SC-HF-NI-13": (("0304",), "online"),
    "SC-HF-NI-14": (("0331",), "online"), "SC-HF-NI-15": (("0359",), "online"),
    "SC-HYP-9": (("0003",), "online"), "SC-HYP-10": (("0579",), "online"),
    "SC-HYP-11": (("0601",), "online"), "SC-HYP-12": (("0629",), "online"),
    "SC-N-9": (("1031",), "online"), "SC-N-10": (("0851",), "online"), "SC-N-11": (("0878",), "online"),
}
_CASE_NAME = re.compile(r"^SC-(HF-I|HF-NI|HYP|N)-(\d{1,2})$")
_CONTOUR_NAME = re.compile(r"^IM-\d{4}-(\d{4})-([io])contour-manual\.txt$")
_SUBSETS = ("training", "validation", "online")


# ----------------------------------------------------------------------------------------------
# options and names


_OPTIONS = ("classes", "contour_convention", "phases_per_slice")


def _classes(options: dict) -> str:
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"unknown {DATASET_NAME} reader option(s) {sorted(unknown)}; known: {', '.join(_OPTIONS)}")
    classes = options.get("classes", "lv")
    if classes not in CLASS_OPTIONS:
        raise ValueError(f"{DATASET_NAME} option classes={classes!r}: expected one of {sorted(CLASS_OPTIONS)}")
    return classes


def _phases_per_slice(options: dict) -> int:
    value = options.get("phases_per_slice", DEFAULT_PHASES_PER_SLICE)
    if not isinstance(value, int) or value < 2:
        raise ValueError(f"{DATASET_NAME} option phases_per_slice={value!r}: expected an integer >= 2")
    return value


def _contour_convention(options: dict) -> str:
    value = options.get("contour_convention", DEFAULT_CONTOUR_CONVENTION)
    if value not in CONTOUR_CONVENTIONS:
        raise ValueError(f"{DATASET_NAME} option contour_convention={value!r}: expected one of {sorted(CONTOUR_CONVENTIONS)}")
    return value


def class_names(**options) -> tuple[str, ...]:
    """("LV",) by default, ("LV", "MYO") with classes="lv_myo"."""
    return CLASS_OPTIONS[_classes(options)]


def canonical_case_name(name: str) -> str | None:
    """'SC-HF-I-1' or 'SC-HF-I-01' -> 'SC-HF-I-01' (the MICCAI release's zero-padded name)."""
    match = _CASE_NAME.match(name)
    return f"SC-{match[1]}-{int(match[2]):02d}" if match else None


def _kaggle_name(patient: str) -> str:
    """'SC-HF-I-01' -> 'SC-HF-I-1' (the key of SAX_SERIES)."""
    head, _, number = patient.rpartition("-")
    return f"{head}-{int(number)}"


# ----------------------------------------------------------------------------------------------
# layout discovery


@dataclass(frozen=True)
class _Study:
    patient: str
    contour_dir: Path
    image_dir: Path
    image_prefixes: tuple[str, ...]  # ("IM-0001",) (layout A) or the "IM-<series>" found (layout B)
    layout: str
    subset: str


def _subset_from_path(path: Path, root: Path) -> str:
    for part in path.relative_to(root).parts:
        lowered = part.lower()
        for subset in _SUBSETS:
            if subset in lowered:
                return subset
    return ""


def _discover(root: Path) -> dict[str, _Study]:
    """Walk root once (through links to folders); every case folder with expert contours becomes a study."""
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: SCD root folder not found")
    contours: dict[str, list[Path]] = {}
    dicom_a: dict[str, list[Path]] = {}
    dicom_b: dict[str, list[Path]] = {}
    for dirpath, dirnames, _ in walk(root):
        descend = []
        for name in dirnames:
            patient = canonical_case_name(name)
            if patient is None:
                descend.append(name)
                continue
            folder = Path(dirpath) / name
            if (folder / "contours-manual" / "IRCCI-expert").is_dir():
                contours.setdefault(patient, []).append(folder / "contours-manual" / "IRCCI-expert")
            if (folder / "DICOM").is_dir():
                dicom_a.setdefault(patient, []).append(folder / "DICOM")
            else:
                candidates = SAX_SERIES.get(_kaggle_name(patient), ((), ""))[0]
                if any(next(folder.glob(f"IM-{series}-*.dcm"), None) is not None for series in candidates):
                    dicom_b.setdefault(patient, []).append(folder)
        dirnames[:] = descend
    if not contours:
        raise DatasetFormatError(
            f"{root}: no SCD contour folders found (expected .../SC-HF-I-01/contours-manual/IRCCI-expert/ "
            "holding IM-0001-NNNN-icontour-manual.txt)"
        )
    studies = {}
    for patient, contour_dirs in sorted(contours.items()):
        if len(contour_dirs) > 1:
            raise DatasetFormatError(f"{root}: case {patient} has several contour folders {[str(d) for d in contour_dirs]}")
        for found in (dicom_a, dicom_b):
            if len(found.get(patient, [])) > 1:
                raise DatasetFormatError(f"{root}: case {patient} has several image folders {[str(d) for d in found[patient]]}")
        kaggle = _kaggle_name(patient)
        if patient in dicom_a:
            image_dir, prefixes, layout = dicom_a[patient][0], ("IM-0001",), "A"
        elif patient in dicom_b:
            image_dir, layout = dicom_b[patient][0], "B"
            prefixes = tuple(f"IM-{series}" for series in SAX_SERIES[kaggle][0]
                             if next(image_dir.glob(f"IM-{series}-*.dcm"), None) is not None)
        else:
            raise DatasetFormatError(
                f"{contour_dirs[0]}: no images for case {patient}; expected {patient}/DICOM/IM-0001-NNNN.dcm "
                f"(MICCAI release) or {kaggle}/IM-<series>-NNNN.dcm (Kaggle copy) under {root}"
            )
        subset = _subset_from_path(contour_dirs[0], root) or SAX_SERIES.get(kaggle, ("", ""))[1]
        studies[patient] = _Study(patient, contour_dirs[0], image_dir, prefixes, layout, subset)
    return studies


def list_patients(root, **options) -> list[str]:
    """Sorted zero-padded case names (`SC-HF-I-01`, ...) that have expert contours and images."""
    _classes(options)
    return sorted(_discover(Path(root)))


def patient_meta(root, **options) -> dict[str, dict]:
    """Case -> challenge subset (training/validation/online, from folder names or SAX_SERIES),
    pathology group and layout, without reading images."""
    _classes(options)
    return {
        p: {"subset": s.subset, "group": _CASE_NAME.match(p)[1], "layout": s.layout}
        for p, s in sorted(_discover(Path(root)).items())
    }


# ----------------------------------------------------------------------------------------------
# files


def read_contour(path: Path) -> np.ndarray:
    """Polygon vertices [N, 2] as (x = column, y = row) in pixels."""
    try:
        points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as error:
        raise DatasetFormatError(f"{path}: expected one 'x y' pair of numbers per line ({error})") from error
    if points.shape[1] != 2 or points.shape[0] < 3 or not np.all(np.isfinite(points)):
        raise DatasetFormatError(f"{path}: expected at least 3 lines of 'x y' numbers, got an array of shape {points.shape}")
    return points


def rasterise(points: np.ndarray, shape: tuple[int, int], convention: str = DEFAULT_CONTOUR_CONVENTION) -> np.ndarray:
    """Boolean mask of the pixels whose centre lies inside or on the polygon (x = column, y = row),
    with pixel centres where `convention` puts them (module docstring)."""
    origin = CONTOUR_CONVENTIONS[convention]
    return polygon2mask(shape, np.column_stack([points[:, 1] - origin, points[:, 0] - origin]))


@dataclass(frozen=True)
class _Slice:
    number: int  # image number NNNN
    path: Path
    pixels: np.ndarray  # float32 [rows, cols]
    position: float  # mm along the slice normal
    normal: np.ndarray
    pixel_spacing: tuple[float, float]  # (row, column) mm
    fallback_z: float | None  # SpacingBetweenSlices, else SliceThickness


def _dicom_float(ds, keyword: str, path: Path, count: int) -> list[float]:
    value = ds.get(keyword)
    if value is None:
        raise DatasetFormatError(f"{path}: DICOM attribute {keyword} is missing")
    values = [float(v) for v in (value if count > 1 else [value])]
    if len(values) != count:
        raise DatasetFormatError(f"{path}: DICOM attribute {keyword} should hold {count} numbers, got {values}")
    return values


def _rescale(ds, keyword: str, absent: float, path: Path) -> np.float32:
    """RescaleSlope or RescaleIntercept; a tag present with a zero-length value (which DICOM PS3.5
    Sec. 7.1 lets an element have, some scanners write it so, and pydicom reads as None) counts as
    absent."""
    value = ds.get(keyword)
    if value is None or (isinstance(value, str) and not value.strip()):
        return np.float32(absent)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{path}: DICOM attribute {keyword} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise DatasetFormatError(f"{path}: DICOM attribute {keyword} is {number}; expected a finite number")
    return np.float32(number)


def read_slice(path: Path, number: int) -> _Slice:
    """Pixels (rescaled with RescaleSlope/Intercept) and geometry of one DICOM image."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: DICOM image not found (a contour file refers to image {number:04d})")
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float32)
    # pydicom raises a wide range of types on truncated or corrupt files (InvalidDicomError,
    # EOFError, struct.error, ValueError, AttributeError for absent PixelData, ...).
    except Exception as error:  # noqa: BLE001
        raise DatasetFormatError(f"{path}: not a readable DICOM image ({type(error).__name__}: {error})") from error
    if pixels.ndim != 2:
        raise DatasetFormatError(f"{path}: expected a single-frame 2D image, got pixel array shape {pixels.shape}")
    pixels = pixels * _rescale(ds, "RescaleSlope", 1.0, path) + _rescale(ds, "RescaleIntercept", 0.0, path)
    orientation = np.array(_dicom_float(ds, "ImageOrientationPatient", path, 6))
    normal = np.cross(orientation[:3], orientation[3:])
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise DatasetFormatError(f"{path}: ImageOrientationPatient {orientation.tolist()} is not two orthonormal directions")
    position = float(np.dot(_dicom_float(ds, "ImagePositionPatient", path, 3), normal))
    row_mm, col_mm = _dicom_float(ds, "PixelSpacing", path, 2)
    fallback = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    return _Slice(number, path, pixels, position, normal, (row_mm, col_mm), float(fallback) if fallback else None)


# ----------------------------------------------------------------------------------------------
# frames


def _contour_files(study: _Study) -> dict[str, dict[int, Path]]:
    """'i'/'o' -> image number -> contour file."""
    files: dict[str, dict[int, Path]] = {"i": {}, "o": {}}
    for path in sorted(study.contour_dir.iterdir()):
        match = _CONTOUR_NAME.match(path.name)
        if match:
            files[match[2]][int(match[1])] = path
    if not files["i"]:
        raise DatasetFormatError(f"{study.contour_dir}: no IM-0001-NNNN-icontour-manual.txt files")
    return files


def _phase_groups(numbers: list[int], phases_per_slice: int, where: Path) -> dict[int, dict[int, int]]:
    """phase index -> {slice index -> image number}; exactly two phases (ED, ES) are expected."""
    groups: dict[int, dict[int, int]] = {}
    for number in sorted(numbers):
        slice_index, phase = divmod(number - 1, phases_per_slice)
        groups.setdefault(phase, {})[slice_index] = number
    if len(groups) != 2:
        listing = {phase: sorted(g.values()) for phase, g in sorted(groups.items())}
        raise DatasetFormatError(
            f"{where}: endocardial contours at {len(groups)} phase(s) {listing} (phase = (NNNN-1) % "
            f"{phases_per_slice}); expected exactly two, ED and ES"
        )
    return groups


def _ed_phase(groups: dict[int, dict[int, int]], areas: dict[int, int], where: Path) -> int:
    """The phase with the larger endocardial area, over the slices contoured in both phases
    (over all its slices, per slice, when the two phases share none)."""
    (phase_a, slices_a), (phase_b, slices_b) = sorted(groups.items())
    common = slices_a.keys() & slices_b.keys()
    if common:
        area_a = sum(areas[slices_a[s]] for s in common)
        area_b = sum(areas[slices_b[s]] for s in common)
    else:
        area_a = sum(areas[n] for n in slices_a.values()) / len(slices_a)
        area_b = sum(areas[n] for n in slices_b.values()) / len(slices_b)
    if area_a == area_b:
        raise DatasetFormatError(f"{where}: phases {phase_a} and {phase_b} have equal LV areas; cannot tell ED from ES")
    return phase_a if area_a > area_b else phase_b


def _z_spacing(slices: list[_Slice], where: str) -> tuple[float, bool]:
    if len(slices) == 1:
        if slices[0].fallback_z is None or slices[0].fallback_z <= 0:
            raise DatasetFormatError(f"{slices[0].path}: single contoured slice and no SpacingBetweenSlices/SliceThickness")
        return slices[0].fallback_z, True
    gaps = np.diff([s.position for s in slices])
    if np.any(gaps < 1e-3):
        raise DatasetFormatError(f"{where}: two contoured images share a slice position ({[s.path.name for s in slices]})")
    spacing = float(np.median(gaps))
    return spacing, bool(np.allclose(gaps, spacing, rtol=0.05))


@dataclass(frozen=True)
class _Settings:
    classes: str
    convention: str
    phases_per_slice: int
    log: ReaderLog


def _numbers(numbers) -> str:
    return ", ".join(f"{n:04d}" for n in numbers)


def _build_frame(study: _Study, phase: str, phase_index: int, numbers: list[int], files, settings: _Settings,
                 slices_by_number: dict[int, _Slice], endocardium: dict[int, np.ndarray]) -> Case | None:
    """The frame's Case, or None when `lv_myo` leaves none of its slices (reported)."""
    case_id = f"{study.patient}_{phase}"
    where = f"{study.contour_dir} ({study.patient} {phase}, phase index {phase_index})"
    if settings.classes == "lv_myo":
        without_epi = [n for n in numbers if n not in files["o"]]
        numbers = [n for n in numbers if n in files["o"]]
        if not numbers:
            settings.log(f"{case_id}: left out: classes='lv_myo' needs an epicardial contour, and none of its "
                         f"{len(without_epi)} contoured slice(s) has one (no IM-0001-NNNN-ocontour-manual.txt "
                         f"for images {_numbers(without_epi)} in {study.contour_dir})")
            return None
        if without_epi:
            settings.log(f"{case_id}: {len(without_epi)} of {len(without_epi) + len(numbers)} contoured slices left out "
                         f"for classes='lv_myo' (no epicardial contour for images {_numbers(without_epi)})")
    slices = sorted((slices_by_number[n] for n in numbers), key=lambda s: s.position)
    first = slices[0]
    for other in slices[1:]:
        if other.pixels.shape != first.pixels.shape:
            raise DatasetFormatError(f"{other.path}: image size {other.pixels.shape} differs from {first.path.name} {first.pixels.shape}")
        if not np.allclose(other.pixel_spacing, first.pixel_spacing, rtol=1e-3):
            raise DatasetFormatError(f"{other.path}: PixelSpacing {other.pixel_spacing} differs from {first.path.name} {first.pixel_spacing}")
        if not np.allclose(other.normal, first.normal, atol=1e-3):
            raise DatasetFormatError(f"{other.path}: ImageOrientationPatient differs from {first.path.name}")
    z_mm, uniform = _z_spacing(slices, where)
    labels = []
    for s in slices:
        label = endocardium[s.number].astype(np.uint8)
        if settings.classes == "lv_myo":
            epicardium = rasterise(read_contour(files["o"][s.number]), s.pixels.shape, settings.convention)
            label[epicardium & (label == 0)] = 2
        labels.append(label)
    meta = {
        "subset": study.subset,
        "layout": study.layout,
        "phase_index": phase_index,
        "image_numbers": [s.number for s in slices],
        "slice_positions_mm": [s.position for s in slices],
        "uniform_z": uniform,
    }
    if study.layout == "B":
        meta["series"] = slices[0].path.name.split("-")[1]
    return Case(
        case_id=case_id,
        patient_id=study.patient,
        phase=phase,
        image=np.stack([s.pixels for s in slices]),
        label=np.stack(labels),
        spacing=(z_mm, *first.pixel_spacing),
        source=str(study.contour_dir),
        meta=meta,
    )


def _image_prefix(study: _Study, numbers: list[int]) -> str:
    """The image series of the study holding every contoured image (layout B may offer two)."""
    if len(study.image_prefixes) == 1:
        return study.image_prefixes[0]
    complete = [p for p in study.image_prefixes
                if all((study.image_dir / f"{p}-{n:04d}.dcm").is_file() for n in numbers)]
    if len(complete) != 1:
        state = "both hold" if complete else "neither holds"
        raise DatasetFormatError(
            f"{study.image_dir}: series {' and '.join(study.image_prefixes)} are both accepted for {study.patient} "
            f"(public SAX_SERIES tables disagree) and {state} every contoured image ({_numbers(numbers)}); "
            "keep only the short-axis cine series in this folder"
        )
    return complete[0]


def _read_study(study: _Study, settings: _Settings) -> Iterator[Case]:
    files = _contour_files(study)
    groups = _phase_groups(list(files["i"]), settings.phases_per_slice, study.contour_dir)
    prefix = _image_prefix(study, sorted(files["i"]))
    slices = {n: read_slice(study.image_dir / f"{prefix}-{n:04d}.dcm", n) for n in sorted(files["i"])}
    endocardium = {n: rasterise(read_contour(files["i"][n]), slices[n].pixels.shape, settings.convention) for n in slices}
    ed = _ed_phase(groups, {n: int(mask.sum()) for n, mask in endocardium.items()}, study.contour_dir)
    es = next(p for p in groups if p != ed)
    for phase, index in (("ED", ed), ("ES", es)):
        case = _build_frame(study, phase, index, sorted(groups[index].values()), files, settings, slices, endocardium)
        if case is not None:
            yield case


def iter_cases(root, patients=None, log: ReaderLog | None = None, **options) -> Iterator[Case]:
    """One Case per annotated frame (ED then ES) of each case in sorted order; see the module
    docstring for how frames, slices, spacing and labels are derived. `log` receives the slices
    and frames left out (classes="lv_myo"); leaving out everything is an error."""
    settings = _Settings(_classes(options), _contour_convention(options), _phases_per_slice(options), reader_log(log))
    studies = _discover(Path(root))
    wanted = select_patients(studies, patients, root, "SCD case with contours and images")
    yielded = 0
    for patient in wanted:
        for case in _read_study(studies[patient], settings):
            yielded += 1
            yield case
    if not yielded and settings.classes == "lv_myo":
        raise DatasetFormatError(
            f"{root}: classes={settings.classes!r} leaves nothing to read: no contoured slice of the "
            f"{len(wanted)} case(s) {wanted[:5]}{' ...' if len(wanted) > 5 else ''} has both an endocardial and "
            "an epicardial contour (IM-0001-NNNN-icontour-manual.txt and -ocontour-manual.txt); use classes='lv'"
        )
