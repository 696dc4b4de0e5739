"""End to end: the statistics CLI on small tables, and the full run analysis on a synthetic run."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from analysis import report, run
from analysis.synthetic import write_synthetic_run
from test_analysis_stats import DEMSAR  # tests/ is on sys.path (rootdir conftest, prepend mode)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"


def small_table(path: Path) -> Path:
    """3 settings x 3 methods x 6 cases; method 'c' is best everywhere, 'a' worst; one tie block."""
    noise = np.random.default_rng(0).normal(0, 0.01, size=(3, 6))
    rows = []
    for setting, (dataset, ratio) in enumerate([("acdc", 5), ("acdc", 10), ("scd", 10)]):
        levels = {"a": 0.70, "b": 0.70 if dataset == "scd" else 0.75, "c": 0.80}  # b ties a on scd
        for method, level in levels.items():
            for case in range(6):
                rows.append({"dataset": dataset, "ratio": ratio, "method": method, "case_id": f"p{case}",
                             "dice": level + noise[setting, case]})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_cli_writes_friedman_table_cd_diagram_and_report(tmp_path):
    table = small_table(tmp_path / "results.csv")
    out = tmp_path / "out"
    assert report.main(["--results", str(table), "--control", "c", "--metric", "dice", "--out", str(out),
                        "--bayes-samples", "4000"]) == 0
    friedman = pd.read_csv(out / "friedman.csv")
    assert friedman.columns.tolist() == ["method", "rank", "z", "p", "p_finner"]
    ranks = friedman.set_index("method")["rank"]
    # blocks: a<b<c, a<b<c, a=b<c  ->  R_a = (3+3+2.5)/3, R_b = (2+2+2.5)/3, R_c = 1
    assert ranks.to_dict() == pytest.approx({"a": 8.5 / 3, "b": 6.5 / 3, "c": 1.0})
    z_a = (8.5 / 3 - 1) / np.sqrt(3 * 4 / (6 * 3))
    assert friedman.set_index("method").loc["a", "z"] == pytest.approx(z_a)
    for name in ("cd_diagram.png", "cd_diagram.pdf", "report.md", "report.html", "omnibus.csv", "paired_tests.csv"):
        assert (out / name).is_file(), name
    text = (out / "report.md").read_text()
    assert "## Friedman ranks" in text and "![" in text
    # z_a = 1.8333 / 0.8165 = 2.245, p = 0.02477, Finner (m = 2, first) 1 - (1 - p)^2 = 0.04888;
    # z_b = 1.429, p = 0.153 = its Finner p (last of m = 2)
    assert ("After Finner's adjustment, c ranks significantly better (p_Finner ≤ 0.1) than a (0.04888) on this table "
            "(3 settings × 1 seed × 6 test cases; settings as blocks).") in text
    assert "The difference between c and b (p_Finner = 0.153) is not significant at α = 0.1." in text


def test_python_m_analysis_report_reproduces_paper_table2_from_table1_with_percent_ratios(tmp_path):
    t1 = pd.read_csv(REFERENCE / "table1.csv")  # Dice in percent, no case_id: one value per block
    t1["ratio"] = [f"{r:g}%" for r in t1["ratio"]]  # '10%', '2.5%': blocks are labels
    t1.to_csv(tmp_path / "table1.csv", index=False)
    out = tmp_path / "stats"
    done = subprocess.run([sys.executable, "-m", "analysis.report", "--results", str(tmp_path / "table1.csv"),
                           "--control", "spcl", "--metric", "dice", "--percent", "--exclude", "suponly",
                           "--out", str(out), "--bayes-samples", "20000"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = pd.read_csv(out / "friedman.csv").set_index("method")
    want = pd.read_csv(REFERENCE / "table2.csv").set_index("method")
    assert sorted(got.index) == sorted(want.index)
    for column, decimals in (("rank", 4), ("z", 6), ("p", 6), ("p_finner", 6)):  # as printed in the paper
        assert got.loc[want.index, column].round(decimals).fillna(-1).tolist() == \
            want[column].fillna(-1).tolist(), column
    text = (out / "report.md").read_text()
    assert "Blocks (dataset, ratio): 6 — SCD 10%, SCD 20%, ACDC 5%, ACDC 10%, M&Ms 2.5%, M&Ms 5%" in text
    # the paper: "significantly superior to all other methods except BASS"
    assert ("After Finner's adjustment, SPCL ranks significantly better (p_Finner ≤ 0.1) than ABD (0.07318), "
            "BUS (0.02414), DGCL (0.004227), AD-MT (0.0005483), UGPCL (1.746e-05) on this table (6 settings × 1 seed; settings as blocks).") in text
    assert "The difference between SPCL and BASS (p_Finner = 0.285) is not significant at α = 0.1." in text
    assert "not run — the table has no `case_id` column" in text
    bayes = pd.read_csv(out / "bayes_signed_rank.csv").set_index("method")
    # SPCL - BASS is 0.89 to 1.06 Dice points in every setting: mostly inside the 1-point ROPE
    assert bayes.loc["bass", "bayes"] == "undecided" and 0.8 < bayes.loc["bass", "p_equivalent"] < 0.95
    assert (bayes.drop("bass")["bayes"] == "better").all() and bayes["agree"].all()
    assert ("The Bayesian test (settings as blocks) and Finner's post-hoc (settings as blocks, α = 0.1) agree for "
            "every method") in text
    assert (bayes["view"] == "settings").all() and (bayes["n_blocks"] == 6).all()
    assert (out / "bayes_signed_rank.png").is_file() and (out / "cd_diagram.pdf").is_file()


def test_cli_errors_are_clear(tmp_path, capsys):
    table = small_table(tmp_path / "results.csv")
    assert report.main(["--results", str(table), "--control", "zz", "--out", str(tmp_path / "o")]) == 2
    assert "control method 'zz' has no 'default' rows; methods present: ['a', 'b', 'c']" in capsys.readouterr().err
    assert report.main(["--results", str(table), "--control", "c", "--metric", "hd95", "--out", str(tmp_path / "o")]) == 2
    assert "missing column(s) ['hd95']; a results table needs method, the block column(s) ['dataset', 'ratio'] " \
           "(--blocks) and the metric column(s) ['hd95']" in capsys.readouterr().err
    one = pd.read_csv(table)
    one[one["dataset"] == "scd"].to_csv(tmp_path / "one.csv", index=False)
    assert report.main(["--results", str(tmp_path / "one.csv"), "--control", "c", "--out", str(tmp_path / "o")]) == 2
    assert ("the Friedman test needs at least 2 settings (blocks: dataset, ratio) where every method has 'dice' "
            "values; complete settings: [('scd', '10')]") in capsys.readouterr().err


def test_full_run_produces_every_table_and_figure(tmp_path):
    results = write_synthetic_run(tmp_path / "phantom", n_cases=5, features_per_group=8, seeds=(0,),
                                  methods=("suponly", "bus", "bass", "spcl"))
    out = results / "analysis"
    assert run.main(["--results-dir", str(results), "--out", str(out), "--tsne-points", "40", "--tsne-iter", "60",
                     "--bootstrap", "200", "--bayes-samples", "2000"]) == 0
    figures = {p.name for p in (out / "figures").iterdir()}
    for stem in ("fig3_similarities", "fig4_tsne_methods", "fig5_threshold_sweep", "fig6_qualitative",
                 "fig7_tsne_relations", "cd_diagram", "bayes_signed_rank", "pseudo_label_curves_phantom_r10",
                 "pseudo_label_curves_phantom_r20"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= figures, stem
    tables = {p.name for p in (out / "tables").iterdir()}
    for stem in ("table1", "table3_phantom_10", "table4_phantom_10", "bcl_vs_infonce_phantom_10", "classes_phantom_20"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= tables, stem
    assert {"friedman.csv", "cases.csv", "paper_comparison.csv", "bootstrap_ci.csv", "bayes_signed_rank.csv",
            "pseudo_label_logs.csv"} <= tables
    text = (out / "REPORT.md").read_text()
    assert "Every table and figure was produced." in text
    assert "Not ranked (as in the paper's Table 2): SupOnly." in text
    # what the run can show comes first, from the run itself
    scope = text.split("## What this run can and cannot show")[1].split("\n## ")[0]
    assert "- Data: the synthetic cardiac phantom only." in scope
    assert "- Settings: 2 (Phantom 10%, Phantom 20%)." in scope and "uses the test cases as blocks" in scope
    assert "- Seeds: 1 per setting (the paper: 3 runs). With one training seed" in scope
    assert "- Test cases: 5 per setting" in scope
    assert "Bayesian (test cases as blocks)" in text
    boot = pd.read_csv(out / "tables" / "bootstrap_ci.csv")
    assert set(boot["method"]) == {"suponly", "bus", "bass", "spcl"}  # SupOnly too, though not ranked
    assert "- [What this run can and cannot show](#what-this-run-can-and-cannot-show)" in text
    assert "No cell of this run matches a published cell" in text
    assert "run_name: phantom" in text  # the resolved config
    html = (out / "REPORT.html").read_text()
    # 5 paper figures, CD, Bayesian, pseudo-label curves of the two settings
    assert html.count("data:image/png;base64,") == 9 and "<table>" in html
    assert '<a href="#run-configuration">Run configuration</a>' in html and '<h2 id="run-configuration">' in html


def test_full_run_without_figure_inputs_says_why(tmp_path):
    results = write_synthetic_run(tmp_path / "bare", n_cases=5, artefacts=False, sweep=None, ablation_setting=None,
                                  methods=("bass", "spcl"))
    out = results / "analysis"  # inside the results folder, as in the workflow
    for _ in range(2):  # the second analysis must not collect the first one's tables/cases.csv
        assert run.main(["--results-dir", str(results), "--out", str(out), "--bootstrap", "50",
                         "--bayes-samples", "500"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "No duplicate rows, no missing cells, no NaN or infinite metrics." in text
    for reason in ("fig3_similarities: not produced: needs similarities.npz",
                   "fig4_tsne_methods: not produced: needs features.npz",
                   "fig5_threshold_sweep: not produced: needs spcl runs with variants sweep_gs",
                   "fig6_qualitative: not produced: needs predictions",
                   "Table 3: SPCL components: no ablation runs"):
        assert reason in text, reason
    assert not (out / "figures" / "fig4_tsne_methods.png").exists()
    assert (out / "figures" / "cd_diagram.png").is_file()


def test_full_run_reports_a_missing_cell_and_nan(tmp_path):
    results = write_synthetic_run(tmp_path / "holes", n_cases=5, artefacts=False, sweep=None, ablation_setting=None,
                                  methods=("abd", "bass", "spcl"), seeds=(0, 1))
    (results / "eval" / "phantom" / "r20" / "abd" / "default" / "s1" / "metrics.csv").unlink()
    # a run whose training stopped: methods.evaluate leaves the header only and a failure record
    failed = results / "eval" / "phantom" / "r10" / "abd" / "default" / "s0"
    pd.read_csv(failed / "metrics.csv").iloc[:0].to_csv(failed / "metrics.csv", index=False)
    (failed / "failed.json").write_text('{"run": "x", "reason": "loss \'unsup\' is nan at iteration 812"}')
    csv = results / "eval" / "phantom" / "r10" / "bass" / "default" / "s0" / "metrics.csv"
    df = pd.read_csv(csv)
    df.loc[0, "dice"] = np.nan
    df.to_csv(csv, index=False)
    out = tmp_path / "analysis"
    assert run.main(["--results-dir", str(results), "--out", str(out), "--bootstrap", "50",
                     "--bayes-samples", "500"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "2 (method, setting, seed) cell(s) have no results at all." in text
    not_produced = text.split("## Not produced", 1)[1]
    assert "run `eval/phantom/r10/abd/default/s0`: training stopped: loss 'unsup' is nan at iteration 812" in not_produced
    assert "1 metric value(s) are undefined: 1 NaN, 0 infinite" in text
    # the whole-run analysis applies the same rule as analysis.report: a NaN Dice is a failure, 0
    assert ("1 undefined value(s) of the analysed metric(s) were replaced by the case's worst value before any "
            "mean, rank or test (dice: 0, the lower bound of an overlap;") in text
    cases = pd.read_csv(out / "tables" / "cases.csv")
    replaced = cases[(cases["method"] == "bass") & (cases["seed"] == 0) & (cases["ratio"] == 10)
                     & (cases["case_id"] == df.loc[0, "case_id"]) & (cases["class_name"] == df.loc[0, "class_name"])]
    assert replaced["dice"].tolist() == [0.0]
    assert "| phantom | 20.0 | abd | default | 1 |" in text.replace("20 |", "20.0 |")


def run_cli(tmp_path, frame, *args, name="t"):
    frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = tmp_path / name
    code = report.main(["--results", str(tmp_path / f"{name}.csv"), "--out", str(out), "--bayes-samples", "2000",
                        "--bootstrap", "200", *args])
    return code, out


def nan_trap() -> pd.DataFrame:
    """8 blocks x 5 cases. A beats C on every case; on the hardest case C predicts nothing, so its
    HD95 is undefined (NaN). Skipping the NaN gives C a mean of 4.0 against A's 14.8."""
    rows = []
    for dataset in ("acdc", "mnms", "scd", "phantom"):
        for ratio in (5, 10):
            for i, (a, c) in enumerate(zip([2.0, 3.0, 4.0, 5.0, 60.0], [2.5, 3.5, 4.5, 5.5, np.nan])):
                rows += [{"dataset": dataset, "ratio": ratio, "method": m, "case_id": f"p{i}", "hd95": v}
                         for m, v in (("a", a), ("c", c))]
    return pd.DataFrame(rows)


