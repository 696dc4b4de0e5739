"""Statistics: the paper's Table 2, Demšar's worked example, Finner/Holm against their definitions."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from analysis import stats

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"

# Demšar (2006), Table 6: AUC of C4.5 variants on 14 data sets. The voting row is printed as a
# tie (0.975, 0.975); the paper's ranks come from unrounded values, hence 0.97501.
DEMSAR = pd.DataFrame(
    [[0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
     [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
     [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
     [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
     [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970]],
    columns=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"],
)


def paper_dice_matrix() -> pd.DataFrame:
    t1 = pd.read_csv(REFERENCE / "table1.csv")
    t1 = t1[t1["method"] != "suponly"]  # the paper ranks k = 7 methods
    return t1.pivot_table(index=["dataset", "ratio"], columns="method", values="dice")


def test_paper_table2_reproduced_from_table1_dice_to_printed_precision():
    published = pd.read_csv(REFERENCE / "table2.csv").set_index("method")
    result = stats.friedman(paper_dice_matrix(), higher_is_better=True)
    assert (result.n_blocks, result.n_methods) == (6, 7)
    table = stats.compare_with_control(result, "spcl").set_index("method")
    for method, row in published.iterrows():
        assert round(table.loc[method, "rank"], 4) == pytest.approx(row["rank"], abs=1e-12), method
        if method == "spcl":
            assert np.isnan(table.loc[method, "z"])
            continue
        assert round(table.loc[method, "z"], 6) == pytest.approx(row["z"], abs=1e-12), method
        assert round(table.loc[method, "p"], 6) == pytest.approx(row["p"], abs=1e-12), method
        assert round(table.loc[method, "p_finner"], 6) == pytest.approx(row["p_finner"], abs=1e-12), method


def test_paper_table2_omnibus_by_hand():
    result = stats.friedman(paper_dice_matrix())
    # sum R_j^2 = (6.8333^2 + 4.8333^2 + 5.6667^2 + 3.3333^2 + 4^2 + 2.3333^2 + 1^2) = 135.7222
    ranks = np.array([41, 29, 34, 20, 24, 14, 6]) / 6.0
    chi2 = 12 * 6 / (7 * 8) * ((ranks**2).sum() - 7 * 64 / 4)
    assert result.chi2 == pytest.approx(chi2) == pytest.approx(30.5)
    assert result.iman_davenport_f == pytest.approx(5 * 30.5 / (36 - 30.5))
    assert (result.df1, result.df2) == (6, 30)


def test_demsar_2006_worked_example():
    result = stats.friedman(DEMSAR, higher_is_better=True)
    assert result.mean_ranks.round(3).tolist() == [3.143, 2.000, 2.893, 1.964]
    assert round(result.chi2, 2) == 9.28
    assert round(result.iman_davenport_f, 2) == 3.69
    assert round(stats.nemenyi_critical_difference(4, 14, alpha=0.05), 3) == 1.254
    table = stats.compare_with_control(result, "C4.5").set_index("method")
    assert table.loc[["C4.5+m", "C4.5+cf", "C4.5+m+cf"], "z"].round(3).tolist() == [-2.342, -0.512, -2.415]
    assert table.loc[["C4.5+m", "C4.5+cf", "C4.5+m+cf"], "p"].round(4).tolist() == [0.0192, 0.6084, 0.0157]
    assert table.loc[["C4.5+m", "C4.5+cf", "C4.5+m+cf"], "p_finner"].round(4).tolist() == [0.0464, 0.6084, 0.0464]
    assert table.loc[["C4.5+m", "C4.5+cf", "C4.5+m+cf"], "p_holm"].round(4).tolist() == [0.0472, 0.6084, 0.0472]


def test_friedman_statistic_is_uncorrected_for_ties():
    # scipy applies a tie correction (10.23 on Demšar's data); the published convention does not.
    scipy_chi2 = st.friedmanchisquare(*DEMSAR.T.to_numpy()).statistic
    assert scipy_chi2 > stats.friedman(DEMSAR).chi2 + 0.5


def test_ranks_average_ties_and_follow_direction():
    m = pd.DataFrame({"a": [0.9, 0.5], "b": [0.9, 0.7], "c": [0.1, 0.7]})
    assert stats.rank_blocks(m, higher_is_better=True).to_numpy().tolist() == [[1.5, 1.5, 3.0], [3.0, 1.5, 1.5]]
    assert stats.rank_blocks(m, higher_is_better=False).to_numpy().tolist() == [[2.5, 2.5, 1.0], [1.0, 2.5, 2.5]]


def test_identical_rankings_give_unbounded_iman_davenport():
    m = pd.DataFrame({"a": [3.0, 2.0, 5.0], "b": [2.0, 1.0, 4.0], "c": [1.0, 0.0, 3.0]})
    result = stats.friedman(m)
    assert result.chi2 == pytest.approx(result.n_blocks * (result.n_methods - 1))  # N(k-1) = 6
    assert np.isinf(result.iman_davenport_f) and result.iman_davenport_p == 0.0


def finner_by_definition(p: np.ndarray) -> np.ndarray:
    """Loops straight from the definition: p_adj(i) = min(1, max_{j<=i} 1-(1-p_(j))^(m/j))."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order, start=1):
        running = max(running, 1 - (1 - p[idx]) ** (m / rank))
        out[idx] = min(1.0, running)
    return out


