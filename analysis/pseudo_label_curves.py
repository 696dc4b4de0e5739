"""Pseudo-label coverage and precision against iteration, one figure per setting.

Reads the `pl_cover_<class>` / `pl_prec_<class>` columns that the engine writes into each training
run's `log.csv` (methods/pseudo_label_logs.py) under `runs/<dataset>/r<pct>/<method>/default/s<seed>/`
(the workflow's layout), averages them over seeds per (method, iteration), and draws per setting a
2 x K grid: coverage (top) and precision (bottom) of each foreground class, one line per method.
Runs without those columns (SupOnly, ABD, pseudo-label-free variants) are left out; a run whose
unlabelled patients had no labels in the cache has coverage only.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.artefacts import RUN_PATH  # noqa: E402
from analysis.figure_inputs import FigureOutcome  # noqa: E402
from analysis.io import save_figure, write_csv  # noqa: E402
from analysis.naming import method_label, setting_label, sort_methods  # noqa: E402

PREFIXES = ("pl_cover_", "pl_prec_")


def collect_pseudo_label_logs(results_dir: Path) -> pd.DataFrame:
    """Tidy rows (dataset, ratio, method, seed, iteration, quantity, class_name, value) from every
    default-variant run's log.csv that has pseudo-label columns."""
    frames = []
    for log in sorted(Path(results_dir).rglob("log.csv")):
        match = RUN_PATH.search(log.parent.as_posix())
        if not match or match["variant"] != "default":
            continue
        df = pd.read_csv(log)
        columns = [c for c in df.columns if c.startswith(PREFIXES) and not c.endswith("_background")]
        if not columns:
            continue
        long = df[["iteration", *columns]].melt(id_vars="iteration", var_name="column", value_name="value").dropna()
        if long.empty:
            continue
        long["quantity"] = long["column"].str.extract(r"^pl_(cover|prec)_")[0].map({"cover": "coverage", "prec": "precision"})
        long["class_name"] = long["column"].str.replace(r"^pl_(cover|prec)_", "", regex=True)
        long = long.assign(dataset=match["dataset"], ratio=float(match["ratio"]), method=match["method"],
                           seed=int(match["seed"]))
        frames.append(long.drop(columns="column"))
    columns = ["dataset", "ratio", "method", "seed", "iteration", "quantity", "class_name", "value"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def pseudo_label_figure(df: pd.DataFrame, title: str, out_stem: Path) -> list[Path]:
    """df: rows of one setting (collect_pseudo_label_logs); mean over seeds, one line per method."""
    classes = list(dict.fromkeys(df["class_name"]))
    quantities = [q for q in ("coverage", "precision") if q in set(df["quantity"])]
    fig, axes = plt.subplots(len(quantities), len(classes), figsize=(3.2 * len(classes), 2.6 * len(quantities)),
                             squeeze=False, sharex=True)
    methods = sort_methods(df["method"].unique())
    mean = df.groupby(["quantity", "class_name", "method", "iteration"])["value"].mean()
    for i, quantity in enumerate(quantities):
        for j, cls in enumerate(classes):
            ax = axes[i][j]
            for k, method in enumerate(methods):
                try:
                    series = mean.loc[(quantity, cls, method)]
                except KeyError:
                    continue
                ax.plot(series.index, series.values, color=f"C{k}", linewidth=1.2, label=method_label(method))
            ax.set_ylim(0, 1 if quantity == "precision" else None)
            ax.set_title(f"{cls}: {quantity}", fontsize=9)
            if i == len(quantities) - 1:
                ax.set_xlabel("iteration")
            if j == 0:
                ax.set_ylabel("fraction of unlabelled pixels" if quantity == "coverage" else "fraction correct", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_stem)


def make_pseudo_label_figures(results_dir: Path, out_dir: Path, tables_dir: Path | None = None) -> FigureOutcome:
    """One figure per (dataset, ratio) with pseudo-label logs; the tidy table beside the tables."""
    name = "pseudo_label_curves"
    df = collect_pseudo_label_logs(results_dir)
    if df.empty:
        return FigureOutcome(name, "", reason="needs training logs with pseudo-label columns (pl_cover_*); none found")
    if tables_dir is not None:
        write_csv(df, Path(tables_dir) / "pseudo_label_logs.csv")
    paths, settings = [], []
    for (dataset, ratio), group in df.groupby(["dataset", "ratio"], sort=True):
        label = setting_label(dataset, ratio)
        stem = Path(out_dir) / f"{name}_{dataset}_r{ratio:g}"
        seeds = group.groupby("method")["seed"].nunique()
        n_seeds = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
        paths += pseudo_label_figure(group, f"Pseudo-labels on the unlabelled batches, {label} "
                                     f"(mean over {n_seeds} seeds)", stem)
        settings.append(label)
    caption = ("Pseudo-label coverage (fraction of unlabelled pixels whose pseudo-label passes the method's filter, "
               "per pseudo-label class) and precision (fraction of those that are right, from the labels the cache "
               "holds for the unlabelled patients, never used in training), logged every `log_every` iterations, "
               "mean over seeds: " + ", ".join(settings) + ".")
    return FigureOutcome(name, caption, paths)
