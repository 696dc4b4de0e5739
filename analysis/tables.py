"""Tables 1, 3 and 4, the BCL-vs-InfoNCE line and per-class breakdowns, from the tidy table.

Each builder returns `TableResult`s: a tidy numeric frame (written as CSV) and a `DisplayTable`
(written as Markdown and LaTeX). Dice and Jaccard are shown in percent, as in the paper; the
HD95 column is `hd95_mm` (physical) or `hd95_px` (the paper-compatible pixel unit).
Variant names follow docs/architecture.md ("Variant names the analysis relies on").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.aggregate import class_summary, setting_summary
from analysis.collect import DEFAULT_VARIANT, CollectError
from analysis.formatting import Column, DisplayTable, Value, to_latex, to_markdown
from analysis.io import write_csv, write_text
from analysis.naming import method_label, setting_label, setting_slug, sort_methods, sort_settings
from methods.paper_plan import BCL_VS_INFONCE, TABLE3, TABLE3_LOSSES, TABLE4, own_variants

PERCENT_METRICS = ("dice", "jaccard")
METRIC_LABELS = {"dice": "Dice", "jaccard": "Jacc", "hd95": "HD95"}
HIGHER_IS_BETTER = {"dice": True, "jaccard": True, "hd95": False}
HD95_COLUMNS = ("hd95_mm", "hd95_px")

# (label, method, variant[, ticked losses]) of the paper's rows, top to bottom (methods/paper_plan.py)
TABLE3_ROWS = tuple((r.label, r.method, r.variant, tuple(int(loss in r.losses) for loss in TABLE3_LOSSES))
                    for r in TABLE3)
TABLE4_ROWS = tuple((r.label, r.method, r.variant) for r in TABLE4)
BCL_ROWS = tuple((r.label, r.method, r.variant) for r in BCL_VS_INFONCE)


@dataclass
class TableResult:
    name: str  # file stem
    title: str  # caption
    data: pd.DataFrame  # tidy numbers
    display: DisplayTable

    def write(self, out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        return [
            write_csv(self.data, out_dir / f"{self.name}.csv"),
            write_text(to_markdown(self.display), out_dir / f"{self.name}.md"),
            write_text(to_latex(self.display, caption=self.title, label=f"tab:{self.name}"), out_dir / f"{self.name}.tex"),
        ]


def check_fractions(df: pd.DataFrame) -> None:
    """Dice and Jaccard must be stored as fractions in [0, 1] (the results schema): the one
    fraction/percent rule of analysis.policy, as the whole-run analysis applies it."""
    from analysis.policy import check_unit, resolve_metric

    for col in PERCENT_METRICS:
        check_unit(df, resolve_metric(col), fix="per-case CSVs hold fractions (docs/architecture.md)")


def metric_summaries(df: pd.DataFrame, hd95_column: str = "hd95_mm") -> pd.DataFrame:
    """Long frame: dataset, ratio, method, variant, metric (dice|jaccard|hd95), mean, sd, n_seeds."""
    if hd95_column not in HD95_COLUMNS:
        raise CollectError(f"hd95 column must be one of {HD95_COLUMNS}, got {hd95_column!r}")
    frames = []
    for metric, column in (("dice", "dice"), ("jaccard", "jaccard"), ("hd95", hd95_column)):
        summary = setting_summary(df, column)
        if metric in PERCENT_METRICS:
            summary[["mean", "sd"]] = summary[["mean", "sd"]] * 100.0
        frames.append(summary.assign(metric=metric))
    out = pd.concat(frames, ignore_index=True)
    return out[["dataset", "ratio", "method", "variant", "metric", "mean", "sd", "n_seeds"]]


def _lookup(summary: pd.DataFrame) -> dict:
    return {
        (r.dataset, float(r.ratio), r.method, r.variant, r.metric): Value(r.mean, r.sd)
        for r in summary.itertuples(index=False)
    }


def _missing_value() -> Value:
    return Value(float("nan"))


# --------------------------------------------------------------------------- Table 1
def table1(df: pd.DataFrame, hd95_column: str = "hd95_mm") -> TableResult:
    """Main comparison: every method's default variant, per setting: Dice, Jaccard, HD95."""
    main = df[df["variant"] == DEFAULT_VARIANT]
    if main.empty:
        raise CollectError("Table 1 needs rows with variant 'default' (the main comparison); none found")
    summary = metric_summaries(main, hd95_column)
    values = _lookup(summary)
    methods = sort_methods(main["method"])
    settings = sort_settings(main[["dataset", "ratio"]].itertuples(index=False, name=None))
    columns, keys = [], []
    for dataset, ratio in settings:
        for metric in ("dice", "jaccard", "hd95"):
            columns.append(Column(_label(metric, hd95_column), setting_label(dataset, ratio), HIGHER_IS_BETTER[metric]))
            keys.append((dataset, float(ratio), metric))
    cells = [[values.get((d, r, m, DEFAULT_VARIANT, metric), _missing_value()) for d, r, metric in keys]
             for m in methods]
    n_seeds = int(summary["n_seeds"].max()) if not summary.empty else 0
    notes = [_spread_note(n_seeds, hd95_column)]
    display = DisplayTable("Method", [method_label(m) for m in methods], columns, cells, notes)
    data = summary.drop(columns="variant").assign(mark="")
    marks = display.marks()
    mark_index = {(methods[i], keys[j][0], keys[j][1], keys[j][2]): marks[i][j]
                  for i in range(len(methods)) for j in range(len(keys))}
    data["mark"] = [mark_index.get((r.method, r.dataset, float(r.ratio), r.metric), "") for r in data.itertuples()]
    data = data.sort_values(["dataset", "ratio", "metric"], kind="stable").reset_index(drop=True)
    title = ("Table 1: Dice (%), Jaccard (%) and HD95 per setting, averaged over classes and evaluated cases"
             + (" and seeds" if n_seeds > 1 else "") + ". Bold: best; underlined: second best.")
    return TableResult("table1", title, _with_unit(data, hd95_column), display)


