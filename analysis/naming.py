"""Display names and orderings shared by tables, figures and the report.

Registry names are the contract (results schema); display names are cosmetic. A method names
itself (`Method.display_name`, methods/api.py): `method_label` asks the registry, and is the only
place in the analysis that does. A method this interpreter does not know (results copied from a
machine with a plug-in this one lacks) keeps its registry name. What no method can say for itself
stays here: the paper's row order of Table 1 and where other methods go in it, and the datasets'
display names and order.
"""

from __future__ import annotations

import warnings

#: Table 1's rows in the paper (Zhao & Yang, ICASSP 2026), top to bottom: the baselines, then
#: SPCL, the proposed method, last
PAPER_METHOD_ORDER = ("suponly", "ugpcl", "dgcl", "admt", "abd", "bus", "bass", "spcl")
#: methods always shown last, in this order: SPCL, last as in the paper, then the preset that
#: follows its official code. Every method in neither list (the mean-teacher skeleton, a plug-in)
#: goes between the paper's baselines and these, by registry name.
LAST_METHODS = ("spcl", "spcl_official")
DATASET_DISPLAY = {"scd": "SCD", "acdc": "ACDC", "mnms": "M&Ms", "phantom": "Phantom"}
DATASET_ORDER = tuple(DATASET_DISPLAY)  # Table 1's column order in the paper

_PAPER_BASELINES = tuple(m for m in PAPER_METHOD_ORDER if m not in LAST_METHODS)
_registry_warned = False


def _registered_methods() -> dict:
    """Registry name -> Method class of every method this interpreter can load, or what loaded of
    them. Imported here, not at module level, so importing the analysis does not import every
    method (and a third-party package's entry points) until a label is needed. A plug-in that fails
    to import must not stop the analysis: it is a warning, and the methods that did load keep their
    display names (discovery runs once, so the second call returns what registered)."""
    global _registry_warned
    from methods.api import list_methods

    try:
        return list_methods()
    except Exception as exc:  # noqa: BLE001 - any import error of any plug-in
        if not _registry_warned:
            _registry_warned = True
            warnings.warn(f"loading the registered methods failed ({type(exc).__name__}: {exc}); "
                          "methods that did not load are shown by their registry names",
                          RuntimeWarning, stacklevel=3)
        try:
            return list_methods()
        except Exception:  # noqa: BLE001
            return {}


def method_label(method: str) -> str:
    """The method's own `display_name` ('AD-MT'), or its registry name when it is not registered
    here."""
    cls = _registered_methods().get(method)
    label = getattr(cls, "display_name", "") if cls is not None else ""
    return label if isinstance(label, str) and label else str(method)


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
    """The paper's baselines in its order, then every other method by registry name, then
    LAST_METHODS. By registry name, not display name, so the order is the same whether or not the
    method is registered in this interpreter."""
    if method in _PAPER_BASELINES:
        return (0, _PAPER_BASELINES.index(method), "")
    if method in LAST_METHODS:
        return (2, LAST_METHODS.index(method), "")
    return (1, 0, str(method))


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
