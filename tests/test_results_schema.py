"""The per-case table's one schema (methods/results_schema.py): the writer's columns, the reader's
requirements and the metrics' fields come from it, and reading it loads no torch."""

import dataclasses
import subprocess
import sys
from pathlib import Path

from analysis import collect
from methods import results_schema
from methods.evaluation import metrics


def test_writer_reader_and_metrics_share_the_schema():
    assert results_schema.RESULT_COLUMNS[:len(results_schema.CASE_COLUMNS)] == results_schema.CASE_COLUMNS
    assert collect.CASE_COLUMNS is results_schema.CASE_COLUMNS
    assert tuple(f.name for f in dataclasses.fields(metrics.ClassMetrics)) == results_schema.METRIC_COLUMNS
    assert set(results_schema.KEY_COLUMNS) <= set(results_schema.CASE_COLUMNS)


def test_the_schema_and_the_collector_load_without_torch():
    code = ("import sys, methods.results_schema, analysis.collect; "
            "sys.exit('torch' in sys.modules)")
    root = Path(__file__).resolve().parents[1]  # this checkout's packages, not an installed copy
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