def test_eight_block_nan_example_ranks_a_first_in_every_test(tmp_path):
    table = nan_trap()
    skipping = table.groupby("method")["hd95"].mean()  # pandas skips NaN: c's failure would win
    assert skipping["c"] == pytest.approx(4.0) and skipping["a"] == pytest.approx(14.8)
    code, out = run_cli(tmp_path, table, "--control", "a", "--metric", "hd95", "--rope", "1")
    assert code == 0
    friedman = pd.read_csv(out / "friedman.csv").set_index("method")
    # C's NaN becomes the worst value on that case (A's 60): C = 15.2 > A = 14.8 in every block
    assert friedman["rank"].to_dict() == {"a": 1.0, "c": 2.0}
    z = 1.0 / np.sqrt(2 * 3 / (6 * 8))
    assert friedman.loc["c", "z"] == pytest.approx(z) and friedman.loc["c", "p"] == pytest.approx(2 * st.norm.sf(z))
    blocks = pd.read_csv(out / "blocks.csv").set_index("block")
    assert blocks.loc["ACDC 5%"].tolist() == pytest.approx([14.8, 15.2])
    paired = pd.read_csv(out / "paired_tests.csv").set_index(["scope", "method"])
    # per case: 40 pairs, 8 ties (both 60) dropped, 32 improvements of +0.5: W = 0, exact p = 2 / 2^32
    pooled = paired.loc[("all blocks", "c")]
    assert (pooled["n_pairs"], pooled["n_nonzero"], pooled["wilcoxon_w"], pooled["rank_biserial"]) == (40, 32, 0, 1)
    assert pooled["p"] == pytest.approx(2.0**-31, rel=1e-12) and pooled["p_method"] == "exact"
    assert paired.loc[("ACDC 5%", "c"), "p"] == pytest.approx(0.125)  # 4 non-zero of 5: 2 / 2^4
    text = (out / "report.md").read_text()
    assert ("After Finner's adjustment, a ranks significantly better (p_Finner ≤ 0.1) than c (0.004678) on this table "
            "(8 settings × 1 seed × 5 test cases; settings as blocks).") in text
    assert "Per case (all blocks), a is significantly better than c" in text
    assert "8 undefined value(s) of the analysed metric(s) were replaced by the case's worst value" in text
    # C loses only 0.4 mm per block: within a 1 mm ROPE, which the report sets against Finner's verdict
    assert ("Disagreement on c: Finner's post-hoc finds a significantly better (p_Finner = 0.004678 ≤ 0.1), but the "
            "Bayesian test (settings as blocks, N = 8) finds a practically equivalent to it (P = 1.000 ≥ 0.95).") in text


