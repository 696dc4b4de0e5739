"""The protocol decomposition: what each choice of the official protocol is worth.

The workflow's `protocols` section (config/experiments/protocol_decomposition.yaml) trains the same
methods under a chain of protocols, from the full official SPCL protocol to the harness's fair one,
changing one choice per step; each step's runs have the variant `protocol_<step>`. This module
turns their per-case rows into:

- a table, one row per (step, method): mean Dice (%) and HD95 (mm) over test cases (and seeds),
  whether the step reads test labels (the `uses_test_label` column of the per-case CSVs), and the
  paired difference to the previous step (same method, case and seed) with a 95 % percentile
  bootstrap interval over cases crossed with seeds (`analysis.stats.bootstrap_mean_ci`);
- one figure of the chain: mean Dice per step and method, with the bootstrap interval of the mean.

Per-case values are means over foreground classes. HD95 is the native-grid `hd95_mm` of the
native evaluation, and on the official grid the same distance with that grid's pixel size, so the
two are in one unit; the published convention (pixels) is `hd95_px` in the per-case CSVs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import stats  # noqa: E402
from analysis.figure_inputs import FigureOutcome  # noqa: E402
from analysis.formatting import Column, DisplayTable, Value  # noqa: E402
from analysis.io import save_figure  # noqa: E402
from analysis.naming import method_label, sort_methods  # noqa: E402
from analysis.tables import TableResult  # noqa: E402

PREFIX = "protocol_"
NAME = "protocol_decomposition"


def protocol_steps(config: dict) -> list[dict]:
    """The configured steps in chain order ({name, change}); [] when the config has none."""
    return [{"name": str(s["name"]), "change": str(s.get("change", ""))}
            for s in ((config or {}).get("protocols") or {}).get("steps") or []]


def per_case(table: pd.DataFrame, steps: list[dict]) -> pd.DataFrame:
    """One row per (step, method, seed, case_id): Dice in %, HD95 in mm (class means), test-label use."""
    names = [s["name"] for s in steps]
    rows = table[table["variant"].isin([PREFIX + n for n in names])].copy()
    if rows.empty:
        return pd.DataFrame(columns=["step", "method", "seed", "case_id", "dice", "hd95_mm", "uses_test_label"])
    rows["step"] = rows["variant"].str[len(PREFIX):]
    if "uses_test_label" not in rows:
        rows["uses_test_label"] = False
    rows["uses_test_label"] = rows["uses_test_label"].astype(str).str.lower().isin(("true", "1"))
    out = (rows.groupby(["step", "method", "seed", "case_id"], sort=False)
           .agg(dice=("dice", "mean"), hd95_mm=("hd95_mm", "mean"), uses_test_label=("uses_test_label", "any"))
           .reset_index())
    out["dice"] *= 100.0
    out["step"] = pd.Categorical(out["step"], categories=names, ordered=True)
    return out.sort_values(["step", "method", "seed", "case_id"]).reset_index(drop=True)


def _matrix(frame: pd.DataFrame, column: str) -> np.ndarray:
    """cases x seeds matrix of one (step, method) or of a paired difference."""
    return frame.pivot_table(index="case_id", columns="seed", values=column, aggfunc="mean").to_numpy()


def chain_summary(cases: pd.DataFrame, steps: list[dict], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Tidy numbers of the table (module docstring), one row per (step, method) present."""
    records = []
    names = [s["name"] for s in steps]
    changes = {s["name"]: s["change"] for s in steps}
    for method in sort_methods(cases["method"].unique()):
        previous = None
        for name in names:
            cur = cases[(cases["method"] == method) & (cases["step"] == name)]
            if cur.empty:
                continue
            rec = {"step": name, "change": changes[name], "method": method, "n_cases": cur["case_id"].nunique(),
                   "n_seeds": cur["seed"].nunique(), "uses_test_label": bool(cur["uses_test_label"].any())}
            for metric in ("dice", "hd95_mm"):
                mean, low, high = stats.bootstrap_mean_ci(_matrix(cur, metric), n_boot=n_boot, seed=seed)
                rec.update({metric: mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high})
            for metric in ("dice", "hd95_mm"):
                rec.update({f"delta_{metric}": np.nan, f"delta_{metric}_ci_low": np.nan, f"delta_{metric}_ci_high": np.nan})
            if previous is not None:
                paired = cur.merge(previous, on=["method", "seed", "case_id"], suffixes=("", "_prev"))
                for metric in ("dice", "hd95_mm"):
                    paired[f"d_{metric}"] = paired[metric] - paired[f"{metric}_prev"]
                    if paired.empty:
                        continue
                    mean, low, high = stats.bootstrap_mean_ci(_matrix(paired, f"d_{metric}"), n_boot=n_boot, seed=seed)
                    rec.update({f"delta_{metric}": mean, f"delta_{metric}_ci_low": low, f"delta_{metric}_ci_high": high})
                rec["previous_step"] = previous["step"].iloc[0]
            records.append(rec)
            previous = cur
    return pd.DataFrame(records)


