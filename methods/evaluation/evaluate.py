"""Evaluate a trained method on whole 3D cases: per-case metrics, saved predictions, feature samples.

The stages, one module each: inference on the native grid (methods/evaluation/inference.py; the
official SPCL test grid is a reported variant, `evaluation.grid: official`), scoring with the
case's spacing (methods/evaluation/metrics.py; native-grid scoring is what makes HD95 in mm
meaningful, docs/metrics.md), the class-balanced feature sample (methods/evaluation/features.py)
and the files (methods/evaluation/outputs.py). This module runs them over a run's val or test
patients. No label of an evaluated case is read to place its region, except under the official
variant `data.region: label_centred` (test_centre `label`), which the CSV's `uses_test_label`
column flags; the CSV's `precision` and `memory_format` columns record the numeric path.

Outputs (docs/architecture.md, "Evaluation outputs"):
- a tidy DataFrame/CSV, one row per (case, foreground class), columns `RESULT_COLUMNS`
  (methods/results_schema.py);
- `predictions/<case_id>.npz` for chosen cases: image, label, pred (uint8, native grid), spacing,
  class_names (background first, so `class_names[v]` names label value v);
- `features.npz`: the feature sample, with `class_index`, `boundary` and `class_names`.

CLI:
    python -m methods.evaluate --checkpoint RUN/final.pt --cache DIR --split FILE --out CSV
        [--role test] [--paper-compatible] [--grid native|official --grid-size 224]
        [--predictions-dir DIR --prediction-cases N|ID ...]
        [--features FILE --features-per-class N] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from methods.api import ConfigError, Method
from methods.atomic import atomic_path
from methods.data.loaders import as_region, cases_of_role, open_run_inputs
from methods.data.region import Region
from methods.data.types import Case
from methods.evaluation.features import DEFAULT_FEATURES_PER_CLASS, BalancedFeatureSampler, sample_case_features
from methods.evaluation.inference import (
    DEFAULT_BATCH_SIZE,
    GRIDS,
    OFFICIAL_GRID_SIZE,
    official_grid_prediction,
    predict_case_with_centre,
    resolve_device,
)
from methods.evaluation.metrics import case_metrics
from methods.evaluation.outputs import all_class_names, save_npz_atomic, save_prediction, write_csv_atomic
from methods.precision import Numerics, recorded_numerics
from methods.results_schema import RESULT_COLUMNS
from methods.training.checkpoint import RunFailedError, load_trained_method


# --- the evaluation loop ----------------------------------------------------------------------------
def run_identity(run_cfg: dict[str, Any], labelled_cases: int | None = None) -> dict[str, Any]:
    """The identity columns of the results table, from a resolved run config.

    `labelled_cases` (labelled training patients) is taken from `run_cfg["data"]["labelled_cases"]`
    when present, else from the argument (evaluate_checkpoint reads it from the run's split).
    """
    try:
        data = run_cfg["data"]
        identity = {
            "dataset": data["dataset"],
            "ratio": data["ratio"],
            "labelled_cases": data.get("labelled_cases", labelled_cases),
            "method": run_cfg["method"],
            "variant": run_cfg.get("variant") or "default",
            "seed": int(run_cfg["seed"]),
        }
    except KeyError as exc:
        raise ConfigError(f"run config lacks {exc.args[0]!r}, needed for the results table") from None
    if identity["labelled_cases"] is None:
        raise ConfigError("labelled_cases is unknown: give it or put data.labelled_cases in the run config")
    identity["labelled_cases"] = int(identity["labelled_cases"])
    return identity


def _case_metrics(pred: np.ndarray, case: Case, class_names: Sequence[str], paper_compatible: bool) -> list[dict]:
    """`case_metrics`; for a pixel-only case (no voxel size, e.g. SSL4MIS h5 without a raw root)
    the distances are computed on unit spacing and only the pixel columns are kept: `hd95_mm` and
    `asd_mm` are NaN, `hd95_px`, Dice and Jaccard are unaffected (they never use the spacing)."""
    if case.has_spacing:
        return case_metrics(pred, case.label, case.spacing, class_names, paper_compatible)
    rows = case_metrics(pred, case.label, (1.0, 1.0, 1.0), class_names, paper_compatible)
    return [{**r, "hd95_mm": float("nan"), "asd_mm": float("nan")} for r in rows]


class _PredictionPicker:
    """Which cases to save: the first N evaluated (int) or the named case ids."""

    def __init__(self, prediction_cases: int | Sequence[str] | None):
        if isinstance(prediction_cases, int) and prediction_cases < 0:
            raise ConfigError(f"prediction_cases must be >= 0, got {prediction_cases}")
        self.first_n = prediction_cases if isinstance(prediction_cases, int) else 0
        self.named = set() if prediction_cases is None or isinstance(prediction_cases, int) else set(prediction_cases)
        self.saved: set[str] = set()

    def wants(self, case_id: str) -> bool:
        return case_id in self.named or len(self.saved) < self.first_n

    def check_all_found(self) -> None:
        missing = sorted(self.named - self.saved)
        if missing:
            raise ConfigError(f"prediction cases {missing} are not among the evaluated cases")


def evaluate_method(
    method: Method,
    run_cfg: dict[str, Any],
    cases: Iterable[Case],
    class_names: Sequence[str],
    *,
    checkpoint: str | Path = "",
    labelled_cases: int | None = None,
    device: str | torch.device = "cpu",
    paper_compatible: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    numerics: Numerics | None = None,
    predictions_dir: str | Path | None = None,
    prediction_cases: int | Sequence[str] | None = None,
    features_path: str | Path | None = None,
    features_per_class: int = DEFAULT_FEATURES_PER_CLASS,
    features_seed: int = 0,
    progress: bool = False,
    region: Region | None = None,
    grid: str = "native",
    grid_size: int = OFFICIAL_GRID_SIZE,
    selection: str = "last",
) -> pd.DataFrame:
    """Per-case, per-class metrics of `method.predictor()` on `cases` (any iterable of `Case`,
    consumed once, so a generator keeps one case in memory at a time); optionally saves
    predictions and a feature sample (module docstring).

    `class_names` are the foreground names (label value k = class_names[k - 1]). `region` is the
    run's region stage (`methods.data.region`); None means the whole slice at `data.img_size`.
    Columns `region` and `region_centre` (native "y;x" pixels of the crop centre, empty for the
    whole slice) record where the network looked.

    `grid`: "native" (the harness: native grid, case spacing) or "official" (the official SPCL
    test loop: the region's window at `grid_size` px, `official_grid_prediction`, with SPCL's
    empty-mask convention). `selection` is the checkpoint's selection record ("last" or
    "best_on_test ..."), copied into the `selection` column. `uses_test_label` is True when the
    test label placed the input or chose the checkpoint. `numerics`: the numeric path to evaluate
    in (default: the one `run_cfg` records, i.e. the run's training path; fp32 where none is recorded).
    """
    if grid not in GRIDS:
        raise ConfigError(f"evaluation.grid must be one of {list(GRIDS)}, got {grid!r}")
    if len(class_names) + 1 != method.num_classes:
        raise ConfigError(
            f"the data has {len(class_names)} foreground classes {tuple(class_names)}, but the method "
            f"was built for {method.num_classes} classes including background"
        )
    identity = run_identity(run_cfg, labelled_cases)
    region = region if region is not None else as_region(int(run_cfg["data"]["img_size"]))
    device = torch.device(device)
    picker = _PredictionPicker(prediction_cases if predictions_dir else None)
    if predictions_dir:
        Path(predictions_dir).mkdir(parents=True, exist_ok=True)  # exists even when 0 cases are asked for
    sampler = BalancedFeatureSampler(method.num_classes, features_per_class, features_seed) if features_path else None
    tail = {"evaluated_network": str(method.evaluated_network), "checkpoint": str(checkpoint), "region": region.describe(),
            "evaluation": "native" if grid == "native" else f"official {grid_size} px grid",
            "selection": str(selection),
            "uses_test_label": bool(region.uses_test_label or str(selection).startswith("best_on_test"))}
    numerics = numerics if numerics is not None else recorded_numerics(run_cfg)
    tail.update(numerics.as_dict())

    total = f"/{len(cases)}" if hasattr(cases, "__len__") else ""
    numerics.format_module(method.to(device))
    predictor = method.predictor()
    rows = []
    for i, case in enumerate(cases):
        pred, centre = predict_case_with_centre(predictor, case, region, device, batch_size, numerics)
        where = region.describe_centre(centre)
        if grid == "official":
            g_pred, g_label, g_spacing = official_grid_prediction(predictor, case, region, centre, grid_size, device,
                                                                  batch_size, numerics)
            scored = case_metrics(g_pred, g_label, g_spacing, class_names, paper_compatible=True)
        else:
            scored = _case_metrics(pred, case, class_names, paper_compatible)
        for r in scored:
            rows.append({**identity, "case_id": case.case_id, **r, **tail, "region_centre": where})
        if picker.wants(case.case_id):
            save_prediction(predictions_dir, case, pred, class_names)
            picker.saved.add(case.case_id)
        if sampler is not None:
            sample_case_features(method, case, region, sampler, device, batch_size, numerics, centre)
        if progress:
            print(f"\r[evaluate] {i + 1}{total} cases", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    if not rows:
        raise ConfigError("no cases to evaluate")
    picker.check_all_found()
    if sampler is not None:
        save_npz_atomic(features_path, **sampler.result(), class_names=all_class_names(class_names))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def evaluate_checkpoint(
    checkpoint: str | Path,
    cache: str | Path,
    split: str | Path,
    role: str = "test",
    *,
    device: str | torch.device = "auto",
    **options: Any,
) -> pd.DataFrame:
    """Load `checkpoint` (RUN/final.pt), evaluate it on the `role` patients of `split` read from the
    prepared `cache`; `options` are those of `evaluate_method` (paper_compatible, predictions_dir, ...).

    Refuses a cache of another dataset than the run's, and val/test patients the run trained on
    (according to the run's recorded split file when it is still readable, else the given split).
    """
    device = resolve_device(device)
    method, run_cfg = load_trained_method(checkpoint, device)
    inputs = open_run_inputs(run_cfg["data"], cache, split)
    dataset, split_dict, train_split = inputs.cache, inputs.split, inputs.training_split
    case_ids = cases_of_role(dataset, split_dict, role, split)
    leaked = sorted(set(split_dict[role]) & set(train_split["train_labelled"] + train_split["train_unlabelled"]))
    if leaked and role in ("val", "test"):
        raise ConfigError(f"split {split}: {role} patients {leaked[:5]} were training patients of the run {checkpoint}")
    named = options.get("prediction_cases")
    if options.get("predictions_dir") and isinstance(named, (list, tuple)):
        unknown = sorted(set(named) - set(case_ids))
        if unknown:
            raise ConfigError(f"prediction cases {unknown} are not {role} cases of split {split}")
    evaluation = run_cfg.get("evaluation") or {}
    options.setdefault("grid", evaluation.get("grid", "native"))
    options.setdefault("grid_size", int(evaluation.get("grid_size", OFFICIAL_GRID_SIZE)))
    options.setdefault("selection", getattr(method, "selection_record", "last"))
    return evaluate_method(
        method,
        run_cfg,
        _LazyCases(dataset, case_ids),
        dataset.class_names,
        checkpoint=checkpoint,
        labelled_cases=len(train_split["train_labelled"]),
        device=device,
        region=inputs.region,
        **options,
    )


class _LazyCases:
    """The cases of a cache, loaded one at a time while iterating (sized, for progress)."""

    def __init__(self, dataset, case_ids: Sequence[str]):
        self.dataset, self.case_ids = dataset, list(case_ids)

    def __len__(self) -> int:
        return len(self.case_ids)

    def __iter__(self):
        return (self.dataset.load(cid) for cid in self.case_ids)


# --- CLI --------------------------------------------------------------------------------------------
def summary_line(df: pd.DataFrame) -> str:
    """One line: run identity, case count, mean Dice and HD95 (mm) per class and over classes."""
    first = df.iloc[0]
    per_class = df.groupby("class_name", sort=False)[["dice", "hd95_mm"]].mean()
    dice = " ".join(f"{c} {v:.4f}" for c, v in per_class["dice"].items())
    hd = " ".join(f"{c} {v:.2f}" for c, v in per_class["hd95_mm"].items())
    return (
        f"{first['method']}/{first['variant']} seed {first['seed']} on {first['dataset']} {first['ratio']}% "
        f"({first['evaluated_network']}), {df['case_id'].nunique()} cases: "
        f"Dice {dice} mean {per_class['dice'].mean():.4f} | HD95 mm {hd} mean {per_class['hd95_mm'].mean():.2f}"
    )


def _parse_prediction_cases(values: list[str] | None) -> int | list[str] | None:
    if not values:
        return None
    if len(values) == 1 and values[0].isdigit():
        return int(values[0])
    return [v for item in values for v in item.split(",") if v]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m methods.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="RUN/final.pt")
    p.add_argument("--cache", required=True, help="prepared cache folder")
    p.add_argument("--split", required=True, help="split JSON file")
    p.add_argument("--out", required=True, help="per-case CSV to write (atomically)")
    p.add_argument("--role", default="test", choices=("test", "val", "train_labelled", "train_unlabelled"))
    p.add_argument("--paper-compatible", action="store_true", help="SPCL's empty-prediction convention (docs/metrics.md)")
    p.add_argument("--grid", choices=GRIDS, help="score on the native grid or the official SPCL test grid "
                   "(default: the run config's evaluation.grid, else native)")
    p.add_argument("--grid-size", type=int, help="official grid size in px (default: evaluation.grid_size, else 224)")
    p.add_argument("--predictions-dir", help="save predictions/<case_id>.npz here")
    p.add_argument("--prediction-cases", nargs="+", metavar="N|ID", help="first N cases, or case ids (default: 2)")
    p.add_argument("--features", help="write a class-balanced projection-feature sample (npz) here")
    p.add_argument("--features-per-class", type=int, default=DEFAULT_FEATURES_PER_CLASS)
    p.add_argument("--features-seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="slices per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return p


def write_failure_record(exc: "RunFailedError", args) -> None:
    """For a run recorded as failed: the per-case CSV with its header only, `failed.json` beside it
    (what analysis.collect.failed_runs reads), and empty feature and prediction outputs, so that
    every output the workflow declares exists and holds nothing to draw."""
    out = Path(args.out)
    write_csv_atomic(pd.DataFrame(columns=list(RESULT_COLUMNS)), out)
    record = {"run": str(Path(args.checkpoint).parent), "reason": exc.reason}
    with atomic_path(out.parent / "failed.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    if args.features:
        with atomic_path(Path(args.features)) as tmp, tmp.open("wb") as f:
            np.savez(f, failed=np.array(exc.reason))
    if args.predictions_dir:
        Path(args.predictions_dir).mkdir(parents=True, exist_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prediction_cases = _parse_prediction_cases(args.prediction_cases)
    if args.predictions_dir and prediction_cases is None:
        prediction_cases = 2
    try:
        grid = {k: v for k, v in (("grid", args.grid), ("grid_size", args.grid_size)) if v is not None}
        df = evaluate_checkpoint(
            args.checkpoint,
            args.cache,
            args.split,
            args.role,
            device=args.device,
            **grid,
            paper_compatible=args.paper_compatible,
            batch_size=args.batch_size,
            predictions_dir=args.predictions_dir,
            prediction_cases=prediction_cases,
            features_path=args.features,
            features_per_class=args.features_per_class,
            features_seed=args.features_seed,
            progress=sys.stderr.isatty(),
        )
    except RunFailedError as exc:  # the workflow goes on: empty outputs and the reason, for the report
        write_failure_record(exc, args)
        print(f"not evaluated: {exc}", file=sys.stderr)
        return 0
    except (ConfigError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_csv_atomic(df, args.out)
    print(summary_line(df))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
