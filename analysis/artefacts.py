"""Find the figure inputs of a run: features.npz, predictions/, similarities.npz.

Each artefact is attributed to the (dataset, ratio, method, variant, seed) that produced it, from
the first of:
1. a per-case CSV in the same folder (the evaluation folder: metrics.csv beside features.npz);
2. the workflow's folder pattern `.../<dataset>/r<pct>/<method>/<variant>/s<seed>/`
   (workflow/rules/common.smk; training runs hold similarities.npz);
3. a resolved run config (`run.yaml` or `config.yaml`) in the folder with `method`, `variant`,
   `seed` and `data.dataset` / `data.ratio`.
Artefacts that none of these identify are listed as unattributed, not guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.collect import FAILED_RECORD, is_case_csv

RUN_PATH = re.compile(r"(?P<dataset>[^/]+)/r(?P<ratio>[0-9.]+)/(?P<method>[^/]+)/(?P<variant>[^/]+)/s(?P<seed>[0-9]+)$")


class ArtefactError(ValueError):
    """A figure input file that exists but cannot be used; the message names it."""


@dataclass(frozen=True, order=True)
class RunId:
    dataset: str
    ratio: float
    method: str
    variant: str
    seed: int


@dataclass
class Artefacts:
    features: dict[RunId, Path] = field(default_factory=dict)
    predictions: dict[RunId, Path] = field(default_factory=dict)
    similarities: dict[RunId, Path] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)


def _identity_from_csv(folder: Path) -> RunId | None:
    ids = set()
    for path in sorted(folder.glob("*.csv")):
        if not is_case_csv(path):
            continue
        df = pd.read_csv(path, usecols=["dataset", "ratio", "method", "variant", "seed"], dtype=str)
        ids |= {RunId(d, float(r), m, v, int(s)) for d, r, m, v, s in df.drop_duplicates().itertuples(index=False)}
    return ids.pop() if len(ids) == 1 else None


def _identity_from_path(folder: Path) -> RunId | None:
    match = RUN_PATH.search(folder.as_posix())
    if not match:
        return None
    g = match.groupdict()
    return RunId(g["dataset"], float(g["ratio"]), g["method"], g["variant"], int(g["seed"]))


def _identity_from_config(folder: Path) -> RunId | None:
    import yaml

    for name in ("run.yaml", "config.yaml"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            cfg = yaml.safe_load(path.read_text()) or {}
            data = cfg.get("data") or {}
            return RunId(str(data["dataset"]), float(data["ratio"]), str(cfg["method"]),
                         str(cfg.get("variant", "default")), int(cfg["seed"]))
        except (KeyError, TypeError, ValueError, yaml.YAMLError, AttributeError):
            continue
    return None


def identify(folder: Path) -> RunId | None:
    """The run that produced the files in `folder`, or None when it cannot be told."""
    folder = Path(folder)
    return _identity_from_csv(folder) or _identity_from_path(folder) or _identity_from_config(folder)


def find_artefacts(results_dir: Path, exclude: tuple[Path, ...] = ()) -> Artefacts:
    """Every features.npz, predictions/ folder and similarities.npz under results_dir."""
    results_dir = Path(results_dir)
    excluded = [Path(e).resolve() for e in exclude]
    found = Artefacts()
    targets = (("features.npz", found.features), ("similarities.npz", found.similarities), ("predictions", found.predictions))
    for name, store in targets:
        for path in sorted(results_dir.rglob(name)):
            if any(path.resolve().is_relative_to(e) for e in excluded):
                continue
            if name == "predictions" and not path.is_dir():
                continue
            if (path.parent / FAILED_RECORD).exists():  # a failed run's outputs hold nothing to draw
                continue
            run = identify(path.parent)
            if run is None:
                found.unattributed.append(str(path))
            else:
                store[run] = path
    return found


# --------------------------------------------------------------------------- loading, with checks
def _load_npz(path: Path, required: tuple[str, ...]) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in required if k not in data.files]
            if missing:
                raise ArtefactError(f"{path}: missing array(s) {missing}; found {data.files}")
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        if isinstance(err, ArtefactError):
            raise
        raise ArtefactError(f"{path}: cannot read as .npz ({err})") from err


def load_features(path: Path) -> dict:
    """features [N, D], class_index [N], boundary [N] bool, class_names (background first)."""
    data = _load_npz(Path(path), ("features", "class_index", "boundary", "class_names"))
    n = len(data["features"])
    if data["features"].ndim != 2 or len(data["class_index"]) != n or len(data["boundary"]) != n:
        raise ArtefactError(
            f"{path}: features must be [N, D] with class_index and boundary of length N; got "
            f"{data['features'].shape}, {data['class_index'].shape}, {data['boundary'].shape}"
        )
    data["class_names"] = [str(c) for c in data["class_names"]]
    if n and data["class_index"].max() >= len(data["class_names"]):
        raise ArtefactError(f"{path}: class_index {int(data['class_index'].max())} has no entry in class_names")
    return data


def load_similarities(path: Path) -> dict:
    """1-D arrays `positive` and `negative` of cosine similarities."""
    data = _load_npz(Path(path), ("positive", "negative"))
    for key in ("positive", "negative"):
        data[key] = np.asarray(data[key], dtype=float).ravel()
    return data


def load_prediction(path: Path) -> dict:
    """image float [Z,H,W], label and pred uint8 [Z,H,W], class_names."""
    data = _load_npz(Path(path), ("image", "label", "pred"))
    shapes = {k: data[k].shape for k in ("image", "label", "pred")}
    if len(set(shapes.values())) != 1 or data["image"].ndim != 3:
        raise ArtefactError(f"{path}: image, label and pred must share one [Z, H, W] shape, got {shapes}")
    if "class_names" in data:
        data["class_names"] = [str(c) for c in data["class_names"]]
    return data