def _label(metric: str, hd95_column: str) -> str:
    """Column label with HD95's unit: 'HD95 (mm)' or 'HD95 (px)'."""
    return f"HD95 ({hd95_column.split('_')[-1]})" if metric == "hd95" else METRIC_LABELS[metric]


def _with_unit(data: pd.DataFrame, hd95_column: str) -> pd.DataFrame:
    """The written CSV names HD95 by its column (hd95_mm or hd95_px), so the unit travels with it."""
    return data.assign(metric=data["metric"].replace({"hd95": hd95_column})) if "metric" in data else data


def _spread_note(n_seeds: int, hd95_column: str) -> str:
    unit = "mm" if hd95_column == "hd95_mm" else "pixels"
    spread = f"mean ± SD over {n_seeds} seeds" if n_seeds > 1 else "one seed"
    return f"Values: {spread}; HD95 in {unit}."


# --------------------------------------------------------------------------- Tables 3, 4, BCL line
def _ablation_table(df, hd95_column, rows, name, title, extra_columns=None, distinguishing=()) -> list[TableResult]:
    """One table per setting that has at least one of the `distinguishing` variants."""
    present = df[df["variant"].isin(distinguishing) & (df["method"] == "spcl")]
    results = []
    for dataset, ratio in sort_settings(present[["dataset", "ratio"]].itertuples(index=False, name=None)):
        here = df[(df["dataset"] == dataset) & (df["ratio"] == ratio)]
        values = _lookup(metric_summaries(here, hd95_column))
        metric_cols = [Column(_label(m, hd95_column), setting_label(dataset, ratio), HIGHER_IS_BETTER[m])
                       for m in ("dice", "jaccard", "hd95")]
        cells, records, missing = [], [], []
        for row in rows:
            label, method, variant = row[0], row[1], row[2]
            row_values = [values.get((dataset, float(ratio), method, variant, m), _missing_value())
                          for m in ("dice", "jaccard", "hd95")]
            if np.isnan(row_values[0].mean):
                missing.append(f"{method}/{variant}")
            prefix = extra_columns(row) if extra_columns else []
            cells.append(prefix + row_values)
            for metric, v in zip(("dice", "jaccard", "hd95"), row_values):
                records.append({"dataset": dataset, "ratio": ratio, "row": label, "method": method,
                                "variant": variant, "metric": metric, "mean": v.mean, "sd": v.sd})
        prefix_cols = [Column(c) for c in TABLE3_LOSSES] if extra_columns else []
        notes = [f"Not run: {', '.join(missing)}."] if missing else []
        display = DisplayTable("Run", [r[0] for r in rows], prefix_cols + metric_cols, cells, notes)
        results.append(TableResult(f"{name}_{setting_slug(dataset, ratio)}",
                                   f"{title} ({setting_label(dataset, ratio)}).",
                                   _with_unit(pd.DataFrame(records), hd95_column), display))
    return results


