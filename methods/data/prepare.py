"""`prepare`: read a dataset with its reader and write the prepared cache.

Readers are imported by name (`methods.data.acdc`, `.mnms`, `.scd`), each exposing
`iter_cases(root, **options)` and `class_names(**options)`. The phantom is generated as an ACDC
tree (if `root` does not hold one yet) and then read by the ACDC reader, exactly like real ACDC.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from methods.data.cache import write_cache
from methods.data.normalise import DEFAULT_NORMALISATION
from methods.data.phantom import MANIFEST_NAME, PhantomOptions, generate_phantom, manifest

DATASETS = ("acdc", "mnms", "scd", "phantom")
READER_MODULES = {"acdc": "methods.data.acdc", "mnms": "methods.data.mnms", "scd": "methods.data.scd", "phantom": "methods.data.acdc"}


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
) -> Path:
    """Read `dataset` under `root` and write its prepared cache to `out`; return `out`."""
    reader = reader_for(dataset)
    root = Path(root)
    options = dict(reader_options or {})
    if dataset == "phantom":
        ensure_phantom(root, phantom_patients, phantom_seed, phantom_options)
    elif not root.is_dir():
        raise FileNotFoundError(f"{root}: the {dataset} root folder does not exist")
    class_names = reader.class_names(**options)
    cases = reader.iter_cases(root, **options)
    return write_cache(out, dataset, class_names, cases, root.resolve(), normalisation=normalisation, overwrite=overwrite)
