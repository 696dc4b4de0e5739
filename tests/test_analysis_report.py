"""End to end: the statistics CLI on small tables, and the full run analysis on a synthetic run."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import report, run
from analysis.synthetic import write_synthetic_run

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


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
    assert report.main(["--results", str(table), "--control", "c", "--metric", "dice", "--out", str(out)]) == 0
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
    assert "After Finner's adjustment, c ranks significantly better (p_Finner ≤ 0.1) than a (0.04888)." in text
    assert "The difference between c and b (p_Finner = 0.153) is not significant at α = 0.1." in text


def test_cli_reproduces_paper_table2_from_a_table1_file(tmp_path):
    t1 = pd.read_csv(REFERENCE / "table1.csv").assign(case_id="published mean")
    t1.to_csv(tmp_path / "t1.csv", index=False)
    args = ["--results", str(tmp_path / "t1.csv"), "--control", "spcl", "--out", str(tmp_path / "o"), "--exclude", "suponly"]
    assert report.main(args) == 0
    got = pd.read_csv(tmp_path / "o" / "friedman.csv").set_index("method").round(6)
    want = pd.read_csv(REFERENCE / "table2.csv").set_index("method")
    assert got.loc[want.index, "rank"].round(4).tolist() == want["rank"].tolist()
    assert got.loc[want.index[:-1], "p_finner"].tolist() == want["p_finner"].iloc[:-1].tolist()


def test_cli_errors_are_clear(tmp_path, capsys):
    table = small_table(tmp_path / "results.csv")
    assert report.main(["--results", str(table), "--control", "zz", "--out", str(tmp_path / "o")]) == 2
    assert "control method 'zz' has no 'default' rows; methods present: ['a', 'b', 'c']" in capsys.readouterr().err
    assert report.main(["--results", str(table), "--control", "c", "--metric", "hd95", "--out", str(tmp_path / "o")]) == 2
    assert "missing column(s) ['hd95']" in capsys.readouterr().err
    one = pd.read_csv(table)
    one[one["dataset"] == "scd"].to_csv(tmp_path / "one.csv", index=False)
    assert report.main(["--results", str(tmp_path / "one.csv"), "--control", "c", "--out", str(tmp_path / "o")]) == 2
    assert "needs at least 2 settings" in capsys.readouterr().err


def test_full_run_produces_every_table_and_figure(tmp_path):
    results = write_synthetic_run(tmp_path / "phantom", n_cases=5, features_per_group=8, seeds=(0,),
                                  methods=("suponly", "bus", "bass", "spcl"))
    out = results / "analysis"
    assert run.main(["--results-dir", str(results), "--out", str(out), "--tsne-points", "40", "--tsne-iter", "60",
                     "--bootstrap", "200"]) == 0
    figures = {p.name for p in (out / "figures").iterdir()}
    for stem in ("fig3_similarities", "fig4_tsne_methods", "fig5_threshold_sweep", "fig6_qualitative",
                 "fig7_tsne_relations", "cd_diagram"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= figures, stem
    tables = {p.name for p in (out / "tables").iterdir()}
    for stem in ("table1", "table3_phantom_10", "table4_phantom_10", "bcl_vs_infonce_phantom_10", "classes_phantom_20"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= tables, stem
    assert {"friedman.csv", "cases.csv", "paper_comparison.csv", "bootstrap_ci.csv"} <= tables
    text = (out / "REPORT.md").read_text()
    assert "Every table and figure was produced." in text
    assert "Not ranked (as in the paper's Table 2): SupOnly." in text
    assert "No cell of this run matches a published cell" in text
    assert "run_name: phantom" in text  # the resolved config
    html = (out / "REPORT.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "<table>" in html


def test_full_run_without_figure_inputs_says_why(tmp_path):
    results = write_synthetic_run(tmp_path / "bare", n_cases=5, artefacts=False, sweep=None, ablation_setting=None,
                                  methods=("bass", "spcl"))
    out = results / "analysis"  # inside the results folder, as in the workflow
    for _ in range(2):  # the second analysis must not collect the first one's tables/cases.csv
        assert run.main(["--results-dir", str(results), "--out", str(out), "--bootstrap", "50"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "No duplicate rows, no missing cells, no NaN metrics." in text
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
    csv = results / "eval" / "phantom" / "r10" / "bass" / "default" / "s0" / "metrics.csv"
    df = pd.read_csv(csv)
    df.loc[0, "dice"] = np.nan
    df.to_csv(csv, index=False)
    out = tmp_path / "analysis"
    assert run.main(["--results-dir", str(results), "--out", str(out), "--bootstrap", "50"]) == 0
    text = (out / "REPORT.md").read_text()
    assert "1 (method, setting, seed) cell(s) have no results at all." in text
    assert "1 metric value(s) are NaN" in text
    assert "| phantom | 20.0 | abd | default | 1 |" in text.replace("20 |", "20.0 |")
