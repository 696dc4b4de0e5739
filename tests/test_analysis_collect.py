"""Collection and checks on hand-built per-case tables: duplicates, missing cells, NaN, bad files."""

import numpy as np
import pandas as pd
import pytest

from analysis.aggregate import block_matrix, case_values, setting_summary
from analysis.collect import (CASE_COLUMNS, CollectError, check_table, collect, collect_run, find_case_csvs,
                              normalise, read_case_csv, read_tidy_table)


def row(method="spcl", case="c1", cls="LV", dice=0.8, seed=0, dataset="acdc", ratio=5, variant="default"):
    return {"dataset": dataset, "ratio": ratio, "labelled_cases": 3, "method": method, "variant": variant,
            "seed": seed, "case_id": case, "class_name": cls, "dice": dice, "jaccard": dice / (2 - dice),
            "hd95_mm": 2.0, "hd95_px": 1.0, "asd_mm": 0.5, "evaluated_network": "teacher", "checkpoint": "ck.pt"}


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(CASE_COLUMNS)).to_csv(path, index=False)
    return path


def full_grid(methods=("spcl", "bass"), seeds=(0,), cases=("c1", "c2"), classes=("RV", "LV")):
    return [row(m, c, k, seed=s) for m in methods for s in seeds for c in cases for k in classes]


def test_collect_reads_types_and_keeps_provenance(tmp_path):
    a = write(tmp_path / "eval" / "a" / "metrics.csv", full_grid(methods=("spcl",)))
    b = write(tmp_path / "eval" / "b" / "metrics.csv", full_grid(methods=("bass",)))
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")  # not a per-case CSV: ignored
    assert find_case_csvs(tmp_path) == [a, b]
    table, report = collect_run(tmp_path)
    assert len(table) == 8 and report.is_clean
    assert table["seed"].dtype == np.int64 and table["ratio"].dtype == float
    assert set(table["source_file"]) == {str(a), str(b)}
    assert report.summary_lines() == ["No duplicate rows, no missing cells, no NaN or infinite metrics."]


def test_output_folder_is_excluded_from_collection(tmp_path):
    write(tmp_path / "eval" / "metrics.csv", full_grid())
    write(tmp_path / "analysis" / "tables" / "cases.csv", full_grid())  # an earlier analysis output
    assert len(find_case_csvs(tmp_path, exclude=(tmp_path / "analysis",))) == 1


def test_exact_duplicates_are_collapsed_and_reported(tmp_path):
    rows = full_grid()
    a = write(tmp_path / "a.csv", rows)
    b = write(tmp_path / "b.csv", rows[:2])  # the same two rows again, from another file
    table, report = check_table(collect([a, b]))
    assert len(table) == len(rows)
    assert len(report.duplicates) == 2 and report.duplicates["copies"].tolist() == [2, 2]
    assert str(b) in report.duplicates["files"].iloc[0]
    assert "2 exact duplicate row(s) of 2 key(s) were collapsed" in report.summary_lines()[0]


def test_conflicting_duplicates_name_both_files(tmp_path):
    a = write(tmp_path / "a.csv", [row(dice=0.8)])
    b = write(tmp_path / "b.csv", [row(dice=0.7)])
    with pytest.raises(CollectError, match="conflicting duplicate rows") as err:
        check_table(collect([a, b]))
    assert str(a) in str(err.value) and str(b) in str(err.value) and "case_id='c1'" in str(err.value)
    assert "seed=0," in str(err.value) and "ratio=5.0" in str(err.value)


def test_missing_cell_incomplete_cell_and_nan_are_reported():
    rows = full_grid(methods=("spcl", "bass", "abd"), seeds=(0, 1))
    rows = [r for r in rows if not (r["method"] == "abd" and r["seed"] == 1)]  # a missing (method, seed) cell
    rows = [r for r in rows if not (r["method"] == "bass" and r["seed"] == 0 and r["case_id"] == "c2")]
    rows[0]["dice"] = np.nan
    rows[1]["hd95_mm"] = np.inf
    table = normalise(pd.DataFrame(rows), ("dice", "jaccard", "hd95_mm", "hd95_px", "asd_mm"), "hand")
    _, report = check_table(table)
    assert report.missing_cells[["method", "seed"]].values.tolist() == [["abd", 1]]
    incomplete = report.incomplete_cells
    assert incomplete[["method", "seed", "n_missing"]].values.tolist() == [["bass", 0, 2]]
    assert "c2/LV" in incomplete["examples"].iloc[0]
    nan = report.nan_metrics
    assert nan[["method", "seed", "metric", "n_nan", "n_inf", "n_rows"]].values.tolist() == [
        ["spcl", 0, "dice", 1, 0, 4], ["spcl", 0, "hd95_mm", 0, 1, 4]]
    lines = report.summary_lines()
    assert any("1 (method, setting, seed) cell(s) have no results" in s for s in lines)
    assert "2 metric value(s) are undefined: 1 NaN, 1 infinite (counts per cell below)." in lines


