"""Tables 1, 3, 4, the BCL line and per-class tables from hand-built results, and their formatting."""

import numpy as np
import pandas as pd
import pytest

from analysis.collect import CollectError, normalise
from analysis.formatting import Column, DisplayTable, Value, to_latex, to_markdown
from analysis.tables import bcl_vs_infonce, check_fractions, class_tables, table1, table3, table4

METRICS = ("dice", "jaccard", "hd95_mm", "hd95_px", "asd_mm")


def rows_for(method, dice, hd=2.0, variant="default", seeds=(0,), dataset="acdc", ratio=5, cases=("c1", "c2"),
             classes=("RV", "LV")):
    """Every (seed, case, class) row of one run with constant metric values."""
    return [{"dataset": dataset, "ratio": ratio, "method": method, "variant": variant, "seed": s, "case_id": c,
             "class_name": k, "dice": dice, "jaccard": dice / 2, "hd95_mm": hd, "hd95_px": hd / 2, "asd_mm": 1.0}
            for s in seeds for c in cases for k in classes]


def table(rows):
    return normalise(pd.DataFrame(rows), METRICS, "hand")


def test_table1_values_marks_and_ties():
    df = table(rows_for("spcl", 0.90, hd=3.0) + rows_for("bass", 0.90, hd=1.0) + rows_for("bus", 0.85, hd=2.0)
               + rows_for("abd", 0.80, hd=2.0))
    t1 = table1(df, "hd95_mm")
    assert t1.display.rows == ["ABD", "BUS", "BASS", "SPCL"]  # the paper's row order
    dice = t1.data[t1.data["metric"] == "dice"].set_index("method")
    assert dice.loc["spcl", "mean"] == pytest.approx(90.0) and dice.loc["abd", "mean"] == pytest.approx(80.0)
    assert dice.loc[["spcl", "bass"], "mark"].tolist() == ["best", "best"]  # a tie shares the bold
    assert dice.loc["bus", "mark"] == "second" and dice.loc["abd", "mark"] == ""
    assert set(t1.data["metric"]) == {"dice", "jaccard", "hd95_mm"}  # the CSV keeps HD95's unit
    assert "HD95 (mm)" in [c.name for c in t1.display.columns]
    hd = t1.data[t1.data["metric"] == "hd95_mm"].set_index("method")
    assert hd.loc["bass", "mark"] == "best"  # lower is better
    assert hd.loc[["bus", "abd"], "mark"].tolist() == ["second", "second"]
    md = to_markdown(t1.display)
    assert "| BASS | **90.00** | **45.00** | **1.00** |" in md
    assert "| BUS | <u>85.00</u> | <u>42.50</u> | <u>2.00</u> |" in md
    assert "HD95 (mm)↓" in md and "Values: one seed; HD95 in mm." in md
    tex = to_latex(t1.display, caption="c", label="tab:t1")
    assert r"\textbf{90.00}" in tex and r"\underline{85.00}" in tex and r"\multicolumn{3}{c}{ACDC 5\%}" in tex


def test_table1_spread_over_seeds_and_missing_method_cell():
    df = table(rows_for("spcl", 0.9, seeds=(0,)) + rows_for("spcl", 0.8, seeds=(1,))
               + rows_for("bass", 0.7, seeds=(0, 1)) + rows_for("bass", 0.7, seeds=(0, 1), dataset="scd", ratio=10))
    t1 = table1(df, "hd95_px")
    spcl = t1.data[(t1.data["method"] == "spcl") & (t1.data["metric"] == "dice")].iloc[0]
    assert spcl["mean"] == pytest.approx(85.0) and spcl["sd"] == pytest.approx(np.std([90, 80], ddof=1))
    md = to_markdown(t1.display)
    assert "85.00 ± 7.07" in md and "mean ± SD over 2 seeds; HD95 in pixels" in md
    assert md.splitlines()[-3].startswith("| SPCL") and "| – | – | – |" in md.splitlines()[-3]  # no SCD run


def test_fractions_are_required():
    df = table(rows_for("spcl", 85.0))
    with pytest.raises(CollectError, match=r"column 'dice' must be a fraction in \[0, 1\] \(the results schema\), found 85 .*divide it by 100"):
        check_fractions(df)


def test_table3_table4_and_bcl_line():
    df = table(rows_for("suponly", 0.70) + rows_for("spcl", 0.88) + rows_for("spcl", 0.80, variant="sup_unsup")
               + rows_for("spcl", 0.87, variant="icl_only") + rows_for("spcl", 0.86, variant="relation_neg")
               + rows_for("spcl", 0.84, variant="bcl_infonce"))
    [t3] = table3(df)
    assert t3.name == "table3_acdc_5"
    md3 = to_markdown(t3.display)
    assert "| + L_unsup + L_icl | ✓ | ✓ | ✓ |  |  | <u>87.00</u>" in md3
    assert "Not run: spcl/bcl_only." in md3
    [t4] = table4(df)
    dice4 = t4.data[t4.data["metric"] == "dice"].set_index("row")["mean"]
    assert dice4["Neg"] == pytest.approx(86.0) and np.isnan(dice4["Pos"]) and dice4["US"] == pytest.approx(88.0)
    [bcl] = bcl_vs_infonce(df)
    assert "Dice difference BCL − InfoNCE: +4.00 points." in to_markdown(bcl.display)
    assert table3(table(rows_for("spcl", 0.9))) == []  # no ablation runs: no table


def test_class_tables_per_setting():
    rows = rows_for("spcl", 0.9, classes=("RV",)) + rows_for("spcl", 0.7, classes=("LV",), hd=4.0)
    rows += rows_for("bass", 0.8, classes=("RV", "LV"))
    [t] = class_tables(table(rows), "hd95_mm")
    assert [c.group for c in t.display.columns] == ["RV", "RV", "LV", "LV"]
    assert to_markdown(t.display).splitlines()[3].startswith("| SPCL | **90.00** |")


def test_display_table_checks_shape_and_escapes_latex():
    with pytest.raises(ValueError, match="cells must be"):
        DisplayTable("x", ["a"], [Column("c")], [[1, 2]])
    t = DisplayTable("Method", ["M&Ms_x"], [Column("Dice", "M&Ms 2.5%", True)], [[Value(float("nan"))]])
    tex = to_latex(t)
    assert r"M\&Ms\_x" in tex and "--" in tex
