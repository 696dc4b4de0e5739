"""Writers of tiny dataset trees in the exact on-disk formats of ACDC, M&Ms and SCD.

Each `write_*_fixture(root)` writes the tree under `root` with nibabel/pydicom, exactly as the
real release lays it out, and returns `{case_id: ExpectedCase}` with what a correct reader must
yield: image and canonical label in (z, y, x), spacing (z, y, x) in mm, and key metadata.
The expected arrays are built directly (array slicing, no reader code, no rasteriser), so a
reader test compares against values that can be checked by hand:

- intensities encode their own coordinates (ACDC/M&Ms: x + 100 y + 1000 z + frame/time offset;
  SCD: 1024 * image number + 32 row + column), so any axis swap or wrong frame shows;
- labels are axis-aligned rectangles: RV block beside a MYO ring around an LV block;
- spacings are anisotropic and non-square in-plane, so (x, y, z) vs (z, y, x) mix-ups show.

Used by tests/test_reader_*.py and reusable by any test that needs a raw dataset on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass
class ExpectedCase:
    """What a reader must yield for one annotated frame."""

    case_id: str
    patient_id: str
    phase: str
    image: np.ndarray  # float32 [Z, H, W]
    label: np.ndarray  # uint8 [Z, H, W], canonical class order of the default options
    spacing: tuple[float, float, float]  # (z, y, x) mm
    meta: dict = field(default_factory=dict)
    label_lv_myo: np.ndarray | None = None  # SCD only: ("LV", "MYO") labels, None if no epicardium


# ------------------------------------------------------------------------------------------------
# shared geometry (nibabel order: x, y, z)

SHAPE_XYZ = (24, 20, 3)


def heart_labels_xyz(shape_xyz, phase: str, rv: int, myo: int, lv: int) -> np.ndarray:
    """Label volume (x, y, z) with the given values for RV, MYO and LV.

    Per slice: RV = x 2..5, y 4..9 (24 voxels, absent from the last, apical, slice); MYO ring =
    x 10..17, y 4..11 minus the LV; LV = x 12..15, y 6..9 (16 voxels) at ED, x 13..14, y 7..8
    (4 voxels) at ES. So MYO has 48 voxels per slice at ED and 60 at ES.
    """
    label = np.zeros(shape_xyz, dtype=np.uint8)
    label[10:18, 4:12, :] = myo
    if phase == "ED":
        label[12:16, 6:10, :] = lv
    else:
        label[13:15, 7:9, :] = lv
    label[2:6, 4:10, : shape_xyz[2] - 1] = rv
    return label


def coordinate_image_xyz(shape_xyz, offset: int) -> np.ndarray:
    """int16 image whose voxel (x, y, z) holds x + 100 y + 1000 z + offset."""
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape_xyz), indexing="ij")
    return (x + 100 * y + 1000 * z + offset).astype(np.int16)


def _to_zyx(array_xyz: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(array_xyz, (2, 1, 0)))


def _save_nifti(array: np.ndarray, zooms_xyz, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, np.diag([*zooms_xyz, 1.0]))
    image.header.set_zooms(tuple(zooms_xyz) + (1.0,) * (array.ndim - 3))
    nib.save(image, str(path))


# ------------------------------------------------------------------------------------------------
# ACDC

ACDC_ZOOMS_XYZ = (1.5, 1.25, 10.0)
ACDC_NB_FRAMES, ACDC_ED, ACDC_ES = 5, 1, 3  # 1-based frame numbers, as in Info.cfg


def acdc_frame_image_xyz(frame: int) -> np.ndarray:
    """Image of 1-based frame `frame`: coordinates + 5000 (frame - 1)."""
    return coordinate_image_xyz(SHAPE_XYZ, 5000 * (frame - 1))


def write_acdc_stubs(database: Path, first: int = 3) -> None:
    """Bare `training/patientNNN/Info.cfg` folders for patients `first`..100 under `database`: the
    workflow's start-up check of the paper split looks for all 100, and a test that only plans a
    run reads no image of theirs."""
    for n in range(first, 101):
        stub = Path(database) / "training" / f"patient{n:03d}"
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "Info.cfg").write_text("ED: 1\nES: 3\n")


def write_acdc_fixture(root, patients=("patient001", "patient002", "patient101"), database_prefix=True) -> dict[str, ExpectedCase]:
    """Raw ACDC tree: `[database/]training/patientNNN/` for NNN <= 100, `testing/` above.

    Each patient: Info.cfg (ED 1, ES 3, 5 frames), MANDATORY_CITATION.md, the 4D cine and the
    ED/ES frames with `_gt` labels (ACDC values 1 RV, 2 MYO, 3 LV, which are also canonical).
    Voxel size (x, y, z) = (1.5, 1.25, 10.0) mm, so the expected spacing is (10.0, 1.25, 1.5).
    """
    base = Path(root) / "database" if database_prefix else Path(root)
    expected = {}
    for patient in patients:
        subset = "training" if int(patient[-3:]) <= 100 else "testing"
        folder = base / subset / patient
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Info.cfg").write_text(
            f"ED: {ACDC_ED}\nES: {ACDC_ES}\nGroup: DCM\nHeight: 180.0\nNbFrame: {ACDC_NB_FRAMES}\nWeight: 80.0\n"
        )
        (folder / "MANDATORY_CITATION.md").write_text("Bernard et al., IEEE TMI 2018.\n")
        cine = np.stack([acdc_frame_image_xyz(f) for f in range(1, ACDC_NB_FRAMES + 1)], axis=-1)
        _save_nifti(cine, ACDC_ZOOMS_XYZ, folder / f"{patient}_4d.nii.gz")
        for phase, frame in (("ED", ACDC_ED), ("ES", ACDC_ES)):
            label = heart_labels_xyz(SHAPE_XYZ, phase, rv=1, myo=2, lv=3)
            _save_nifti(acdc_frame_image_xyz(frame), ACDC_ZOOMS_XYZ, folder / f"{patient}_frame{frame:02d}.nii.gz")
            _save_nifti(label, ACDC_ZOOMS_XYZ, folder / f"{patient}_frame{frame:02d}_gt.nii.gz")
            expected[f"{patient}_{phase}"] = ExpectedCase(
                case_id=f"{patient}_{phase}",
                patient_id=patient,
                phase=phase,
                image=_to_zyx(acdc_frame_image_xyz(frame)).astype(np.float32),
                label=_to_zyx(label),
                spacing=(ACDC_ZOOMS_XYZ[2], ACDC_ZOOMS_XYZ[1], ACDC_ZOOMS_XYZ[0]),
                meta={"group": "DCM", "subset": subset, "frame": frame},
            )
    return expected


# ------------------------------------------------------------------------------------------------
# SSL4MIS's preprocessed ACDC (HiLab-git/SSL4MIS, code/dataloaders/acdc_data_processing.py)

# patient -> (SSL4MIS list, stored as slices, stored as a volume). SSL4MIS ships training patients
# as one h5 per slice (data/slices/) and val/test patients as one h5 per volume (data/).
SSL4MIS_PATIENTS = {
    "patient001": ("train", True, False),
    "patient002": ("val", False, True),
    "patient101": ("test", False, True),
}


def ssl4mis_arrays(frame: int, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) of one raw fixture frame as SSL4MIS stores them: SimpleITK's (z, y, x) order
    (nibabel's array transposed), the image min-max normalised over the whole volume in float32,
    the label as the gt file's uint8."""
    image = _to_zyx(acdc_frame_image_xyz(frame)).astype(np.float64)
    image = ((image - image.min()) / (image.max() - image.min())).astype(np.float32)
    return image, _to_zyx(heart_labels_xyz(SHAPE_XYZ, phase, rv=1, myo=2, lv=3))


