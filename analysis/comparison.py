"""The statistical comparison of methods against a control on one metric of a tidy table.

Table 2 of the paper: Friedman over the blocks (by default the (dataset, ratio) settings), each
block value the mean over classes, cases and seeds; ranks, z against the control, two-sided normal
p, Finner p; Iman-Davenport; Nemenyi CD and the CD diagram. Beyond the paper:

* per-case Wilcoxon signed-rank tests of the control against each method (cases = units, values
  averaged over classes and seeds), with the rank-biserial effect size, Holm or Finner adjustment
  and a bootstrap interval of the mean improvement; bootstrap intervals of every method's mean per
  block;
* the Bayesian signed-rank test with a ROPE (Benavoli et al. 2017). Benavoli et al. use data sets
  as blocks; here that is the Friedman test's settings when there are at least
  stats.BAYES_MIN_BLOCKS of them. With fewer settings (the phantom has two) it uses the test cases
  as blocks (each case's value averaged over classes and seeds, pooled over the settings, as the
  per-case Wilcoxon test does): the "settings" view asks about new settings, the "cases" view only
  about these cases. With fewer blocks than that in either view it makes no decision and says why.
  Where it and Finner's post-hoc disagree is reported, naming the view.

The table must have gone through analysis.policy (direction, unit, undefined values) first;
`spec` carries what it decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import stats
from analysis.aggregate import block_matrix, case_values
from analysis.collect import SETTING_COLUMNS
from analysis.figures import bayes_figure, cd_diagram
from analysis.formatting import Column, DisplayTable, Value, to_markdown
from analysis.io import write_csv
from analysis.naming import block_label, method_label, sort_blocks, sort_methods
from analysis.policy import ROPE_DEFAULTS_TEXT, MetricSpec

FRIEDMAN_COLUMNS = ["method", "rank", "z", "p", "p_finner"]
DEFAULT_EXCLUDE = ("suponly",)  # the paper's Table 2 ranks k = 7 methods, without SupOnly
MIN_PAIRS = 5  # with 4 pairs the smallest two-sided Wilcoxon p is 0.125: not worth a row
BAYES_COLUMNS = ["method", "view", "n_blocks", "p_better", "p_equivalent", "p_worse", "bayes", "finner", "p_finner",
                 "agree"]
BAYES_VIEWS = {"settings": "settings as blocks", "cases": "test cases as blocks"}


@dataclass
class Comparison:
    spec: MetricSpec
    control: str
    alpha: float
    blocks: tuple
    matrix: pd.DataFrame  # complete blocks x methods, in the reported unit (spec.scale applied)
    dropped_blocks: list
    excluded: tuple
    friedman: stats.FriedmanResult
    table: pd.DataFrame  # method, rank, z, p, p_finner, p_holm
    cd: float
    pairwise: pd.DataFrame  # Nemenyi p, methods x methods
    paired: pd.DataFrame  # per-case Wilcoxon against the control (empty without cases)
    bootstrap: pd.DataFrame  # per block and method: mean and CI (empty without cases)
    bayes: pd.DataFrame  # BAYES_COLUMNS, one row per method other than the control (empty: skipped)
    paired_adjustment: str
    per_case: bool = True
    bayes_samples: int = stats.BAYES_SAMPLES
    bayes_threshold: float = stats.BAYES_DECISION
    seed: int = 0
    bayes_view: str = "settings"  # "settings", "cases", or "skipped" (no ROPE for the metric)
    variant: str = "default"
    selection: "RowSelection | None" = None  # the rows compared and those left out
    scope: str = ""  # what the compared rows are ('2 settings × 1 seed × 6 test cases'), in every claim

    @property
    def metric(self) -> str:
        return self.spec.name

    @property
    def higher_is_better(self) -> bool:
        return self.spec.higher_is_better

    @property
    def scale(self) -> float:
        return self.spec.scale

    def block_label(self, block) -> str:
        return block_label(self.blocks, block)

    @property
    def omnibus(self) -> pd.DataFrame:
        f = self.friedman
        rows = [("n_blocks", f.n_blocks), ("n_methods", f.n_methods), ("friedman_chi2", f.chi2),
                ("friedman_p", f.chi2_p), ("iman_davenport_f", f.iman_davenport_f),
                ("iman_davenport_df1", f.df1), ("iman_davenport_df2", f.df2),
                ("iman_davenport_p", f.iman_davenport_p), ("nemenyi_cd", self.cd), ("alpha", self.alpha),
                ("rope", self.spec.rope), ("tie_rtol", stats.TIE_RTOL)]
        return pd.DataFrame(rows, columns=["statistic", "value"])


@dataclass(frozen=True)
class RowSelection:
    """Which rows of the checked table the comparison used, and which it left out and why."""

    n_total: int
    n_used: int
    other_variants: dict  # variant -> rows (not the compared variant)
    excluded_methods: dict  # method -> rows of the compared variant (not ranked: --exclude)

    def sentences(self, variant: str) -> list[str]:
        out = [f"Compared: {self.n_used} of {self.n_total} rows (variant `{variant}`"
               + (", the ranked methods" if self.excluded_methods else "") + ")."]
        if self.other_variants:
            out.append("Left out, other variants: " + ", ".join(
                f"`{v}` ({n} rows)" for v, n in self.other_variants.items())
                + " — compare one of them with `--variant NAME`.")
        if self.excluded_methods:
            out.append("Left out, not ranked: " + ", ".join(
                f"{method_label(m)} ({n} rows)" for m, n in self.excluded_methods.items())
                + " — rank them too with `--exclude` and no name.")
        return out


def select_rows(df: pd.DataFrame, variant: str, exclude) -> tuple[pd.DataFrame, RowSelection]:
    """The rows of one variant without the excluded methods, and what was left out."""
    variants = df["variant"].astype(str) if "variant" in df else pd.Series("default", index=df.index)
    in_variant = variants == variant
    excluded = in_variant & df["method"].isin(exclude)
    rows = df[in_variant & ~excluded]
    others = variants[~in_variant].value_counts()
    selection = RowSelection(
        len(df), len(rows),
        {v: int(others[v]) for v in sorted(others.index)},
        {m: int(n) for m, n in df.loc[excluded, "method"].value_counts().items()},
    )
    return rows, selection


def compare_methods(
    df: pd.DataFrame, spec: MetricSpec, control: str, alpha: float = stats.DEFAULT_ALPHA,
    exclude: tuple[str, ...] = (), variant: str = "default", paired_adjustment: str = "holm",
    n_boot: int = 2000, seed: int = 0, blocks=SETTING_COLUMNS, per_case: bool = True,
    bayes_samples: int = stats.BAYES_SAMPLES, bayes_threshold: float = stats.BAYES_DECISION,
) -> Comparison:
    """Run every test of the comparison on a tidy table that went through analysis.policy."""
    if not isinstance(spec, MetricSpec):
        raise TypeError("compare_methods needs a MetricSpec (analysis.policy.resolve_metric)")
    if not 0 < bayes_threshold <= 1:
        raise stats.StatsInputError(f"the posterior decision threshold must lie in (0, 1], got {bayes_threshold}")
    blocks = tuple(blocks)
    metric = spec.name
    rows, selection = select_rows(df, variant, exclude)
    if rows.empty:
        raise stats.StatsInputError(f"no rows with variant {variant!r} for the comparison on {metric!r}")
    if control not in set(rows["method"]):
        raise stats.StatsInputError(
            f"control method {control!r} has no {variant!r} rows; methods present: {sort_methods(rows['method'])}"
        )
    _check_policy_applied(rows, metric, blocks)
    rows = rows.assign(**{metric: rows[metric] * spec.scale})
    matrix, dropped = block_matrix(rows, metric, variant=variant, blocks=blocks)
    if len(matrix) < 2:
        raise stats.StatsInputError(
            f"the Friedman test needs at least 2 settings (blocks: {', '.join(blocks)}) where every method has "
            f"{metric!r} values; complete settings: {list(matrix.index)}, incomplete (dropped): {dropped}"
        )
    result = stats.friedman(matrix, spec.higher_is_better)
    table = stats.compare_with_control(result, control)
    cd = stats.nemenyi_critical_difference(result.n_methods, result.n_blocks, alpha)
    pairwise = stats.nemenyi_pairwise(matrix, spec.higher_is_better)
    values = None
    if per_case:
        values = case_values(rows, metric, blocks)
        paired = paired_tests(values, spec, control, blocks, paired_adjustment, n_boot, seed)
        boot = bootstrap_table(values, metric, blocks, n_boot, seed)
    else:
        paired = pd.DataFrame(columns=paired_columns(paired_adjustment))
        boot = pd.DataFrame(columns=list(blocks) + BOOTSTRAP_COLUMNS)
    min_blocks = stats.min_blocks_for(bayes_threshold)
    if spec.rope is None:
        view, bayes_blocks = "skipped", None
    elif len(matrix) >= min_blocks or values is None:
        view, bayes_blocks = "settings", matrix
    else:  # too few settings: the test cases are the blocks (complete settings only, as in the ranking)
        keep = set(matrix.index)
        complete = values[[key in keep for key in values[list(blocks)].itertuples(index=False, name=None)]]
        view, bayes_blocks = "cases", _case_matrix(complete, metric, blocks)
    bayes = (pd.DataFrame(columns=BAYES_COLUMNS) if bayes_blocks is None else
             bayes_table(bayes_blocks, table, spec, control, alpha, bayes_samples, bayes_threshold, seed, view))
    return Comparison(spec, control, alpha, blocks, matrix, dropped, tuple(exclude), result, table, cd, pairwise,
                      paired, boot, bayes, paired_adjustment, per_case, bayes_samples, bayes_threshold, seed,
                      view, variant, selection, describe_scope(rows, matrix, blocks, per_case))


def _count(values) -> str:
    values = sorted(set(int(v) for v in values))
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def describe_scope(rows: pd.DataFrame, matrix: pd.DataFrame, blocks, per_case: bool) -> str:
    """What the ranked rows hold, for the claim sentences: '2 settings × 1 seed × 6 test cases'."""
    n = len(matrix)
    parts = [f"{n} setting{'s' if n != 1 else ''}" if tuple(blocks) == tuple(SETTING_COLUMNS) else f"{n} blocks"]
    keep = set(matrix.index)
    inside = rows[[key in keep for key in rows[list(blocks)].itertuples(index=False, name=None)]]
    by_block = inside.groupby(list(blocks), sort=False)
    if "seed" in inside:
        seeds = _count(by_block["seed"].nunique())
        parts.append(f"{seeds} seed{'s' if seeds != '1' else ''}")
    if per_case and "case_id" in inside:
        parts.append(f"{_count(by_block['case_id'].nunique())} test cases")
    return " × ".join(parts)


def _check_policy_applied(rows: pd.DataFrame, metric: str, blocks) -> None:
    """After analysis.policy a value is undefined only where it is undefined for every row of its
    case (left out for all methods alike); anything else means the rule was skipped."""
    undefined = pd.Series(~np.isfinite(rows[metric].to_numpy(dtype=float)), index=rows.index)
    if not undefined.any():
        return
    key = [rows[k] for k in list(blocks) + ["case_id", "class_name"]]
    if not undefined.groupby(key).transform("all")[undefined].all():
        raise stats.StatsInputError(f"column {metric!r} holds NaN or inf where other methods have values: apply "
                                    "analysis.policy.fill_undefined first")


# --------------------------------------------------------------------------- Bayesian signed-rank
def finner_decision(z: float, p_finner: float, alpha: float) -> str:
    """'better' / 'worse' (the control, after Finner's adjustment at alpha) or 'not significant'."""
    if p_finner <= alpha:
        return "better" if z > 0 else "worse"
    return "not significant"


def bayes_table(blocks: pd.DataFrame, table: pd.DataFrame, spec: MetricSpec, control: str, alpha: float,
                nsamples: int, threshold: float, seed: int, view: str = "settings") -> pd.DataFrame:
    """Bayesian signed-rank test of the control against each ranked method over the rows of
    `blocks` (blocks x methods; rows where either method lacks a value are dropped per pair).
    `agree`: the two tests find the control better (or worse) than the same methods; a test that
    makes no decision agrees with "not significant"."""
    records = []
    for r in table.dropna(subset=["z"]).itertuples():
        pair = blocks[[control, r.method]].dropna()
        if len(pair) < 2:
            raise stats.StatsInputError(f"the Bayesian signed-rank test of {control!r} against {r.method!r} needs at "
                                        f"least 2 {BAYES_VIEWS[view]} where both have values, got {len(pair)}")
        test = stats.bayesian_signed_rank(pair[control].to_numpy(), pair[r.method].to_numpy(), spec.rope,
                                          spec.higher_is_better, nsamples=nsamples, seed=seed)
        bayes, finner = test.decision(threshold), finner_decision(r.z, r.p_finner, alpha)
        agree = (bayes == "better") == (finner == "better") and (bayes == "worse") == (finner == "worse")
        records.append({"method": r.method, "view": view, "n_blocks": test.n_blocks, "p_better": test.p_better,
                        "p_equivalent": test.p_equivalent, "p_worse": test.p_worse, "bayes": bayes, "finner": finner,
                        "p_finner": r.p_finner, "agree": agree})
    return pd.DataFrame(records, columns=BAYES_COLUMNS)


# --------------------------------------------------------------------------- per-case statistics
BOOTSTRAP_COLUMNS = ["block", "method", "n_cases", "n_seeds", "mean", "ci_low", "ci_high"]


def paired_columns(adjustment: str) -> list[str]:
    return ["scope", "method", "n_pairs", "n_nonzero", "mean_improvement", "ci_low", "ci_high", "median_improvement",
            "wilcoxon_w", "w_plus", "w_minus", "p_method", "p", f"p_{adjustment}", "rank_biserial"]


def _case_matrix(values: pd.DataFrame, metric: str, blocks) -> pd.DataFrame:
    """(blocks..., case_id) x method: the case value averaged over seeds."""
    per_case = values.groupby(list(blocks) + ["case_id", "method"], sort=True)[metric].mean()
    return per_case.unstack("method")


def paired_tests(values: pd.DataFrame, spec: MetricSpec, control: str, blocks, adjustment: str, n_boot: int,
                 seed: int) -> pd.DataFrame:
    """Wilcoxon of the control against each method, per block and over all blocks.

    Scopes where a method shares fewer than MIN_PAIRS cases with the control are not tested.
    `improvement` = control - method for higher-is-better metrics, method - control otherwise,
    so positive always means the control is better; the rank-biserial r has the same sign.
    p-values are adjusted over the methods within each scope. See stats.WILCOXON_METHOD.
    """
    blocks = list(blocks)
    cases = _case_matrix(values, spec.name, blocks)
    block_index = cases.index.droplevel("case_id")
    keys = sort_blocks(blocks, block_index.unique())
    scopes = []
    for key in keys:
        mask = np.array([(b if isinstance(b, tuple) else (b,)) == key for b in block_index])
        scopes.append((block_label(blocks, key), cases[mask]))
    if len(keys) > 1:
        scopes.append(("all blocks", cases))
    sign = 1.0 if spec.higher_is_better else -1.0
    records = []
    for scope, block in scopes:
        scope_rows = []
        for method in sort_methods(c for c in block.columns if c != control):
            pair = block[[control, method]].dropna()
            if len(pair) < MIN_PAIRS:
                continue
            test = stats.wilcoxon_paired(sign * pair[control].to_numpy(), sign * pair[method].to_numpy())
            improvement = sign * (pair[control].to_numpy() - pair[method].to_numpy())
            _, low, high = stats.bootstrap_mean_ci(improvement, n_boot=n_boot, seed=seed)
            scope_rows.append({"scope": scope, "method": method, "n_pairs": test.n_pairs, "n_nonzero": test.n_nonzero,
                               "mean_improvement": test.mean_difference, "ci_low": low, "ci_high": high,
                               "median_improvement": test.median_difference, "wilcoxon_w": test.statistic,
                               "w_plus": test.w_plus, "w_minus": test.w_minus, "p_method": test.method,
                               "p": test.p, "rank_biserial": test.rank_biserial})
        if scope_rows:
            p_adj = stats.adjust([r["p"] for r in scope_rows], adjustment)
            for r, p in zip(scope_rows, p_adj):
                r[f"p_{adjustment}"] = p
            records.extend(scope_rows)
    return pd.DataFrame(records, columns=paired_columns(adjustment))


def bootstrap_table(values: pd.DataFrame, metric: str, blocks, n_boot: int, seed: int,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Per block and method: mean over cases and seeds with a bootstrap CI (cases x seeds)."""
    blocks = list(blocks)
    records = []
    for key, group in values.groupby(blocks + ["method"], sort=True):
        *block, method = key
        grid = group.pivot_table(index="case_id", columns="seed", values=metric, aggfunc="mean", dropna=False)
        if grid.isna().all().all():
            continue
        mean, low, high = stats.bootstrap_mean_ci(grid.to_numpy(), n_boot=n_boot, confidence=confidence, seed=seed)
        records.append({**dict(zip(blocks, block)), "block": block_label(blocks, tuple(block)), "method": method,
                        "n_cases": grid.shape[0], "n_seeds": grid.shape[1], "mean": mean, "ci_low": low,
                        "ci_high": high, "_key": tuple(block)})
    columns = blocks + [c for c in BOOTSTRAP_COLUMNS if c not in blocks]
    if not records:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(records)
    order = {b: i for i, b in enumerate(sort_blocks(blocks, out["_key"]))}
    rank = {m: i for i, m in enumerate(sort_methods(out["method"]))}
    out["_block"] = out["_key"].map(order)
    out["_method"] = out["method"].map(rank)
    return out.sort_values(["_block", "_method"])[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- writing
def write_statistics(result: Comparison, out_dir: Path, figure_dir: Path, prefix: str = "") -> dict[str, list[Path]]:
    """friedman.csv (method, rank, z, p, p_finner), omnibus, blocks, Nemenyi, paired, bootstrap and
    Bayesian CSVs, the CD diagram and the Bayesian figure (PNG and PDF)."""
    out_dir, figure_dir = Path(out_dir), Path(figure_dir)
    blocks = result.matrix.copy()
    blocks.index = [result.block_label(b) for b in blocks.index]
    blocks.index.name = "block"
    paths = {
        "friedman": [write_csv(result.table[FRIEDMAN_COLUMNS], out_dir / f"{prefix}friedman.csv")],
        "friedman_holm": [write_csv(result.table, out_dir / f"{prefix}friedman_all_adjustments.csv")],
        "omnibus": [write_csv(result.omnibus, out_dir / f"{prefix}omnibus.csv")],
        "blocks": [write_csv(blocks, out_dir / f"{prefix}blocks.csv", index=True)],
        "nemenyi": [write_csv(result.pairwise, out_dir / f"{prefix}nemenyi_pairwise.csv", index=True)],
        "bayes": [write_csv(result.bayes, out_dir / f"{prefix}bayes_signed_rank.csv")],
    }
    if result.per_case:
        paths["paired"] = [write_csv(result.paired, out_dir / f"{prefix}paired_tests.csv")]
        paths["bootstrap"] = [write_csv(result.bootstrap, out_dir / f"{prefix}bootstrap_ci.csv")]
    ranks = result.friedman.mean_ranks.rename(index=method_label)
    pairwise = result.pairwise.rename(index=method_label, columns=method_label)
    paths["cd_diagram"] = cd_diagram(ranks, pairwise, result.cd, result.alpha, figure_dir / f"{prefix}cd_diagram")
    if result.bayes_view != "skipped":
        labels = [method_label(r.method) + ("" if r.bayes not in ("too few blocks", "no difference") else
                                            f" ({r.bayes}, N = {int(r.n_blocks)})") for r in result.bayes.itertuples()]
        paths["bayes_figure"] = bayes_figure(result.bayes.assign(method=labels),
                                             method_label(result.control), result.spec.rope, _unit(result),
                                             figure_dir / f"{prefix}bayes_signed_rank")
    return paths


def _fmt_p(p: float) -> str:
    if np.isnan(p):
        return "–"
    return f"{p:.6f}" if p >= 1e-6 else f"{p:.2e}"


def _unit(result: Comparison) -> str:
    """The unit of a difference, readable: 'percentage points of dice', 'mm', 'units of crispness'."""
    spec = result.spec
    return f"percentage points of {spec.name}" if spec.kind == "overlap" else spec.unit


def statistics_markdown(result: Comparison, bayes_figure_path: str | None = None) -> str:
    """Table 2, the per-case tables and the Bayesian test in Markdown, with plain-language statements.
    `bayes_figure_path` (relative to the report) embeds the Bayesian figure."""
    f, ctrl, spec = result.friedman, method_label(result.control), result.spec
    lines = []
    t2 = DisplayTable(
        "Method", [method_label(m) for m in result.table["method"]],
        [Column("Ranking", decimals=4), Column("z", decimals=6), Column("p (unadjusted)"), Column("p (Finner)"),
         Column("p (Holm)")],
        [[Value(r.rank), "–" if np.isnan(r.z) else f"{r.z:.6f}", _fmt_p(r.p), _fmt_p(r.p_finner), _fmt_p(r.p_holm)]
         for r in result.table.itertuples()],
    )
    lines.append(to_markdown(t2))
    unit_note = ""
    if spec.kind == "overlap":
        unit_note = "; fractions × 100, in percentage points" if spec.scale != 1 else "; in percent, as given"
    lines.append(
        f"Blocks ({', '.join(result.blocks)}): {f.n_blocks} — {', '.join(result.block_label(b) for b in result.matrix.index)}; "
        f"k = {f.n_methods} methods; metric `{result.metric}` ({spec.direction}{unit_note}); each block value is the "
        f"mean over classes, cases and seeds; rank 1 = best; values within {stats.TIE_RTOL:g} × the block's largest "
        f"|value| are ties (average ranks); z = (R_i − R_{ctrl}) / sqrt(k(k+1)/(6N)) = (R_i − R_{ctrl}) / {f.rank_se:.4f}, R = mean rank."
    )
    excluded = list(result.selection.excluded_methods) if result.selection is not None else list(result.excluded)
    if excluded:
        lines.append(f"Not ranked (as in the paper's Table 2): {', '.join(method_label(m) for m in excluded)}.")
    if result.dropped_blocks:
        lines.append("Blocks left out of the ranking because some method has no value there: "
                     + ", ".join(result.block_label(b) for b in result.dropped_blocks) + ".")
    lines.append("")
    lines.extend(f"- {s}" for s in significance_statements(result))
    lines.append("")
    lines.extend(bayes_markdown(result, bayes_figure_path))
    lines.append("")
    if not result.per_case:
        lines.append("**Per-case paired tests**: not run — the table has no `case_id` column, so each block holds "
                     "one value per method (no cases to pair, no bootstrap over cases).")
        return "\n".join(lines) + "\n"
    lines.append(f"**Per-case paired tests** ({result.paired_adjustment.title()}-adjusted within each scope; "
                 f"improvement = how much better {ctrl} is, in {_unit(result)}; 95% bootstrap CI of the mean "
                 "improvement over cases; r = rank-biserial correlation).")
    lines.append("")
    lines.append(f"Method: {stats.WILCOXON_METHOD}.")
    lines.append("")
    if result.paired.empty:
        lines.append(f"Not tested: no method shares at least {MIN_PAIRS} cases with the control in any scope.")
    else:
        adj = f"p_{result.paired_adjustment}"
        table = DisplayTable(
            "Scope / method", [f"{r.scope} / {method_label(r.method)}" for r in result.paired.itertuples()],
            [Column("n"), Column("n ≠ 0"), Column("mean improvement"), Column("95% CI"), Column("W"), Column("r"),
             Column("p"), Column("p from"), Column(adj)],
            [[str(r.n_pairs), str(r.n_nonzero), f"{r.mean_improvement:+.3f}", f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
              f"{r.wilcoxon_w:g}", f"{r.rank_biserial:+.3f}", _fmt_p(r.p), r.p_method, _fmt_p(getattr(r, adj))]
             for r in result.paired.itertuples()],
        )
        lines.append(to_markdown(table))
        lines.extend(f"- {s}" for s in paired_statements(result))
    return "\n".join(lines) + "\n"


def best_rank_text(mean_ranks: pd.Series) -> str:
    """Who holds the best (lowest) mean rank, naming every method tied there (within stats.TIE_RTOL)."""
    best = float(mean_ranks.min())
    tied = [m for m, r in mean_ranks.items() if abs(r - best) <= stats.TIE_RTOL * max(abs(best), 1.0)]
    names = [method_label(m) for m in tied]
    if len(names) == 1:
        return f"the best mean rank is {names[0]}'s ({best:.4f})"
    return f"the best mean rank, {best:.4f}, is shared by {', '.join(names[:-1])} and {names[-1]}"


def significance_statements(result: Comparison) -> list[str]:
    """Plain-language conclusions of Table 2 at the chosen alpha."""
    f, a, ctrl = result.friedman, result.alpha, method_label(result.control)
    out = []
    verdict = "rejects" if f.iman_davenport_p <= a else "does not reject"
    out.append(
        f"Omnibus: the Friedman test (Iman–Davenport form) {verdict} equal performance of all "
        f"{f.n_methods} methods at α = {a:g} "
        f"(Friedman χ² = {f.chi2:.3f}, p = {_fmt_p(f.chi2_p)}; Iman–Davenport F({f.df1}, {f.df2}) = {f.iman_davenport_f:.3f}, "
        f"p = {_fmt_p(f.iman_davenport_p)})."
    )
    if (f.chi2_p <= a) != (f.iman_davenport_p <= a) and not np.isinf(f.iman_davenport_f):
        chi2_verdict = "rejects" if f.chi2_p <= a else "does not reject"
        out.append(f"The χ² form {chi2_verdict} it (p = {_fmt_p(f.chi2_p)}): the two forms disagree, "
                   "so read the omnibus result as borderline.")
    if np.isinf(f.iman_davenport_f):
        out.append("Every block ranks the methods in the same order, so the Iman–Davenport F is unbounded; "
                   f"the χ² p-value ({_fmt_p(f.chi2_p)}) is the more cautious reading.")
    out.append(f"{ctrl} has mean rank {f.mean_ranks[result.control]:.4f}; {best_rank_text(f.mean_ranks)}.")
    others = result.table.dropna(subset=["z"])
    better = others[(others["p_finner"] <= a) & (others["z"] > 0)]
    worse = others[(others["p_finner"] <= a) & (others["z"] < 0)]
    same = others[others["p_finner"] > a]
    view = "settings" if tuple(result.blocks) == tuple(SETTING_COLUMNS) else ", ".join(result.blocks)
    on = f" on this table ({result.scope}; {view} as blocks)" if result.scope else ""
    if not better.empty:
        out.append(f"After Finner's adjustment, {ctrl} ranks significantly better (p_Finner ≤ {a:g}) than "
                   + ", ".join(f"{method_label(m)} ({p:.4g})" for m, p in zip(better["method"], better["p_finner"]))
                   + f"{on}.")
    if not worse.empty:
        out.append(f"After Finner's adjustment, {ctrl} ranks significantly worse than "
                   + ", ".join(f"{method_label(m)} ({p:.4g})" for m, p in zip(worse["method"], worse["p_finner"]))
                   + f"{on}.")
    if not same.empty:
        out.append(f"The difference between {ctrl} and "
                   + ", ".join(f"{method_label(m)} (p_Finner = {p:.4g})" for m, p in zip(same["method"], same["p_finner"]))
                   + f" is not significant at α = {a:g}.")
    out.append(f"Nemenyi: two mean ranks further apart than CD = {result.cd:.3f} differ at α = {a:g} "
               "(the CD diagram joins the methods it cannot separate).")
    if f.n_blocks < stats.BAYES_MIN_BLOCKS:
        out.append(f"Caution: with only N = {f.n_blocks} blocks the rank tests have little power, and the normal "
                   "approximation behind z is rough; a non-significant result is not evidence of equal performance, "
                   "and a significant one rests on the ordering of N values per method.")
    return out


_BAYES_WORDS = {"better": "practically better than", "equivalent": "practically equivalent to",
                "worse": "practically worse than"}
_BAYES_PROBABILITY = {"better": "p_better", "equivalent": "p_equivalent", "worse": "p_worse"}


def bayes_view_text(result: Comparison) -> str:
    """Which blocks the Bayesian test ran on, and why, in one sentence fragment."""
    n_settings, min_blocks = result.friedman.n_blocks, stats.min_blocks_for(result.bayes_threshold)
    n = sorted(set(result.bayes["n_blocks"].astype(int))) or [0]
    n_text = f"N = {n[0]}" if len(n) == 1 else f"N = {n[0]}–{n[-1]}"
    if result.bayes_view == "cases":
        return (f"test cases as blocks ({n_text} cases pooled over the {n_settings} settings, each the mean over "
                f"classes and seeds), because {n_settings} settings are fewer than the {min_blocks} blocks a decision "
                "needs; this view asks whether the control is better on these cases, not on new settings")
    return f"settings as blocks ({n_text}, the Friedman test's block values)"


def bayes_markdown(result: Comparison, figure_path: str | None = None) -> list[str]:
    """The Bayesian signed-rank section: settings, table, statements, disagreements with Finner."""
    spec, ctrl, t = result.spec, method_label(result.control), result.bayes_threshold
    min_blocks = stats.min_blocks_for(t)
    if result.bayes_view == "skipped":
        return [f"**Bayesian signed-rank test**: skipped — `{result.metric}` has no default region of practical "
                f"equivalence (ROPE). Add one in {spec.unit} with `--rope HALF_WIDTH` (the defaults: "
                f"{ROPE_DEFAULTS_TEXT}; docs/analysis.md)."]
    lines = [f"**Bayesian signed-rank test** against {ctrl} (Benavoli et al., JMLR 2017; `baycomp`) on "
             f"{bayes_view_text(result)}: region of practical equivalence (ROPE) ±{spec.rope:g} {spec.unit}; "
             f"Dirichlet-process prior of strength {stats.BAYES_PRIOR:g} at 0; {result.bayes_samples} posterior "
             f"samples (seed {result.seed}); a posterior probability ≥ {t:g} decides, and only with at least "
             f"{min_blocks} blocks (the fewest with which a one-sided signed-rank test can reach p ≤ {1 - t:.2g}; "
             "with fewer, P(better) is fixed by N once every difference exceeds twice the ROPE). Differences and "
             f"ROPE are rounded to the decimal grid of the tie tolerance first. It asks whether the differences are "
             "larger than the ROPE; the Friedman post-hoc asks whether the ranks differ.", ""]
    table = DisplayTable(
        "Method", [method_label(m) for m in result.bayes["method"]],
        [Column("N"), Column(f"P({ctrl} better)"), Column("P(equivalent)"), Column(f"P({ctrl} worse)"),
         Column("Bayesian"), Column("Finner (settings)")],
        [[str(int(r.n_blocks)), f"{r.p_better:.4f}", f"{r.p_equivalent:.4f}", f"{r.p_worse:.4f}", r.bayes,
          f"{r.finner} ({_fmt_p(r.p_finner)})"] for r in result.bayes.itertuples()],
    )
    lines.append(to_markdown(table))
    if figure_path:
        lines += [f"![Posterior probabilities of the Bayesian signed-rank test against {ctrl} "
                  f"(ROPE ±{spec.rope:g} {spec.unit}; {BAYES_VIEWS[result.bayes_view]}).]({figure_path})", ""]
    lines.extend(f"- {s}" for s in bayes_statements(result))
    return lines


def bayes_statements(result: Comparison) -> list[str]:
    ctrl, t, a = method_label(result.control), result.bayes_threshold, result.alpha
    bayes = result.bayes
    view = BAYES_VIEWS[result.bayes_view]
    min_blocks = stats.min_blocks_for(t)
    out = []
    for decision, words in _BAYES_WORDS.items():
        rows = bayes[bayes["bayes"] == decision]
        if not rows.empty:
            column = _BAYES_PROBABILITY[decision]
            out.append(f"Bayesian ({view}): {ctrl} is {words} " + ", ".join(
                f"{method_label(r.method)} (P = {getattr(r, column):.3f}, N = {int(r.n_blocks)})"
                for r in rows.itertuples()) + f" (P ≥ {t:g})" + (f" on this table ({result.scope})." if result.scope
                                                                  else "."))
    same = bayes[bayes["bayes"] == "no difference"]
    if not same.empty:
        out.append(f"Bayesian ({view}): no difference between {ctrl} and " + ", ".join(
            f"{method_label(r.method)} (N = {int(r.n_blocks)})" for r in same.itertuples())
            + ": every difference is zero at the tie tolerance.")
    few = bayes[bayes["bayes"] == "too few blocks"]
    if not few.empty:
        out.append(f"Bayesian ({view}): no decision for " + ", ".join(
            f"{method_label(r.method)} (N = {int(r.n_blocks)})" for r in few.itertuples())
            + f": fewer than {min_blocks} blocks, where the posterior probabilities say more about N than about "
            "the differences.")
    undecided = bayes[bayes["bayes"] == "undecided"]
    if not undecided.empty:
        out.append(f"Bayesian ({view}): undecided for " + ", ".join(
            f"{method_label(r.method)} (better {r.p_better:.3f}, equivalent {r.p_equivalent:.3f}, "
            f"worse {r.p_worse:.3f}, N = {int(r.n_blocks)})" for r in undecided.itertuples())
            + f": no probability reaches {t:g}.")
    disagree = bayes[~bayes["agree"].astype(bool)]
    if disagree.empty:
        out.append(f"The Bayesian test ({view}) and Finner's post-hoc (settings as blocks, α = {a:g}) agree for every "
                   f"method: each finds {ctrl} better (or worse) than the same methods, or neither decides.")
    for r in disagree.itertuples():
        if r.finner == "not significant":
            finner = f"Finner's post-hoc finds no significant rank difference (p_Finner = {r.p_finner:.4g} > {a:g})"
        else:
            finner = f"Finner's post-hoc finds {ctrl} significantly {r.finner} (p_Finner = {r.p_finner:.4g} ≤ {a:g})"
        column = _BAYES_PROBABILITY.get(r.bayes)
        if column:
            bayes_text = (f"the Bayesian test ({view}, N = {int(r.n_blocks)}) finds {ctrl} {_BAYES_WORDS[r.bayes]} "
                          f"it (P = {getattr(r, column):.3f} ≥ {t:g})")
        else:
            bayes_text = (f"the Bayesian test ({view}, N = {int(r.n_blocks)}) makes no decision ({r.bayes}; "
                          f"P({ctrl} better) = {r.p_better:.3f}, P(equivalent) = {r.p_equivalent:.3f}, "
                          f"P({ctrl} worse) = {r.p_worse:.3f})")
        out.append(f"Disagreement on {method_label(r.method)}: {finner}, but {bayes_text}.")
    return out


def paired_statements(result: Comparison) -> list[str]:
    adj = f"p_{result.paired_adjustment}"
    ctrl, a = method_label(result.control), result.alpha
    scope = "all blocks" if (result.paired["scope"] == "all blocks").any() else result.paired["scope"].iloc[0]
    rows = result.paired[result.paired["scope"] == scope]
    # the direction of a signed-rank result is that of its statistic (W+ against W-), i.e. of r
    sig_better = rows[(rows[adj] <= a) & (rows["rank_biserial"] > 0)]
    sig_worse = rows[(rows[adj] <= a) & (rows["rank_biserial"] < 0)]
    out = []
    on = f"; {result.scope}" if result.scope else ""
    if not sig_better.empty:
        out.append(f"Per case ({scope}), {ctrl} is significantly better than "
                   + ", ".join(method_label(m) for m in sig_better["method"]) + f" ({adj} ≤ {a:g}{on}).")
    if not sig_worse.empty:
        out.append(f"Per case ({scope}), {ctrl} is significantly worse than "
                   + ", ".join(method_label(m) for m in sig_worse["method"]) + f" ({adj} ≤ {a:g}{on}).")
    rest = rows[rows[adj] > a]
    if not rest.empty:
        out.append(f"Per case ({scope}), no significant difference between {ctrl} and "
                   + ", ".join(method_label(m) for m in rest["method"]) + f" ({adj} > {a:g}).")
    out.append("Cases of one test set are paired units; per-case tests answer 'is the control better on these "
               "cases', not 'on new data sets' (that is the Friedman test's question).")
    return out
