"""The paper's claims, one sentence each, checked against a run: reproduced, not reproduced, or
undecided at this scale, with the numbers behind the verdict.

Every claim of the SPCL paper that a run of the harness can test is written here once
(`CLAIMS`), with the rule that decides it. The rules rest on one comparison, a paired difference
over test volumes (`paired_difference`): for two runs of the same split the per-volume Dice (mean
over classes) is differenced per (volume, seed) and the mean difference gets a percentile
bootstrap interval that resamples volumes and seeds independently (analysis.stats.
bootstrap_mean_ci). A difference *holds* when its whole interval is above zero, is *reversed*
when the whole interval is below zero, and is *unresolved* otherwise.

- An order ("A < B < C", Tables 3 and 4) is reproduced when every step holds, not reproduced when
  one step is reversed, undecided otherwise.
- "X is best" (Table 1 per setting, Fig. 5's cell) is reproduced when X has the highest mean and
  holds against the runner-up; not reproduced when a rival's lead over X holds; undecided
  otherwise. A lead by mean alone is not a verdict.
- Table 2's claim (SPCL significantly better than every method except BASS, Friedman with
  Finner's adjustment at the paper's alpha = 0.1, Sec. 3.2) is checked on the per-case ranking
  (blocks: every test volume of every setting), the version with power: reproduced when SPCL
  ranks better than each of those methods with Finner p < 0.1, not reproduced when one of them
  ranks significantly better than SPCL, undecided otherwise.

A claim whose runs are missing is "not tested", with what is missing. Every sentence states its
N and its view (volumes paired, seeds crossed; or volumes as blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from analysis import stats
from analysis.aggregate import case_values, setting_summary
from analysis.naming import method_label, setting_label, sort_settings
from methods.paper_plan import BCL_ORDER, PAPER_THRESHOLDS, SWEEP_VARIANT, TABLE3_ORDER, TABLE4_ORDER, sweep_thresholds, sweep_variant

REPRODUCED, NOT_REPRODUCED, UNDECIDED, NOT_TESTED = ("reproduced", "not reproduced", "undecided at this scale",
                                                     "not tested")
PAPER_ALPHA = 0.1  # SPCL paper, Sec. 3.2: "the Friedman test at a significance level of 0.1", Finner
RUNNER_UP = "bass"  # Table 2: the one method SPCL is not significantly better than

Arm = tuple[str, str]  # (method, variant)


@dataclass(frozen=True)
class Difference:
    """better - worse in Dice points, paired over `n_cases` volumes and `n_seeds` seeds."""

    better: Arm
    worse: Arm
    setting: tuple
    mean: float
    ci_low: float
    ci_high: float
    n_cases: int
    n_seeds: int

    @property
    def status(self) -> str:
        if self.ci_low > 0:
            return "holds"
        if self.ci_high < 0:
            return "reversed"
        return "unresolved"

    def text(self, label: Callable[[Arm], str]) -> str:
        return (f"{label(self.better)} − {label(self.worse)} = {self.mean:+.2f} Dice points, 95 % CI "
                f"[{self.ci_low:+.2f}, {self.ci_high:+.2f}] ({self.n_cases} volumes × {self.n_seeds} "
                f"seed{'s' if self.n_seeds != 1 else ''}, paired)")


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str  # the paper's claim
    verdict: str
    evidence: str  # the numbers behind the verdict, with N and view

    def sentence(self) -> str:
        return f"**{self.statement}** — {self.verdict}. {self.evidence}"


def arm_label(arm: Arm) -> str:
    method, variant = arm
    if variant == "default":
        return method_label(method)
    cell = sweep_thresholds(variant)  # a sweep cell, which may be the default run relabelled
    if cell is not None:
        return f"{method_label(method)} (γ_s = {cell[0]:g}, γ_t = {cell[1]:g})"
    return f"{method_label(method)} ({variant})"


def _volume_grid(values: pd.DataFrame, setting: tuple, arm: Arm) -> pd.DataFrame:
    rows = values[(values["dataset"] == setting[0]) & (values["ratio"] == setting[1])
                  & (values["method"] == arm[0]) & (values["variant"] == arm[1])]
    return rows.pivot_table(index="case_id", columns="seed", values="dice", aggfunc="mean")


def paired_difference(values: pd.DataFrame, setting: tuple, better: Arm, worse: Arm, n_boot: int = 2000,
                      seed: int = 0) -> Difference | None:
    """`better` − `worse` over the volumes and seeds both have; None when they share fewer than
    two volumes. `values`: per-volume Dice in points (`volume_values`)."""
    a, b = _volume_grid(values, setting, better), _volume_grid(values, setting, worse)
    cases = a.index.intersection(b.index)
    seeds = a.columns.intersection(b.columns)
    if len(cases) < 2 or len(seeds) < 1:
        return None
    diff = a.loc[cases, seeds] - b.loc[cases, seeds]
    mean, low, high = stats.bootstrap_mean_ci(diff.to_numpy(), n_boot=n_boot, seed=seed)
    return Difference(better, worse, setting, mean, low, high, len(cases), len(seeds))


def volume_values(table: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, method, variant, seed, volume): Dice in points, the mean over classes."""
    values = case_values(table, "dice")
    return values.assign(dice=values["dice"] * 100.0)