def _write_h5(path: Path, image: np.ndarray, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image, compression="gzip")
        f.create_dataset("label", data=label, compression="gzip")


def write_ssl4mis_acdc_fixture(root, patients=SSL4MIS_PATIENTS, slice_base: int = 1,
                               frame_names: dict[str, int] | None = None) -> dict[str, ExpectedCase]:
    """SSL4MIS's `data/ACDC` folder built from the raw ACDC fixture (ED frame 1, ES frame 3):

        root/train_slices.list   "patient001_frame01_slice_1" ... (one line per slice file)
        root/train.list, val.list, test.list   "patient002_frame01", ...
        root/data/slices/patientNNN_frameFF_slice_K.h5   datasets image float32 (H, W), label uint8 (H, W)
        root/data/patientNNN_frameFF.h5                  datasets image float32 (Z, H, W), label uint8 (Z, H, W)

    both datasets gzip-compressed, as SSL4MIS writes them. The annotated frames are renamed
    frame01 (ED) and frame02 (ES) as in SSL4MIS's download (raw frame 3 becomes frame02);
    `frame_names` {"ED": n, "ES": m} names them otherwise (WSL4MIS keeps the raw numbers).
    Slice files are numbered from `slice_base` (1 in SSL4MIS's train_slices.list, 0 in its script).
    Returns the expected cases with the raw fixture's spacing (z, y, x) = (10, 1.25, 1.5) mm,
    i.e. what a reader given the raw ACDC root must yield.
    """
    root = Path(root)
    names = frame_names or {"ED": 1, "ES": 2}
    lists: dict[str, list[str]] = {"train_slices": [], "train": [], "val": [], "test": []}
    expected = {}
    for patient, (split, as_slices, as_volume) in patients.items():
        for phase, raw_frame in (("ED", ACDC_ED), ("ES", ACDC_ES)):
            image, label = ssl4mis_arrays(raw_frame, phase)
            name = f"{patient}_frame{names[phase]:02d}"
            lists[split].append(name)
            if as_slices:
                for k in range(image.shape[0]):
                    _write_h5(root / "data" / "slices" / f"{name}_slice_{k + slice_base}.h5", image[k], label[k])
                    lists["train_slices"].append(f"{name}_slice_{k + slice_base}")
            if as_volume:
                _write_h5(root / "data" / f"{name}.h5", image, label)
            expected[f"{patient}_{phase}"] = ExpectedCase(
                case_id=f"{patient}_{phase}",
                patient_id=patient,
                phase=phase,
                image=image,
                label=label,
                spacing=(ACDC_ZOOMS_XYZ[2], ACDC_ZOOMS_XYZ[1], ACDC_ZOOMS_XYZ[0]),
                meta={"ssl4mis_split": split, "ssl4mis_name": name},
            )
    for list_name, lines in lists.items():
        (root / f"{list_name}.list").write_text("".join(f"{line}\n" for line in lines))
    return expected