def test_finner_matches_definition_and_step_down_rule_on_random_pvalues():
    rng = np.random.default_rng(0)
    for trial in range(500):
        m = int(rng.integers(1, 12))
        p = rng.random(m) ** rng.uniform(0.5, 4)  # many small p-values, some ties below
        if trial % 7 == 0:
            p[: m // 2] = p[0]
        adjusted = stats.finner(p)
        np.testing.assert_allclose(adjusted, finner_by_definition(p), rtol=0, atol=1e-15)
        assert np.all(adjusted >= p - 1e-15) and np.all(adjusted <= 1)
        # Finner's step-down test: reject H_(1..i) while p_(j) <= 1 - (1-alpha)^(j/m).
        for alpha in (0.05, 0.1):
            sorted_p = np.sort(p)
            thresholds = 1 - (1 - alpha) ** (np.arange(1, m + 1) / m)
            n_reject = int(np.argmin(sorted_p <= thresholds)) if not np.all(sorted_p <= thresholds) else m
            assert int((adjusted <= alpha).sum()) == n_reject


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(1)
    for _ in range(100):
        p = rng.random(int(rng.integers(1, 10))) ** 3
        np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1], atol=1e-14)


def test_adjustment_rejects_bad_input():
    with pytest.raises(stats.StatsInputError, match="unknown p-value adjustment 'bonf'"):
        stats.adjust([0.1], "bonf")
    with pytest.raises(stats.StatsInputError, match=r"\[0, 1\]"):
        stats.finner([0.2, np.nan])


def test_friedman_input_errors_are_clear():
    with pytest.raises(stats.StatsInputError, match="at least 2 blocks"):
        stats.friedman(pd.DataFrame({"a": [1.0], "b": [2.0]}))
    with pytest.raises(stats.StatsInputError, match="at least 2 methods"):
        stats.friedman(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(stats.StatsInputError, match="missing values"):
        stats.friedman(pd.DataFrame({"a": [1.0, np.nan], "b": [2.0, 1.0]}, index=["s1", "s2"]))
    result = stats.friedman(pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]}))
    with pytest.raises(stats.StatsInputError, match="control method 'zz'"):
        stats.compare_with_control(result, "zz")


def test_nemenyi_pairwise_is_symmetric_and_agrees_with_cd():
    result = stats.friedman(DEMSAR)
    pairwise = stats.nemenyi_pairwise(DEMSAR)
    assert np.allclose(pairwise.to_numpy(), pairwise.to_numpy().T)
    cd = stats.nemenyi_critical_difference(4, 14, alpha=0.05)
    diff = abs(result.mean_ranks["C4.5"] - result.mean_ranks["C4.5+m+cf"])  # 1.179 < CD 1.254
    assert diff < cd and pairwise.loc["C4.5", "C4.5+m+cf"] > 0.05


