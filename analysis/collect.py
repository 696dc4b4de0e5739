"""Collect the per-case CSVs of a run into one tidy table, and check it.

The per-case schema is the contract with `methods.evaluation.evaluate` (methods/results_schema.py): one row per
(dataset, ratio, method, variant, seed, case, foreground class). Problems are reported, never
dropped silently:

* exact duplicate rows (the same CSV found twice) are collapsed and listed;
* duplicates of a key with different metric values are an error naming both files;
* missing (method, setting, seed) cells, cells missing some of their setting's cases or classes,
  and NaN or infinite metrics are listed in a `QualityReport` that the report prints (the values
  that analysis.policy then replaces are listed there too).

The settings are the (dataset, ratio) blocks of a run; a generic table (`read_tidy_table`) names
its own block columns, whose values are labels ('10%', 'fold 3'), never parsed as numbers.

`python -m analysis.collect --results-dir DIR --out FILE.csv` writes the collected table.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io import write_csv
from methods.paper_plan import SWEEP_VARIANT
from methods.results_schema import CASE_COLUMNS, KEY_COLUMNS, METRIC_COLUMNS

CELL_COLUMNS = ("dataset", "ratio", "method", "variant", "seed")
SETTING_COLUMNS = ("dataset", "ratio")
_TEXT_COLUMNS = ("dataset", "method", "variant", "case_id", "class_name", "evaluated_network", "checkpoint")
_KEY_TEXT_COLUMNS = ("dataset", "method", "variant", "case_id", "class_name")
_INTEGER_COLUMNS = ("seed", "labelled_cases")
DEFAULT_VARIANT = "default"


class CollectError(ValueError):
    """A results file or table that cannot be analysed; the message names the file and column."""


# --------------------------------------------------------------------------- reading
def is_case_csv(path: Path) -> bool:
    """True when the file's header holds every column of the per-case schema."""
    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return False
    return set(CASE_COLUMNS) <= {h.strip() for h in header}