def _delta_text(row, metric: str) -> str:
    value = row[f"delta_{metric}"]
    if pd.isna(value):
        return "–"
    return f"{value:+.2f} [{row[f'delta_{metric}_ci_low']:+.2f}, {row[f'delta_{metric}_ci_high']:+.2f}]"


def chain_table(summary: pd.DataFrame) -> TableResult:
    """The decomposition table: step, method, Dice, HD95 and the paired step differences."""
    rows, cells = [], []
    for r in summary.to_dict("records"):
        rows.append(f"{r['step']} / {method_label(r['method'])}")
        cells.append([r["change"], "yes" if r["uses_test_label"] else "no", Value(r["dice"]), Value(r["hd95_mm"]),
                      _delta_text(r, "dice"), _delta_text(r, "hd95_mm")])
    columns = [Column("what this step changes"), Column("test labels used"), Column("Dice (%)"), Column("HD95 (mm)"),
               Column("Δ Dice vs previous step [95% CI]"), Column("Δ HD95 vs previous step [95% CI]")]
    n_seeds = int(summary["n_seeds"].max()) if not summary.empty else 0
    notes = ["Δ: paired over the same test cases and seeds (this step minus the previous one); 95 % percentile "
             f"bootstrap over cases{' crossed with seeds' if n_seeds > 1 else ''}. 'Test labels used': the test label "
             "placed the input (label-centred crop) or chose the checkpoint (best_on_test); such rows are not a fair "
             "test-set estimate."]
    display = DisplayTable("Step / method", rows, columns, cells, notes)
    title = ("Protocol decomposition: from the official SPCL protocol (first step) to the harness's fair protocol "
             "(last step), one choice per step; mean over test cases" + (" and seeds" if n_seeds > 1 else "") + ".")
    return TableResult(NAME, title, summary, display)


def chain_figure(summary: pd.DataFrame, out_stem: Path) -> list[Path]:
    """Mean Dice per step (x, chain order) and method (lines), with the bootstrap interval."""
    steps = list(dict.fromkeys(summary["step"]))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(steps)), 3.4))
    for method in sort_methods(summary["method"].unique()):
        m = summary[summary["method"] == method].set_index("step").reindex(steps)
        x = np.arange(len(steps))
        ax.errorbar(x, m["dice"], yerr=[m["dice"] - m["dice_ci_low"], m["dice_ci_high"] - m["dice"]], marker="o",
                    capsize=3, label=method_label(method))
    flagged = set(summary.loc[summary["uses_test_label"], "step"])
    ax.set_xticks(range(len(steps)), [f"{s}*" if s in flagged else s for s in steps], rotation=30, ha="right")
    ax.set_ylabel("mean Dice (%)")
    ax.set_xlabel("protocol step (official → fair); * uses test labels")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    paths = save_figure(fig, out_stem)
    plt.close(fig)
    return paths


def make_protocol_chain(table: pd.DataFrame, config: dict, tables_dir: Path, figures_dir: Path,
                        n_boot: int = 2000, seed: int = 0) -> tuple[TableResult | None, FigureOutcome]:
    """Table and figure of the decomposition when the config defines protocol steps and their runs exist."""
    steps = protocol_steps(config)
    caption = "Protocol decomposition: mean Dice per protocol step and method, 95 % bootstrap interval"
    if not steps:
        return None, FigureOutcome(NAME, caption, [], "the config defines no protocol steps (protocols.steps)")
    cases = per_case(table, steps)
    if cases.empty:
        return None, FigureOutcome(NAME, caption, [], "no per-case rows of variants protocol_<step> in the results")
    summary = chain_summary(cases, steps, n_boot=n_boot, seed=seed)
    result = chain_table(summary)
    result.write(tables_dir)
    paths = chain_figure(summary, Path(figures_dir) / NAME)
    return result, FigureOutcome(NAME, caption, paths)