def test_wilcoxon_paired_matches_scipy_and_rank_biserial_by_hand():
    control = np.array([0.9, 0.8, 0.85, 0.7, 0.95, 0.6, 0.75])
    other = np.array([0.8, 0.82, 0.80, 0.7, 0.90, 0.5, 0.70])
    # differences 0.1, -0.02, 0.05, 0 (dropped), 0.05, 0.1, 0.05 -> |d| ranks: 0.02->1, 0.05->3 (x3), 0.1->5.5 (x2)
    test = stats.wilcoxon_paired(control, other)
    w_plus, w_minus = 3 + 3 + 3 + 5.5 + 5.5, 1.0
    assert test.rank_biserial == pytest.approx((w_plus - w_minus) / (w_plus + w_minus))
    assert (test.n_pairs, test.n_nonzero) == (7, 6)
    assert test.p == pytest.approx(st.wilcoxon(control - other, zero_method="wilcox").pvalue)
    same = stats.wilcoxon_paired(control, control)
    assert (same.p, same.rank_biserial) == (1.0, 0.0)


def test_bootstrap_interval_properties():
    constant = np.full((8, 3), 0.5)
    assert stats.bootstrap_mean_ci(constant) == (0.5, 0.5, 0.5)
    rng = np.random.default_rng(0)
    values = rng.normal(0.8, 0.05, size=(30, 3))
    mean, low, high = stats.bootstrap_mean_ci(values, n_boot=500, seed=3)
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert stats.bootstrap_mean_ci(values, n_boot=500, seed=3) == (mean, low, high)
    # a seed effect widens the interval: the same cases, seeds shifted by +-0.05
    shifted = values + np.array([-0.05, 0.0, 0.05])
    _, low2, high2 = stats.bootstrap_mean_ci(shifted, n_boot=500, seed=3)
    assert high2 - low2 > high - low
    with_missing = values.copy()
    with_missing[0, 0] = np.nan
    assert np.isfinite(stats.bootstrap_mean_ci(with_missing, n_boot=200)).all()
    with pytest.raises(stats.StatsInputError, match="non-empty"):
        stats.bootstrap_mean_ci(np.full((3, 2), np.nan))


# --------------------------------------------------------------------------- ties at a tolerance
# Differences equal in decimal but not in binary (0.825 - 0.775 != 0.375 - 0.325 in float64) must
# tie: ranked as unequal they give r = -0.095; the same table in integers gives +0.143.
FLOAT_CONTROL = [0.500, 0.825, 0.375, 0.500, 0.700, 0.300]
FLOAT_OTHER = [0.525, 0.775, 0.325, 0.550, 0.650, 0.350]


def test_float_ties_give_the_integer_tables_w_p_and_r():
    assert len({round(a - b, 17) for a, b in zip(FLOAT_CONTROL, FLOAT_OTHER)}) > 2  # the trap is real
    as_float = stats.wilcoxon_paired(FLOAT_CONTROL, FLOAT_OTHER)
    as_int = stats.wilcoxon_paired([500, 825, 375, 500, 700, 300], [525, 775, 325, 550, 650, 350])
    # d = -25, +50, +50, -50, +50, -50: |d| ranks 1 and five ties at (2+...+6)/5 = 4
    # W+ = 3 x 4 = 12, W- = 1 + 2 x 4 = 9, W = 9, r = (12 - 9) / 21 = +0.143.
    # Exact: W+ = s + 4j (s in {0, 1}, j of 5 positive 4s); P(W+ >= 12) = (2 C(5,3) + 2 C(5,4) + 2) / 64
    # = 32/64, so p = min(1, 2 x 0.5) = 1.
    for test in (as_float, as_int):
        assert (test.w_plus, test.w_minus, test.statistic) == (12.0, 9.0, 9.0)
        assert test.rank_biserial == pytest.approx(3 / 21)
        assert test.p == 1.0 and test.method == "exact" and test.n_nonzero == 6


