"""Display names and orderings shared by tables, figures and the report.

Registry names are the contract (results schema); display names are cosmetic. Unknown methods
and datasets keep their own names and sort after the known ones, so a new baseline needs no edit.
"""

from __future__ import annotations

METHOD_DISPLAY = {
    "suponly": "SupOnly", "ugpcl": "UGPCL", "dgcl": "DGCL", "admt": "ADMT", "abd": "ABD",
    "bus": "BUS", "bass": "BASS", "spcl": "SPCL",
}
METHOD_ORDER = tuple(METHOD_DISPLAY)  # Table 1's row order in the paper
DATASET_DISPLAY = {"scd": "SCD", "acdc": "ACDC", "mnms": "M&Ms", "phantom": "Phantom"}
DATASET_ORDER = tuple(DATASET_DISPLAY)  # Table 1's column order in the paper


def method_label(method: str) -> str:
    return METHOD_DISPLAY.get(method, method)


def dataset_label(dataset: str) -> str:
    return DATASET_DISPLAY.get(dataset, dataset)


def ratio_label(ratio: float) -> str:
    return f"{float(ratio):g}%"


def setting_label(dataset: str, ratio: float) -> str:
    """'ACDC 5%', 'M&Ms 2.5%'."""
    return f"{dataset_label(dataset)} {ratio_label(ratio)}"


def setting_slug(dataset: str, ratio: float) -> str:
    """File-name form: 'acdc_5', 'mnms_2.5'."""
    return f"{dataset}_{float(ratio):g}"


def method_sort_key(method: str) -> tuple:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def setting_sort_key(setting: tuple) -> tuple:
    dataset, ratio = setting
    rank = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
    return (rank, dataset, float(ratio))


def sort_methods(methods) -> list[str]:
    return sorted(set(methods), key=method_sort_key)


def sort_settings(settings) -> list[tuple]:
    return sorted(set(map(tuple, settings)), key=setting_sort_key)
