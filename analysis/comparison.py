"""The statistical comparison of methods against a control on one metric of a tidy table.

Table 2 of the paper: Friedman over the (dataset, ratio) settings as blocks, each block value the
mean over classes, cases and seeds; ranks, z against the control, two-sided normal p, Finner p;
Iman-Davenport; Nemenyi CD and the CD diagram. Beyond the paper: per-case Wilcoxon signed-rank
tests of the control against each method (cases = units, values averaged over classes and seeds),
with the rank-biserial effect size, Holm or Finner adjustment and a bootstrap interval of the
mean improvement; and bootstrap intervals of every method's mean per setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import stats
from analysis.aggregate import block_matrix, case_values
from analysis.figures import cd_diagram
from analysis.formatting import Column, DisplayTable, Value, to_markdown
from analysis.io import write_csv
from analysis.naming import method_label, setting_label, sort_methods, sort_settings

FRIEDMAN_COLUMNS = ["method", "rank", "z", "p", "p_finner"]
MIN_PAIRS = 5  # with 4 pairs the smallest two-sided Wilcoxon p is 0.125: not worth a row
LOWER_IS_BETTER_PREFIXES = ("hd", "asd", "assd", "nsd_err")


def default_higher_is_better(metric: str) -> bool:
    """Distances (hd95_mm, hd95_px, asd_mm, ...) are lower-is-better; overlaps higher-is-better."""
    return not metric.lower().startswith(LOWER_IS_BETTER_PREFIXES)


@dataclass
class Comparison:
    metric: str
    higher_is_better: bool
    control: str
    alpha: float
    scale: float
    matrix: pd.DataFrame  # complete blocks x methods (scaled)
    dropped_blocks: list
    excluded: tuple
    friedman: stats.FriedmanResult
    table: pd.DataFrame  # method, rank, z, p, p_finner, p_holm
    cd: float
    pairwise: pd.DataFrame  # Nemenyi p, methods x methods
    paired: pd.DataFrame  # per-case Wilcoxon against the control
    bootstrap: pd.DataFrame  # per setting and method: mean and CI
    paired_adjustment: str

    @property
    def omnibus(self) -> pd.DataFrame:
        f = self.friedman
        rows = [("n_blocks", f.n_blocks), ("n_methods", f.n_methods), ("friedman_chi2", f.chi2),
                ("friedman_p", f.chi2_p), ("iman_davenport_f", f.iman_davenport_f),
                ("iman_davenport_df1", f.df1), ("iman_davenport_df2", f.df2),
                ("iman_davenport_p", f.iman_davenport_p), ("nemenyi_cd", self.cd), ("alpha", self.alpha)]
        return pd.DataFrame(rows, columns=["statistic", "value"])


def compare_methods(
    df: pd.DataFrame, metric: str, control: str, alpha: float = stats.DEFAULT_ALPHA,
    higher_is_better: bool | None = None, exclude: tuple[str, ...] = (), variant: str = "default",
    paired_adjustment: str = "holm", scale: float = 1.0, n_boot: int = 2000, seed: int = 0,
) -> Comparison:
    """Run every test of the comparison on a normalised tidy table (see collect.normalise)."""
    if higher_is_better is None:
        higher_is_better = default_higher_is_better(metric)
    rows = df[(df["variant"] == variant) & ~df["method"].isin(exclude)]
    if rows.empty:
        raise stats.StatsInputError(f"no rows with variant {variant!r} for the comparison on {metric!r}")
    if control not in set(rows["method"]):
        raise stats.StatsInputError(
            f"control method {control!r} has no {variant!r} rows; methods present: {sort_methods(rows['method'])}"
        )
    rows = rows.assign(**{metric: rows[metric] * scale})
    matrix, dropped = block_matrix(rows, metric, variant=variant)
    if len(matrix) < 2:
        raise stats.StatsInputError(
            f"the Friedman test needs at least 2 settings where every method has {metric!r} values; "
            f"complete settings: {list(matrix.index)}, incomplete (dropped): {dropped}"
        )
    result = stats.friedman(matrix, higher_is_better)
    table = stats.compare_with_control(result, control)
    cd = stats.nemenyi_critical_difference(result.n_methods, result.n_blocks, alpha)
    pairwise = stats.nemenyi_pairwise(matrix, higher_is_better)
    values = case_values(rows, metric)
    paired = paired_tests(values, metric, control, higher_is_better, paired_adjustment, n_boot, seed)
    boot = bootstrap_table(values, metric, n_boot, seed)
    return Comparison(metric, higher_is_better, control, alpha, scale, matrix, dropped, tuple(exclude), result,
                      table, cd, pairwise, paired, boot, paired_adjustment)


# --------------------------------------------------------------------------- per-case statistics
def _case_matrix(values: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(dataset, ratio, case_id) x method: the case value averaged over seeds."""
    per_case = values.groupby(["dataset", "ratio", "case_id", "method"], sort=True)[metric].mean()
    return per_case.unstack("method")


