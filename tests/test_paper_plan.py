"""The paper's plan (methods/paper_plan.py): the runs of the ablation tables and figures are
variants SPCL defines, sweep names round-trip, and the module loads without torch."""

import subprocess
import sys
from pathlib import Path

from methods import paper_plan as plan


def test_every_planned_run_is_a_registered_method_and_variant():
    from methods.api import get_method

    rows = [row for rows in (*plan.ABLATIONS.values(), plan.FIG3, plan.FIG7) for row in rows]
    pairs = [pair for order in (plan.TABLE3_ORDER, plan.TABLE4_ORDER, plan.BCL_ORDER) for pair in order]
    runs = {row.run for row in rows} | {run for pair in pairs for run in pair}
    for method, variant in runs:
        assert variant == "default" or variant in get_method(method).variants, (method, variant)
    assert {run for pair in pairs for run in pair} <= {row.run for rows in plan.ABLATIONS.values() for row in rows}


def test_ablation_runs_in_table_order():
    assert plan.ablation_runs()["table3"] == [("suponly", "default"), ("spcl", "sup_unsup"), ("spcl", "icl_only"),
                                              ("spcl", "bcl_only"), ("spcl", "default")]
    assert plan.ablation_variants() == (("spcl", "sup_unsup"), ("spcl", "icl_only"), ("spcl", "bcl_only"),
                                        ("spcl", "relation_neg"), ("spcl", "relation_pos"), ("spcl", "bcl_infonce"))
    assert plan.own_variants(plan.TABLE4) == ("relation_neg", "relation_pos")
    assert [len(row.losses) for row in plan.TABLE3] == [1, 2, 3, 3, 3]


def test_sweep_names_round_trip():
    assert plan.sweep_variant(0.75, 0.95) == "sweep_gs0.75_gt0.95"
    assert plan.sweep_variant(1, 0.9) == "sweep_gs1_gt0.9"
    for gs, gt in ((0.65, 0.9), (1.0, 0.5), (1e-05, 0.95), (0.125, 2.5e-07)):
        assert plan.sweep_thresholds(plan.sweep_variant(gs, gt)) == (gs, gt)
    assert plan.sweep_thresholds("default") is None
    assert plan.sweep_thresholds("sweep_gs0.7_gt0.9_extra") is None


def test_the_plan_loads_without_torch():
    code = "import sys, methods.paper_plan; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[1]  # this checkout's packages, not an installed copy
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
