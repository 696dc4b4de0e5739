"""The prepared cache: every annotated frame of a dataset, normalised, as one `.npz` per case.

Layout (docs/architecture.md):

    OUT/dataset.json        {"format_version": 1, "dataset", "classes", "normalisation",
                             "source_root", "pixel_only", ["pixel_only_reason"], ["reader"],
                             ["reader_notes"], "cases": [{"case_id", "patient_id", "phase",
                             "spacing": [z, y, x], "shape": [Z, H, W], "meta": {...}}, ...]}
    OUT/cases/<case_id>.npz image float32 [Z,H,W] in [0, 1], label uint8 [Z,H,W],
                            spacing float64 [3] (z, y, x) mm

`meta` holds what a reader knows about a case beyond the image (e.g. the M&Ms vendor, the SCD
subset); splits use it. `reader` records the on-disk format and reader options the cache was
built with, `reader_notes` what the reader reported (reoriented labels, left-out frames, ...).

A *pixel-only* cache (`"pixel_only": true`) comes from files that carry no voxel size (SSL4MIS's
h5 files without a raw ACDC root): every case's spacing is NaN in the `.npz` and null in
`dataset.json`, and `pixel_only_reason` says why. Metrics in mm are undefined for it; pixel
metrics (and the paper-compatible mode, which uses no spacing) are not.

The cache is written into a temporary sibling folder and renamed into place at the end, so a
failed or interrupted `prepare` never leaves a half-written cache behind. The finished folder gets
the permissions of any folder created under the process umask (0755 under umask 022), not the
0700 that `tempfile.mkdtemp` gives its staging folder, so a cache in a shared data folder is
readable by the other users of that folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from methods.data.normalise import DEFAULT_NORMALISATION, NORMALISATIONS, normalise_volume
from methods.data.types import Case, DatasetFormatError, check_finite_image, check_label_values

FORMAT_VERSION = 1
INDEX_NAME = "dataset.json"
CASES_DIR = "cases"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CASE_KEYS = ("case_id", "patient_id", "phase", "spacing", "shape")


class CacheFormatError(DatasetFormatError):
    """A prepared cache is missing, malformed or inconsistent; the message names the file."""


def current_umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_cache(
    out_dir: str | Path,
    dataset: str,
    class_names: Sequence[str],
    cases: Iterable[Case],
    source_root: str | Path,
    normalisation: str = DEFAULT_NORMALISATION,
    overwrite: bool = False,
    *,
    pixel_only_reason: str | None = None,
    reader: dict | None = None,
    reader_notes: Sequence[str] | None = None,
) -> Path:
    """Normalise and write `cases` as a prepared cache at `out_dir`; return `out_dir`.

    Labels must lie in 0..len(class_names). `out_dir` must not exist unless `overwrite` is set,
    in which case the old cache is replaced only once the new one is complete.
    `pixel_only_reason` declares a pixel-only cache: then every case must have NaN spacing, and
    without it none may. `reader` ({"format", "options"}) and `reader_notes` (read once all cases
    are consumed, so a list the reader's log appends to works) are recorded in dataset.json.
    """
    out_dir = Path(out_dir)
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation {normalisation!r} is unknown; choose one of {sorted(NORMALISATIONS)}")
    class_names = [str(name) for name in class_names]
    if not class_names or len(set(class_names)) != len(class_names) or "background" in class_names:
        raise ValueError(f"class_names must be distinct foreground names, got {class_names}")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: a cache already exists there; delete it or ask to overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it 0700 whatever the umask
        entries = _write_cases(staging, cases, len(class_names), normalisation, pixel_only_reason)
        if not entries:
            raise DatasetFormatError(f"{source_root}: the reader found no annotated cases")
        index = {
            "format_version": FORMAT_VERSION,
            "dataset": dataset,
            "classes": class_names,
            "normalisation": normalisation,
            "source_root": str(source_root),
            "pixel_only": pixel_only_reason is not None,
        }
        if pixel_only_reason is not None:
            index["pixel_only_reason"] = str(pixel_only_reason)
        if reader is not None:
            index["reader"] = _json_safe_meta(dict(reader), "reader")
        if reader_notes:
            index["reader_notes"] = [str(note) for note in reader_notes]
        index["cases"] = entries
        (staging / INDEX_NAME).write_text(json.dumps(index, indent=1) + "\n")
        _replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _write_cases(staging: Path, cases: Iterable[Case], num_foreground: int, normalisation: str,
                 pixel_only_reason: str | None) -> list[dict]:
    (staging / CASES_DIR).mkdir()
    entries: list[dict] = []
    seen: set[str] = set()
    allowed = set(range(num_foreground + 1))
    for case in cases:
        where = case.source or case.case_id
        if not _SAFE_ID.match(case.case_id) or not _SAFE_ID.match(case.patient_id):
            raise DatasetFormatError(f"{where}: case id {case.case_id!r} / patient id {case.patient_id!r} "
                                     "must be letters, digits, '_', '.' or '-'")
        if case.case_id in seen:
            raise DatasetFormatError(f"{where}: case id {case.case_id!r} appears twice")
        seen.add(case.case_id)
        check_label_values(case.label, allowed, where)
        if case.has_spacing == (pixel_only_reason is not None):
            raise DatasetFormatError(
                f"{where}: case {case.case_id} has spacing {case.spacing}, but the cache is "
                + ("pixel-only (every case must have NaN spacing)" if pixel_only_reason is not None else
                   "not declared pixel-only (a case without voxel size needs pixel_only_reason)")
            )
        check_finite_image(case.image, where, case.case_id)
        image = normalise_volume(case.image, normalisation)
        spacing = np.asarray(case.spacing, dtype=np.float64)
        np.savez_compressed(staging / CASES_DIR / f"{case.case_id}.npz", image=image, label=case.label, spacing=spacing)
        entries.append({
            "case_id": case.case_id,
            "patient_id": case.patient_id,
            "phase": case.phase,
            "spacing": [None if np.isnan(v) else v for v in spacing.tolist()],
            "shape": list(case.image.shape),
            "meta": _json_safe_meta(case.meta, where),
        })
    return entries


def _json_safe_meta(meta: dict, where: str) -> dict:
    try:
        return json.loads(json.dumps(meta))
    except TypeError as error:
        raise DatasetFormatError(f"{where}: case meta must be JSON-serialisable ({error})") from None


def _replace_directory(staging: Path, out_dir: Path) -> None:
    """Move the finished `staging` folder to `out_dir`, replacing an old cache only at the end."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, retired / "cache")
    os.replace(staging, out_dir)
    shutil.rmtree(retired, ignore_errors=True)


class CachedDataset:
    """Read access to a prepared cache; validates `dataset.json` on opening and each case on load."""

    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir)
        index_path = self.root / INDEX_NAME
        if not index_path.is_file():
            raise CacheFormatError(f"{index_path}: not found; is {self.root} a prepared cache "
                                   "(python -m methods.data prepare ...)?")
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError as error:
            raise CacheFormatError(f"{index_path}: not valid JSON ({error})") from None
        self._index_path = index_path
        self._validate_index(index)
        self.name: str = index["dataset"]
        self.class_names: tuple[str, ...] = tuple(index["classes"])
        self.normalisation: str = index["normalisation"]
        self.source_root: str = index.get("source_root", "")
        self.pixel_only: bool = bool(index.get("pixel_only", False))
        self.pixel_only_reason: str = index.get("pixel_only_reason", "")
        self.reader: dict = dict(index.get("reader", {}))
        self.reader_notes: list[str] = list(index.get("reader_notes", []))
        self._entries: dict[str, dict] = {entry["case_id"]: entry for entry in index["cases"]}

    def _validate_index(self, index: object) -> None:
        where = self._index_path
        if not isinstance(index, dict):
            raise CacheFormatError(f"{where}: expected a JSON object at the top level")
        if index.get("format_version") != FORMAT_VERSION:
            raise CacheFormatError(f"{where}: format_version {index.get('format_version')!r} is not "
                                   f"{FORMAT_VERSION}; prepare the cache again")
        for key in ("dataset", "classes", "normalisation", "cases"):
            if key not in index:
                raise CacheFormatError(f"{where}: missing key {key!r}")
        pixel_only = index.get("pixel_only", False)
        if not isinstance(pixel_only, bool) or (pixel_only and not index.get("pixel_only_reason")):
            raise CacheFormatError(f"{where}: 'pixel_only' must be true or false, and true needs a 'pixel_only_reason'")
        classes = index["classes"]
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise CacheFormatError(f"{where}: 'classes' must be a non-empty list of names, got {classes!r}")
        if not isinstance(index["cases"], list) or not index["cases"]:
            raise CacheFormatError(f"{where}: 'cases' must be a non-empty list")
        seen: set[str] = set()
        for position, entry in enumerate(index["cases"]):
            missing = [key for key in _CASE_KEYS if not isinstance(entry, dict) or key not in entry]
            if missing:
                raise CacheFormatError(f"{where}: cases[{position}] lacks {missing}")
            case_id = entry["case_id"]
            if not isinstance(case_id, str) or not _SAFE_ID.match(case_id) or case_id in seen:
                raise CacheFormatError(f"{where}: cases[{position}] has an invalid or repeated case_id {case_id!r}")
            if entry["phase"] not in ("ED", "ES"):
                raise CacheFormatError(f"{where}: case {case_id} has phase {entry['phase']!r}, expected ED or ES")
            if len(entry["spacing"]) != 3 or len(entry["shape"]) != 3:
                raise CacheFormatError(f"{where}: case {case_id} needs 3 spacing values and a 3D shape")
            spacing = entry["spacing"]
            if pixel_only and spacing != [None, None, None]:
                raise CacheFormatError(f"{where}: case {case_id} has spacing {spacing} in a pixel-only cache (expected nulls)")
            if not pixel_only and not all(isinstance(v, (int, float)) and v > 0 for v in spacing):
                raise CacheFormatError(f"{where}: case {case_id} has spacing {spacing}; expected 3 positive numbers (mm)")
            seen.add(case_id)

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.class_names) + 1

    @property
    def case_ids(self) -> list[str]:
        return list(self._entries)

    def entry(self, case_id: str) -> dict:
        """The `dataset.json` record of one case (ids, spacing, shape, meta)."""
        try:
            return self._entries[case_id]
        except KeyError:
            raise KeyError(f"{self._index_path}: no case {case_id!r}") from None

    def patients(self) -> list[str]:
        """Sorted patient ids."""
        return sorted({entry["patient_id"] for entry in self._entries.values()})

    def patient_meta(self, patient_id: str) -> dict:
        """The meta of the first case of a patient (readers store patient-level facts on every case)."""
        for entry in self._entries.values():
            if entry["patient_id"] == patient_id:
                return dict(entry.get("meta", {}))
        raise KeyError(f"{self._index_path}: no patient {patient_id!r}")

    def cases_of(self, patient_ids: Iterable[str]) -> list[str]:
        """Case ids of the given patients, in cache order; unknown patients are an error."""
        wanted = set(patient_ids)
        unknown = wanted - {entry["patient_id"] for entry in self._entries.values()}
        if unknown:
            raise KeyError(f"{self._index_path}: unknown patient ids {sorted(unknown)}")
        return [case_id for case_id, entry in self._entries.items() if entry["patient_id"] in wanted]

    def load(self, case_id: str) -> Case:
        """Load one case, checking its arrays against `dataset.json`."""
        entry = self.entry(case_id)
        path = self.root / CASES_DIR / f"{case_id}.npz"
        if not path.is_file():
            raise CacheFormatError(f"{path}: listed in {self._index_path} but missing")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                missing = {"image", "label", "spacing"} - set(arrays.files)
                if missing:
                    raise CacheFormatError(f"{path}: missing arrays {sorted(missing)}")
                image, label, spacing = arrays["image"], arrays["label"], arrays["spacing"]
        except (OSError, ValueError) as error:
            if isinstance(error, CacheFormatError):
                raise
            raise CacheFormatError(f"{path}: unreadable ({error})") from None
        if image.dtype != np.float32 or label.dtype != np.uint8:
            raise CacheFormatError(f"{path}: expected image float32 and label uint8, got {image.dtype} and {label.dtype}")
        if list(image.shape) != list(entry["shape"]) or label.shape != image.shape:
            raise CacheFormatError(f"{path}: image {image.shape} / label {label.shape} do not match the "
                                   f"shape {entry['shape']} in {INDEX_NAME}")
        expected = np.array([np.nan if v is None else v for v in entry["spacing"]], dtype=np.float64)
        if spacing.shape != (3,) or not np.allclose(spacing, expected, equal_nan=True):
            raise CacheFormatError(f"{path}: spacing {spacing.tolist()} does not match {entry['spacing']} in {INDEX_NAME}")
        check_label_values(label, set(range(self.num_classes)), path)
        return Case(
            case_id=case_id,
            patient_id=entry["patient_id"],
            phase=entry["phase"],
            image=image,
            label=label,
            spacing=tuple(float(s) for s in spacing),
            source=str(path),
            meta=dict(entry.get("meta", {})),
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"CachedDataset({str(self.root)!r}: {self.name}, {len(self)} cases, classes {self.class_names})"