def _means(table: pd.DataFrame) -> pd.DataFrame:
    summary = setting_summary(table, "dice")
    return summary.assign(mean=summary["mean"] * 100.0)


def _settings_with(values: pd.DataFrame, arms: list[Arm]) -> list[tuple]:
    """Settings where every arm has results."""
    have = [set(map(tuple, values[(values["method"] == m) & (values["variant"] == v)][["dataset", "ratio"]]
                    .drop_duplicates().itertuples(index=False, name=None))) for m, v in arms]
    return sort_settings(set.intersection(*have)) if have else []


# --------------------------------------------------------------------------- the rules
def order_verdict(steps: list[Difference | None]) -> str:
    """Every step holds: reproduced; one reversed: not reproduced; otherwise undecided."""
    if any(s is None for s in steps) or not steps:
        return NOT_TESTED
    if any(s.status == "reversed" for s in steps):
        return NOT_REPRODUCED
    return REPRODUCED if all(s.status == "holds" for s in steps) else UNDECIDED


def best_verdict(claimed_is_top: bool, lead: Difference | None) -> str:
    """`lead`: claimed − runner-up when the claimed arm has the top mean, else top − claimed."""
    if lead is None:
        return NOT_TESTED
    if claimed_is_top:
        return REPRODUCED if lead.status == "holds" else UNDECIDED
    return NOT_REPRODUCED if lead.status == "holds" else UNDECIDED


def combine(verdicts: list[str]) -> str:
    """Several settings of one claim: any not reproduced wins, then undecided, then reproduced."""
    if not verdicts or NOT_TESTED in verdicts:
        return NOT_TESTED
    for verdict in (NOT_REPRODUCED, UNDECIDED):
        if verdict in verdicts:
            return verdict
    return REPRODUCED


def ranking_verdict(table2_cases: pd.DataFrame, control: str, alpha: float = PAPER_ALPHA,
                    except_: tuple[str, ...] = (RUNNER_UP,)) -> tuple[str, list[str]]:
    """Table 2's claim on a per-case ranking (compare_with_control's columns method, rank, p_finner).
    Returns the verdict and one phrase per method tested."""
    ranks = table2_cases.set_index("method")
    if control not in ranks.index:
        return NOT_TESTED, []
    phrases, states = [], []
    for method, row in ranks.drop(control).iterrows():
        if method in except_:
            continue
        significant = bool(row["p_finner"] < alpha)
        control_better = row["rank"] > ranks.loc[control, "rank"]
        state = ("better" if control_better and significant else "worse" if significant else "not separated")
        states.append(state)
        phrases.append(f"{method_label(method)} rank {row['rank']:.2f}, Finner p = {row['p_finner']:.2g} ({state})")
    if not states:
        return NOT_TESTED, phrases
    if "worse" in states:
        return NOT_REPRODUCED, phrases
    return (REPRODUCED if all(s == "better" for s in states) else UNDECIDED), phrases


# --------------------------------------------------------------------------- the claims
def _best_in_setting(values, means, setting, claimed: Arm, rivals: list[Arm], n_boot, seed):
    here = means[(means["dataset"] == setting[0]) & (means["ratio"] == setting[1])]
    score = {(r.method, r.variant): r.mean for r in here.itertuples() if (r.method, r.variant) in [claimed, *rivals]}
    if claimed not in score or len(score) < 2:
        return NOT_TESTED, None
    order = sorted(score, key=lambda arm: -score[arm])
    top = order[0]
    if top == claimed:
        lead = paired_difference(values, setting, claimed, order[1], n_boot, seed)
    else:
        lead = paired_difference(values, setting, top, claimed, n_boot, seed)
    return best_verdict(top == claimed, lead), lead