def test_ablation_variants_are_checked_against_their_own_seeds():
    rows = full_grid(methods=("spcl",), seeds=(0, 1))
    rows += [row("spcl", c, "LV", seed=s, variant="relation_neg") for c in ("c1", "c2") for s in (0, 1)]
    rows += [row("spcl", c, "LV", seed=0, variant="relation_pos") for c in ("c1", "c2")]
    table = normalise(pd.DataFrame(rows), ("dice",), "hand")
    _, report = check_table(table, ("dice",))
    assert report.missing_cells[["variant", "seed"]].values.tolist() == [["relation_pos", 1]]


def test_the_threshold_sweep_is_checked_against_its_own_seeds():
    # ablations with seeds 0 and 1, a sweep with seed 0 only: no sweep cell is missing; a sweep
    # cell absent from the sweep's own seed is
    rows = full_grid(methods=("spcl",), seeds=(0, 1))
    rows += [row("spcl", c, "LV", seed=s, variant="relation_neg") for c in ("c1", "c2") for s in (0, 1)]
    rows += [row("spcl", c, "LV", seed=0, variant=v) for c in ("c1", "c2")
             for v in ("sweep_gs0.65_gt0.9", "sweep_gs0.75_gt0.9")]
    table = normalise(pd.DataFrame(rows), ("dice",), "hand")
    assert check_table(table, ("dice",))[1].missing_cells.empty
    rows += [row("spcl", c, "LV", seed=2, variant="sweep_gs0.85_gt0.9") for c in ("c1", "c2")]
    _, report = check_table(normalise(pd.DataFrame(rows), ("dice",), "hand"), ("dice",))
    assert report.missing_cells[["variant", "seed"]].values.tolist() == [
        ["sweep_gs0.65_gt0.9", 2], ["sweep_gs0.75_gt0.9", 2], ["sweep_gs0.85_gt0.9", 0]]


def test_bad_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    df = pd.DataFrame([row(), {**row(case="c2"), "dice": "oops"}], columns=list(CASE_COLUMNS))
    df.to_csv(bad, index=False)
    with pytest.raises(CollectError, match=r"bad.csv: column 'dice' holds a non-numeric value 'oops' \(data row 2\)"):
        read_case_csv(bad)
    df = pd.DataFrame([row()], columns=list(CASE_COLUMNS)).drop(columns=["hd95_px"])
    df.to_csv(bad, index=False)
    with pytest.raises(CollectError, match=r"missing per-case columns \['hd95_px'\]"):
        read_case_csv(bad)
    df = pd.DataFrame([row(seed=1.5)], columns=list(CASE_COLUMNS))
    df.to_csv(bad, index=False)
    with pytest.raises(CollectError, match="column 'seed' must hold integers"):
        read_case_csv(bad)
    with pytest.raises(CollectError, match="does_not_exist does not exist or is not a folder"):
        collect_run(tmp_path / "does_not_exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectError, match="no per-case CSV under .*empty"):
        collect_run(tmp_path / "empty")


def test_generic_table_gets_default_keys_and_names_missing_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"dataset": ["d"], "ratio": [5], "method": ["m"], "case_id": ["c"], "score": [0.5]}).to_csv(path, index=False)
    table = read_tidy_table(path, ("score",))
    assert table.loc[0, ["variant", "seed", "class_name"]].tolist() == ["default", 0, "all"]
    with pytest.raises(CollectError, match=r"t.csv: missing column\(s\) \['dice'\]"):
        read_tidy_table(path, ("dice",))


def test_means_are_over_classes_then_cases_then_seeds_skipping_nan():
    rows = [row("spcl", "c1", "RV", 0.6), row("spcl", "c1", "LV", 1.0), row("spcl", "c2", "RV", 0.5),
            row("spcl", "c2", "LV", np.nan),  # case c2 = 0.5 (its NaN class skipped)
            row("spcl", "c1", "RV", 0.2, seed=1), row("spcl", "c1", "LV", 0.4, seed=1),
            row("spcl", "c2", "RV", 0.6, seed=1), row("spcl", "c2", "LV", 0.6, seed=1)]
    table = normalise(pd.DataFrame(rows), ("dice",), "hand")
    cases = case_values(table, "dice")
    assert cases["dice"].tolist() == pytest.approx([0.8, 0.5, 0.3, 0.6])
    summary = setting_summary(table, "dice").iloc[0]
    # seed 0: (0.8 + 0.5) / 2 = 0.65; seed 1: (0.3 + 0.6) / 2 = 0.45; mean 0.55, SD sqrt(0.02)
    assert summary["mean"] == pytest.approx(0.55)
    assert summary["sd"] == pytest.approx(np.sqrt(0.02))
    assert summary["n_seeds"] == 2


def test_block_matrix_drops_and_returns_incomplete_settings():
    rows = full_grid(methods=("spcl", "bass")) + [row(m, dataset="scd", ratio=10) for m in ("spcl",)]
    rows += [row(m, dataset="mnms", ratio=2.5, dice=0.5) for m in ("spcl", "bass")]
    table = normalise(pd.DataFrame(rows), ("dice",), "hand")
    matrix, dropped = block_matrix(table, "dice")
    assert list(matrix.index) == [("acdc", 5.0), ("mnms", 2.5)]  # the paper's dataset order
    assert list(matrix.columns) == ["bass", "spcl"]  # the paper's method order
    assert dropped == [("scd", 10.0)]