def find_case_csvs(root: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Every per-case CSV under root (sorted), skipping folders in `exclude` (e.g. the output)."""
    root = Path(root)
    if not root.is_dir():
        raise CollectError(f"results folder {root} does not exist or is not a folder")
    excluded = [Path(e).resolve() for e in exclude]
    found = []
    for path in sorted(root.rglob("*.csv")):
        resolved = path.resolve()
        if any(resolved.is_relative_to(e) for e in excluded):
            continue
        if is_case_csv(path):
            found.append(path)
    return found


#: written by `python -m methods.evaluate` in place of the per-case rows when the run's training
#: stopped (a non-finite loss): {"run": ..., "reason": ...}; the report lists it under "Not produced"
FAILED_RECORD = "failed.json"


def failed_runs(root: Path, exclude: tuple[Path, ...] = ()) -> list[tuple[str, str]]:
    """(folder relative to root, reason) of every run recorded as failed under root."""
    root = Path(root)
    excluded = [Path(e).resolve() for e in exclude]
    found = []
    for path in sorted(root.rglob(FAILED_RECORD)):
        if any(path.resolve().is_relative_to(e) for e in excluded):
            continue
        try:
            reason = str(json.loads(path.read_text()).get("reason", "no reason recorded"))
        except (OSError, ValueError, AttributeError) as err:
            reason = f"unreadable failure record ({err})"
        found.append((str(path.parent.relative_to(root)), reason))
    return found


def coerce_columns(df: pd.DataFrame, source: str, metrics: tuple[str, ...] = METRIC_COLUMNS,
                   label_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Give the schema columns their types; a value that does not parse is an error naming it.
    `label_columns` (the blocks of a generic table) are kept as text labels, never parsed."""
    df = df.copy()
    for col in _TEXT_COLUMNS + tuple(label_columns):
        if col in df.columns:
            df[col] = df[col].astype("string").fillna("").astype(str).str.strip()
    numeric = tuple(c for c in ("ratio",) if c not in label_columns)
    numeric += tuple(m for m in metrics if m in df.columns) + tuple(
        m + "_worst" for m in metrics if m + "_worst" in df.columns)
    for col in numeric:
        if col not in df.columns:
            continue
        parsed = pd.to_numeric(df[col], errors="coerce")
        bad = parsed.isna() & df[col].notna() & ~df[col].astype(str).str.strip().str.lower().isin(
            ["nan", "", "inf", "-inf", "none", "na"]
        )
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CollectError(
                f"{source}: column {col!r} holds a non-numeric value {df[col].iloc[row]!r} (data row {row + 1})"
            )
        df[col] = parsed.astype(float)
    for col in _INTEGER_COLUMNS:
        if col not in df.columns:
            continue
        parsed = pd.to_numeric(df[col], errors="coerce")
        if parsed.isna().any() or (parsed != np.round(parsed)).any():
            row = int(np.flatnonzero((parsed.isna() | (parsed != np.round(parsed))).to_numpy())[0])
            raise CollectError(
                f"{source}: column {col!r} must hold integers, found {df[col].iloc[row]!r} (data row {row + 1})"
            )
        df[col] = parsed.astype(np.int64)
    for col in ("ratio",) + _KEY_TEXT_COLUMNS + tuple(label_columns):
        if col in df.columns and (df[col].isna() | (df[col].astype(str) == "")).any():
            row = int(np.flatnonzero((df[col].isna() | (df[col].astype(str) == "")).to_numpy())[0])
            raise CollectError(f"{source}: column {col!r} is empty in data row {row + 1}")
    return df


def read_case_csv(path: Path) -> pd.DataFrame:
    """One per-case CSV, validated against the schema, with a `source_file` column."""
    path = Path(path)
    df = _read_text_csv(path)
    missing = [c for c in CASE_COLUMNS if c not in df.columns]
    if missing:
        raise CollectError(f"{path}: missing per-case columns {missing}; expected {list(CASE_COLUMNS)}")
    df = coerce_columns(df, str(path))
    df["source_file"] = str(path)
    return df


def _read_text_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CollectError(f"{path}: cannot read as CSV ({err})") from err
    df.columns = [c.strip() for c in df.columns]
    return df.replace({"": np.nan})


GENERIC_REQUIRED = ("dataset", "ratio", "method", "case_id")  # the schema's keys (normalise without blocks)


def read_tidy_table(path: Path, metrics: tuple[str, ...], blocks: tuple[str, ...] = SETTING_COLUMNS) -> pd.DataFrame:
    """Any tidy results table (CSV, or Parquet when an engine is installed) with at least the
    method, the block columns (labels) and the metric columns; see `normalise`."""
    path = Path(path)
    if not path.is_file():
        raise CollectError(f"results table {path} does not exist")
    if path.suffix.lower() == ".parquet":
        try:
            df = pd.read_parquet(path)
        except ImportError as err:
            raise CollectError(f"{path}: reading Parquet needs pyarrow or fastparquet ({err}); use CSV") from err
    else:
        df = _read_text_csv(path)
    return normalise(df, metrics, str(path), blocks=blocks)


def normalise(df: pd.DataFrame, metrics: tuple[str, ...], source: str, blocks: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Check the required columns and fill the optional key columns of a tidy table.

    Without `blocks`: the results schema's keys dataset, ratio (a number), method, case_id.
    With `blocks` (a generic table): method and the block columns, kept as text labels; case_id is
    optional too. Absent `variant` becomes "default", absent `seed` 0, absent `class_name` "all",
    absent `case_id` "all" (one value per block: no per-case tests) and absent `source_file` the
    table's own name, so every later step sees the full key. `df.attrs["has_cases"]` records
    whether the table had case_id.
    """
    labels = tuple(blocks) if blocks is not None else ()
    if blocks is not None:
        if not labels:
            raise CollectError(f"{source}: at least one block column is needed (--blocks)")
        duplicated = sorted({b for b in labels if labels.count(b) > 1})
        if duplicated:
            raise CollectError(f"{source}: block column(s) {duplicated} named twice in --blocks")
        reserved = [b for b in labels if b in ("method", "variant", "seed", "case_id", "class_name") + tuple(metrics)]
        if reserved:
            raise CollectError(f"{source}: {reserved} cannot be a block column (--blocks): it is a method, key or "
                               "metric column")
        required = ("method",) + labels + tuple(metrics)
        needs = (f"method, the block column(s) {list(labels)} (--blocks) and the metric column(s) {list(metrics)}; "
                 "case_id, variant, seed and class_name are optional")
    else:
        required = GENERIC_REQUIRED + tuple(metrics)
        needs = f"{list(GENERIC_REQUIRED)} and the metric column(s) {list(metrics)}"
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise CollectError(f"{source}: missing column(s) {missing}; a results table needs {needs} "
                           f"(found {list(df.columns)})")
    has_cases = "case_id" in df.columns
    df = df.copy()
    defaults = {"variant": DEFAULT_VARIANT, "seed": 0, "class_name": "all", "source_file": source, "case_id": "all"}
    for col, value in defaults.items():
        if col not in df.columns:
            df[col] = value
    df = coerce_columns(df, source, tuple(metrics), label_columns=labels)
    df.attrs["has_cases"] = has_cases
    return df


def collect(paths) -> pd.DataFrame:
    """Concatenate per-case CSVs (schema columns first, then `source_file`)."""
    paths = list(paths)
    if not paths:
        raise CollectError("no per-case CSV files to collect")
    frames = [read_case_csv(p) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    extra = [c for c in df.columns if c not in CASE_COLUMNS]
    return df[list(CASE_COLUMNS) + extra]


# --------------------------------------------------------------------------- checks
@dataclass
class QualityReport:
    """What the checks found; every frame is empty when the table is clean."""

    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)  # collapsed exact duplicates
    missing_cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # absent (method, setting, seed)
    incomplete_cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # cells missing cases/classes
    nan_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)  # NaN / inf counts per cell and metric
    replacements: pd.DataFrame = field(default_factory=pd.DataFrame)  # what analysis.policy replaced

    @property
    def is_clean(self) -> bool:
        return all(f.empty for f in (self.duplicates, self.missing_cells, self.incomplete_cells, self.nan_metrics,
                                     self.replacements))

    def summary_lines(self) -> list[str]:
        """Plain sentences for the report."""
        lines = []
        if not self.duplicates.empty:
            lines.append(
                f"{int(self.duplicates['copies'].sum() - len(self.duplicates))} exact duplicate row(s) "
                f"of {len(self.duplicates)} key(s) were collapsed to one copy each."
            )
        if not self.missing_cells.empty:
            lines.append(f"{len(self.missing_cells)} (method, setting, seed) cell(s) have no results at all.")
        if not self.incomplete_cells.empty:
            lines.append(
                f"{len(self.incomplete_cells)} cell(s) lack some of the (case, class) rows that other "
                "cells of their setting have."
            )
        if not self.nan_metrics.empty:
            n_nan, n_inf = int(self.nan_metrics["n_nan"].sum()), int(self.nan_metrics["n_inf"].sum())
            lines.append(f"{n_nan + n_inf} metric value(s) are undefined: {n_nan} NaN, {n_inf} infinite "
                         "(counts per cell below).")
        if not self.replacements.empty:
            filled = self.replacements[np.isfinite(self.replacements["replaced_by"].to_numpy(dtype=float))]
            left = len(self.replacements) - len(filled)
            if not filled.empty:
                rules = "; ".join(f"{m}: {r}" for m, r in
                                  filled[["metric", "rule"]].drop_duplicates().itertuples(index=False))
                lines.append(f"{len(filled)} undefined value(s) of the analysed metric(s) were replaced by the "
                             f"case's worst value before any mean, rank or test ({rules}; docs/analysis.md, "
                             "'Undefined values'; listed below).")
            if left:
                lines.append(f"{left} value(s) are undefined for every method on their case, so those cases are left out "
                             "of every method's mean and paired test alike (listed below).")
        return lines or ["No duplicate rows, no missing cells, no NaN or infinite metrics."]


def _python(value):
    """numpy scalar -> Python scalar, so messages read seed=0 rather than seed=np.int64(0)."""
    return value.item() if hasattr(value, "item") else value


def _keys(blocks) -> list[str]:
    return list(blocks) + [c for c in KEY_COLUMNS if c not in SETTING_COLUMNS]


def _cell_columns(blocks) -> list[str]:
    return list(blocks) + [c for c in CELL_COLUMNS if c not in SETTING_COLUMNS]


def deduplicate(df: pd.DataFrame, metrics: tuple[str, ...], blocks=SETTING_COLUMNS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collapse exact duplicates (reported); raise on the same key with different values."""
    keys = _keys(blocks)
    values = keys + [m for m in metrics if m in df.columns]
    dup_mask = df.duplicated(keys, keep=False)
    if not dup_mask.any():
        return df, pd.DataFrame(columns=keys + ["copies", "files"])
    dups = df[dup_mask]
    distinct = dups.drop_duplicates(values)
    conflicting = distinct[distinct.duplicated(keys, keep=False)]
    if not conflicting.empty:
        first = conflicting.iloc[0]
        same = conflicting[(conflicting[keys] == first[keys]).all(axis=1)]
        files = " and ".join(sorted(set(same["source_file"])))
        other = [c for c in same.columns if c not in keys and c not in metrics and c != "source_file"
                 and not c.endswith("_worst") and same[c].nunique(dropna=False) > 1]
        hint = (f"; the rows differ in column(s) {other}: if they tell the rows apart, add them to the blocks (--blocks)"
                if other else "")
        raise CollectError(
            "conflicting duplicate rows for "
            + ", ".join(f"{k}={_python(first[k])!r}" for k in keys)
            + f": different metric values in {files}{hint}"
        )
    report = (
        dups.groupby(keys, sort=True)
        .agg(copies=("source_file", "size"), files=("source_file", lambda s: "; ".join(sorted(set(s)))))
        .reset_index()
    )
    return df.drop_duplicates(keys, keep="first").reset_index(drop=True), report


def _cells(df: pd.DataFrame, blocks=SETTING_COLUMNS) -> list[tuple]:
    return list(df[_cell_columns(blocks)].drop_duplicates().itertuples(index=False, name=None))


def missing_cells(df: pd.DataFrame, blocks=SETTING_COLUMNS) -> pd.DataFrame:
    """(method, variant) x setting x seed cells that have no row.

    The default variant (the main comparison) expects every method in every setting with every
    seed of the main comparison; each other variant expects, in each setting where it appears,
    the seeds that any variant of its family in that setting was run with. The families: the
    threshold sweep's variants (sweep_gs<γs>_gt<γt>, often run with fewer seeds) and the ablations.
    """
    blocks = list(blocks)
    present = set(_cells(df, blocks))
    expected = set()
    main = df[df["variant"] == DEFAULT_VARIANT]
    settings = list(main[blocks].drop_duplicates().itertuples(index=False, name=None))
    for method in main["method"].unique():
        for setting in settings:
            expected.update(tuple(setting) + (method, DEFAULT_VARIANT, s) for s in main["seed"].unique())
    ablation = df[df["variant"] != DEFAULT_VARIANT]
    family = ablation["variant"].str.match(SWEEP_VARIANT.pattern).map({True: "sweep", False: "ablation"})
    for (*setting, _), group in ablation.assign(_family=family).groupby([*blocks, "_family"], sort=True):
        for method, variant in group[["method", "variant"]].drop_duplicates().itertuples(index=False, name=None):
            expected.update(tuple(setting) + (method, variant, s) for s in group["seed"].unique())
    rows = sorted(expected - present, key=lambda c: tuple(map(str, c)))
    return pd.DataFrame(rows, columns=_cell_columns(blocks))


def incomplete_cells(df: pd.DataFrame, blocks=SETTING_COLUMNS) -> pd.DataFrame:
    """Cells that lack (case, class) rows present in other cells of the same setting.

    The main comparison and the ablation variants are checked separately (ablations may run on
    fewer cases only if all of them do).
    """
    cell_columns = _cell_columns(blocks)
    columns = cell_columns + ["n_missing", "examples"]
    rows = []
    work = df.assign(_main=df["variant"] == DEFAULT_VARIANT)
    for _, group in work.groupby(list(blocks) + ["_main"], sort=True):
        units = group[["case_id", "class_name"]].apply(tuple, axis=1)
        expected = set(units)
        for cell, index in group.groupby(cell_columns, sort=True).groups.items():
            lacking = sorted(expected - set(units.loc[index]))
            if lacking:
                examples = ", ".join("/".join(map(str, u)) for u in lacking[:3])
                rows.append(tuple(cell) + (len(lacking), examples + (" ..." if len(lacking) > 3 else "")))
    return pd.DataFrame(rows, columns=columns)


def nan_metrics(df: pd.DataFrame, metrics: tuple[str, ...], blocks=SETTING_COLUMNS) -> pd.DataFrame:
    """Count NaN and infinite values per cell and metric (only cells and metrics that have any)."""
    cell_columns = _cell_columns(blocks)
    frames = []
    for metric in [m for m in metrics if m in df.columns]:
        values = df[metric].to_numpy(dtype=float)
        counts = (
            df.assign(_nan=np.isnan(values), _inf=np.isinf(values))
            .groupby(cell_columns, sort=True)
            .agg(n_nan=("_nan", "sum"), n_inf=("_inf", "sum"), n_rows=("_nan", "size"))
            .reset_index()
        )
        counts = counts[(counts["n_nan"] > 0) | (counts["n_inf"] > 0)]
        if not counts.empty:
            frames.append(counts.assign(metric=metric))
    columns = cell_columns + ["metric", "n_nan", "n_inf", "n_rows"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)[columns]
    out[["n_nan", "n_inf"]] = out[["n_nan", "n_inf"]].astype(int)
    return out


def check_table(df: pd.DataFrame, metrics: tuple[str, ...] = METRIC_COLUMNS,
                blocks=SETTING_COLUMNS) -> tuple[pd.DataFrame, QualityReport]:
    """Deduplicate and check a tidy table; returns the cleaned table and what was found."""
    clean, duplicates = deduplicate(df, metrics, blocks)
    report = QualityReport(
        duplicates=duplicates,
        missing_cells=missing_cells(clean, blocks),
        incomplete_cells=incomplete_cells(clean, blocks),
        nan_metrics=nan_metrics(clean, metrics, blocks),
    )
    return clean, report


def collect_run(results_dir: Path, exclude: tuple[Path, ...] = ()) -> tuple[pd.DataFrame, QualityReport]:
    """Find, read, deduplicate and check every per-case CSV under a results folder."""
    paths = find_case_csvs(results_dir, exclude)
    if not paths:
        raise CollectError(
            f"no per-case CSV under {results_dir} (a per-case CSV has the columns {list(CASE_COLUMNS)})"
        )
    return check_table(collect(paths))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, required=True, help="folder searched for per-case CSVs")
    parser.add_argument("--out", type=Path, required=True, help="collected tidy table (CSV)")
    args = parser.parse_args(argv)
    table, report = collect_run(args.results_dir, exclude=(args.out,))
    write_csv(table, args.out)
    print(f"collected {len(table)} rows into {args.out}")
    for line in report.summary_lines():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