def claim_spcl_best(values, means, control, n_boot, seed) -> Claim:
    statement = f"{method_label(control)} has the best mean Dice in every setting (Table 1)"
    main = means[means["variant"] == "default"]
    rivals = [(m, "default") for m in sorted(set(main["method"])) if m != control]
    settings = _settings_with(values, [(control, "default")])
    verdicts, parts = [], []
    for setting in settings:
        verdict, lead = _best_in_setting(values, main, setting, (control, "default"), rivals, n_boot, seed)
        verdicts.append(verdict)
        parts.append(f"{setting_label(*setting)}: " + (lead.text(arm_label) if lead else "no rival to compare"))
    if not settings:
        return Claim("spcl_best", statement, NOT_TESTED, f"no {method_label(control)} results.")
    return Claim("spcl_best", statement, combine(verdicts),
                 f"Per setting ({len(settings)}), the method with the top mean minus the runner-up when "
                 f"{method_label(control)} leads, or minus {method_label(control)} when another method leads: "
                 + "; ".join(parts) + ".")


def claim_ranking(table2_cases: pd.DataFrame | None, control: str, scope: str) -> Claim:
    statement = (f"{method_label(control)} is significantly better than every method except "
                 f"{method_label(RUNNER_UP)} (Table 2: Friedman, Finner, α = {PAPER_ALPHA:g})")
    if table2_cases is None:
        return Claim("ranking", statement, NOT_TESTED, "the per-case ranking could not be computed.")
    verdict, phrases = ranking_verdict(table2_cases, control)
    return Claim("ranking", statement, verdict,
                 f"Per-case ranking ({scope}): " + "; ".join(phrases) + ".")


def _order_claim(name, statement, values, chain: list[tuple[Arm, Arm]], n_boot, seed) -> Claim:
    arms = list(dict.fromkeys(a for pair in chain for a in pair))
    settings = _settings_with(values, arms)
    if not settings:
        missing = [arm_label(a) for a in arms if values[(values["method"] == a[0]) & (values["variant"] == a[1])].empty]
        return Claim(name, statement, NOT_TESTED, f"missing runs: {', '.join(missing) or 'no common setting'}.")
    verdicts, parts = [], []
    for setting in settings:
        steps = [paired_difference(values, setting, better, worse, n_boot, seed) for worse, better in chain]
        verdicts.append(order_verdict(steps))
        parts.append(f"{setting_label(*setting)}: " + "; ".join(
            s.text(arm_label) + f" ({s.status})" for s in steps if s is not None))
    return Claim(name, statement, combine(verdicts), " ".join(parts) + ".")


SWEEP_STATEMENT = ("The threshold sweep peaks at the paper's (γ_s, γ_t) = "
                   f"({PAPER_THRESHOLDS[0]:g}, {PAPER_THRESHOLDS[1]:g}) (Fig. 5)")


def claim_sweep(values, means, n_boot, seed) -> Claim:
    """Fig. 5: the best cell is the paper's (gamma_s, gamma_t). `values`/`means` hold the sweep's
    cells as variants sweep_gs<γs>_gt<γt> (the default cell already relabelled)."""
    gs, gt = PAPER_THRESHOLDS
    statement = SWEEP_STATEMENT
    cell = ("spcl", sweep_variant(gs, gt))
    sweep = means[(means["method"] == "spcl") & means["variant"].str.match(SWEEP_VARIANT.pattern)]
    settings = sort_settings(set(sweep[sweep["variant"] == cell[1]][["dataset", "ratio"]].itertuples(index=False, name=None)))
    if not settings:
        return Claim("sweep", statement, NOT_TESTED, f"no sweep run at ({gs:g}, {gt:g}).")
    verdicts, parts = [], []
    for setting in settings:
        here = sweep[(sweep["dataset"] == setting[0]) & (sweep["ratio"] == setting[1])]
        rivals = [("spcl", v) for v in here["variant"] if v != cell[1]]
        verdict, lead = _best_in_setting(values, here, setting, cell, rivals, n_boot, seed)
        verdicts.append(verdict)
        parts.append(f"{setting_label(*setting)}, {len(here)} cells: " + (lead.text(arm_label) if lead else "one cell"))
    return Claim("sweep", statement, combine(verdicts), "; ".join(parts) + ".")


