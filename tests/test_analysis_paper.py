"""The committed reference tables and the reproduced-minus-published comparison."""

import pandas as pd
import pytest

from analysis import stats
from analysis.paper import REFERENCE_DIR, ReferenceError, compare_metrics, compare_statistics, load_reference


def test_reference_tables_are_complete_and_consistent():
    ref = load_reference()
    t1 = ref["table1"]
    assert len(t1) == 6 * 8 and not t1.isna().any().any()
    assert set(zip(t1["dataset"], t1["ratio"])) == {("scd", 10), ("scd", 20), ("acdc", 5), ("acdc", 10),
                                                    ("mnms", 2.5), ("mnms", 5)}
    spcl_acdc5 = t1[(t1["dataset"] == "acdc") & (t1["ratio"] == 5) & (t1["method"] == "spcl")].iloc[0]
    suponly_acdc5 = t1[(t1["dataset"] == "acdc") & (t1["ratio"] == 5) & (t1["method"] == "suponly")].iloc[0]
    t3 = ref["table3"].set_index(["method", "variant"])
    cols = ["dice", "jaccard", "hd95"]
    assert t3.loc[("spcl", "default"), cols].tolist() == spcl_acdc5[cols].tolist()
    assert t3.loc[("suponly", "default"), cols].tolist() == suponly_acdc5[cols].tolist()
    assert ref["table4"].set_index("relation").loc["US", "dice"] == spcl_acdc5["dice"] == 88.66
    assert ref["bcl_vs_infonce"].set_index("boundary_loss")["dice"].to_dict() == {"InfoNCE": 88.21, "BCL": 88.66}
    assert (REFERENCE_DIR / "README.md").is_file()


def test_missing_reference_file_is_named(tmp_path):
    with pytest.raises(ReferenceError, match="table1.csv is missing"):
        load_reference(tmp_path)


def test_metric_differences_per_cell():
    ref = load_reference()
    summary = pd.DataFrame([
        {"dataset": "acdc", "ratio": 5.0, "method": "spcl", "variant": "default", "metric": "dice", "mean": 87.66},
        {"dataset": "acdc", "ratio": 5.0, "method": "spcl", "variant": "relation_neg", "metric": "dice", "mean": 88.0},
        {"dataset": "phantom", "ratio": 10.0, "method": "spcl", "variant": "default", "metric": "dice", "mean": 80.0},
    ])
    diff = compare_metrics(summary, ref)
    cells = {(r.table, r.variant): round(r.difference, 6) for r in diff.itertuples()}
    # spcl/default at ACDC 5% is a cell of Table 1, Table 3, Table 4 and the BCL line
    assert cells == {("table1", "default"): -1.0, ("table3", "default"): -1.0, ("table4", "default"): -1.0,
                     ("bcl_vs_infonce", "default"): -1.0, ("table4", "relation_neg"): round(88.0 - 87.20, 6)}


def test_statistics_differences_are_zero_when_reproducing_table2():
    ref = load_reference()
    t1 = ref["table1"][ref["table1"]["method"] != "suponly"]
    matrix = t1.pivot_table(index=["dataset", "ratio"], columns="method", values="dice")
    table = stats.compare_with_control(stats.friedman(matrix), "spcl")
    diff = compare_statistics(table, ref)
    assert len(diff) == 7 + 6 * 3  # ranks of all 7; z, p, p_finner of the 6 others
    assert diff["difference"].abs().max() < 5e-5  # printed to 4 (ranks) and 6 decimals
