"""The package layout's import rules (docs/architecture.md, "Layout").

- `import methods` imports nothing heavy: the package's names come from `methods.api` on first
  use (PEP 562), so the workflow's start-up checks and the cluster helpers do not pay for torch.
- `methods.errors` and `methods.cluster` need no torch; `methods/cluster/gpu_slots.py` is run by
  path in isolated mode (`python -I`) and needs the standard library only.
- The first-party import graph (methods, spcl, baselines, analysis, benchmarks) is acyclic, and
  every first-party `import` names a module and a name that exist.

The graph is read statically (ast), not by importing each module in a fresh interpreter: a fresh
import costs seconds per module (torch), and it only fails for a cycle whose modules use each
other at import time. Here an import inside a function body counts as an edge like one at module
level, because such an import is how a cycle is hidden (it still ties the two modules together;
it only defers the failure to the call). Imports under `if TYPE_CHECKING:` never run and are left
out, as are imports by name at run time (`importlib.import_module`, the method registry's
discovery of `spcl`, `baselines` and entry points, which import `methods.api` by design).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import methods

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("methods", "spcl", "baselines", "analysis")
SCRIPT_DIRS = ("benchmarks",)  # scripts, not a package; named `benchmarks.<stem>` here


def fresh_python(code: str) -> str:
    """Run `code` in a new interpreter on this checkout; its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout


def read_modules() -> dict[str, tuple[ast.Module, bool, str]]:
    """Dotted name -> (syntax tree, is a package's __init__, file) for every first-party module."""
    files: dict[str, tuple[Path, bool]] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            files[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    for folder in SCRIPT_DIRS:
        for path in sorted((ROOT / folder).glob("*.py")):
            files[f"{folder}.{path.stem}"] = (path, False)
    return {name: (ast.parse(path.read_text(), str(path)), is_pkg, str(path.relative_to(ROOT)))
            for name, (path, is_pkg) in files.items()}


MODULES = read_modules()


def is_type_checking_block(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(nodes):
    """Every import statement among `nodes` and below that can run (module level, class and
    function bodies; not the body of `if TYPE_CHECKING:`)."""
    for node in nodes:
        if is_type_checking_block(node):
            yield from import_nodes(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from import_nodes(ast.iter_child_nodes(node))


def first_party(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def imported(tree: ast.Module, module: str = "", is_pkg: bool = False):
    """(target module, name or None, line) for each first-party import in `tree` (the module
    `module`, which relative imports are resolved against)."""
    for node in import_nodes(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if first_party(alias.name):
                    yield alias.name, None, node.lineno
            continue
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_pkg else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        if first_party(base):
            for alias in node.names:
                yield base, alias.name, node.lineno


def bound_names(statements) -> set[str]:
    """Names the statements bind when they run at module level (descending into if/try/with)."""
    names: set[str] = set()
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.If):
            names |= bound_names(node.orelse if is_type_checking_block(node) else node.body + node.orelse)
        elif isinstance(node, ast.Try):
            names |= bound_names(node.body + node.orelse + node.finalbody
                                 + [s for h in node.handlers for s in h.body])
        elif isinstance(node, ast.With):
            names |= bound_names(node.body)
    return names


def top_level_names(module: str) -> set[str]:
    """Names `module` binds at import time, plus its `__all__` where a module-level `__getattr__`
    resolves names on first use (PEP 562)."""
    body = MODULES[module][0].body
    names = bound_names(body)
    if "__getattr__" in names:
        for node in body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                names |= {elt.value for elt in node.value.elts}
    return names


def missing(target: str, name: str | None) -> str | None:
    """Why `from target import name` (or `import target`) fails; None when it does not."""
    if target not in MODULES:
        return f"no module {target}"
    if name and f"{target}.{name}" not in MODULES and name not in top_level_names(target):
        return f"{target} has no {name}"
    return None


def graph() -> dict[str, set[str]]:
    """module -> the first-party modules it imports (the deepest module each import names)."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, (tree, is_pkg, _) in MODULES.items():
        for target, name, _ in imported(tree, module, is_pkg):
            full = f"{target}.{name}" if name else target
            dest = full if full in MODULES else target
            if dest in MODULES and dest != module:
                edges[module].add(dest)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function_body():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_first_party_imports_form_no_cycle():
    assert len(MODULES) > 80  # methods, spcl, baselines, analysis and the benchmark scripts
    assert cycles(graph()) == []


def test_the_region_package_depends_one_way():
    edges = graph()
    assert {"methods.data.region.base", "methods.data.region.label_centred"} <= edges["methods.data.region"]
    assert "methods.data.region.base" in edges["methods.data.region.label_centred"]
    assert edges["methods.data.region.base"].isdisjoint({"methods.data.region", "methods.data.region.label_centred"})
    assert "methods.data.region" not in edges["methods.data.region.label_centred"]


def test_every_first_party_import_names_an_existing_module_and_name():
    """Also the imports inside function bodies, which neither ruff nor collecting the tests runs;
    the tests and the workflow's rules (their one-line imports) are read too."""
    sources = [(path, tree, name, is_pkg) for name, (tree, is_pkg, path) in MODULES.items()]
    for path in sorted((ROOT / "tests").glob("*.py")):
        sources.append((str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path)), f"tests.{path.stem}", False))
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        lines = [line.strip() for line in path.read_text().splitlines()]
        statements = [line if line.startswith(("from ", "import ")) else "" for line in lines]
        sources.append((str(path.relative_to(ROOT)), ast.parse("\n".join(statements)), "", False))
    wrong = [f"{where}:{line}: {why}" for where, tree, module, is_pkg in sources
             for target, name, line in imported(tree, module, is_pkg)
             if (why := missing(target, name))]
    assert len(sources) > 150 and wrong == []


def test_import_methods_imports_no_torch_and_keeps_its_names():
    out = fresh_python("import sys, methods; print('torch' in sys.modules, sorted(methods.__all__))")
    assert out.split("\n")[0] == "False ['Batch', 'Method', 'StepOutput', 'get_method', 'list_methods', " \
                                 "'register_method']"
    from methods import api

    for name in methods.__all__:
        assert getattr(methods, name) is getattr(api, name)
    assert set(methods.__all__) <= set(dir(methods))


def test_errors_and_cluster_helpers_import_no_torch():
    names = ["methods.errors"] + sorted(m for m in MODULES if m.startswith("methods.cluster."))
    out = fresh_python(f"import sys, importlib; [importlib.import_module(m) for m in {names!r}]; "
                       "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))")
    assert len(names) == 6 and out.strip() == "[]"


def test_config_error_is_one_class_re_exported_by_the_api():
    from methods import api, errors

    assert api.ConfigError is errors.ConfigError and issubclass(errors.ConfigError, ValueError)


def test_gpu_slots_needs_the_standard_library_only():
    """The rules run it as `python -I methods/cluster/gpu_slots.py` (workflow/rules/common.smk)."""
    tree = MODULES["methods.cluster.gpu_slots"][0]
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots and roots <= set(sys.stdlib_module_names) | {"__future__"}
    assert "'methods', 'cluster', 'gpu_slots.py'" in (ROOT / "workflow" / "rules" / "common.smk").read_text()
