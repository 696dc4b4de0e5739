"""Choose, load and draw each paper figure from a run's artefacts, or say why it cannot be drawn.

Every `make_*` function returns a `FigureOutcome`: the written files and a caption, or the
reason the figure was not produced (its inputs are absent from the run). When the inputs are
present the figure is always produced; a malformed input file is an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.aggregate import setting_summary
from analysis.artefacts import Artefacts, ArtefactError, RunId, load_features, load_prediction, load_similarities
from analysis.naming import method_label, setting_label, sort_methods, sort_settings
from methods.paper_plan import FIG3, FIG7, PAPER_THRESHOLDS, SWEEP_VARIANT, sweep_variant


@dataclass
class FigureOutcome:
    name: str
    caption: str
    paths: list[Path] = field(default_factory=list)
    reason: str = ""  # why not produced; "" when produced
    png_captions: list[str] = field(default_factory=list)  # one per PNG when they differ (else `caption`)

    @property
    def produced(self) -> bool:
        return bool(self.paths)


@dataclass
class FigureOptions:
    tsne_methods: tuple[str, ...] = ("bus", "bass", "spcl")
    tsne_points: int = 1000
    tsne_iter: int = 500
    n_jobs: int = 1
    seed: int = 0
    prediction_cases: int = 3


def _pick_setting(candidates: dict[tuple, set]) -> tuple | None:
    """The setting where the most wanted runs are present (paper order breaks ties)."""
    if not candidates:
        return None
    best = max(len(v) for v in candidates.values())
    return sort_settings(s for s, v in candidates.items() if len(v) == best)[0]


def _by_setting(store: dict[RunId, Path], wanted: dict[tuple[str, str], str]) -> dict[tuple, dict[str, RunId]]:
    """setting -> {label: RunId with the lowest seed} for the wanted (method, variant) pairs."""
    out: dict[tuple, dict[str, RunId]] = {}
    for run in sorted(store):
        label = wanted.get((run.method, run.variant))
        if label is None:
            continue
        out.setdefault((run.dataset, run.ratio), {}).setdefault(label, run)
    return out


# --------------------------------------------------------------------------- Fig. 3
def make_fig3(art: Artefacts, out_dir: Path) -> FigureOutcome:
    name = "fig3_similarities"
    wanted = {row.run: row.label for row in FIG3}
    per_setting = _by_setting(art.similarities, wanted)
    complete = {s: runs for s, runs in per_setting.items() if len(runs) == len(FIG3)}
    if not complete:
        found = ", ".join(f"{r.method}/{r.variant} ({setting_label(r.dataset, r.ratio)})" for r in sorted(art.similarities))
        needed = " and ".join(f"{row.method}/{row.variant} ({row.label})" for row in FIG3)
        return FigureOutcome(name, "", reason=f"needs similarities.npz of {needed} in one setting; found: {found or 'none'}")
    setting = sort_settings(complete)[0]
    runs = complete[setting]
    groups = {f"{row.label} ({row.method}/{runs[row.label].variant}, seed {runs[row.label].seed})":
              load_similarities(art.similarities[runs[row.label]]) for row in FIG3}
    paths = figures.similarity_figure(groups, out_dir / name)
    means = {label: (g["positive"].mean() if g["positive"].size else np.nan,
                     g["negative"].mean() if g["negative"].size else np.nan) for label, g in groups.items()}
    summary = "; ".join(f"{label}: mean positive {p:.3f}, mean negative {n:.3f}" for label, (p, n) in means.items())
    caption = (f"Fig. 3: positive and negative anchor similarities of ICL with and without unconcerned samples "
               f"(US), {setting_label(*setting)}. {summary}.")
    return FigureOutcome(name, caption, paths)


# --------------------------------------------------------------------------- Figs. 4 and 7
def _tsne(art: Artefacts, out_dir: Path, name: str, wanted: dict[tuple[str, str], str], order: list[str],
          title: str, what: str, opts: FigureOptions) -> FigureOutcome:
    per_setting = _by_setting(art.features, wanted)
    setting = _pick_setting({s: set(v) for s, v in per_setting.items()})
    if setting is None:
        return FigureOutcome(name, "", reason=f"needs features.npz of {what}; none found")
    runs = per_setting[setting]
    panels = [(f"{label} (seed {runs[label].seed})", load_features(art.features[runs[label]]))
              for label in order if label in runs]
    for panel_title, data in panels:
        if len(data["features"]) < 10:
            raise ArtefactError(f"{panel_title}: features.npz holds {len(data['features'])} points; t-SNE needs at least 10")
    problems = {}
    for label, (_title, data) in zip([label for label in order if label in runs], panels):
        idx = figures.subsample(len(data["features"]), opts.tsne_points, opts.seed)
        problem = figures.tsne_problem(data["features"][idx])
        if problem:
            problems[label] = f"{problem} ({art.features[runs[label]]})"
    if len(problems) == len(panels):
        return FigureOutcome(name, "", reason="no panel can be embedded: " + "; ".join(
            f"{label}: {p}" for label, p in problems.items()))
    paths = figures.tsne_figure(panels, out_dir / name, f"{title}, {setting_label(*setting)}",
                                max_points=opts.tsne_points, seed=opts.seed, n_jobs=opts.n_jobs, n_iter=opts.tsne_iter)
    missing = [label for label in order if label not in runs]
    caption = (f"{title} ({setting_label(*setting)}): openTSNE of projection features, at most {opts.tsne_points} "
               f"points per panel, seed {opts.seed}, n_jobs {opts.n_jobs}; colour = class, ○ inner, △ boundary."
               + (f" No features for: {', '.join(missing)}." if missing else "")
               + "".join(f" {label}: not embedded, {p}." for label, p in problems.items()))
    return FigureOutcome(name, caption, paths)


def make_fig4(art: Artefacts, out_dir: Path, opts: FigureOptions) -> FigureOutcome:
    wanted = {(m, "default"): method_label(m) for m in opts.tsne_methods}
    return _tsne(art, out_dir, "fig4_tsne_methods", wanted, [method_label(m) for m in opts.tsne_methods],
                 "Fig. 4: feature space of the boundary-aware CL methods",
                 "the default variant of " + ", ".join(opts.tsne_methods), opts)


def make_fig7(art: Artefacts, out_dir: Path, opts: FigureOptions) -> FigureOutcome:
    wanted = {row.run: row.label for row in FIG7}
    runs = [f"{row.method}/{row.variant}" for row in FIG7]
    return _tsne(art, out_dir, "fig7_tsne_relations", wanted, [row.label for row in FIG7],
                 "Fig. 7: feature space under different subclass relations",
                 f"{', '.join(runs[:-1])} or {runs[-1]}", opts)


# --------------------------------------------------------------------------- Fig. 5
def sweep_rows(df: pd.DataFrame, default_cell: tuple[float, float] | None = None,
               seeds: list[int] | None = None) -> pd.DataFrame:
    """The sweep's rows of SPCL. The workflow trains no sweep run at SPCL's default thresholds when
    the default runs exist (workflow/rules/common.smk): with `default_cell` = those thresholds, the
    default runs of the sweep's settings and `seeds` stand for that cell, relabelled as its variant."""
    spcl = df[df["method"] == "spcl"]
    sweeps = spcl[spcl["variant"].str.match(SWEEP_VARIANT.pattern)]
    if sweeps.empty or default_cell is None:
        return sweeps
    name = sweep_variant(*default_cell)
    settings = set(sweeps[["dataset", "ratio"]].itertuples(index=False, name=None))
    have = set(sweeps[sweeps["variant"] == name][["dataset", "ratio"]].itertuples(index=False, name=None))
    wanted = settings - have
    in_sweep = np.array([s in wanted for s in spcl[["dataset", "ratio"]].itertuples(index=False, name=None)], dtype=bool)
    default = spcl[(spcl["variant"] == "default").to_numpy() & in_sweep]
    if seeds is not None:
        default = default[default["seed"].isin(list(seeds))]
    return pd.concat([sweeps, default.assign(variant=name)], ignore_index=True)


