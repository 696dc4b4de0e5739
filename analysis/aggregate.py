"""Means over classes, cases and seeds, in that order (the order the paper's tables imply).

A case's value is the mean over its foreground classes; a seed's value is the mean over its
cases; a setting's value is the mean over seeds, with the sample SD over seeds as the spread.
NaN values are skipped at each level. Both entry points first replace every undefined value of a
compared metric by the case's worst value (analysis.policy), so NaN only reaches these means in
columns that are not compared, or when a caller skips that rule.

The blocks of the statistics are `blocks` columns (default dataset, ratio): any labels.
"""

from __future__ import annotations

import warnings

import pandas as pd

from analysis.collect import SETTING_COLUMNS
from analysis.naming import sort_blocks, sort_methods

RUN_COLUMNS = ("dataset", "ratio", "method", "variant")  # one trained configuration, all seeds


def _mean(df: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return df.groupby(by, sort=True)[metric].mean().reset_index()


def case_values(df: pd.DataFrame, metric: str, blocks=SETTING_COLUMNS) -> pd.DataFrame:
    """One row per (blocks, method, variant, seed, case_id): the mean over classes (and over any
    column that is not part of that key)."""
    return _mean(df, list(dict.fromkeys(_run_columns(blocks) + ["seed", "case_id"])), metric)  # blocks may hold case_id


def _run_columns(blocks) -> list[str]:
    return list(blocks) + ["method", "variant"]


def seed_values(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (dataset, ratio, method, variant, seed): mean over classes, then cases."""
    return _mean(case_values(df, metric), list(RUN_COLUMNS) + ["seed"], metric)


def summarise_seeds(values: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, sample SD (NaN for one seed) and number of seeds of per-seed values."""
    grouped = values.groupby(by, sort=True)[metric]
    out = grouped.agg(mean="mean", sd="std", n_seeds="count").reset_index()
    return out


def setting_summary(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (dataset, ratio, method, variant): mean over seeds of the per-seed means, SD, n_seeds."""
    return summarise_seeds(seed_values(df, metric), list(RUN_COLUMNS), metric)


def class_summary(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (dataset, ratio, method, variant, class_name): per-seed mean over cases, then over seeds."""
    per_seed = _mean(df, list(RUN_COLUMNS) + ["class_name", "seed"], metric)
    return summarise_seeds(per_seed, list(RUN_COLUMNS) + ["class_name"], metric)


def block_matrix(
    df: pd.DataFrame, metric: str, variant: str = "default", exclude: tuple[str, ...] = (), blocks=SETTING_COLUMNS,
) -> tuple[pd.DataFrame, list[tuple]]:
    """Blocks x methods matrix of block means, for the Friedman test.

    A block value is the mean over seeds of the per-seed mean over cases of the per-case mean over
    classes. Only `variant` rows and methods not in `exclude` are used. Blocks where some method has
    no value are removed and returned as the second element, so the caller can report them. The
    index holds one tuple of block-column values per block, in display order (naming.sort_blocks).
    """
    blocks = list(blocks)
    rows = df[(df["variant"] == variant) & ~df["method"].isin(exclude)]
    per_seed = _mean(case_values(rows, metric, blocks), _run_columns(blocks) + ["seed"], metric)
    summary = per_seed.groupby(_run_columns(blocks), sort=True)[metric].mean().reset_index()
    matrix = summary.pivot(index=blocks, columns="method", values=metric)
    index = [b if isinstance(b, tuple) else (b,) for b in matrix.index]
    matrix.index = pd.MultiIndex.from_tuples(index, names=blocks)
    matrix = matrix.reindex(index=pd.MultiIndex.from_tuples(sort_blocks(blocks, index), names=blocks),
                            columns=sort_methods(matrix.columns))
    matrix.columns.name = "method"
    incomplete = matrix.isna().any(axis=1)
    dropped = list(matrix.index[incomplete])
    return matrix[~incomplete], dropped