def paired_tests(values: pd.DataFrame, metric: str, control: str, higher_is_better: bool,
                 adjustment: str, n_boot: int, seed: int) -> pd.DataFrame:
    """Wilcoxon of the control against each method, per setting and over all settings.

    Scopes where a method shares fewer than MIN_PAIRS cases with the control are not tested.
    `improvement` = control - method for higher-is-better metrics, method - control otherwise,
    so positive always means the control is better; the rank-biserial r has the same sign.
    p-values are adjusted over the methods within each scope.
    """
    cases = _case_matrix(values, metric)
    settings = sort_settings(cases.index.droplevel("case_id").unique())
    scopes = [(setting_label(*s), cases.xs(s, level=("dataset", "ratio"), drop_level=False)) for s in settings]
    if len(settings) > 1:
        scopes.append(("all settings", cases))
    records = []
    for scope, block in scopes:
        scope_rows = []
        for method in sort_methods(c for c in block.columns if c != control):
            pair = block[[control, method]].dropna()
            if len(pair) < MIN_PAIRS:
                continue
            sign = 1.0 if higher_is_better else -1.0
            improvement = sign * (pair[control].to_numpy() - pair[method].to_numpy())
            test = stats.wilcoxon_paired(improvement, np.zeros_like(improvement))
            _, low, high = stats.bootstrap_mean_ci(improvement, n_boot=n_boot, seed=seed)
            scope_rows.append({"scope": scope, "method": method, "n_pairs": test.n_pairs,
                               "mean_improvement": test.mean_difference, "ci_low": low, "ci_high": high,
                               "median_improvement": test.median_difference, "wilcoxon_w": test.statistic,
                               "p": test.p, "rank_biserial": test.rank_biserial})
        if scope_rows:
            p_adj = stats.adjust([r["p"] for r in scope_rows], adjustment)
            for r, p in zip(scope_rows, p_adj):
                r[f"p_{adjustment}"] = p
            records.extend(scope_rows)
    columns = ["scope", "method", "n_pairs", "mean_improvement", "ci_low", "ci_high", "median_improvement",
               "wilcoxon_w", "p", f"p_{adjustment}", "rank_biserial"]
    return pd.DataFrame(records, columns=columns)