def sweep_default_cell(config: dict) -> tuple[tuple[float, float] | None, list[int] | None]:
    """(SPCL's default thresholds as the workflow config sets them, the sweep's seeds) from a
    resolved workflow config; (None, None) without a sweep section."""
    sweep = config.get("sweep") or {}
    if not sweep:
        return None, None
    spcl = (config.get("method_config") or {}).get("spcl") or {}
    cell = (float(spcl.get("gamma_s", PAPER_THRESHOLDS[0])), float(spcl.get("gamma_t", PAPER_THRESHOLDS[1])))
    return cell, list(sweep.get("seeds") or config.get("seeds") or []) or None


def sweep_grids(df: pd.DataFrame, with_spread: bool = False) -> list[tuple]:
    """Per setting with sweep runs: gamma_s x gamma_t grid of mean Dice (%) over seeds; with
    `with_spread`, also the grid of the SD over seeds (NaN for one seed) and the number of seeds.
    `df`: the sweep's rows (`sweep_rows`)."""
    sweeps = df[(df["method"] == "spcl") & df["variant"].str.match(SWEEP_VARIANT.pattern)]
    if sweeps.empty:
        return []
    summary = setting_summary(sweeps, "dice")
    parsed = summary["variant"].str.extract(SWEEP_VARIANT.pattern).astype(float)
    summary = summary.assign(gamma_s=parsed["gs"], gamma_t=parsed["gt"], dice=summary["mean"] * 100.0)
    grids = []
    for setting in sort_settings(summary[["dataset", "ratio"]].itertuples(index=False, name=None)):
        here = summary[(summary["dataset"] == setting[0]) & (summary["ratio"] == setting[1])]
        grid = here.pivot_table(index="gamma_s", columns="gamma_t", values="dice", aggfunc="mean").sort_index()
        if not with_spread:
            grids.append((setting, grid.sort_index(axis=1)))
            continue
        sd = (here.assign(sd=here["sd"] * 100.0).pivot_table(index="gamma_s", columns="gamma_t", values="sd",
                                                             aggfunc="mean", dropna=False)
              .reindex(index=grid.index, columns=grid.columns))
        grids.append((setting, grid.sort_index(axis=1), sd.sort_index(axis=1), int(here["n_seeds"].min())))
    return grids


