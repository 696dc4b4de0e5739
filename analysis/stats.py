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

Rank agreement (`rank_agreement`): Kendall's tau-b between the harness's mean ranks and another
ranking of the same methods (the paper's), with the exact one-sided permutation p of agreement.

Bayesian: the Bayesian signed-rank test with a region of practical equivalence (Benavoli et al.
2017, JMLR 18(77):1-36), from `baycomp`, as P(control better), P(equivalent), P(control worse).
Two guards around baycomp (see `bayesian_signed_rank`): the differences and the ROPE are integers
in units of a decimal quantum at the tie tolerance, because baycomp compares pair sums with 2 x ROPE
by `>` and `==` and binary noise would otherwise decide (1.06 + 0.94 > 2.0 in float64); and a
decision needs at least BAYES_MIN_BLOCKS blocks. With N blocks and the prior's pseudo-observation,
P(better) is capped by a value that depends on N alone once every difference exceeds 2 x ROPE
(0.964 at N = 2, whatever the sizes of the differences). BAYES_MIN_BLOCKS is the smallest N at which
the frequentist counterpart, the one-sided signed-rank test on the same blocks, can reach the level
1 - BAYES_DECISION at all (smallest one-sided p = 2^-N: 0.0625 at N = 4, 0.031 at N = 5), so a
Bayesian decision never rests on fewer blocks than a signed-rank rejection at the matching level.

Ties. Two values of one comparison are tied when they differ by at most TIE_RTOL times the
largest absolute value compared (`tie_groups`). Decimal data stored in binary floating point
differ from their decimal values by about 1e-16 relative, so 0.825 - 0.775 and 0.375 - 0.325 are
one tie; any difference a results table prints (1e-6 relative and up) stays a difference. The
same rule ranks values within a block (Friedman) and absolute differences (signed-rank test).

The signed-rank p-value is computed here, not by scipy (whose default method and zero handling
changed between the versions pyproject allows), so a table gives the same p everywhere.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

DEFAULT_ALPHA = 0.1  # the paper's significance level (Section 3.2)
TIE_RTOL = 1e-9  # values within TIE_RTOL x (largest |value| compared) are ties
EXACT_MAX_PAIRS = 100  # signed-rank p exact up to this many non-zero differences, normal above
WILCOXON_METHOD = (
    "Wilcoxon signed-rank test, two-sided, computed by analysis.stats (the same p on every scipy): "
    f"differences within {TIE_RTOL:g} × the largest |value| compared are zero and are dropped (Wilcoxon's "
    "zero method); absolute differences equal within that tolerance share their average rank; p is exact "
    f"(the permutation distribution of W₊ given those ranks) up to {EXACT_MAX_PAIRS} non-zero differences, "
    "else the normal approximation with tie-corrected variance and continuity correction 0.5; "
    "W = min(W₊, W₋)"
)
BAYES_PRIOR = 0.5  # strength of the Dirichlet-process prior pseudo-observation at 0 (baycomp's default)
BAYES_SAMPLES = 50000  # posterior samples (baycomp's default)
BAYES_DECISION = 0.95  # a posterior probability at least this high decides


def min_blocks_for(threshold: float) -> int:
    """Fewest blocks at which a one-sided signed-rank test can reach p <= 1 - threshold (2^-N)."""
    return int(np.ceil(np.log2(1.0 / (1.0 - threshold)) - 1e-12)) if threshold < 1 else 10**9


BAYES_MIN_BLOCKS = min_blocks_for(BAYES_DECISION)  # 5 at the 0.95 threshold


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


def tie_groups(values, scale: float | None = None, rtol: float = TIE_RTOL) -> np.ndarray:
    """Integer group of each value (0 = smallest): sorted values whose gap to the previous one is at
    most rtol x scale share a group. scale defaults to the largest |value|."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(0, dtype=int)
    if scale is None:
        scale = float(np.max(np.abs(v)))
    order = np.argsort(v, kind="stable")
    gaps = np.diff(v[order]) > rtol * scale
    groups = np.empty(v.size, dtype=int)
    groups[order] = np.concatenate([[0], np.cumsum(gaps)])
    return groups


def rank_blocks(matrix: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Rank methods within each block (row): 1 = best; values tied at TIE_RTOL (see tie_groups)
    get the average of their ranks."""
    matrix = _check_matrix(matrix)
    values = matrix.to_numpy(dtype=float)
    oriented = -values if higher_is_better else values
    ranks = np.vstack([st.rankdata(tie_groups(row), method="average") for row in oriented])
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
    """Pairwise Nemenyi p-values (methods x methods), for the CD diagram.

    p_ij = P(Q > sqrt(2) |R_i - R_j| / sqrt(k(k+1)/(6N))), Q the studentized range of k means with
    infinite df: scikit-posthocs' posthoc_nemenyi_friedman, computed from this module's ranks so
    that float ties are treated the same way as in the Friedman test.
    """
    result = friedman(matrix, higher_is_better)
    r = result.mean_ranks.to_numpy()
    q = np.sqrt(2.0) * np.abs(r[:, None] - r[None, :]) / result.rank_se
    p = np.clip(st.studentized_range.sf(q, result.n_methods, np.inf), 0.0, 1.0)
    np.fill_diagonal(p, 1.0)
    return pd.DataFrame(p, index=matrix.columns, columns=matrix.columns)


# --------------------------------------------------------------------------- paired per-case tests
@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of control - other over paired units (cases)."""

    n_pairs: int
    n_nonzero: int
    mean_difference: float
    median_difference: float
    statistic: float  # W = min(W+, W-)
    p: float
    rank_biserial: float  # (W+ - W-) / (W+ + W-) over non-zero differences, in [-1, 1]
    w_plus: float = 0.0
    w_minus: float = 0.0
    method: str = "exact"  # "exact" or "normal"


def signed_rank_exact_p(ranks, w_plus: float) -> float:
    """Two-sided exact p of W+ = w_plus: 2 min(P(W+ <= w), P(W+ >= w)), capped at 1, over the 2^n
    equally likely sign patterns of the given (possibly tied, so half-integer) ranks."""
    doubled = np.rint(2.0 * np.asarray(ranks, dtype=float)).astype(np.int64)
    total = int(doubled.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for r in doubled:  # distribution of the doubled sum, halved at each step to stay a probability
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[: total + 1 - r]
        dist = 0.5 * (dist + shifted)
    w2 = int(np.rint(2.0 * w_plus))
    lower, upper = float(dist[: w2 + 1].sum()), float(dist[w2:].sum())
    return min(1.0, 2.0 * min(lower, upper))


def signed_rank_normal_p(ranks, w_plus: float) -> float:
    """Two-sided normal-approximation p of W+: mean sum(r)/2, variance sum(r^2)/4 (exact given the
    tied ranks), continuity correction 0.5."""
    ranks = np.asarray(ranks, dtype=float)
    mean = ranks.sum() / 2.0
    sd = np.sqrt((ranks**2).sum() / 4.0)
    z = max(abs(w_plus - mean) - 0.5, 0.0) / sd
    return float(min(1.0, 2.0 * st.norm.sf(z)))


def wilcoxon_paired(control, other) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test with the matched-pairs rank-biserial effect size.

    See WILCOXON_METHOD: zeros (at TIE_RTOL of the largest |value| of both samples) are dropped,
    tied |differences| share average ranks, p is exact up to EXACT_MAX_PAIRS non-zero pairs.
    A positive effect size means the control's values are larger.
    """
    x = np.asarray(control, dtype=float)
    y = np.asarray(other, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise StatsInputError(f"paired samples must be 1-D of equal length, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StatsInputError("paired samples contain NaN or inf; apply the undefined-value rule first "
                              "(analysis.policy.fill_undefined)")
    n = x.size
    if n == 0:
        raise StatsInputError("paired test needs at least one pair")
    d = x - y
    scale = float(max(np.abs(x).max(), np.abs(y).max()))
    tol = TIE_RTOL * scale
    nonzero = d[np.abs(d) > tol]
    m = nonzero.size
    if m == 0:  # identical samples (at the tolerance): no evidence of a difference
        return PairedTest(n, 0, float(d.mean()), float(np.median(d)), 0.0, 1.0, 0.0, 0.0, 0.0, "exact")
    ranks = st.rankdata(tie_groups(np.abs(nonzero), scale=scale), method="average")
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    if m <= EXACT_MAX_PAIRS:
        method, p = "exact", signed_rank_exact_p(ranks, w_plus)
    else:
        method, p = "normal", signed_rank_normal_p(ranks, w_plus)
    return PairedTest(
        n_pairs=n,
        n_nonzero=m,
        mean_difference=float(d.mean()),
        median_difference=float(np.median(d)),
        statistic=min(w_plus, w_minus),
        p=p,
        rank_biserial=(w_plus - w_minus) / (w_plus + w_minus),
        w_plus=w_plus,
        w_minus=w_minus,
        method=method,
    )


# --------------------------------------------------------------------------- Bayesian signed-rank
@dataclass(frozen=True)
class BayesianSignedRank:
    """Posterior probabilities that the control is better by more than the ROPE, within it, worse."""

    p_better: float
    p_equivalent: float
    p_worse: float
    n_blocks: int
    rope: float
    identical: bool = False  # every difference is zero at the tie tolerance

    def decision(self, threshold: float = BAYES_DECISION) -> str:
        """'no difference' (identical samples), 'too few blocks' (fewer than min_blocks_for(threshold)),
        else 'better', 'equivalent', 'worse' (a probability >= threshold) or 'undecided'."""
        if self.identical:
            return "no difference"
        if self.n_blocks < min_blocks_for(threshold):
            return "too few blocks"
        for name, p in (("better", self.p_better), ("equivalent", self.p_equivalent), ("worse", self.p_worse)):
            if p >= threshold:
                return name
        return "undecided"


def decimal_quantum(scale: float, rtol: float = TIE_RTOL) -> float:
    """The largest power of ten not above rtol x scale (1 for scale 0): the grid differences are
    rounded to before baycomp, so decimal data (fewer decimals than the grid) land on it exactly."""
    tol = rtol * float(scale)
    return 10.0 ** np.floor(np.log10(tol)) if tol > 0 else 1.0


def bayesian_signed_rank(control, other, rope: float, higher_is_better: bool = True, prior: float = BAYES_PRIOR,
                         nsamples: int = BAYES_SAMPLES, seed: int = 0) -> BayesianSignedRank:
    """Bayesian signed-rank test (Benavoli et al. 2017) of the control against one method over blocks.

    baycomp's SignedRankTest: a Dirichlet process posterior on the distribution of the differences,
    with a prior pseudo-observation at 0 of strength `prior`; `rope` is the half-width of the region
    of practical equivalence in the values' unit. For a lower-is-better metric the differences are
    negated, so "better" always means better for the metric.

    The differences and the ROPE are passed to baycomp as integers in units of
    `decimal_quantum(largest |value|)`, so that a pair sum equal to 2 x ROPE in decimal is equal in
    the test too (baycomp counts such a pair half in and half out). Identical samples (every
    difference zero at that grid) are returned without sampling: P(equivalent) = 1 with a ROPE,
    P(better) = P(worse) = 0.5 without one (the posterior is symmetric; baycomp's argmax would
    split its float-noise ties unevenly), and `decision()` is 'no difference'.
    """
    from baycomp import SignedRankTest

    x = np.asarray(control, dtype=float)
    y = np.asarray(other, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise StatsInputError(f"the Bayesian signed-rank test needs two 1-D samples of equal length >= 2, "
                              f"got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StatsInputError("the Bayesian signed-rank test needs finite values")
    if rope < 0:
        raise StatsInputError(f"the ROPE must be >= 0, got {rope}")
    quantum = decimal_quantum(max(np.abs(x).max(), np.abs(y).max()))
    sign = 1.0 if higher_is_better else -1.0
    # baycomp: the first sample "left" is better when the differences y - x lie below -ROPE
    diff = np.rint(sign * (y - x) / quantum)
    rope_q = float(np.rint(rope / quantum))
    if rope > 0 and rope_q == 0:
        raise StatsInputError(f"the ROPE {rope:g} is below the tie tolerance of these values ({quantum:g}); "
                              "use --rope 0 for no equivalence region")
    if not diff.any():
        better, within = (0.0, 1.0) if rope_q > 0 else (0.5, 0.0)
        return BayesianSignedRank(better, within, better, int(x.size), float(rope), identical=True)
    probs = SignedRankTest.probs(np.zeros_like(diff), diff, rope=rope_q, prior=prior, nsamples=nsamples,
                                 random_state=seed)
    if rope_q > 0:
        left, within, right = (float(v) for v in probs)
    else:
        left, right = (float(v) for v in probs)
        within = 0.0
    return BayesianSignedRank(left, within, right, int(x.size), float(rope))


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



# ---------------------------------------------------------------------------------- rank agreement
@dataclass
class RankAgreement:
    """Kendall's tau-b between two rankings of the same methods, with its exact permutation p."""

    tau: float
    p_value: float  # one-sided: P(tau >= observed) over all n! pairings of the two rankings
    n_methods: int
    methods: tuple[str, ...]


def rank_agreement(ours: dict[str, float], reference: dict[str, float]) -> RankAgreement:
    """How far the mean ranks `ours` agree with `reference` (e.g. the paper's ranks), over the
    methods both rank: Kendall's tau-b (scipy.stats.kendalltau; ties allowed) and the one-sided
    exact permutation p of agreement, enumerating every pairing (scipy.stats.permutation_test with
    n_resamples=inf; at most 8! = 40320 for the paper's eight methods)."""
    from scipy.stats import kendalltau, permutation_test

    methods = tuple(m for m in ours if m in reference)
    n = len(methods)
    if n < 3:
        raise StatsInputError(f"rank agreement needs at least 3 methods ranked in both, got {n} ({list(methods)})")
    if n > 10:
        raise StatsInputError(f"the exact permutation p enumerates n! pairings; {n} methods are too many")
    x = np.array([float(ours[m]) for m in methods])
    y = np.array([float(reference[m]) for m in methods])
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StatsInputError("rank agreement needs finite ranks")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise StatsInputError("rank agreement needs rankings that are not all tied")

    def statistic(a):
        return kendalltau(a, y).statistic

    # one sample permuted against the other held fixed: the n! pairings (permuting both samples
    # would enumerate (n!)^2 orderings for the same n! pairings: 25 million for seven methods)
    test = permutation_test((x,), statistic, permutation_type="pairings", n_resamples=np.inf,
                            alternative="greater")
    return RankAgreement(float(statistic(x)), float(test.pvalue), n, methods)
