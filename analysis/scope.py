"""What one run can and cannot show, from the run itself, for the top of REPORT.md.

A reader of a report sees "significantly better" before the caveats; this section puts first how
much data the claims rest on: the data (synthetic phantom or real), the settings, seeds and test
cases of the main comparison, the training regime read from the runs' `run.yaml` (iterations,
encoder initialisation, network) against the paper's, and where SupOnly (not ranked) stands.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from analysis import stats
from analysis.aggregate import setting_summary
from analysis.naming import method_label, setting_label, sort_settings

SYNTHETIC_DATASETS = ("phantom",)
PAPER_ITERATIONS = 6000  # SPCL paper, Section 3.1
PAPER_SEEDS = 3  # the paper reports means over three runs


def training_regime(results_dir: Path) -> dict[str, set]:
    """Distinct values of a few settings over the default-variant runs' run.yaml files."""
    out: dict[str, set] = {"iterations": set(), "encoder_weights": set(), "encoder": set(), "img_size": set(),
                           "warm_start": set()}
    for path in sorted(Path(results_dir).glob("runs/**/default/s*/run.yaml")):
        cfg = _read_yaml(path)
        train, network, data = cfg.get("train") or {}, cfg.get("network") or {}, cfg.get("data") or {}
        out["iterations"].add(train.get("iterations"))
        out["encoder_weights"].add(str(network.get("encoder_weights")))
        out["encoder"].add(f"{network.get('arch')} / {network.get('encoder')}")
        out["img_size"].add(data.get("img_size"))
        # the supervised warm start (methods/training/warm_start.py): the iterations of the run it starts from
        init = train.get("init_from")
        source = _read_yaml(Path(init).parent / "run.yaml") if init else {}
        out["warm_start"].add(((source.get("train") or {}).get("iterations"), source.get("method"))
                              if init else ("none", None))
    return {k: {v for v in vals if v is not None} for k, vals in out.items()}


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}  # the training itself validates its run.yaml; here it only describes the run


def _join(values) -> str:
    return ", ".join(str(v) for v in sorted(values, key=str))


def scope_lines(table: pd.DataFrame, results_dir: Path, control: str, exclude=("suponly",),
                role: str = "test") -> list[str]:
    """Bullet sentences (without the '- ') saying what this run can and cannot show; `role` is the
    patients the runs were scored on (the workflow's evaluation.role)."""
    main = table[table["variant"] == "default"]
    if main.empty:
        return ["The run has no default-variant results: there is no main comparison."]
    settings = sort_settings(main[["dataset", "ratio"]].itertuples(index=False, name=None))
    seeds = main.groupby(["dataset", "ratio"])["seed"].nunique()
    cases = main.groupby(["dataset", "ratio"])["case_id"].nunique()
    datasets = sorted(set(main["dataset"]))
    synthetic = [d for d in datasets if d in SYNTHETIC_DATASETS]
    lines = []
    if synthetic and len(synthetic) == len(datasets):
        lines.append("Data: the synthetic cardiac phantom only. The numbers show the harness working end to end; "
                     "they say nothing about real cine MRI, and at this scale the ranking of the mean-teacher "
                     "methods against SupOnly is noise (README, 'The phantom default versus the paper').")
    elif synthetic:
        lines.append(f"Data: real ({_join(set(datasets) - set(synthetic))}) and synthetic ({_join(synthetic)}) "
                     "settings; claims about real data rest on the real settings only.")
    else:
        lines.append(f"Data: real data sets ({_join(datasets)}).")
    n = len(settings)
    min_blocks = stats.BAYES_MIN_BLOCKS
    if n == 1:
        lines.append(f"Settings: 1 ({setting_label(*settings[0])}). Table 2 as the paper computes it ranks the "
                     "methods over settings and needs at least two: it is not produced. The per-volume ranking "
                     "under 'Ranking against the paper' uses the volumes as blocks and speaks about these volumes.")
    elif n < min_blocks:
        lines.append(f"Settings: {n} ({', '.join(setting_label(*s) for s in settings)}). The Friedman test and "
                     f"Finner's post-hoc rank each method by {n} values: little power, a rough normal approximation, "
                     "and a 'significant' result that means only that the ordering was the same in these "
                     f"{n} settings. The Bayesian signed-rank test needs at least {min_blocks} blocks to decide, so "
                     "it uses the test cases as blocks and speaks about these cases, not new settings.")
    else:
        lines.append(f"Settings: {n} ({', '.join(setting_label(*s) for s in settings)}). The rank tests and the "
                     "Bayesian test use the settings as blocks.")
    n_seeds = sorted(set(seeds))
    seed_text = str(n_seeds[0]) if len(n_seeds) == 1 else f"{n_seeds[0]}–{n_seeds[-1]}"
    lines.append(f"Seeds: {seed_text} per setting (the paper: {PAPER_SEEDS} runs). "
                 + ("With one training seed the seed-to-seed spread is unknown: every difference between two "
                    "methods includes training noise that this run cannot measure, and the confidence intervals "
                    "cover the test cases only." if max(n_seeds) <= 1 else
                    "Means are over seeds and the ± SD and the bootstrap intervals include the seed spread."))
    n_cases = sorted(set(cases))
    case_text = str(n_cases[0]) if len(n_cases) == 1 else f"{n_cases[0]}–{n_cases[-1]}"
    if role == "val":
        lines.append(f"Validation cases: {case_text} per setting. Every run was scored on the split's validation "
                     "patients (evaluation.role: val), not on the test patients: this report is for choosing "
                     "settings, and its numbers are not test results.")
    else:
        lines.append(f"Test cases: {case_text} per setting (a case is one volume: a patient's ED or ES frame); "
                     "per-case tests pair these cases and answer whether the control is better on them, not on "
                     "another test set. 'Ranking against the paper' ranks the methods with the cases as blocks.")
    regime = training_regime(results_dir)
    if regime["iterations"]:
        weights = regime["encoder_weights"]
        init = ("random initialisation (no pretrained encoder weights)" if weights <= {"None", "null"}
                else f"encoder weights {_join(weights)}")
        below = max(int(i) for i in regime["iterations"]) < PAPER_ITERATIONS
        warm = regime["warm_start"]
        if warm and ("none", None) not in warm:
            init = ("the supervised warm-start regime, not the paper's initialisation: every network of every run "
                    "starts from the SupOnly network of the same split and seed after "
                    + _join(f"{it} iterations" for it, _ in warm) + " (methods/training/warm_start.py), so SupOnly's row "
                    "trained that many iterations more than the others")
        elif len(warm) > 1:
            init = f"{init}; some runs start from a supervised warm start and others do not (mixed regimes)"
        lines.append(f"Training: {_join(regime['iterations'])} iterations (the paper: {PAPER_ITERATIONS}), "
                     f"{_join(regime['encoder'])} at {_join(regime['img_size'])} px, {init}"
                     + ("; a short schedule, so the methods are compared before they converge." if below else "."))
    summary = setting_summary(main, "dice")
    best = summary.loc[summary.groupby(["dataset", "ratio"])["mean"].idxmax()]
    unranked = [m for m in exclude if m in set(main["method"])]
    for method in unranked:
        wins = best[best["method"] == method]
        if not wins.empty:
            where = ", ".join(setting_label(r.dataset, r.ratio) for r in wins.itertuples())
            lines.append(f"{method_label(method)} is not ranked (as in the paper's Table 2) but has the highest mean "
                         f"Dice of all methods in {len(wins)} of {n} settings ({where}): a ranking of "
                         f"{method_label(control)} against the semi-supervised methods says nothing about whether "
                         "they beat supervised training here.")
    return lines