def table3(df: pd.DataFrame, hd95_column: str = "hd95_mm") -> list[TableResult]:
    """SPCL component ablation (paper Table 3)."""
    return _ablation_table(
        df, hd95_column, TABLE3_ROWS, "table3", "Table 3: ablation of the SPCL loss components",
        extra_columns=lambda row: ["✓" if tick else "" for tick in row[3]],
        distinguishing=own_variants(TABLE3),
    )


def table4(df: pd.DataFrame, hd95_column: str = "hd95_mm") -> list[TableResult]:
    """Subclass relation ablation (paper Table 4): Neg, Pos, US (unconcerned samples)."""
    return _ablation_table(df, hd95_column, TABLE4_ROWS, "table4",
                           "Table 4: relation between the inner and boundary subclasses",
                           distinguishing=own_variants(TABLE4))


def bcl_vs_infonce(df: pd.DataFrame, hd95_column: str = "hd95_mm") -> list[TableResult]:
    """BCL against InfoNCE on boundary anchors (paper Section 3.3), with the Dice difference."""
    tables = _ablation_table(df, hd95_column, BCL_ROWS, "bcl_vs_infonce",
                             "BCL against InfoNCE as the boundary contrastive loss",
                             distinguishing=own_variants(BCL_VS_INFONCE))
    for t in tables:
        dice = t.data[t.data["metric"] == "dice"].set_index("row")["mean"]
        if not dice.isna().any():
            t.display.notes.append(f"Dice difference BCL − InfoNCE: {dice['BCL'] - dice['InfoNCE']:+.2f} points.")
    return tables


# --------------------------------------------------------------------------- per-class breakdown
def class_tables(df: pd.DataFrame, hd95_column: str = "hd95_mm") -> list[TableResult]:
    """Per setting: Dice (%) and HD95 per class and method (default variants)."""
    main = df[df["variant"] == DEFAULT_VARIANT]
    dice = class_summary(main, "dice").assign(metric="dice")
    dice[["mean", "sd"]] *= 100.0
    hd = class_summary(main, hd95_column).assign(metric="hd95")
    summary = pd.concat([dice, hd], ignore_index=True)
    results = []
    for dataset, ratio in sort_settings(main[["dataset", "ratio"]].itertuples(index=False, name=None)):
        here = summary[(summary["dataset"] == dataset) & (summary["ratio"] == ratio)]
        classes = list(dict.fromkeys(main.loc[(main["dataset"] == dataset) & (main["ratio"] == ratio), "class_name"]))
        methods = sort_methods(here["method"])
        values = {(r.method, r.class_name, r.metric): Value(r.mean, r.sd) for r in here.itertuples()}
        columns = [Column(_label(m, hd95_column), c, HIGHER_IS_BETTER[m]) for c in classes for m in ("dice", "hd95")]
        cells = [[values.get((m, c, metric), _missing_value()) for c in classes for metric in ("dice", "hd95")]
                 for m in methods]
        display = DisplayTable("Method", [method_label(m) for m in methods], columns, cells)
        results.append(TableResult(f"classes_{setting_slug(dataset, ratio)}",
                                   f"Per-class Dice (%) and HD95, {setting_label(dataset, ratio)}.",
                                   _with_unit(here.drop(columns="variant").reset_index(drop=True), hd95_column),
                                   display))
    return results
