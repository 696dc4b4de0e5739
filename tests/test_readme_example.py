"""The README's "Add a baseline" example is real code: it registers, trains and is listed."""

import re
import subprocess
import sys
import types
from pathlib import Path


from analysis.naming import method_label
from methods.api import list_methods
from _tiny_run import assert_logged_and_finite, train_tiny

README = Path(__file__).resolve().parents[1] / "README.md"


def _example_source() -> str:
    text = README.read_text()
    section = text.split("## Add a baseline", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the 'Add a baseline' section must hold exactly one python block"
    return blocks[0]



def test_readme_baseline_example_registers_and_trains(tiny_cache, tiny_split, tmp_path, registry_restored):
    module = types.ModuleType("baselines.entmin_readme_example")
    exec(compile(_example_source(), str(README), "exec"), module.__dict__)
    assert "entmin" in list_methods()
    assert method_label("entmin") == "EntMin"  # tables, figures and reports name it itself
    rows = train_tiny("entmin", {"warmup_iters": 0}, tiny_cache, tiny_split, tmp_path / "run", iterations=2)
    assert_logged_and_finite(rows, ["loss", "sup", "unsup", "entropy"], 2)
    assert float(rows[-1]["entropy"]) > 0


def test_readme_baseline_example_appears_in_methods_list_as_a_module(tmp_path):
    pkg = tmp_path / "extra_pkg"
    pkg.mkdir()
    (pkg / "entmin_ext.py").write_text(_example_source())
    code = (
        "import sys; sys.path.insert(0, %r); import entmin_ext; "
        "from methods.__main__ import main; main(['list'])" % str(pkg)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^entmin\s+Entropy minimisation.*\n\s+shown as 'EntMin'; variants: default$", out, flags=re.M)
