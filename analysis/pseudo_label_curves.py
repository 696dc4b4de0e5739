"""Pseudo-label coverage and precision against iteration, one figure per setting.

Reads the `pl_cover_<class>` / `pl_prec_<class>` columns that the engine writes into each training
run's `log.csv` (methods/training/pseudo_label_logs.py) under `runs/<dataset>/r<pct>/<method>/default/s<seed>/`
(the workflow's layout), averages them over seeds per (method, iteration), and draws per setting a
2 x K grid: coverage (top) and precision (bottom) of each foreground class, one line per method.
Runs without those columns (SupOnly, pseudo-label-free variants, runs made before a method logged them) are left out; a run whose
unlabelled patients had no labels in the cache has coverage only. `end_of_training` pools the last
third of each run into one coverage, precision and recall per class, the report's first explanation
of a method's rank (docs/analysis.md).

Precision is a ratio over the pixels that passed the filter, so a point from a handful of pixels
swings between 0 and 1. The logs hold fractions only; the number of pseudo-labelled pixels behind
a point is estimated from the run's `run.yaml` as coverage x unlabelled pixels in the interval
(data.unlabelled_batch x data.img_size^2 x the iterations since the previous logged row). That is
exact when the method produced pseudo-labels at every step of the interval and an upper bound
otherwise (warm-up steps, or the first interval after a resume). A precision point whose estimate,
summed over seeds, is below MIN_PRECISION_PIXELS is not drawn; without run.yaml every point is
drawn and the caption says the counts are unknown.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from analysis.artefacts import RUN_PATH  # noqa: E402
from analysis.figure_inputs import FigureOutcome  # noqa: E402
from analysis.formatting import Column, DisplayTable, to_markdown  # noqa: E402
from analysis.io import save_figure, write_csv  # noqa: E402
from analysis.naming import method_label, setting_label, sort_methods  # noqa: E402

PREFIXES = ("pl_cover_", "pl_prec_", "pl_recall_")
QUANTITIES = {"cover": "coverage", "prec": "precision", "recall": "recall"}
MIN_PRECISION_PIXELS = 100  # binomial SE of a precision from n pixels <= 0.5 / sqrt(n) = 0.05
COLUMNS = ["dataset", "ratio", "method", "seed", "iteration", "steps", "quantity", "class_name", "value", "pixels",
           "planned_iterations"]
END_FRACTION = 1 / 3  # "the end of training": the last third of each run's iterations (500 of 1500)
END_WORDS = "the last third"  # END_FRACTION in the report's words
END_COLUMNS = ["dataset", "ratio", "method", "class_name", "coverage", "precision", "recall", "n_seeds",
               "from_iteration", "to_iteration", "pixels"]


def _run_yaml_number(run_yaml: Path, read) -> float:
    """read(parsed run.yaml) as a float; NaN when the file is absent or lacks what `read` looks up."""
    if not run_yaml.is_file():
        return float("nan")
    try:
        return float(read(yaml.safe_load(run_yaml.read_text()) or {}))
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        return float("nan")


def pixels_per_step(run_yaml: Path) -> float:
    """Unlabelled pixels of one training step (data.unlabelled_batch x data.img_size^2), NaN when
    the run's run.yaml is absent or lacks them."""
    return _run_yaml_number(run_yaml, lambda c: float(c["data"]["unlabelled_batch"]) * float(c["data"]["img_size"]) ** 2)


def planned_iterations(run_yaml: Path) -> float:
    """The run's train.iterations, NaN when run.yaml is absent or lacks it."""
    return _run_yaml_number(run_yaml, lambda c: c["train"]["iterations"])