# ------------------------------------------------------------------------------------------------
# M&Ms

MNMS_ZOOMS_XYZ = (1.2, 1.4, 9.0)
MNMS_TIMES = 6
MNMS_CSV_NAME = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
MNMS_CSV_COLUMNS = ("External code", "VendorName", "Vendor", "Centre", "ED", "ES", "Age", "Pathology", "Sex", "Height", "Weight")
# code, folder, vendor name, vendor, centre, ED, ES (0-based t indices)
MNMS_SUBJECTS = (
    ("AAA001", "Training/Labeled", "Siemens", "A", "1", 0, 3),
    ("BBB002", "Validation", "Philips", "B", "2", 2, 5),
    ("CCC003", "Testing", "GE", "C", "4", 1, 4),
    ("DDD004", "Training/Unlabeled", "GE", "C", "4", 0, 3),
)


def mnms_image_xyzt() -> np.ndarray:
    """4D image whose voxel (x, y, z, t) holds x + 100 y + 1000 z + 4000 t."""
    return np.stack([coordinate_image_xyz(SHAPE_XYZ, 4000 * t) for t in range(MNMS_TIMES)], axis=-1)


def write_mnms_fixture(root) -> dict[str, ExpectedCase]:
    """M&Ms OpenDataset tree: the information CSV (with its leading unnamed index column) and
    one subject in each of Training/Labeled, Validation, Testing and Training/Unlabeled.

    4D (x=24, y=20, z=3, t=6), voxel size (1.2, 1.4, 9.0) mm; labels in M&Ms values (1 LV, 2 MYO,
    3 RV) only at the CSV's 0-based ED/ES t; the unlabelled subject's `_gt` is all background.
    Expected labels are canonical (1 RV, 2 MYO, 3 LV); the unlabelled subject yields no case.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = [",".join(("",) + MNMS_CSV_COLUMNS)]
    expected = {}
    for index, (code, folder, vendor_name, vendor, centre, ed, es) in enumerate(MNMS_SUBJECTS):
        rows.append(f"{index},{code},{vendor_name},{vendor},{centre},{ed},{es},50,NOR,M,175.0,")
        image = mnms_image_xyzt()
        label = np.zeros(image.shape, dtype=np.uint8)
        labelled = folder != "Training/Unlabeled"
        for phase, t in (("ED", ed), ("ES", es)):
            if not labelled:
                continue
            label[..., t] = heart_labels_xyz(SHAPE_XYZ, phase, rv=3, myo=2, lv=1)
            expected[f"{code}_{phase}"] = ExpectedCase(
                case_id=f"{code}_{phase}",
                patient_id=code,
                phase=phase,
                image=_to_zyx(image[..., t]).astype(np.float32),
                label=_to_zyx(heart_labels_xyz(SHAPE_XYZ, phase, rv=1, myo=2, lv=3)),
                spacing=(MNMS_ZOOMS_XYZ[2], MNMS_ZOOMS_XYZ[1], MNMS_ZOOMS_XYZ[0]),
                meta={"vendor": vendor, "vendor_name": vendor_name, "centre": centre, "subset": folder, "t_index": t},
            )
        _save_nifti(image, MNMS_ZOOMS_XYZ, root / folder / code / f"{code}_sa.nii.gz")
        _save_nifti(label, MNMS_ZOOMS_XYZ, root / folder / code / f"{code}_sa_gt.nii.gz")
    (root / MNMS_CSV_NAME).write_text("\n".join(rows) + "\n")
    return expected


# ------------------------------------------------------------------------------------------------
# SCD (Sunnybrook)

SCD_ROWS, SCD_COLUMNS = 32, 28
SCD_PIXEL_SPACING = (1.36, 1.30)  # (row, column) mm
SCD_PHASES = 20
# Orientation: rows run along +y, columns along -z, so the slice normal is -x and the position of
# a slice along the normal is -IPP_x. Slice 0 sits at x = 24, slice 1 at x = 34 (10 mm apart, as on
# the real release, where slices are 8 or 10 mm apart; the header's SpacingBetweenSlices says 8, so a
# reader that trusts the tag over the positions shows): ordered by position, slice 1 (-34) comes
# first, the reverse of image-number order.
SCD_ORIENTATION = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
SCD_SLICE_X = (24.0, 34.0)
SCD_SLICE_GAP = SCD_SLICE_X[1] - SCD_SLICE_X[0]
SCD_SPACING_TAG = 8.0  # SpacingBetweenSlices as written; only used when a frame has one slice
# The release's contour files are 1-based (MATLAB pixel centres): vertex = 0-based centre + 1.
SCD_CONTOUR_ORIGIN = 1.0
# case -> (ED phase index, ES phase index, ES has epicardial contours)
SCD_CASES = {"SC-HF-I-01": (18, 7, False), "SC-N-02": (0, 8, True)}
SCD_KAGGLE = {"SC-HF-I-01": ("SC-HF-I-1", "0004"), "SC-N-02": ("SC-N-2", "0898")}
# Rectangles (x0, x1, y0, y1) in 0-based pixel-centre coordinates (x = column, y = row); vertices
# on half pixels so every pixel centre is clearly in or out. The files hold them + SCD_CONTOUR_ORIGIN.
# Slice 1 is shifted right by 2 columns.
SCD_ENDO = {"ED": (4.5, 14.5, 6.5, 13.5), "ES": (6.5, 11.5, 8.5, 11.5)}
SCD_EPI = {"ED": (2.5, 16.5, 4.5, 15.5), "ES": (3.5, 14.5, 5.5, 14.5)}


def scd_image_number(slice_index: int, phase_index: int) -> int:
    return slice_index * SCD_PHASES + phase_index + 1


def scd_pixels(number: int) -> np.ndarray:
    """uint16 pixels of image `number`: 1024 * number + 32 * row + column."""
    rows, cols = np.meshgrid(np.arange(SCD_ROWS), np.arange(SCD_COLUMNS), indexing="ij")
    return (1024 * number + 32 * rows + cols).astype(np.uint16)


def rectangle_contour(x0: float, x1: float, y0: float, y1: float, per_side: int = 8) -> np.ndarray:
    """Closed rectangle as ~30 "x y" vertices, like a hand-drawn contour file."""
    t = np.linspace(0.0, 1.0, per_side, endpoint=False)
    top = np.column_stack([x0 + (x1 - x0) * t, np.full_like(t, y0)])
    right = np.column_stack([np.full_like(t, x1), y0 + (y1 - y0) * t])
    bottom = np.column_stack([x1 - (x1 - x0) * t, np.full_like(t, y1)])
    left = np.column_stack([np.full_like(t, x0), y1 - (y1 - y0) * t])
    return np.vstack([top, right, bottom, left])


def rectangle_mask(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Pixels whose centres (x = column, y = row) lie inside the rectangle, by slicing."""
    mask = np.zeros((SCD_ROWS, SCD_COLUMNS), dtype=bool)
    mask[int(np.ceil(y0)) : int(np.floor(y1)) + 1, int(np.ceil(x0)) : int(np.floor(x1)) + 1] = True
    return mask


