"""`snakemake --lint` for CI: fails on every lint the workflow does not accept, with a reason, in place.

Snakemake's linter has no way to silence one finding (snakemake/linting/), and some of its advice
cannot be taken here without rerunning users' finished jobs (a changed shell command reruns every
job of the rule). So a lint that stays is accepted where it applies, by a comment that gives the
reason:

    # lint accepted: "<the lint's title, as Snakemake prints it>" <reason>

inside the body of the rule it concerns (indented), or at the top level of the snakefile for a lint
of the whole file. This script runs the lint once per config, then fails, naming each, on a lint
without such a comment, a comment whose lint no longer appears, and a comment without a reason.

    python3 .ci/snakemake_lint.py [CONFIG ...]    # the default config, then each CONFIG

It reads Snakemake's plain-text report: `--lint json` prints the same text (Snakemake 9.27's
command line does not pass the choice on, snakemake/cli.py).

The workflow refuses to parse while a dataset's `root` does not exist (workflow/rules/common.smk),
and the lint reads no data, so each relative root is stood in for by an empty folder (ACDC: with
empty patient folders) in a temporary working directory, where every run of the lint happens (no .snakemake/ in the checkout).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# Snakemake's plain-text lint report (snakemake/linting/__init__.py, Linter.lint and Lint.__str__)
SNAKEFILE_HEADER = re.compile(r"^Lints for snakefile (?P<path>.+):$")
RULE_HEADER = re.compile(r"^Lints for rule (?P<rule>\S+) \(line (?P<line>\d+), (?P<path>.+)\):$")
TITLE = re.compile(r"^    \* (?P<title>.+):$")
MARKER = re.compile(r'^(?P<indent>\s*)# lint accepted: "(?P<title>[^"]+)"(?P<reason>.*)$')
RULE_START = re.compile(r"^(?:rule|checkpoint)\s+\w+\s*:")


@dataclass(frozen=True)
class Lint:
    """One finding: of the rule whose `rule` line is `line` in `path`, or of the whole file (line None)."""

    path: str
    line: int | None
    title: str


@dataclass(frozen=True)
class Marker:
    """One `# lint accepted:` comment at `lineno`, in the rule starting at `rule_line` (None: top level)."""

    path: str
    rule_line: int | None
    title: str
    reason: str
    lineno: int

    def accepts(self, lint: Lint) -> bool:
        return (self.path, self.rule_line, self.title) == (lint.path, lint.line, lint.title)


def parse_lints(text: str) -> list[Lint]:
    """The lints of Snakemake's plain-text report (other lines, e.g. log messages, are skipped)."""
    lints, where = [], None
    for line in text.splitlines():
        if m := SNAKEFILE_HEADER.match(line):
            where = (os.path.realpath(m["path"]), None)
        elif m := RULE_HEADER.match(line):
            where = (os.path.realpath(m["path"]), int(m["line"]))
        elif (m := TITLE.match(line)) and where is not None:
            lints.append(Lint(where[0], where[1], m["title"]))
        elif line and not line.startswith("      "):  # neither a title nor its indented explanation
            where = None
    return lints


def find_markers(path: Path) -> list[Marker]:
    """The `# lint accepted:` comments of one snakefile, each with the rule whose body holds it.
    A rule's body is every line after `rule NAME:` up to the next non-blank line at column 0."""
    markers, rule_line = [], None
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if RULE_START.match(line):
            rule_line = lineno
            continue
        if line.strip() and not line[0].isspace():
            rule_line = None
        if m := MARKER.match(line):
            inside = rule_line if m["indent"] else None
            markers.append(Marker(os.path.realpath(path), inside, m["title"], m["reason"].strip(), lineno))
    return markers


def check(lints: list[Lint], markers: list[Marker]) -> list[str]:
    """Problems, one line each: unaccepted lints, markers without a lint, markers without a reason."""
    problems = []
    for lint in sorted(set(lints), key=lambda x: (x.path, x.line or 0, x.title)):
        if not any(m.accepts(lint) for m in markers):
            where = f"{lint.path}, rule at line {lint.line}" if lint.line else lint.path
            problems.append(f'{where}: "{lint.title}" (fix it, or accept it there: # lint accepted: "..." reason)')
    for m in markers:
        if not any(m.accepts(lint) for lint in lints):
            problems.append(f'{m.path}:{m.lineno}: "{m.title}" is accepted, but snakemake --lint no longer reports it')
        if not m.reason:
            problems.append(f'{m.path}:{m.lineno}: "{m.title}" is accepted without a reason')
    return problems


def stand_in_roots(configfile: Path, workdir: Path) -> None:
    """An empty folder in `workdir` for each relative dataset `root` of `configfile`; for an ACDC
    root, the empty `patientNNN/Info.cfg` files whose presence the start-up check looks for."""
    config = yaml.safe_load(configfile.read_text()) or {}
    for dataset in config.get("datasets") or []:
        root = dataset.get("root")
        if root and not os.path.isabs(os.path.expanduser(os.path.expandvars(root))):
            (workdir / root).mkdir(parents=True, exist_ok=True)
            if dataset.get("format") == "acdc":
                for n in range(1, 101):
                    (workdir / root / f"patient{n:03d}").mkdir(exist_ok=True)
                    (workdir / root / f"patient{n:03d}" / "Info.cfg").touch()


def run_lint(configfile: Path | None) -> list[Lint]:
    """`snakemake --lint` on the workflow, with `configfile` or the default config."""
    with tempfile.TemporaryDirectory(prefix="spcl-lint.") as tmp:
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", tmp,
                   "--lint", "--nocolor"]
        if configfile is not None:
            stand_in_roots(configfile, Path(tmp))
            command += ["--configfile", str(configfile)]
        done = subprocess.run(command, capture_output=True, text=True)
    output = done.stdout + done.stderr
    lints = parse_lints(output)
    # exit status 1 with lints; an error (the workflow did not parse) prints none
    if done.returncode != 0 and not lints:
        sys.exit(f"[lint] snakemake --lint failed ({' '.join(command)}):\n{output}")
    return lints


def main(argv: list[str]) -> int:
    configs = [None] + [Path(c).resolve() for c in argv]
    lints = [lint for config in configs for lint in run_lint(config)]
    snakefiles = [REPO / "Snakefile", *sorted((REPO / "workflow").rglob("*.smk"))]
    markers = [m for path in snakefiles for m in find_markers(path)]
    problems = check(lints, markers)
    names = ", ".join(os.path.relpath(c, REPO) if c else "default config" for c in configs)
    if problems:
        print(f"[lint] snakemake --lint ({names}):\n  " + "\n  ".join(problems))
        return 1
    print(f"[lint] snakemake --lint ({names}): {len(set(lints))} lints, each accepted with its reason")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
