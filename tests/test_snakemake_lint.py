""".ci/snakemake_lint.py: Snakemake's lint report read back, and each lint matched to the comment
that accepts it in the rule or file it concerns (CI runs it on the real workflow)."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "snakemake_lint.py"
_spec = importlib.util.spec_from_file_location("snakemake_lint", SCRIPT)
lint = importlib.util.module_from_spec(_spec)
sys.modules["snakemake_lint"] = lint  # dataclasses resolve the module's annotations through sys.modules
_spec.loader.exec_module(lint)

# the layout of snakemake/linting (Linter.lint, Lint.__str__), shortened explanations
REPORT = """Using workflow specific profile profiles/default for setting default command line arguments.
Lints for snakefile /w/rules/data.smk:
    * Mixed rules and functions in same snakefile.:
      Small one-liner functions used only once should be defined as lambda
      expressions.

Lints for rule train (line 5, /w/rules/train.smk):
    * Specify a conda environment or container for each rule.:
      This way, the used software for each specific step is documented.
    * Shell command directly uses variable GPU_SLOTS from outside of the rule:
      It is recommended to pass all files as input and output.

"""

SNAKEFILE = '''# lint accepted: "Mixed rules and functions in same snakefile." top-level reason


rule train:
    # lint accepted: "Specify a conda environment or container for each rule." rule reason
    # lint accepted: "Shell command directly uses variable GPU_SLOTS from outside of the rule"
    output:
        "a",
    shell:
        "touch {output}"


# lint accepted: "No log directive defined" at the top level, not in rule train
rule other:
    output:
        "b",
'''


def test_report_is_read_into_lints_per_file_and_rule():
    assert lint.parse_lints(REPORT) == [
        lint.Lint("/w/rules/data.smk", None, "Mixed rules and functions in same snakefile."),
        lint.Lint("/w/rules/train.smk", 5, "Specify a conda environment or container for each rule."),
        lint.Lint("/w/rules/train.smk", 5, "Shell command directly uses variable GPU_SLOTS from outside of the rule"),
    ]


def test_a_clean_report_has_no_lints():
    assert lint.parse_lints("Using workflow specific profile profiles/default for setting ...\n") == []


def test_markers_belong_to_the_rule_whose_body_holds_them(tmp_path):
    path = tmp_path / "train.smk"
    path.write_text(SNAKEFILE)
    got = [(m.rule_line, m.title, m.reason, m.lineno) for m in lint.find_markers(path)]
    assert got == [
        (None, "Mixed rules and functions in same snakefile.", "top-level reason", 1),
        (4, "Specify a conda environment or container for each rule.", "rule reason", 5),
        (4, "Shell command directly uses variable GPU_SLOTS from outside of the rule", "", 6),
        (None, "No log directive defined", "at the top level, not in rule train", 13),
    ]


def test_check_names_unaccepted_stale_and_unreasoned(tmp_path):
    path = tmp_path / "train.smk"
    path.write_text(SNAKEFILE)
    markers = lint.find_markers(path)
    found = [
        lint.Lint(str(path), None, "Mixed rules and functions in same snakefile."),  # accepted
        lint.Lint(str(path), 4, "Specify a conda environment or container for each rule."),  # accepted
        lint.Lint(str(path), 4, "Shell command directly uses variable GPU_SLOTS from outside of the rule"),
        lint.Lint(str(path), 4, "No log directive defined"),  # accepted only at the top level: not for rule train
    ]
    problems = lint.check(found, markers)
    assert len(problems) == 3
    assert problems[0].startswith(f'{path}, rule at line 4: "No log directive defined"')
    assert problems[1] == f'{path}:6: "Shell command directly uses variable GPU_SLOTS from outside of the rule" ' \
                          "is accepted without a reason"
    assert problems[2] == f'{path}:13: "No log directive defined" is accepted, but snakemake --lint no longer reports it'
    assert lint.check(found[:2], markers[:2]) == []


def test_relative_data_roots_are_stood_in_for(tmp_path):
    config = tmp_path / "paper.yaml"
    config.write_text("datasets:\n  - {name: acdc, root: data/ACDC/database}\n  - {name: scd, root: /abs/SCD}\n"
                      "  - {name: phantom, format: phantom}\n")
    work = tmp_path / "work"
    work.mkdir()
    lint.stand_in_roots(config, work)
    assert (work / "data" / "ACDC" / "database").is_dir()
    assert sorted(p.name for p in work.iterdir()) == ["data"]
