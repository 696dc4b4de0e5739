"""`prepare`: read a dataset with its reader and write the prepared cache.

Readers are imported by name (`methods.data.acdc`, `.mnms`, `.scd`, `.ssl4mis`), each exposing
`iter_cases(root, log=None, **options)` and `class_names(**options)`. The phantom is generated as
an ACDC tree (if `root` does not hold one yet) and then read by the ACDC reader, exactly like real
ACDC. SSL4MIS's preprocessed ACDC (`ssl4mis_acdc`) builds a cache named `acdc`: the same patients,
classes and frames as the raw release, so the ACDC paper split and run configs apply to it.

While reading, one line per case reports what was checked (shape, spacing and its unit, the label
values and voxels per class), and every note of the reader (a reoriented label, a converted unit,
a left-out frame) is printed as it happens and recorded in the cache's dataset.json.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from methods.data.cache import write_cache
from methods.data.normalise import DEFAULT_NORMALISATION
from methods.data.phantom import MANIFEST_NAME, PhantomOptions, generate_phantom, manifest
from methods.data.types import LOGGER, Case

DATASETS = ("acdc", "mnms", "scd", "ssl4mis_acdc", "phantom")
READER_MODULES = {
    "acdc": "methods.data.acdc",
    "mnms": "methods.data.mnms",
    "scd": "methods.data.scd",
    "ssl4mis_acdc": "methods.data.ssl4mis",
    "phantom": "methods.data.acdc",
}
# The dataset name written into the cache, where it is not the format's own name.
CACHE_NAMES = {"ssl4mis_acdc": "acdc"}


def reader_for(dataset: str):
    """The reader module of `dataset` (the phantom is read by the ACDC reader)."""
    if dataset not in READER_MODULES:
        raise ValueError(f"dataset {dataset!r} is unknown; choose one of {list(DATASETS)}")
    return importlib.import_module(READER_MODULES[dataset])


def ensure_phantom(root: Path, n_patients: int, seed: int, options: PhantomOptions = PhantomOptions()) -> Path:
    """Generate the phantom at `root` unless a tree with the same settings is already there."""
    root = Path(root)
    wanted = manifest(n_patients, seed, options)
    manifest_path = root / MANIFEST_NAME
    if manifest_path.is_file():
        try:
            found = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{manifest_path}: not valid JSON ({error}); delete {root} to regenerate") from None
        if found != wanted:
            raise ValueError(f"{manifest_path}: the phantom there was generated with other settings "
                             f"(n_patients={found.get('n_patients')}, seed={found.get('seed')}); asked for "
                             f"n_patients={n_patients}, seed={seed}. Delete {root} or choose another --root")
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root}: exists but holds no {MANIFEST_NAME}, so it is not a generated phantom; "
                         "choose an empty or new folder for --root")
    return generate_phantom(root, n_patients, seed, options)


def case_report(case: Case, class_names: Sequence[str]) -> str:
    """One line: the case's shape, spacing (and its unit) and label check (voxels per class)."""
    shape = "x".join(str(n) for n in case.label.shape)
    if case.has_spacing:
        spacing = "spacing (z, y, x) " + ", ".join(f"{s:.4g}" for s in case.spacing) + " mm"
        unit = case.meta.get("spacing_unit")
        if unit and unit != "mm":
            spacing += f" [header unit {unit}]"
    else:
        spacing = "spacing unknown (pixel-only)"
    counts = np.bincount(case.label.ravel(), minlength=len(class_names) + 1)
    if len(counts) > len(class_names) + 1:
        values = sorted(int(v) for v in np.flatnonzero(counts[len(class_names) + 1:]) + len(class_names) + 1)
        labels = f"labels OUTSIDE 0..{len(class_names)}: {values}"
    else:
        per_class = ", ".join(f"{name} {int(counts[k])}" + (" (absent)" if counts[k] == 0 else "")
                              for k, name in enumerate(class_names, start=1))
        labels = f"labels in 0..{len(class_names)}: {per_class} voxels"
        if not counts[1:].any():
            labels += "; ALL BACKGROUND"
    return f"{case.case_id}: {shape} voxels, {spacing}; {labels}"


def _reported(cases: Iterable[Case], class_names: Sequence[str], emit: Callable[[str], None]) -> Iterator[Case]:
    """Pass `cases` through, emitting each one's report line once it has been written."""
    for case in cases:
        line = case_report(case, class_names)
        yield case
        emit(line)


def prepare_dataset(
    dataset: str,
    root: str | Path,
    out: str | Path,
    *,
    reader_options: dict | None = None,
    phantom_patients: int = 20,
    phantom_seed: int = 0,
    phantom_options: PhantomOptions = PhantomOptions(),
    normalisation: str = DEFAULT_NORMALISATION,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Read `dataset` under `root` and write its prepared cache to `out`; return `out`.

    `log` receives the per-case report lines and the reader's notes (default: the
    `methods.data` logger, case lines at INFO and notes at WARNING).
    """
    reader = reader_for(dataset)
    root = Path(root)
    options = dict(reader_options or {})
    if dataset == "phantom":
        ensure_phantom(root, phantom_patients, phantom_seed, phantom_options)
    elif not root.is_dir():
        raise FileNotFoundError(f"{root}: the {dataset} root folder does not exist")
    emit_case = log if log is not None else LOGGER.info
    emit_note = log if log is not None else LOGGER.warning
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        emit_note(f"  note: {message}")

    class_names = reader.class_names(**options)
    pixel_only = getattr(reader, "pixel_only_reason", None)
    pixel_only_reason = pixel_only(**options) if pixel_only is not None else None
    cases = _reported(reader.iter_cases(root, log=note, **options), class_names, emit_case)
    return write_cache(
        out, CACHE_NAMES.get(dataset, dataset), class_names, cases, root.resolve(),
        normalisation=normalisation, overwrite=overwrite,
        pixel_only_reason=pixel_only_reason,
        reader={"format": dataset, "options": {k: str(v) for k, v in sorted(options.items())}},
        reader_notes=notes,
    )