def bootstrap_table(values: pd.DataFrame, metric: str, n_boot: int, seed: int,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Per setting and method: mean over cases and seeds with a bootstrap CI (cases x seeds)."""
    records = []
    for (dataset, ratio, method), group in values.groupby(["dataset", "ratio", "method"], sort=True):
        grid = group.pivot_table(index="case_id", columns="seed", values=metric, aggfunc="mean", dropna=False)
        if grid.isna().all().all():
            continue
        mean, low, high = stats.bootstrap_mean_ci(grid.to_numpy(), n_boot=n_boot, confidence=confidence, seed=seed)
        records.append({"dataset": dataset, "ratio": ratio, "method": method, "n_cases": grid.shape[0],
                        "n_seeds": grid.shape[1], "mean": mean, "ci_low": low, "ci_high": high})
    out = pd.DataFrame(records, columns=["dataset", "ratio", "method", "n_cases", "n_seeds", "mean", "ci_low", "ci_high"])
    order = {s: i for i, s in enumerate(sort_settings(out[["dataset", "ratio"]].itertuples(index=False, name=None)))}
    rank = {m: i for i, m in enumerate(sort_methods(out["method"]))}
    out["_setting"] = [order[(d, r)] for d, r in zip(out["dataset"], out["ratio"])]
    out["_method"] = out["method"].map(rank)
    return out.sort_values(["_setting", "_method"]).drop(columns=["_setting", "_method"]).reset_index(drop=True)


# --------------------------------------------------------------------------- writing
def write_statistics(result: Comparison, out_dir: Path, figure_dir: Path, prefix: str = "") -> dict[str, list[Path]]:
    """friedman.csv (method, rank, z, p, p_finner), omnibus, blocks, Nemenyi, paired and
    bootstrap CSVs, and the CD diagram (PNG and PDF)."""
    out_dir, figure_dir = Path(out_dir), Path(figure_dir)
    blocks = result.matrix.copy()
    blocks.index = [setting_label(d, r) for d, r in blocks.index]
    paths = {
        "friedman": [write_csv(result.table[FRIEDMAN_COLUMNS], out_dir / f"{prefix}friedman.csv")],
        "friedman_holm": [write_csv(result.table, out_dir / f"{prefix}friedman_all_adjustments.csv")],
        "omnibus": [write_csv(result.omnibus, out_dir / f"{prefix}omnibus.csv")],
        "blocks": [write_csv(blocks, out_dir / f"{prefix}blocks.csv", index=True)],
        "nemenyi": [write_csv(result.pairwise, out_dir / f"{prefix}nemenyi_pairwise.csv", index=True)],
        "paired": [write_csv(result.paired, out_dir / f"{prefix}paired_tests.csv")],
        "bootstrap": [write_csv(result.bootstrap, out_dir / f"{prefix}bootstrap_ci.csv")],
    }
    ranks = result.friedman.mean_ranks.rename(index=method_label)
    pairwise = result.pairwise.rename(index=method_label, columns=method_label)
    paths["cd_diagram"] = cd_diagram(ranks, pairwise, result.cd, result.alpha, figure_dir / f"{prefix}cd_diagram",
                                     f"Mean rank on {result.metric} over {result.friedman.n_blocks} settings")
    return paths


def _fmt_p(p: float) -> str:
    if np.isnan(p):
        return "–"
    return f"{p:.6f}" if p >= 1e-6 else f"{p:.2e}"


def statistics_markdown(result: Comparison) -> str:
    """Table 2 and the per-case tables in Markdown, with plain-language statements."""
    f, a, ctrl = result.friedman, result.alpha, method_label(result.control)
    lines = []
    t2 = DisplayTable(
        "Method", [method_label(m) for m in result.table["method"]],
        [Column("Ranking", decimals=4), Column("z", decimals=6), Column("p (unadjusted)"), Column("p (Finner)"),
         Column("p (Holm)")],
        [[Value(r.rank), "–" if np.isnan(r.z) else f"{r.z:.6f}", _fmt_p(r.p), _fmt_p(r.p_finner), _fmt_p(r.p_holm)]
         for r in result.table.itertuples()],
    )
    lines.append(to_markdown(t2))
    lines.append(
        f"Blocks: {f.n_blocks} settings ({', '.join(setting_label(d, r) for d, r in result.matrix.index)}); "
        f"k = {f.n_methods} methods; metric `{result.metric}` "
        f"({'higher' if result.higher_is_better else 'lower'} is better); rank 1 = best; "
        f"z = (R_i − R_{{{ctrl}}}) / sqrt(k(k+1)/(6N)) = (R_i − R_0) / {f.rank_se:.4f}."
    )
    if result.excluded:
        lines.append(f"Not ranked (as in the paper's Table 2): {', '.join(method_label(m) for m in result.excluded)}.")
    if result.dropped_blocks:
        lines.append("Settings left out of the ranking because some method has no value there: "
                     + ", ".join(setting_label(d, r) for d, r in result.dropped_blocks) + ".")
    lines.append("")
    lines.extend(f"- {s}" for s in significance_statements(result))
    lines.append("")
    lines.append(f"**Per-case paired tests** (Wilcoxon signed-rank, {result.paired_adjustment.title()}-adjusted "
                 f"within each scope; improvement = how much better {ctrl} is, in the units of "
                 f"`{result.metric}`{' × ' + format(result.scale, 'g') if result.scale != 1 else ''}; "
                 "95% bootstrap CI of the mean improvement over cases; r = rank-biserial correlation):")
    lines.append("")
    if result.paired.empty:
        lines.append(f"Not tested: no method shares at least {MIN_PAIRS} cases with the control in any scope.")
    else:
        adj = f"p_{result.paired_adjustment}"
        table = DisplayTable(
            "Scope / method", [f"{r.scope} / {method_label(r.method)}" for r in result.paired.itertuples()],
            [Column("n"), Column("mean improvement"), Column("95% CI"), Column("r"), Column("p"), Column(adj)],
            [[str(r.n_pairs), f"{r.mean_improvement:+.3f}", f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
              f"{r.rank_biserial:+.2f}", _fmt_p(r.p), _fmt_p(getattr(r, adj))] for r in result.paired.itertuples()],
        )
        lines.append(to_markdown(table))
        lines.extend(f"- {s}" for s in paired_statements(result))
    return "\n".join(lines) + "\n"


def significance_statements(result: Comparison) -> list[str]:
    """Plain-language conclusions of Table 2 at the chosen alpha."""
    f, a, ctrl = result.friedman, result.alpha, method_label(result.control)
    out = []
    verdict = "rejects" if f.iman_davenport_p <= a else "does not reject"
    out.append(
        f"Omnibus: the Friedman test (Iman–Davenport form) {verdict} equal performance of all "
        f"{f.n_methods} methods at α = {a:g} "
        f"(χ²_F = {f.chi2:.3f}, p = {_fmt_p(f.chi2_p)}; Iman–Davenport F({f.df1}, {f.df2}) = {f.iman_davenport_f:.3f}, "
        f"p = {_fmt_p(f.iman_davenport_p)})."
    )
    if (f.chi2_p <= a) != (f.iman_davenport_p <= a) and not np.isinf(f.iman_davenport_f):
        chi2_verdict = "rejects" if f.chi2_p <= a else "does not reject"
        out.append(f"The χ² form {chi2_verdict} it (p = {_fmt_p(f.chi2_p)}): the two forms disagree, "
                   "so read the omnibus result as borderline.")
    if np.isinf(f.iman_davenport_f):
        out.append("Every setting ranks the methods in the same order, so the Iman–Davenport F is unbounded; "
                   f"the χ² p-value ({_fmt_p(f.chi2_p)}) is the more cautious reading.")
    best = result.friedman.mean_ranks.idxmin()
    out.append(f"{ctrl} has mean rank {f.mean_ranks[result.control]:.4f}; the best mean rank is "
               f"{method_label(best)}'s ({f.mean_ranks[best]:.4f}).")
    others = result.table.dropna(subset=["z"])
    better = others[(others["p_finner"] <= a) & (others["z"] > 0)]
    worse = others[(others["p_finner"] <= a) & (others["z"] < 0)]
    same = others[others["p_finner"] > a]
    if not better.empty:
        out.append(f"After Finner's adjustment, {ctrl} ranks significantly better (p_Finner ≤ {a:g}) than "
                   + ", ".join(f"{method_label(m)} ({p:.4g})" for m, p in zip(better["method"], better["p_finner"])) + ".")
    if not worse.empty:
        out.append(f"After Finner's adjustment, {ctrl} ranks significantly worse than "
                   + ", ".join(f"{method_label(m)} ({p:.4g})" for m, p in zip(worse["method"], worse["p_finner"])) + ".")
    if not same.empty:
        out.append(f"The difference between {ctrl} and "
                   + ", ".join(f"{method_label(m)} (p_Finner = {p:.4g})" for m, p in zip(same["method"], same["p_finner"]))
                   + f" is not significant at α = {a:g}.")
    out.append(f"Nemenyi: two mean ranks further apart than CD = {result.cd:.3f} differ at α = {a:g} "
               "(the CD diagram joins the methods it cannot separate).")
    if f.n_blocks < 5:
        out.append(f"Caution: with only N = {f.n_blocks} blocks the rank tests have little power, and the normal "
                   "approximation behind z is rough; a non-significant result is not evidence of equal performance.")
    return out


def paired_statements(result: Comparison) -> list[str]:
    adj = f"p_{result.paired_adjustment}"
    ctrl, a = method_label(result.control), result.alpha
    scope = "all settings" if (result.paired["scope"] == "all settings").any() else result.paired["scope"].iloc[0]
    rows = result.paired[result.paired["scope"] == scope]
    sig_better = rows[(rows[adj] <= a) & (rows["mean_improvement"] > 0)]
    sig_worse = rows[(rows[adj] <= a) & (rows["mean_improvement"] < 0)]
    out = []
    if not sig_better.empty:
        out.append(f"Per case ({scope}), {ctrl} is significantly better than "
                   + ", ".join(method_label(m) for m in sig_better["method"]) + f" ({adj} ≤ {a:g}).")
    if not sig_worse.empty:
        out.append(f"Per case ({scope}), {ctrl} is significantly worse than "
                   + ", ".join(method_label(m) for m in sig_worse["method"]) + f" ({adj} ≤ {a:g}).")
    rest = rows[rows[adj] > a]
    if not rest.empty:
        out.append(f"Per case ({scope}), no significant difference between {ctrl} and "
                   + ", ".join(method_label(m) for m in rest["method"]) + f" ({adj} > {a:g}).")
    out.append("Cases of one test set are paired units; per-case tests answer 'is the control better on these "
               "cases', not 'on new data sets' (that is the Friedman test's question).")
    return out