def inf_table(worst=None) -> pd.DataFrame:
    """2 blocks x 5 cases, methods a, b (and c); a and b are both +inf on case p0 of ACDC 5%."""
    rows = []
    for ratio in (5, 10):
        for i in range(5):
            for method, base in (("a", 2.0), ("b", 3.0), ("c", 4.0)):
                value = np.inf if (ratio == 5 and i == 0 and method != "c") else base + i + (0.1 if ratio == 10 else 0)
                row = {"dataset": "acdc", "ratio": ratio, "method": method, "case_id": f"p{i}", "hd95_mm": value}
                if worst is not None:
                    row["hd95_mm_worst"] = worst
                rows.append(row)
    return pd.DataFrame(rows)


def test_inf_on_both_sides_is_handled(tmp_path):
    code, out = run_cli(tmp_path, inf_table(), "--control", "a", "--metric", "hd95_mm", "--rope", "1", name="three")
    assert code == 0
    paired = pd.read_csv(out / "paired_tests.csv").set_index(["scope", "method"])
    # a and b both take c's 4.0 on that case: a tie, dropped as a zero difference
    assert paired.loc[("ACDC 5%", "b"), ["n_pairs", "n_nonzero"]].tolist() == [5, 4]
    assert np.isfinite(pd.read_csv(out / "bootstrap_ci.csv")[["mean", "ci_low", "ci_high"]].to_numpy()).all()
    assert "1 metric value(s)" not in (out / "report.md").read_text()
    assert "2 metric value(s) are undefined: 0 NaN, 2 infinite" in (out / "report.md").read_text()
    # with the image diagonal given, both become 300 mm
    two = inf_table(worst=300.0)
    two = two[two["method"] != "c"]
    code, out = run_cli(tmp_path, two, "--control", "a", "--metric", "hd95_mm", "--rope", "1", name="two")
    assert code == 0
    cases = pd.read_csv(out / "paired_tests.csv").set_index(["scope", "method"])
    assert cases.loc[("ACDC 5%", "b"), "n_nonzero"] == 4
    assert "hd95_mm: the row's 'hd95_mm_worst'" in (out / "report.md").read_text()
    # without it, no method has a value on that case: the case drops out for both alike
    code, out = run_cli(tmp_path, two.drop(columns="hd95_mm_worst"), "--control", "a", "--metric", "hd95_mm",
                        "--rope", "1", name="bare")
    assert code == 0
    cases = pd.read_csv(out / "paired_tests.csv").set_index(["scope", "method"])
    assert ("ACDC 5%", "b") not in cases.index  # 4 pairs left: below the 5 a test needs
    assert cases.loc[("all blocks", "b"), ["n_pairs", "n_nonzero"]].tolist() == [9, 9]
    blocks = pd.read_csv(out / "blocks.csv").set_index("block")
    assert blocks.loc["ACDC 5%"].tolist() == pytest.approx([4.5, 5.5])  # a: mean of 3..6 (p1-p4), b: 4..7
    assert ("2 value(s) are undefined for every method on their case, so those cases are left out of every "
            "method's mean and paired test alike") in (out / "report.md").read_text()


