"""Method display names come from the methods themselves (`Method.display_name`): a plug-in is shown
under its own name and placed before SPCL in Table 1, the built-in names and the paper's order are
unchanged, and a method this interpreter does not know keeps its registry name."""

import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest

from analysis import naming
from analysis.collect import normalise
from analysis.formatting import to_markdown
from analysis.naming import method_label, sort_methods
from analysis.tables import table1
from methods import api
from methods.api import Method, list_methods, register_method

METRICS = ("dice", "jaccard", "hd95_mm", "hd95_px", "asd_mm")
BUILT_IN_LABELS = {
    "suponly": "SupOnly", "ugpcl": "UGPCL", "dgcl": "DGCL", "admt": "AD-MT", "abd": "ABD", "bus": "BUS",
    "bass": "BASS", "spcl": "SPCL", "meanteacher": "Mean teacher", "spcl_official": "SPCL (official code)",
}


@dataclass
class TinyConfig:
    weight: float = 0.1



def register_tiny(name, **attrs):
    """Register a Method subclass that only names itself (no training happens here)."""
    cls = type(f"Tiny_{name}", (Method,), {"Config": TinyConfig, "description": "a test method", **attrs})
    return register_method(name)(cls)


def rows_for(method, dice):
    """One seed, two cases, two classes of one run at ACDC 5 % with constant metric values."""
    return [{"dataset": "acdc", "ratio": 5, "method": method, "variant": "default", "seed": 0, "case_id": c,
             "class_name": k, "dice": dice, "jaccard": dice / 2, "hd95_mm": 2.0, "hd95_px": 1.0, "asd_mm": 1.0}
            for c in ("c1", "c2") for k in ("RV", "LV")]


def table(rows):
    return normalise(pd.DataFrame(rows), METRICS, "hand")


def test_a_plugin_method_appears_under_its_display_name_before_spcl(registry_restored):
    register_tiny("entmin", display_name="EntMin")
    df = table(rows_for("spcl", 0.90) + rows_for("entmin", 0.85) + rows_for("suponly", 0.70) + rows_for("bass", 0.80))
    t1 = table1(df, "hd95_mm")
    assert t1.display.rows == ["SupOnly", "BASS", "EntMin", "SPCL"]
    assert "| EntMin | <u>85.00</u> | <u>42.50</u> |" in to_markdown(t1.display)
    assert set(t1.data["method"]) == {"spcl", "entmin", "suponly", "bass"}  # the CSV keeps registry names


def test_built_in_display_names_and_the_papers_order():
    assert {name: cls.display_name for name, cls in list_methods().items()} == BUILT_IN_LABELS
    assert {m: method_label(m) for m in BUILT_IN_LABELS} == BUILT_IN_LABELS
    # the paper's Table 1 rows in its order; the mean-teacher skeleton before SPCL, the
    # official-code preset after it
    assert sort_methods(reversed(list(BUILT_IN_LABELS))) == [
        "suponly", "ugpcl", "dgcl", "admt", "abd", "bus", "bass", "meanteacher", "spcl", "spcl_official"]


def test_an_unregistered_method_keeps_its_registry_name():
    assert "from_elsewhere" not in list_methods()
    df = table(rows_for("spcl", 0.90) + rows_for("from_elsewhere", 0.85) + rows_for("abd", 0.80)
               + rows_for("another", 0.75))
    t1 = table1(df, "hd95_mm")
    assert t1.display.rows == ["ABD", "another", "from_elsewhere", "SPCL"]  # by registry name, before SPCL
    assert method_label("from_elsewhere") == "from_elsewhere"


def test_a_method_without_a_display_name_shows_its_registry_name_not_its_parents(registry_restored):
    child = register_method("spcl_child")(type("SPCLChild", (list_methods()["spcl"],), {}))
    assert child.display_name == "spcl_child" and list_methods()["spcl"].display_name == "SPCL"
    assert method_label("spcl_child") == "spcl_child"


@pytest.mark.parametrize("label, message", [
    ("SPCL", r"display name 'SPCL' is already shown for method 'spcl'"),
    ("", r"display_name must be one non-empty line"),
    ("Two\nlines", r"display_name must be one non-empty line"),
    (" EntMin", r"display_name must be one non-empty line without surrounding spaces"),
    (3, r"display_name must be one non-empty line"),
])
def test_bad_display_names_are_refused_at_registration(registry_restored, label, message):
    with pytest.raises(ValueError, match=message):
        register_tiny("entmin", display_name=label)
    assert "entmin" not in list_methods()


def test_a_registry_that_fails_to_load_falls_back_with_a_warning(monkeypatch):
    def broken():
        raise ImportError("No module named 'someone_elses_plugin'")

    monkeypatch.setattr(api, "list_methods", broken)
    monkeypatch.setattr(naming, "_registry_warned", False)
    with pytest.warns(RuntimeWarning, match="someone_elses_plugin.*shown by their registry names"):
        assert method_label("admt") == "admt"
    assert method_label("spcl") == "spcl"  # warned once


def test_importing_the_analysis_does_not_load_the_methods():
    """The registry is asked only when a label is needed (methods.api imports no method itself)."""
    code = ("import analysis.run, analysis.report, analysis.tables, analysis.figures, analysis.naming; "
            "import methods.api as api; print(api._DISCOVERED, sorted(api._REGISTRY))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False []"
