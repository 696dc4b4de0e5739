"""The paper's published numbers (results/reference/) and reproduced-minus-published tables.

Cells are matched on (dataset, ratio, method, variant, quantity); a run on other settings (the
phantom) has no matching cell, which the report states rather than hides. The paper's HD95 unit
is not stated (its code scores voxels without spacing); compare with `--hd95 px` for like units.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "results" / "reference"
REFERENCE_FILES = ("table1", "table2", "table3", "table4", "bcl_vs_infonce")
DIFF_COLUMNS = ["table", "dataset", "ratio", "method", "variant", "quantity", "reproduced", "published", "difference"]


class ReferenceError(ValueError):
    """A missing or malformed reference file; the message names it."""


def load_reference(ref_dir: Path = REFERENCE_DIR) -> dict[str, pd.DataFrame]:
    """The five reference CSVs, keyed by file stem."""
    ref_dir = Path(ref_dir)
    tables = {}
    for name in REFERENCE_FILES:
        path = ref_dir / f"{name}.csv"
        if not path.is_file():
            raise ReferenceError(f"reference table {path} is missing (see results/reference/README.md)")
        tables[name] = pd.read_csv(path)
    return tables


def _long_reference(ref: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All published cells in one long frame keyed like the reproduced ones."""
    frames = []
    t1 = ref["table1"].assign(variant="default")
    frames.append(t1.melt(id_vars=["dataset", "ratio", "method", "variant"], value_vars=["dice", "jaccard", "hd95"],
                          var_name="quantity", value_name="published").assign(table="table1"))
    for name, quantities in (("table3", ["dice", "jaccard", "hd95"]), ("table4", ["dice"]), ("bcl_vs_infonce", ["dice"])):
        frames.append(ref[name].melt(id_vars=["dataset", "ratio", "method", "variant"], value_vars=quantities,
                                     var_name="quantity", value_name="published").assign(table=name))
    out = pd.concat(frames, ignore_index=True)
    out["ratio"] = out["ratio"].astype(float)
    return out


def compare_metrics(summary: pd.DataFrame, ref: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Reproduced minus published for Tables 1, 3, 4 and the BCL line.

    `summary` is `tables.metric_summaries` of the whole run (dataset, ratio, method, variant,
    metric, mean in percent for Dice/Jaccard).
    """
    reproduced = summary.rename(columns={"metric": "quantity", "mean": "reproduced"})
    reproduced = reproduced.assign(ratio=reproduced["ratio"].astype(float))
    merged = _long_reference(ref).merge(
        reproduced[["dataset", "ratio", "method", "variant", "quantity", "reproduced"]],
        on=["dataset", "ratio", "method", "variant", "quantity"], how="inner",
    )
    merged["difference"] = merged["reproduced"] - merged["published"]
    return merged[DIFF_COLUMNS]


def compare_statistics(friedman_table: pd.DataFrame, ref: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Reproduced minus published Table 2 (rank, z, p, p_finner) for the methods in both."""
    published = ref["table2"].melt(id_vars="method", value_vars=["rank", "z", "p", "p_finner"],
                                   var_name="quantity", value_name="published")
    reproduced = friedman_table.melt(id_vars="method", value_vars=["rank", "z", "p", "p_finner"],
                                     var_name="quantity", value_name="reproduced")
    merged = published.merge(reproduced, on=["method", "quantity"], how="inner").dropna(subset=["published"])
    merged["difference"] = merged["reproduced"] - merged["published"]
    merged = merged.assign(table="table2", dataset="all", ratio=float("nan"), variant="default")
    return merged[DIFF_COLUMNS]