def test_unknown_metric_without_direction_is_refused(tmp_path, capsys):
    table = pd.read_csv(small_table(tmp_path / "s.csv")).rename(columns={"dice": "score"})
    code, _ = run_cli(tmp_path, table, "--control", "c", "--metric", "score")
    assert code == 2
    err = capsys.readouterr().err
    assert "metric 'score' is not a known metric name, so its direction is unknown" in err
    assert "--higher-is-better or --lower-is-better" in err
    code, out = run_cli(tmp_path, table, "--control", "c", "--metric", "score", "--higher-is-better", "--rope", "0.01")
    assert code == 0 and pd.read_csv(out / "friedman.csv").set_index("method").loc["c", "rank"] == 1.0
    code, out = run_cli(tmp_path, table.rename(columns={"score": "msd"}), "--control", "c", "--metric", "msd",
                        "--rope", "0.01", name="msd")  # a distance: c, the largest everywhere, now ranks last
    assert code == 0 and pd.read_csv(out / "friedman.csv").set_index("method").loc["c", "rank"] == 3.0


def test_percent_dice_needs_percent_in_the_cli_too(tmp_path, capsys):
    table = pd.read_csv(small_table(tmp_path / "s.csv"))
    table["dice"] *= 100
    code, _ = run_cli(tmp_path, table, "--control", "c")
    assert code == 2 and "must be a fraction in [0, 1] (the results schema), found" in capsys.readouterr().err
    code, out = run_cli(tmp_path, table, "--control", "c", "--percent")
    assert code == 0