def collect_pseudo_label_logs(results_dir: Path) -> pd.DataFrame:
    """Tidy rows (COLUMNS) from every default-variant run's log.csv that has pseudo-label columns;
    `steps` is the number of iterations the logged row counts (since the previous logged row); `pixels`
    is the estimated number of pixels pseudo-labelled as the class in the logged interval (coverage x
    unlabelled pixels of the interval; see the module docstring); `planned_iterations` is the run's
    train.iterations (NaN without run.yaml), which tells a finished run from one still training."""
    frames = []
    for log in sorted(Path(results_dir).rglob("log.csv")):
        match = RUN_PATH.search(log.parent.as_posix())
        if not match or match["variant"] != "default":
            continue
        df = pd.read_csv(log)
        columns = [c for c in df.columns if c.startswith(PREFIXES) and not c.endswith("_background")]
        if not columns:
            continue
        logged = df[["iteration", *columns]].dropna(how="all", subset=columns)
        steps = logged["iteration"].diff().fillna(logged["iteration"] + 1)  # the first interval starts at 0
        interval_pixels = pixels_per_step(log.parent / "run.yaml") * steps.to_numpy(dtype=float)
        long = logged.melt(id_vars="iteration", var_name="column", value_name="value").dropna()
        if long.empty:
            continue
        long["quantity"] = long["column"].str.extract(r"^pl_(cover|prec|recall)_")[0].map(QUANTITIES)
        long["class_name"] = long["column"].str.replace(r"^pl_(cover|prec|recall)_", "", regex=True)
        cover = {(it, c[len("pl_cover_"):]): v for c in columns if c.startswith("pl_cover_")
                 for it, v in zip(logged["iteration"], logged[c])}
        n_pixels = dict(zip(logged["iteration"], interval_pixels))
        long["pixels"] = [cover.get((it, cls), np.nan) * n_pixels[it]
                          for it, cls in zip(long["iteration"], long["class_name"])]
        long["steps"] = long["iteration"].map(dict(zip(logged["iteration"], steps)))
        long = long.assign(dataset=match["dataset"], ratio=float(match["ratio"]), method=match["method"],
                           seed=int(match["seed"]), planned_iterations=planned_iterations(log.parent / "run.yaml"))
        frames.append(long.drop(columns="column"))
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)


def seeds_text(seeds) -> str:
    """'seed 0' or 'mean over 3 seeds (0, 1, 2)'."""
    seeds = sorted(set(int(s) for s in seeds))
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over {len(seeds)} seeds ({', '.join(map(str, seeds))})"


def _fraction(value: float) -> str:
    """0.019, or 2.8e-04 for a coverage that three decimals would print as 0.000."""
    return f"{value:.3f}" if not value or value >= 0.001 or np.isnan(value) else f"{value:.1e}"


def pseudo_label_figure(df: pd.DataFrame, title: str, out_stem: Path,
                        min_pixels: int = MIN_PRECISION_PIXELS) -> list[Path]:
    """df: rows of one setting (collect_pseudo_label_logs); mean over seeds, one line per method.

    Coverage on top, precision below; a precision point backed by fewer than `min_pixels`
    pseudo-labelled pixels (summed over seeds) is not drawn. Each legend entry gives the method's
    largest coverage, so a method whose line lies on 0 is still identified. Both y axes extend
    a little beyond [0, 1] so that lines at 0 or 1 stay visible above the frame.
    """
    classes = list(dict.fromkeys(df["class_name"]))
    quantities = [q for q in ("coverage", "precision") if q in set(df["quantity"])]
    fig, axes = plt.subplots(len(quantities), len(classes), figsize=(3.0 * len(classes), 2.5 * len(quantities) + 0.7),
                             squeeze=False, sharex=True)
    methods = sort_methods(df["method"].unique())
    grouped = df.groupby(["quantity", "class_name", "method", "iteration"])
    mean, pixels = grouped["value"].mean(), grouped["pixels"].sum(min_count=1)
    max_cover = df[df["quantity"] == "coverage"].groupby("method")["value"].max()
    handles = {}
    for i, quantity in enumerate(quantities):
        for j, cls in enumerate(classes):
            ax = axes[i][j]
            for k, method in enumerate(methods):
                try:
                    series, counts = mean.loc[(quantity, cls, method)], pixels.loc[(quantity, cls, method)]
                except KeyError:
                    continue
                if quantity == "precision":
                    series = series.where(~(counts < min_pixels))  # NaN counts (unknown) are drawn
                (line,) = ax.plot(series.index, series.values, color=f"C{k}", linewidth=1.2, marker=".",
                                  markersize=3, clip_on=False)
                handles.setdefault(method, line)
            top = 1.0 if quantity == "precision" else max(float(mean.loc[quantity].max()), 0.01)
            ax.set_ylim(-0.04 * top, 1.04 * top)
            ax.set_title(f"{cls}: {quantity}", fontsize=9)
            if i == len(quantities) - 1:
                ax.set_xlabel("iteration", fontsize=8)
            if j == 0:
                ax.set_ylabel("fraction of unlabelled pixels" if quantity == "coverage" else "fraction correct", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    labels = [f"{method_label(m)} (max coverage {_fraction(max_cover.get(m, np.nan))})" for m in handles]
    fig.legend(list(handles.values()), labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7,
               frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if len(labels) <= 4 else 0.08, 1, 1))
    return save_figure(fig, out_stem)