def make_fig5(df: pd.DataFrame, out_dir: Path) -> FigureOutcome:
    name = "fig5_threshold_sweep"
    grids = sweep_grids(df, with_spread=True)
    if not grids:
        return FigureOutcome(name, "", reason="needs spcl runs with variants sweep_gs<γs>_gt<γt>; none in the results")
    paths = figures.sweep_heatmap([(setting_label(*s), g) for s, g, _, _ in grids], out_dir / name,
                                  highlight=PAPER_THRESHOLDS, spreads=[sd for _, _, sd, _ in grids],
                                  n_seeds=[n for _, _, _, n in grids])
    best = []
    for setting, grid, _, _ in grids:
        gs, gt = grid.stack().idxmax()
        best.append(f"{setting_label(*setting)}: best Dice {grid.loc[gs, gt]:.2f} at γ_s = {gs:g}, γ_t = {gt:g}")
    n_seeds = min(n for _, _, _, n in grids)
    spread = ("one training seed, so the seed-to-seed spread is unknown and differences of a point or less may be "
              "noise" if n_seeds <= 1 else "cells give mean ± SD over seeds")
    caption = ("Fig. 5: Dice (%) of SPCL over the confidence thresholds γ_s × γ_t (red box: the paper's "
               f"γ_s = {PAPER_THRESHOLDS[0]}, γ_t = {PAPER_THRESHOLDS[1]} where swept); {spread}; the colour scale spans "
               f"at least {figures.SWEEP_MIN_SPAN:g} Dice points. " + "; ".join(best) + ".")
    return FigureOutcome(name, caption, paths)


# --------------------------------------------------------------------------- Fig. 6
def make_fig6(art: Artefacts, out_dir: Path, opts: FigureOptions) -> FigureOutcome:
    name = "fig6_qualitative"
    defaults = {run: path for run, path in art.predictions.items() if run.variant == "default"}
    if not defaults:
        return FigureOutcome(name, "", reason="needs predictions/<case>.npz of the default variants; none found")
    wanted = {(run.method, "default"): run.method for run in defaults}
    per_setting = _by_setting(defaults, wanted)
    setting = _pick_setting({s: set(v) for s, v in per_setting.items()})
    runs = per_setting[setting]
    methods = sort_methods(runs)
    case_sets = [{p.stem for p in defaults[runs[m]].glob("*.npz")} for m in methods]
    common = sorted(set.intersection(*case_sets))
    if not common:
        return FigureOutcome(name, "", reason=f"the prediction folders of {setting_label(*setting)} share no case: "
                             + ", ".join(str(defaults[runs[m]]) for m in methods))
    cases, class_names = [], None
    for case_id in common[: opts.prediction_cases]:
        loaded = {m: load_prediction(defaults[runs[m]] / f"{case_id}.npz") for m in methods}
        first = loaded[methods[0]]
        for m, data in loaded.items():
            if data["label"].shape != first["label"].shape or not np.array_equal(data["label"], first["label"]):
                raise ArtefactError(f"{defaults[runs[m]] / (case_id + '.npz')}: its reference label differs from "
                                    f"{defaults[runs[methods[0]]] / (case_id + '.npz')} for the same case")
        z = figures.best_slice(first["label"])
        cases.append({"case_id": f"{case_id} (slice {z})", "image": first["image"][z], "label": first["label"][z],
                      "preds": {method_label(m): loaded[m]["pred"][z] for m in methods}})
        if class_names is None:
            names = first.get("class_names")
            n_classes = int(max(first["label"].max(), max(d["pred"].max() for d in loaded.values())))
            class_names = [n for n in names if n != "background"] if names else [f"class {i}" for i in range(1, n_classes + 1)]
    paths = figures.qualitative_figure(cases, class_names, out_dir / name)
    seeds = sorted({runs[m].seed for m in methods})
    shown = (f"{len(cases)} test case{'s' if len(cases) != 1 else ''}"
             + (f" (of {opts.prediction_cases} requested: the evaluation saved predictions of {len(common)})"
                if len(cases) < opts.prediction_cases else ""))
    caption = (f"Fig. 6: {shown} of {setting_label(*setting)} (seed {', '.join(map(str, seeds))}): image, ground "
               "truth and each method's prediction on the slice with the most reference foreground; RV blue, "
               "MYO green, LV red.")
    return FigureOutcome(name, caption, paths)