def test_ten_percent_blocks_and_any_block_columns(tmp_path):
    numeric = pd.read_csv(small_table(tmp_path / "s.csv"))
    labelled = numeric.assign(ratio=[f"{r}%" for r in numeric["ratio"]])
    assert set(labelled["ratio"]) == {"5%", "10%"}
    code_n, out_n = run_cli(tmp_path, numeric, "--control", "c", name="numeric")
    code_l, out_l = run_cli(tmp_path, labelled, "--control", "c", name="labelled")
    assert code_n == code_l == 0
    pd.testing.assert_frame_equal(pd.read_csv(out_n / "friedman.csv"), pd.read_csv(out_l / "friedman.csv"))
    assert pd.read_csv(out_l / "blocks.csv")["block"].tolist() == ["SCD 10%", "ACDC 5%", "ACDC 10%"]  # paper order
    folds = numeric.assign(fold=[f"fold {i}" for i in numeric["dataset"].map({"acdc": 1, "scd": 2})]
                                + numeric["ratio"].astype(str)).drop(columns=["dataset", "ratio"])
    code_f, out_f = run_cli(tmp_path, folds, "--control", "c", "--blocks", "fold", name="folds")
    assert code_f == 0
    assert pd.read_csv(out_f / "friedman.csv")["rank"].tolist() == pd.read_csv(out_n / "friedman.csv")["rank"].tolist()