def test_zero_differences_at_the_tolerance_are_dropped():
    control = np.array([0.3, 0.9, 0.8, 0.7, 0.6])
    other = np.array([0.1 + 0.2, 0.5, 0.5, 0.5, 0.5])  # 0.1 + 0.2 = 0.30000000000000004
    test = stats.wilcoxon_paired(control, other)
    # one zero dropped; |d| = 0.4, 0.3, 0.2, 0.1 all positive: W+ = 10, W- = 0, exact p = 2 / 2^4
    assert (test.n_pairs, test.n_nonzero, test.w_plus, test.w_minus) == (5, 4, 10.0, 0.0)
    assert test.p == pytest.approx(0.125) and test.rank_biserial == 1.0


def test_friedman_ranks_ties_at_the_tolerance():
    m = pd.DataFrame({"a": [0.1 + 0.2, 0.5], "b": [0.3, 0.7], "c": [0.2, 0.7 + 1e-12]})
    # block 1: a and b equal at the tolerance (ranks 1.5, 1.5), c 3; block 2: b and c tied (1e-12 < 1e-9 x 0.7)
    assert stats.rank_blocks(m).to_numpy().tolist() == [[1.5, 1.5, 3.0], [3.0, 1.5, 1.5]]
    # a real difference far below anything printed still counts (Demšar's 0.97501 vs 0.975 is 1e-5)
    close = pd.DataFrame({"a": [0.975, 0.5], "b": [0.97501, 0.4]})
    assert stats.rank_blocks(close).to_numpy().tolist() == [[2.0, 1.0], [1.0, 2.0]]
    assert stats.tie_groups([0.3, 0.1 + 0.2, 0.2, 0.4]).tolist() == [1, 1, 0, 2]


def test_exact_signed_rank_p_matches_scipy_without_ties_and_by_enumeration_with_ties():
    d = np.array([0.9, -0.2, 1.4, 0.5, -0.7, 1.1, 0.3, 1.8, -0.4, 0.6])  # no ties, no zeros
    assert stats.wilcoxon_paired(d, np.zeros_like(d)).p == pytest.approx(
        st.wilcoxon(d, method="exact").pvalue, abs=1e-15)
    # with ties: enumerate all 2^6 sign patterns of the ranks 1, 2.5, 2.5, 4, 5.5, 5.5
    ranks = np.array([1, 2.5, 2.5, 4, 5.5, 5.5])
    signs = np.array(np.meshgrid(*[[0, 1]] * 6)).reshape(6, -1).T
    w_all = signs @ ranks
    for w in (3.5, 9.0, 10.5, 15.0):
        want = min(1.0, 2 * min((w_all <= w).mean(), (w_all >= w).mean()))
        assert stats.signed_rank_exact_p(ranks, w) == pytest.approx(want, abs=1e-15)


def test_normal_approximation_above_the_exact_limit_by_formula():
    n = stats.EXACT_MAX_PAIRS + 20
    d = np.where(np.arange(n) % 3 == 0, -1.0, 1.0) * (1 + np.arange(n) // 2)  # many tied pairs of |d|
    test = stats.wilcoxon_paired(d, np.zeros(n))
    ranks = st.rankdata(np.abs(d))
    w_plus = ranks[d > 0].sum()
    z = (abs(w_plus - ranks.sum() / 2) - 0.5) / np.sqrt((ranks**2).sum() / 4)
    assert test.method == "normal" and test.w_plus == w_plus
    assert test.p == pytest.approx(2 * st.norm.sf(z), rel=1e-12)
    # scipy's normal approximation with tie correction and continuity correction agrees
    assert test.p == pytest.approx(st.wilcoxon(d, method="approx", correction=True).pvalue, rel=1e-9)


def test_nemenyi_pairwise_matches_scikit_posthocs_without_ties():
    import scikit_posthocs as sp

    ours = stats.nemenyi_pairwise(DEMSAR)
    theirs = sp.posthoc_nemenyi_friedman(-DEMSAR.to_numpy())
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), atol=1e-12)