def _shifted(rect, slice_index: int):
    x0, x1, y0, y1 = rect
    return (x0 + 2 * slice_index, x1 + 2 * slice_index, y0, y1)


def write_scd_dicom(path: Path, number: int, slice_index: int, pixels: np.ndarray, series: int = 1) -> None:
    """One MR image as pydicom writes a valid Part-10 file (file meta, explicit VR LE)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SeriesNumber = series
    ds.InstanceNumber = number
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = list(SCD_PIXEL_SPACING)
    ds.SliceThickness = 8.0
    ds.SpacingBetweenSlices = SCD_SPACING_TAG
    ds.ImageOrientationPatient = list(SCD_ORIENTATION)
    ds.ImagePositionPatient = [SCD_SLICE_X[slice_index], -100.0, 50.0]
    ds.SliceLocation = -SCD_SLICE_X[slice_index]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _write_contour(path: Path, rect) -> None:
    """The rectangle as the release stores contours: 1-based (vertex = 0-based centre + 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, rectangle_contour(*rect) + SCD_CONTOUR_ORIGIN, fmt="%.2f")


def write_scd_fixture(root, layout: str = "A") -> dict[str, ExpectedCase]:
    """Sunnybrook tree with 2 cases x 2 slices x 20 phases (32 x 28 px, PixelSpacing 1.36 x 1.30,
    slices 10 mm apart along an oblique normal; contour files 1-based, as in the release).

    layout "A": the MICCAI 2009 release, `Sunnybrook Cardiac MR Database DICOMPart3/
    TrainingDataDICOM/<case>/DICOM/IM-0001-NNNN.dcm`; layout "B": the Kaggle copy,
    `challenge_training/<unpadded case>/IM-<series>-NNNN.dcm` next to a decoy series IM-0001.
    Both share the contour tree `...ContoursPart3/TrainingDataContours/<case>/contours-manual/
    IRCCI-expert/` with endocardial contours on both slices at ED and ES, epicardial contours
    at ED (and at ES only for SC-N-02), a papillary `-p1contour-manual.txt` file and an empty
    `file-listings/`.
    SC-HF-I-01 is contoured at phases 18 (ED, larger cavity) and 7 (ES), SC-N-02 at 0 and 8.
    """
    if layout not in ("A", "B"):
        raise ValueError(f"layout must be 'A' or 'B', got {layout!r}")
    root = Path(root)
    contours_base = root / "Sunnybrook Cardiac MR Database ContoursPart3" / "TrainingDataContours"
    (root / "Sunnybrook Cardiac MR Database ContoursPart3" / "file-listings").mkdir(parents=True, exist_ok=True)
    expected = {}
    for case, (ed_phase, es_phase, es_epi) in SCD_CASES.items():
        contour_dir = contours_base / case / "contours-manual" / "IRCCI-expert"
        kaggle_name, series = SCD_KAGGLE[case]
        if layout == "A":
            image_dir, prefix = root / "Sunnybrook Cardiac MR Database DICOMPart3" / "TrainingDataDICOM" / case / "DICOM", "IM-0001"
        else:
            image_dir, prefix = root / "challenge_training" / kaggle_name, f"IM-{series}"
        for slice_index in range(2):
            for phase_index in range(SCD_PHASES):
                number = scd_image_number(slice_index, phase_index)
                write_scd_dicom(image_dir / f"{prefix}-{number:04d}.dcm", number, slice_index, scd_pixels(number), int(series))
                if layout == "B":  # another series in the same folder, which must not be read
                    write_scd_dicom(image_dir / f"IM-0001-{number:04d}.dcm", number, slice_index, np.zeros((SCD_ROWS, SCD_COLUMNS), np.uint16))
        for phase, phase_index, has_epi in (("ED", ed_phase, True), ("ES", es_phase, es_epi)):
            images, labels, labels_myo, numbers = [], [], [], []
            for slice_index in (1, 0):  # ascending position along the normal
                number = scd_image_number(slice_index, phase_index)
                endo = _shifted(SCD_ENDO[phase], slice_index)
                epi = _shifted(SCD_EPI[phase], slice_index)
                _write_contour(contour_dir / f"IM-0001-{number:04d}-icontour-manual.txt", endo)
                if has_epi:
                    _write_contour(contour_dir / f"IM-0001-{number:04d}-ocontour-manual.txt", epi)
                if phase == "ED":
                    _write_contour(contour_dir / f"IM-0001-{number:04d}-p1contour-manual.txt", (8.5, 9.5, 9.5, 10.5))
                lv = rectangle_mask(*endo)
                images.append(scd_pixels(number).astype(np.float32))
                labels.append(lv.astype(np.uint8))
                labels_myo.append(np.where(lv, 1, np.where(rectangle_mask(*epi), 2, 0)).astype(np.uint8))
                numbers.append(number)
            expected[f"{case}_{phase}"] = ExpectedCase(
                case_id=f"{case}_{phase}",
                patient_id=case,
                phase=phase,
                image=np.stack(images),
                label=np.stack(labels),
                spacing=(SCD_SLICE_GAP, *SCD_PIXEL_SPACING),
                meta={
                    "subset": "training",
                    "layout": layout,
                    "phase_index": phase_index,
                    "image_numbers": numbers,
                    "slice_positions_mm": [-SCD_SLICE_X[1], -SCD_SLICE_X[0]],
                    "uniform_z": True,
                },
                label_lv_myo=np.stack(labels_myo) if has_epi else None,
            )
    return expected
