"""Statistics behind Table 2 and the per-case comparisons.

Rank-based comparison of k methods over N blocks (Demšar 2006, JMLR 7:1-30; García & Herrera
2008, JMLR 9:2677-2694), as in Section 3.2 of the SPCL paper:

* ranks per block, 1 = best, ties get the average rank; R_j = mean rank of method j;
* Friedman chi2_F = 12N/(k(k+1)) * (sum_j R_j^2 - k(k+1)^2/4), without scipy's tie correction
  (the published convention; `scipy.stats.friedmanchisquare` corrects for ties);
* Iman-Davenport F_F = (N-1) chi2_F / (N(k-1) - chi2_F), df (k-1, (k-1)(N-1));
* z of method i against the control 0: (R_i - R_0) / sqrt(k(k+1)/(6N)), two-sided normal p;
* Finner and Holm step-down adjustments of the k-1 p-values (Finner is in neither scipy,
  statsmodels nor scikit-posthocs);
* Nemenyi critical difference q_alpha * sqrt(k(k+1)/(6N)), q_alpha = studentized range / sqrt 2.

Per-case statistics: Wilcoxon signed-rank with the matched-pairs rank-biserial correlation as
effect size, and percentile bootstrap intervals over cases crossed with seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

DEFAULT_ALPHA = 0.1  # the paper's significance level (Section 3.2)


class StatsInputError(ValueError):
    """Input to a statistical test that the test cannot take (too few blocks or methods, NaN)."""


# --------------------------------------------------------------------------- p-value adjustment
def _as_pvalues(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise StatsInputError(f"p-values must be one-dimensional, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise StatsInputError(f"p-values must lie in [0, 1] without NaN, got {p.tolist()}")
    return p


def finner(p) -> np.ndarray:
    """Finner (1993) step-down adjusted p-values, in the input order.

    With p_(1) <= ... <= p_(m): p_adj(i) = min(1, max_{j<=i} 1 - (1 - p_(j))^(m/j)).
    Rejecting where p_adj <= alpha is the same as Finner's step-down rule: reject H_(1..i) for the
    largest run with p_(j) <= 1 - (1 - alpha)^(j/m) for all j <= i.
    """
    p = _as_pvalues(p)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    j = np.arange(1, m + 1)
    stepwise = 1.0 - (1.0 - p[order]) ** (m / j)
    adjusted = np.minimum(np.maximum.accumulate(stepwise), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def holm(p) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values: min(1, max_{j<=i} (m - j + 1) p_(j))."""
    p = _as_pvalues(p)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    stepwise = (m - np.arange(m)) * p[order]
    adjusted = np.minimum(np.maximum.accumulate(stepwise), 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


ADJUSTMENTS = {"finner": finner, "holm": holm}


def adjust(p, method: str) -> np.ndarray:
    """Adjust p-values with a named procedure ('finner' or 'holm')."""
    try:
        return ADJUSTMENTS[method](p)
    except KeyError:
        raise StatsInputError(
            f"unknown p-value adjustment {method!r}; choose one of {sorted(ADJUSTMENTS)}"
        ) from None


# --------------------------------------------------------------------------- Friedman family
@dataclass(frozen=True)
class FriedmanResult:
    """Omnibus Friedman test on a blocks x methods matrix."""

    mean_ranks: pd.Series  # indexed by method, 1 = best
    rank_matrix: pd.DataFrame  # blocks x methods
    n_blocks: int
    n_methods: int
    chi2: float
    chi2_p: float
    iman_davenport_f: float
    iman_davenport_p: float
    df1: int
    df2: int

    @property
    def rank_se(self) -> float:
        """Standard error of a difference of mean ranks, sqrt(k(k+1)/(6N))."""
        return rank_difference_se(self.n_methods, self.n_blocks)


def rank_difference_se(k: int, n: int) -> float:
    return float(np.sqrt(k * (k + 1) / (6.0 * n)))


def _check_matrix(matrix: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(matrix, pd.DataFrame):
        raise StatsInputError("the Friedman test needs a DataFrame of blocks (rows) x methods (columns)")
    values = matrix.to_numpy(dtype=float)
    n, k = values.shape
    if k < 2:
        raise StatsInputError(f"the Friedman test needs at least 2 methods, got {k}: {list(matrix.columns)}")
    if n < 2:
        raise StatsInputError(f"the Friedman test needs at least 2 blocks (settings), got {n}")
    if np.isnan(values).any():
        bad = matrix.index[np.isnan(values).any(axis=1)].tolist()
        raise StatsInputError(f"blocks with missing values cannot be ranked: {bad}")
    return matrix


def rank_blocks(matrix: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Rank methods within each block (row): 1 = best, ties get the average of their ranks."""
    matrix = _check_matrix(matrix)
    values = matrix.to_numpy(dtype=float)
    ranks = st.rankdata(-values if higher_is_better else values, axis=1, method="average")
    return pd.DataFrame(ranks, index=matrix.index, columns=matrix.columns)


def friedman(matrix: pd.DataFrame, higher_is_better: bool = True) -> FriedmanResult:
    """Friedman chi-square and Iman-Davenport F from mean ranks (no tie correction)."""
    ranks = rank_blocks(matrix, higher_is_better)
    n, k = ranks.shape
    mean_ranks = ranks.mean(axis=0)
    chi2 = 12.0 * n / (k * (k + 1)) * (float((mean_ranks**2).sum()) - k * (k + 1) ** 2 / 4.0)
    chi2 = max(chi2, 0.0)  # rounding can give -1e-15 when all ranks are equal
    chi2_p = float(st.chi2.sf(chi2, k - 1))
    df1, df2 = k - 1, (k - 1) * (n - 1)
    denominator = n * (k - 1) - chi2
    if denominator <= 1e-12 * n * k:  # every block ranks the methods identically
        ff, ff_p = float("inf"), 0.0
    else:
        ff = (n - 1) * chi2 / denominator
        ff_p = float(st.f.sf(ff, df1, df2))
    return FriedmanResult(mean_ranks, ranks, n, k, float(chi2), chi2_p, float(ff), ff_p, df1, df2)


def nemenyi_critical_difference(k: int, n: int, alpha: float = DEFAULT_ALPHA) -> float:
    """Nemenyi CD: two mean ranks further apart than this differ at level alpha."""
    q_alpha = st.studentized_range.ppf(1.0 - alpha, k, np.inf) / np.sqrt(2.0)
    return float(q_alpha * rank_difference_se(k, n))


def compare_with_control(result: FriedmanResult, control: str) -> pd.DataFrame:
    """z, two-sided normal p and Finner/Holm-adjusted p of every method against the control.

    Returns one row per method (the control last, with NaN statistics), sorted by mean rank:
    columns method, rank, z, p, p_finner, p_holm. Positive z = worse rank than the control.
    """
    ranks = result.mean_ranks
    if control not in ranks.index:
        raise StatsInputError(f"control method {control!r} is not among the ranked methods {list(ranks.index)}")
    others = ranks.drop(control)
    z = (others - ranks[control]) / result.rank_se
    p = 2.0 * st.norm.sf(np.abs(z.to_numpy()))
    table = pd.DataFrame(
        {
            "method": others.index,
            "rank": others.to_numpy(),
            "z": z.to_numpy(),
            "p": p,
            "p_finner": finner(p),
            "p_holm": holm(p),
        }
    ).sort_values(["rank", "method"], kind="stable")
    control_row = pd.DataFrame(
        {"method": [control], "rank": [ranks[control]], "z": [np.nan], "p": [np.nan],
         "p_finner": [np.nan], "p_holm": [np.nan]}
    )
    return pd.concat([table, control_row], ignore_index=True)


def nemenyi_pairwise(matrix: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Pairwise Nemenyi p-values (methods x methods) from scikit-posthocs, for the CD diagram."""
    import scikit_posthocs as sp

    matrix = _check_matrix(matrix)
    values = matrix.to_numpy(dtype=float)
    # scikit-posthocs ranks ascending; two-sided pairwise p does not depend on the direction,
    # the sign flip only keeps "rank 1 = best" consistent with the rest of the module.
    pvalues = sp.posthoc_nemenyi_friedman(-values if higher_is_better else values)
    pvalues.index = matrix.columns
    pvalues.columns = matrix.columns
    return pvalues


# --------------------------------------------------------------------------- paired per-case tests
@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of control - other over paired units (cases)."""

    n_pairs: int
    n_nonzero: int
    mean_difference: float
    median_difference: float
    statistic: float
    p: float
    rank_biserial: float  # (W+ - W-) / (W+ + W-) over non-zero differences, in [-1, 1]


def wilcoxon_paired(control, other) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test with the matched-pairs rank-biserial effect size.

    Zero differences are dropped ("wilcox" zero method) before ranking, as in Wilcoxon's
    original test. A positive effect size means the control's values are larger.
    """
    x = np.asarray(control, dtype=float)
    y = np.asarray(other, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise StatsInputError(f"paired samples must be 1-D of equal length, got {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise StatsInputError("paired samples contain NaN; drop unpaired cases first")
    d = x - y
    nonzero = d[d != 0]
    n, m = d.size, nonzero.size
    if n == 0:
        raise StatsInputError("paired test needs at least one pair")
    if m == 0:  # identical samples: no evidence of a difference
        return PairedTest(n, 0, 0.0, 0.0, 0.0, 1.0, 0.0)
    signed_ranks = st.rankdata(np.abs(nonzero))
    w_plus = float(signed_ranks[nonzero > 0].sum())
    w_minus = float(signed_ranks[nonzero < 0].sum())
    res = st.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided")
    return PairedTest(
        n_pairs=n,
        n_nonzero=m,
        mean_difference=float(d.mean()),
        median_difference=float(np.median(d)),
        statistic=float(res.statistic),
        p=float(res.pvalue),
        rank_biserial=(w_plus - w_minus) / (w_plus + w_minus),
    )


# --------------------------------------------------------------------------- bootstrap
def bootstrap_mean_ci(
    values, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of a cases x seeds matrix (NaN = missing).

    Cases and seeds are resampled independently (a crossed design: every seed is a trained
    model evaluated on every case), so the interval reflects both the test-set sample and the
    training-seed variability. A 1-D input is one seed.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.size == 0 or np.isnan(v).all():
        raise StatsInputError(f"bootstrap needs a non-empty cases x seeds matrix with values, got shape {v.shape}")
    rng = np.random.default_rng(seed)
    n_cases, n_seeds = v.shape
    case_idx = rng.integers(0, n_cases, size=(n_boot, n_cases))
    seed_idx = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    samples = v[case_idx[:, :, None], seed_idx[:, None, :]]  # n_boot x cases x seeds
    with warnings.catch_warnings():  # a resample may draw only missing cells
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(samples.reshape(n_boot, -1), axis=1)
    means = means[~np.isnan(means)]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(np.nanmean(v)), float(low), float(high)