# --------------------------------------------------------------------------- Bayesian signed-rank
def test_bayesian_signed_rank_by_hand():
    control = np.array([80.0, 82.0, 85.0, 79.0, 90.0, 88.0])
    # every difference 0.5 < ROPE 1: every Walsh average (pseudo-observation 0 included) is in the ROPE
    eq = stats.bayesian_signed_rank(control, control - 0.5, rope=1.0, nsamples=2000, seed=1)
    assert (eq.p_better, eq.p_equivalent, eq.p_worse) == (0.0, 1.0, 0.0) and eq.decision() == "equivalent"
    # two blocks, both differences 5 > ROPE: only the prior's own pair (0, 0) is in the ROPE, so
    # theta_rope = w0^2 and theta_better = 1 - w0^2 with w0 ~ Beta(0.5, 2) (the Dirichlet(0.5, 1, 1)
    # marginal). baycomp reports P(a region is the most probable one): better iff w0 < 1/sqrt 2, so
    # P(better) = Beta(0.5, 2).cdf(1/sqrt 2) = 0.9640 and P(equivalent) = 1 - that.
    two = control[:2]
    better = stats.bayesian_signed_rank(two, two - 5.0, rope=1.0, nsamples=20000, seed=2)
    assert better.p_better == pytest.approx(st.beta(0.5, 2).cdf(1 / np.sqrt(2)), abs=0.01)  # 4 SE of 20000 draws
    assert better.p_equivalent == pytest.approx(1 - better.p_better) and better.p_worse == 0.0
    # ... which is the same for any two differences beyond 2 x ROPE: two blocks decide nothing
    assert better.decision() == "too few blocks" and better.decision(0.75) == "better"  # N >= 2 suffices at 0.75
    # a lower-is-better metric: the smaller control is the better one
    hd = stats.bayesian_signed_rank(two - 5.0, two, rope=1.0, higher_is_better=False, nsamples=20000, seed=2)
    assert (hd.p_better, hd.p_equivalent, hd.p_worse) == (better.p_better, better.p_equivalent, better.p_worse)
    assert stats.bayesian_signed_rank(control, control - 5.0, rope=1.0, nsamples=500, seed=3) == \
        stats.bayesian_signed_rank(control, control - 5.0, rope=1.0, nsamples=500, seed=3)  # seeded
    with pytest.raises(stats.StatsInputError, match="finite values"):
        stats.bayesian_signed_rank(control, np.r_[control[:-1], np.nan], rope=1.0)


def test_bayesian_minimum_blocks_is_the_signed_rank_minimum():
    # the smallest one-sided signed-rank p with N blocks is 2^-N: 1/16 > 0.05 >= 1/32, 1/8 > 0.1 >= 1/16
    assert (stats.min_blocks_for(0.95), stats.min_blocks_for(0.9), stats.min_blocks_for(0.75)) == (5, 4, 2)
    assert stats.BAYES_MIN_BLOCKS == 5
    control = np.array([80.0, 82.0, 85.0, 79.0, 90.0])
    four = stats.bayesian_signed_rank(control[:4], control[:4] - 5.0, rope=1.0, nsamples=2000)
    five = stats.bayesian_signed_rank(control, control - 5.0, rope=1.0, nsamples=2000)
    assert four.decision() == "too few blocks" and five.decision() == "better"


def test_bayesian_signed_rank_rounds_to_the_decimal_grid():
    assert stats.decimal_quantum(90.0) == 1e-8 and stats.decimal_quantum(0.9) == 1e-10
    assert stats.decimal_quantum(0.0) == 1.0
    # every difference is exactly 0.01 = ROPE in decimal; in binary 0.51 - 0.50 and 80.11 - 80.10 are
    # not 0.01, and baycomp alone calls one table 'better' (0.957) and the other undecided (0.513).
    # On the grid each pair sum equals 2 x ROPE and counts half: both tables are the same test.
    a = np.array([0.51, 0.62, 0.73, 0.84, 0.45, 0.66])
    c = np.array([80.11, 70.21, 60.31, 50.41, 40.51, 30.61])
    first = stats.bayesian_signed_rank(a, a - 0.01, rope=0.01, nsamples=3000)
    second = stats.bayesian_signed_rank(c, c - 0.01, rope=0.01, nsamples=3000)
    assert (first.p_better, first.p_equivalent, first.p_worse) == (second.p_better, second.p_equivalent,
                                                                    second.p_worse)
    # theta_better = half the mass of the data pairs, (1 - w0)^2 / 2 < theta_rope: equivalent in every draw
    assert first.p_equivalent == 1.0 and first.decision() == "equivalent"


