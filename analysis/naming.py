"""Display names and orderings shared by tables, figures and the report.

Registry names are the contract (results schema); display names are cosmetic. Unknown methods
and datasets keep their own names and sort after the known ones, so a new baseline needs no edit.
"""

from __future__ import annotations

METHOD_DISPLAY = {
    "suponly": "SupOnly", "ugpcl": "UGPCL", "dgcl": "DGCL", "admt": "AD-MT", "abd": "ABD",
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


def _number(value) -> float | None:
    """The number a label spells ('5', '2.5', '10%', ' 5 % '), or None."""
    text = str(value).strip()
    if text.endswith("%"):
        text = text[:-1].strip()
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number else None  # NaN is not a number here


def block_part_label(column: str, value) -> str:
    """One block column's value as shown: known datasets by their display name, a numeric ratio
    as a percentage ('5' and '5%' both read '5%'), anything else as written."""
    if column == "dataset":
        return dataset_label(str(value))
    if column == "ratio":
        number = _number(value)
        return f"{number:g}%" if number is not None else str(value)
    return str(value)


def block_label(columns, values) -> str:
    """A block (one value per blocking column) as shown: 'ACDC 5%', 'fold 3', 'ACDC 10% / 2'."""
    if not isinstance(values, tuple):
        values = (values,)
    return " ".join(block_part_label(c, v) for c, v in zip(columns, values))


def block_sort_key(columns, values) -> tuple:
    """Known datasets in the paper's order, numbers (also '10%') by value, other labels by name."""
    if not isinstance(values, tuple):
        values = (values,)
    key = []
    for column, value in zip(columns, values):
        if column == "dataset":
            text = str(value)
            key.append((DATASET_ORDER.index(text) if text in DATASET_ORDER else len(DATASET_ORDER), 0.0, text))
            continue
        number = _number(value)
        key.append((0, number, str(value)) if number is not None else (1, 0.0, str(value)))
    return tuple(key)


def sort_blocks(columns, blocks) -> list[tuple]:
    """Blocks (tuples of block-column values) in display order; see block_sort_key."""
    blocks = {b if isinstance(b, tuple) else (b,) for b in blocks}
    return sorted(blocks, key=lambda b: block_sort_key(columns, b))


def sort_methods(methods) -> list[str]:
    return sorted(set(methods), key=method_sort_key)


def sort_settings(settings) -> list[tuple]:
    return sorted(set(map(tuple, settings)), key=setting_sort_key)