def check_claims(table: pd.DataFrame, control: str, table2_cases: pd.DataFrame | None = None,
                 table2_scope: str = "", sweep_table: pd.DataFrame | None = None, n_boot: int = 2000,
                 seed: int = 0) -> list[Claim]:
    """Every claim, in the paper's order. `table`: the checked tidy table (fractions);
    `table2_cases`: compare_with_control's table of the per-case ranking; `sweep_table`: the
    sweep's rows with the default cell relabelled (analysis.figure_inputs.sweep_rows)."""
    values, means = volume_values(table), _means(table)
    claims = [claim_spcl_best(values, means, control, n_boot, seed),
              claim_ranking(table2_cases, control, table2_scope),
              _order_claim("table3", "Table 3's order: L_sup < + L_unsup < + L_icl or + L_bcl < SPCL", values,
                           list(TABLE3_ORDER), n_boot, seed),
              _order_claim("table4", "Table 4's order: Neg < Pos < US", values, list(TABLE4_ORDER), n_boot, seed)]
    if sweep_table is not None and not sweep_table.empty:
        claims.append(claim_sweep(volume_values(sweep_table), _means(sweep_table), n_boot, seed))
    else:
        claims.append(Claim("sweep", SWEEP_STATEMENT, NOT_TESTED, "no sweep runs."))
    claims.append(_order_claim("bcl_vs_infonce", "BCL beats InfoNCE on the boundary anchors", values, list(BCL_ORDER),
                               n_boot, seed))
    return claims


def claims_frame(claims: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([{"claim": c.name, "statement": c.statement, "verdict": c.verdict, "evidence": c.evidence}
                         for c in claims])


# --------------------------------------------------------------------------- rank agreement
def paper_mean_ranks(reference_table1: pd.DataFrame, settings: list[tuple], methods: list[str]) -> pd.Series | None:
    """The paper's mean Dice ranks (1 = best) of `methods` over `settings`, from its Table 1."""
    ref = reference_table1.assign(ratio=reference_table1["ratio"].astype(float))
    wanted = {(d, float(r)) for d, r in settings}
    in_settings = np.array([(d, r) in wanted for d, r in zip(ref["dataset"], ref["ratio"])], dtype=bool)
    rows = ref[in_settings & ref["method"].isin(methods).to_numpy()]
    if rows.empty:
        return None
    matrix = rows.pivot_table(index=["dataset", "ratio"], columns="method", values="dice").dropna(axis=1)
    if matrix.shape[1] < 3:
        return None
    # ranks within each setting (ties share the mean rank), averaged; one setting is enough here
    return matrix.rank(axis=1, ascending=False, method="average").mean(axis=0)


def rank_agreement_text(ours: pd.Series, reference_table1: pd.DataFrame, settings: list[tuple],
                        view: str) -> tuple[str, stats.RankAgreement | None]:
    """A paragraph on how the run's mean ranks agree with the paper's at the same settings."""
    paper = paper_mean_ranks(reference_table1, settings, list(ours.index))
    if paper is None:
        return ("Rank agreement with the paper: not computed — the run shares no setting (or fewer than three "
                "ranked methods) with the paper's Table 1.", None)
    try:
        agreement = stats.rank_agreement(ours.to_dict(), paper.to_dict())
    except stats.StatsInputError as err:
        return f"Rank agreement with the paper: not computed — {err}.", None
    shown = ", ".join(f"{method_label(m)} {ours[m]:.2f} / {paper[m]:.2f}" for m in agreement.methods)
    labels = ", ".join(setting_label(*s) for s in settings)
    return (f"Rank agreement with the paper ({agreement.n_methods} methods, mean ranks over {len(settings)} setting(s): "
            f"{labels}; {view}): Kendall's τ_b = {agreement.tau:+.2f}, exact one-sided permutation p = "
            f"{agreement.p_value:.3g} (all {math.factorial(agreement.n_methods)} pairings). Ours / paper: {shown}.",
            agreement)