def test_bayesian_signed_rank_paper_table1_spcl_against_bass():
    # SPCL - BASS in the paper's Table 1: 1.06, 0.89, 0.97, 0.94, 0.97, 1.01 Dice points. With a 1-point
    # ROPE, 1.06 + 0.94 = 2 x ROPE exactly (1.06 + 0.94 is 2.0000000000000142 in binary).
    t1 = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "reference" / "table1.csv")
    dice = t1.pivot_table(index=["dataset", "ratio"], columns="method", values="dice")
    test = stats.bayesian_signed_rank(dice["spcl"].to_numpy(), dice["bass"].to_numpy(), rope=1.0, seed=0)
    assert test.n_blocks == 6
    assert test.p_equivalent == pytest.approx(0.92, abs=0.01) and test.p_worse == 0.0
    assert test.decision() == "undecided"


def test_bayesian_signed_rank_identical_methods():
    values = np.array([80.0, 82.0, 85.0, 79.0, 90.0, 88.0])
    no_rope = stats.bayesian_signed_rank(values, values.copy(), rope=0.0)
    assert (no_rope.p_better, no_rope.p_equivalent, no_rope.p_worse) == (0.5, 0.0, 0.5)
    assert no_rope.identical and no_rope.decision() == "no difference"
    # equal up to float noise (fractions x 100) is identical too
    noisy = stats.bayesian_signed_rank(values / 100 * 100, values * 1.0, rope=1.0)
    assert (noisy.p_better, noisy.p_equivalent, noisy.p_worse) == (0.0, 1.0, 0.0)
    assert noisy.decision() == "no difference"


def test_rank_agreement_kendall_tau_and_its_exact_permutation_p():
    # one swapped pair among 4: 5 concordant, 1 discordant pair -> tau = (5 - 1) / 6; the pairings
    # with tau >= 2/3 are those with at most one inversion: 1 + 3 of 4! = 24 -> p = 4 / 24
    one_swap = stats.rank_agreement({"a": 1, "b": 2, "c": 3, "d": 4}, {"d": 3, "c": 4, "b": 2, "a": 1, "e": 9})
    assert one_swap.tau == pytest.approx(4 / 6) and one_swap.p_value == pytest.approx(4 / 24)
    assert one_swap.methods == ("a", "b", "c", "d") and one_swap.n_methods == 4  # matched by name, "e" unranked here
    same = stats.rank_agreement(dict(zip("abcde", [1.5, 2.0, 3.25, 4.0, 5.0])), dict(zip("abcde", range(5))))
    assert same.tau == pytest.approx(1.0) and same.p_value == pytest.approx(1 / 120)
    # the paper's eight methods: the one identical pairing of 8! = 40320 (each enumerated once)
    eight = stats.rank_agreement(dict(zip("abcdefgh", range(8))), dict(zip("abcdefgh", range(8))))
    assert eight.p_value == pytest.approx(1 / 40320)
    reversed_ = stats.rank_agreement(dict(zip("abcd", [1, 2, 3, 4])), dict(zip("abcd", [4, 3, 2, 1])))
    assert reversed_.tau == pytest.approx(-1.0) and reversed_.p_value == pytest.approx(1.0)
    with pytest.raises(stats.StatsInputError, match="at least 3 methods"):
        stats.rank_agreement({"a": 1, "b": 2}, {"a": 1, "b": 2})
    with pytest.raises(stats.StatsInputError, match="not all tied"):
        stats.rank_agreement({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 3})
