"""Means over classes, cases and seeds, in that order (the order the paper's tables imply).

A case's value is the mean over its foreground classes; a seed's value is the mean over its
cases; a setting's value is the mean over seeds, with the sample SD over seeds as the spread.
NaN values are skipped at each level (they are counted in the collection report), so a case
with one NaN class is the mean of its other classes.
"""

from __future__ import annotations

import warnings

import pandas as pd

from analysis.collect import SETTING_COLUMNS
from analysis.naming import sort_methods, sort_settings

RUN_COLUMNS = ("dataset", "ratio", "method", "variant")  # one trained configuration, all seeds


def _mean(df: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return df.groupby(by, sort=True)[metric].mean().reset_index()


def case_values(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (dataset, ratio, method, variant, seed, case_id): the mean over classes."""
    return _mean(df, list(RUN_COLUMNS) + ["seed", "case_id"], metric)


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
    df: pd.DataFrame, metric: str, variant: str = "default", exclude: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, list[tuple]]:
    """Settings (blocks) x methods matrix of setting means, for the Friedman test.

    Only `variant` rows and methods not in `exclude` are used. Blocks where some method has no
    value are removed and returned as the second element, so the caller can report them.
    """
    rows = df[(df["variant"] == variant) & ~df["method"].isin(exclude)]
    summary = setting_summary(rows, metric)
    matrix = summary.pivot(index=list(SETTING_COLUMNS), columns="method", values="mean")
    matrix = matrix.reindex(index=pd.MultiIndex.from_tuples(sort_settings(matrix.index), names=list(SETTING_COLUMNS)),
                            columns=sort_methods(matrix.columns))
    incomplete = matrix.isna().any(axis=1)
    dropped = list(matrix.index[incomplete])
    return matrix[~incomplete], dropped
