"""Statistical report for any tidy results table.

    python -m analysis.report --results FILE --control METHOD --metric dice --out DIR

FILE (CSV, or Parquet when an engine is installed) needs the columns dataset, ratio, method,
case_id and the metric; variant, seed and class_name are optional. The Friedman blocks are the
(dataset, ratio) settings, each value the mean over classes, cases and seeds within the block.
DIR receives friedman.csv (method, rank, z, p, p_finner), the omnibus statistics, the block
matrix, Nemenyi and per-case test tables, the CD diagram (PNG, PDF), report.md and report.html.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import stats
from analysis.collect import CollectError, check_table, read_tidy_table
from analysis.comparison import compare_methods, default_higher_is_better, statistics_markdown, write_statistics
from analysis.formatting import Column, DisplayTable, to_markdown
from analysis.html import markdown_to_html
from analysis.io import write_text
from analysis.naming import method_label


def quality_markdown(report) -> str:
    """The collection checks as Markdown (sentences, then the offending cells)."""
    lines = [f"- {s}" for s in report.summary_lines()]
    for title, frame in (("Collapsed duplicates", report.duplicates), ("Missing cells", report.missing_cells),
                         ("Incomplete cells", report.incomplete_cells), ("NaN metrics", report.nan_metrics)):
        if frame.empty:
            continue
        shown = frame.head(50)
        table = DisplayTable(shown.columns[0], [str(v) for v in shown.iloc[:, 0]],
                             [Column(str(c)) for c in shown.columns[1:]],
                             [[str(v) for v in row[1:]] for row in shown.itertuples(index=False)])
        lines += ["", f"{title}{' (first 50)' if len(frame) > 50 else ''}:", "", to_markdown(table)]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="tidy results table (CSV or Parquet)")
    parser.add_argument("--control", required=True, help="control method, e.g. spcl")
    parser.add_argument("--metric", default="dice", help="metric column (default: dice)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--alpha", type=float, default=stats.DEFAULT_ALPHA,
                        help=f"significance level (default {stats.DEFAULT_ALPHA:g}, the paper's)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher", action="store_true", default=None)
    direction.add_argument("--lower-is-better", dest="higher", action="store_false")
    parser.add_argument("--exclude", nargs="*", default=[], help="methods left out of the ranking (e.g. suponly)")
    parser.add_argument("--variant", default="default", help="variant compared when the table has several")
    parser.add_argument("--paired-adjustment", choices=sorted(stats.ADJUSTMENTS), default="holm",
                        help="adjustment of the per-case Wilcoxon p-values (default holm)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return parser


def run_report(args) -> Path:
    table = read_tidy_table(args.results, (args.metric,))
    table, quality = check_table(table, (args.metric,))
    higher = default_higher_is_better(args.metric) if args.higher is None else args.higher
    result = compare_methods(table, args.metric, args.control, alpha=args.alpha, higher_is_better=higher,
                             exclude=tuple(args.exclude), variant=args.variant,
                             paired_adjustment=args.paired_adjustment, n_boot=args.bootstrap, seed=args.seed)
    out = Path(args.out)
    write_statistics(result, out, out)
    text = "\n".join([
        f"# Statistical comparison on `{args.metric}`: {method_label(args.control)} as control",
        "",
        f"Source: `{args.results}` ({len(table)} rows after checks). Significance level α = {args.alpha:g}.",
        "",
        "## Input checks",
        "",
        quality_markdown(quality),
        "## Friedman ranks, z against the control, Finner-adjusted p",
        "",
        statistics_markdown(result),
        "## Critical-difference diagram",
        "",
        f"![Mean ranks (1 = best); methods joined by a bar are not separated by the Nemenyi test at α = {args.alpha:g}.](cd_diagram.png)",
        "",
        "Files: `friedman.csv` (method, rank, z, p, p_finner), `friedman_all_adjustments.csv` (adds Holm), "
        "`omnibus.csv`, `blocks.csv`, `nemenyi_pairwise.csv`, `paired_tests.csv`, `bootstrap_ci.csv`.",
        "",
    ])
    write_text(text, out / "report.md")
    write_text(markdown_to_html(text, title=f"Comparison on {args.metric}", base_dir=out), out / "report.html")
    return out / "report.md"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = run_report(args)
    except (CollectError, stats.StatsInputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