RUN_KEYS = ["dataset", "ratio", "method", "seed"]


def unfinished_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs whose log stops before their planned last iteration (still training, or stopped): one row
    per run with `last_iteration` and `planned_iterations`. Runs without run.yaml count as finished."""
    if df.empty:
        return pd.DataFrame(columns=[*RUN_KEYS, "last_iteration", "planned_iterations"])
    runs = df.groupby(RUN_KEYS, sort=True).agg(last_iteration=("iteration", "max"),
                                               planned_iterations=("planned_iterations", "max")).reset_index()
    return runs[runs["last_iteration"] + 1 < runs["planned_iterations"]].reset_index(drop=True)


def end_of_training(df: pd.DataFrame, fraction: float = END_FRACTION) -> pd.DataFrame:
    """Pseudo-label coverage, precision and recall over the last `fraction` of each finished run's
    iterations (logged rows at iterations >= (1 - fraction) x (last logged iteration + 1), and always
    the last row), pooled within the run and then averaged over seeds: one row per (dataset, ratio,
    method, class), END_COLUMNS. Unfinished runs (unfinished_runs) are left out: their last rows are
    not the end of training.

    Pooled as counts over the window, not as a mean of logged fractions: coverage = sum(cover x steps) /
    sum(steps); precision = sum(prec x cover x steps) / sum(cover x steps) (each logged precision weighed
    by the pixels it was computed from; the unlabelled pixels of a step cancel out); recall, whose
    denominator (the class's true pixels) the logs do not hold, as a step-weighted mean. A class with no
    pseudo-labelled pixel in the window has no precision (NaN); nor has one whose estimated pseudo-labelled
    pixels in the window (`pixels`, summed over seeds, as in the curves) are fewer than MIN_PRECISION_PIXELS.
    """
    unfinished = unfinished_runs(df)
    if not unfinished.empty:
        keys = pd.MultiIndex.from_frame(unfinished[RUN_KEYS])
        df = df[~pd.MultiIndex.from_frame(df[RUN_KEYS]).isin(keys)]
    if df.empty:
        return pd.DataFrame(columns=END_COLUMNS)
    last = df.groupby(RUN_KEYS)["iteration"].transform("max")
    window = df[df["iteration"] >= np.minimum((1 - fraction) * (last + 1), last)]  # the last logged row at least
    wide = window.pivot_table(index=[*RUN_KEYS, "class_name", "iteration", "steps"], columns="quantity",
                              values="value", aggfunc="first").reset_index()
    for q in QUANTITIES.values():
        if q not in wide:
            wide[q] = np.nan
    wide["covered_steps"] = wide["coverage"] * wide["steps"]
    rows = []
    for key, g in wide.groupby([*RUN_KEYS, "class_name"], sort=True):
        prec = g.dropna(subset=["precision"])
        recall = g.dropna(subset=["recall"])
        covered = float(prec["covered_steps"].sum())
        rows.append({**dict(zip([*RUN_KEYS, "class_name"], key)),
                     "coverage": float((g["covered_steps"]).sum() / g["steps"].sum()),
                     "precision": float((prec["precision"] * prec["covered_steps"]).sum() / covered) if covered > 0 else np.nan,
                     "recall": float((recall["recall"] * recall["steps"]).sum() / recall["steps"].sum())
                     if not recall.empty else np.nan,
                     "from_iteration": int(g["iteration"].min()), "to_iteration": int(g["iteration"].max())})
    per_run = pd.DataFrame(rows)
    covered = window[window["quantity"] == "coverage"].groupby([*RUN_KEYS, "class_name"])["pixels"]
    per_run = per_run.merge(covered.sum(min_count=1).reset_index(), on=[*RUN_KEYS, "class_name"], how="left")
    keys = ["dataset", "ratio", "method", "class_name"]
    out = per_run.groupby(keys, sort=False).agg(
        coverage=("coverage", "mean"), precision=("precision", "mean"), recall=("recall", "mean"),
        n_seeds=("seed", "nunique"), from_iteration=("from_iteration", "min"), to_iteration=("to_iteration", "max"),
        pixels=("pixels", lambda px: px.sum(min_count=1)),
    ).reset_index()
    out.loc[out["pixels"] < MIN_PRECISION_PIXELS, "precision"] = np.nan  # NaN pixels (no run.yaml): kept
    order = {c: i for i, c in enumerate(dict.fromkeys(df["class_name"]))}  # the logs' class order (RV, MYO, LV)
    out = out.sort_values(["dataset", "ratio", "method", "class_name"], key=lambda col: col.map(order)
                          if col.name == "class_name" else col, kind="stable")
    return out[END_COLUMNS].reset_index(drop=True)


def end_of_training_markdown(end: pd.DataFrame, evaluated: dict[tuple[str, float], list[str]],
                             unfinished: pd.DataFrame | None = None) -> str:
    """One table per setting: each method's coverage / precision / recall per class (fractions x 100),
    which methods `evaluated` in that setting ((dataset, ratio) -> methods) log no pseudo-labels, and
    which runs were left out because they have not finished (`unfinished`, from unfinished_runs)."""
    unfinished = unfinished if unfinished is not None else pd.DataFrame(columns=[*RUN_KEYS, "last_iteration"])
    if end.empty and unfinished.empty:
        return "*Not produced: no training log holds pseudo-label columns (pl_cover_*).*\n"
    settings = sorted({(d, float(r)) for d, r in zip(end["dataset"], end["ratio"])}
                      | {(d, float(r)) for d, r in zip(unfinished["dataset"], unfinished["ratio"])})
    blocks = []
    for dataset, ratio in settings:
        g = end[(end["dataset"] == dataset) & (end["ratio"] == ratio)]
        running = unfinished[(unfinished["dataset"] == dataset) & (unfinished["ratio"] == ratio)]
        left_out = ("; left out, not finished (still training or stopped; the last rows of an unfinished run are not the end of its "
                    "training): " + ", ".join(f"{method_label(r.method)} seed {int(r.seed)} (logged to iteration "
                                              f"{int(r.last_iteration)} of {int(r.planned_iterations)})"
                                              for r in running.itertuples())) if not running.empty else ""
        label = setting_label(dataset, ratio)
        if g.empty:
            blocks.append(f"**{label}**: no finished run with pseudo-label logs{left_out}.\n")
            continue
        classes = list(dict.fromkeys(g["class_name"]))
        methods = sort_methods(g["method"].unique())
        # a quantity nobody has here (precision and recall need the unlabelled patients' labels) is left out
        quantities = [q for q in ("coverage", "precision", "recall") if g[q].notna().any() or q == "coverage"]
        short = {"coverage": "cover", "precision": "prec", "recall": "recall"}
        cells = []
        for m in methods:
            row = g[g["method"] == m].set_index("class_name")
            cells.append([_percent(row, c, q) for c in classes for q in quantities])
        columns = [Column(f"{c} {short[q]}") for c in classes for q in quantities]
        seeds = sorted(set(g["n_seeds"]))
        seeds_words = f"mean over {'/'.join(map(str, seeds))} seeds" if seeds != [1] else "one seed"
        logging = set(methods) | set(running["method"])
        absent = [method_label(m) for m in sort_methods(set(evaluated.get((dataset, ratio), ())) - logging)]
        blocks.append(f"**{label}**, iterations {int(g['from_iteration'].min())}–"
                      f"{int(g['to_iteration'].max())}, {seeds_words}"
                      + (f"; no pseudo-labels logged by {', '.join(absent)}" if absent else "") + left_out + ".\n\n"
                      + to_markdown(DisplayTable("Method", [method_label(m) for m in methods], columns, cells)))
    hidden = end[(end["pixels"] < MIN_PRECISION_PIXELS) & (end["coverage"] > 0)]
    if not hidden.empty:
        blocks.append(f"prec '–' where the class was pseudo-labelled on fewer than {MIN_PRECISION_PIXELS} pixels "
                      f"in the window (estimated from coverage and run.yaml, summed over seeds): too few for a "
                      f"precision ({len(hidden)} cell(s)).\n")
    return "\n".join(blocks)


def _percent(row: pd.DataFrame, cls: str, quantity: str) -> str:
    value = row[quantity].get(cls, np.nan) if quantity in row else np.nan
    return "–" if pd.isna(value) else f"{100 * value:.1f}"


def make_pseudo_label_figures(results_dir: Path, out_dir: Path, tables_dir: Path | None = None,
                              df: pd.DataFrame | None = None) -> FigureOutcome:
    """One figure per (dataset, ratio) with pseudo-label logs; the tidy table beside the tables.
    `df`: the logs already collected (collect_pseudo_label_logs), else read from `results_dir`."""
    name = "pseudo_label_curves"
    df = collect_pseudo_label_logs(results_dir) if df is None else df
    if df.empty:
        return FigureOutcome(name, "", reason="needs training logs with pseudo-label columns (pl_cover_*); none found")
    if tables_dir is not None:
        write_csv(df, Path(tables_dir) / "pseudo_label_logs.csv")
    paths, captions = [], []
    for (dataset, ratio), group in df.groupby(["dataset", "ratio"], sort=True):
        label = setting_label(dataset, ratio)
        stem = Path(out_dir) / f"{name}_{dataset}_r{ratio:g}"
        seeds = seeds_text(group["seed"])
        written = pseudo_label_figure(group, f"Pseudo-labels on the unlabelled batches, {label} ({seeds})", stem)
        paths += written
        precision = group[group["quantity"] == "precision"]
        pooled = precision.groupby(["method", "class_name", "iteration"])["pixels"].sum(min_count=1)
        hidden, unknown = int((pooled < MIN_PRECISION_PIXELS).sum()), int(pooled.isna().sum())
        counts = (f"precision points backed by fewer than {MIN_PRECISION_PIXELS} pseudo-labelled pixels (estimated "
                  f"from coverage and run.yaml) are not drawn: {hidden} of {len(pooled)}"
                  + (f"; {unknown} point(s) have no count (no run.yaml) and are drawn" if unknown else ""))
        captions.append(f"Pseudo-label coverage (fraction of unlabelled pixels whose pseudo-label passes the "
                        f"method's filter, per pseudo-label class) and precision (fraction of those that are right, "
                        f"from the labels the cache holds for the unlabelled patients, never used in training), "
                        f"{label}, {seeds}, logged every `log_every` iterations; {counts}.")
    return FigureOutcome(name, " ".join(captions), paths, png_captions=captions)