def test_demsar_table6_through_the_cli_with_blocks_as_labels(tmp_path):
    long = DEMSAR.assign(dataset=[f"data set {i + 1}" for i in range(len(DEMSAR))]).melt(
        id_vars="dataset", var_name="method", value_name="auc")
    code, out = run_cli(tmp_path, long, "--control", "C4.5", "--metric", "auc", "--higher-is-better", "--rope", "0.01",
                        "--blocks", "dataset", "--alpha", "0.05")
    assert code == 0
    ranks = pd.read_csv(out / "friedman.csv").set_index("method")["rank"]
    assert ranks.loc[["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]].round(3).tolist() == [3.143, 2.000, 2.893, 1.964]
    omnibus = pd.read_csv(out / "omnibus.csv").set_index("statistic")["value"]
    assert round(omnibus["friedman_chi2"], 2) == 9.28 and round(omnibus["iman_davenport_f"], 2) == 3.69
    assert round(omnibus["nemenyi_cd"], 3) == 1.254


def two_setting_table(with_cases: bool) -> pd.DataFrame:
    """2 settings x 3 methods (a control, b, suponly) x 6 cases; 'a' is 8 and 19 points above 'b'."""
    rows = []
    for ratio, gap in ((10, 0.08), (20, 0.19)):
        for i in range(6):
            for method, value in (("a", 0.70 + gap), ("b", 0.70), ("suponly", 0.72)):
                value += (0.01 * i if method == "a" else 0.0)  # distinct per-case differences
                rows.append({"dataset": "phantom", "ratio": ratio, "method": method, "case_id": f"p{i}",
                             "dice": value})
    table = pd.DataFrame(rows)
    return table if with_cases else table.groupby(["dataset", "ratio", "method"], as_index=False)["dice"].mean()


def test_two_blocks_give_no_bayesian_decision_and_say_why(tmp_path):
    code, out = run_cli(tmp_path, two_setting_table(with_cases=False), "--control", "a", name="two")
    assert code == 0
    bayes = pd.read_csv(out / "bayes_signed_rank.csv").set_index("method")
    # 8 and 19 points both beyond 2 x ROPE: P(better) = Beta(0.5, 2).cdf(1/sqrt 2) = 0.964 whatever the gaps
    assert bayes.loc["b", "p_better"] == pytest.approx(0.964, abs=0.02)
    assert (bayes.loc["b", "bayes"], bayes.loc["b", "view"], bayes.loc["b", "n_blocks"]) == ("too few blocks", "settings", 2)
    text = (out / "report.md").read_text()
    assert ("Bayesian (settings as blocks): no decision for b (N = 2): fewer than 5 blocks, where the posterior "
            "probabilities say more about N than about the differences.") in text
    assert "practically better" not in text
    # with cases the test runs on the 12 test cases instead, and every sentence says so
    code, out = run_cli(tmp_path, two_setting_table(with_cases=True), "--control", "a", name="cases")
    assert code == 0
    bayes = pd.read_csv(out / "bayes_signed_rank.csv").set_index("method")
    assert (bayes.loc["b", "view"], bayes.loc["b", "n_blocks"], bayes.loc["b", "bayes"]) == ("cases", 12, "better")
    text = (out / "report.md").read_text()
    assert "test cases as blocks (N = 12 cases pooled over the 2 settings" in text
    assert "Bayesian (test cases as blocks): a is practically better than b (P = " in text and ", N = 12)" in text


def test_cli_reports_the_rows_it_left_out_and_ranks_like_the_run_report(tmp_path, capsys):
    table = two_setting_table(with_cases=True).assign(variant="default")
    ablation = table[table["method"] == "a"].assign(variant="no_bcl")
    code, out = run_cli(tmp_path, pd.concat([table, ablation]), "--control", "a", name="rows")
    assert code == 0
    printed = capsys.readouterr().out
    # 36 + 12 rows; 12 of another variant, 12 SupOnly rows not ranked (the run report's default)
    assert "Compared: 24 of 48 rows (variant `default`, the ranked methods)." in printed
    assert "Left out, other variants: `no_bcl` (12 rows) — compare one of them with `--variant NAME`." in printed
    assert "Left out, not ranked: SupOnly (12 rows) — rank them too with `--exclude` and no name." in printed
    assert "Left out, not ranked: SupOnly (12 rows)" in (out / "report.md").read_text()
    assert set(pd.read_csv(out / "friedman.csv")["method"]) == {"a", "b"}
    code, out = run_cli(tmp_path, pd.concat([table, ablation]), "--control", "a", "--exclude", name="all")
    assert code == 0 and set(pd.read_csv(out / "friedman.csv")["method"]) == {"a", "b", "suponly"}
    assert "Compared: 36 of 48 rows (variant `default`)." in capsys.readouterr().out


def test_distance_and_unknown_metrics_without_rope_still_get_the_friedman_report(tmp_path):
    table = two_setting_table(with_cases=True)
    hd = table.assign(hd95_mm=100 * (1 - table["dice"])).drop(columns="dice")
    code, out = run_cli(tmp_path, hd, "--control", "a", "--metric", "hd95_mm", name="hd")
    assert code == 0 and (out / "friedman.csv").is_file()
    text = (out / "report.md").read_text()
    assert "region of practical equivalence (ROPE) ±1 mm" in text
    assert "in hd95_mm mm" not in text and "improvement = how much better a is, in mm" in text
    crisp = table.rename(columns={"dice": "crispness"})
    code, out = run_cli(tmp_path, crisp, "--control", "a", "--metric", "crispness", "--higher-is-better", name="cr")
    assert code == 0 and (out / "friedman.csv").is_file() and not (out / "bayes_signed_rank.png").exists()
    text = (out / "report.md").read_text()
    assert ("**Bayesian signed-rank test**: skipped — `crispness` has no default region of practical equivalence "
            "(ROPE). Add one in units of crispness with `--rope HALF_WIDTH`") in text
    assert "crispness units of crispness" not in text
