"""Statistical report for any tidy results table.

    python -m analysis.report --results FILE --control METHOD --metric dice --out DIR

FILE (CSV, or Parquet when an engine is installed) needs a method column, the block columns
(--blocks, default dataset,ratio; any labels, e.g. '10%') and the metric; case_id, variant, seed
and class_name are optional. Each block value is the mean over classes, cases and seeds. Before
any statistic the metric goes through analysis.policy: its direction (known names, else
--higher-is-better/--lower-is-better), its unit (overlaps are fractions unless --percent) and
the undefined-value rule (NaN/inf -> the case's worst value). DIR receives friedman.csv (method,
rank, z, p, p_finner), the omnibus statistics, the block matrix, Nemenyi, per-case and Bayesian
test tables, the CD diagram and the Bayesian figure (PNG, PDF), report.md and report.html.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import stats
from analysis.collect import SETTING_COLUMNS, CollectError, check_table, read_tidy_table
from analysis.comparison import DEFAULT_EXCLUDE, compare_methods, statistics_markdown, write_statistics
from analysis.formatting import Column, DisplayTable, to_markdown
from analysis.html import markdown_to_html
from analysis.io import write_text
from analysis.naming import method_label
from analysis.policy import prepare_metrics, resolve_metric


def quality_markdown(report) -> str:
    """The collection checks as Markdown (sentences, then the offending cells)."""
    lines = [f"- {s}" for s in report.summary_lines()]
    for title, frame in (("Collapsed duplicates", report.duplicates), ("Missing cells", report.missing_cells),
                         ("Incomplete cells", report.incomplete_cells), ("NaN or infinite metrics", report.nan_metrics),
                         ("Replaced undefined values", report.replacements)):
        if frame.empty:
            continue
        shown = frame.head(50)
        table = DisplayTable(shown.columns[0], [str(v) for v in shown.iloc[:, 0]],
                             [Column(str(c)) for c in shown.columns[1:]],
                             [[str(v) for v in row[1:]] for row in shown.itertuples(index=False)])
        lines += ["", f"{title}{' (first 50)' if len(frame) > 50 else ''}:", "", to_markdown(table)]
    return "\n".join(lines) + "\n"


def _blocks(text: str) -> tuple[str, ...]:
    blocks = tuple(b.strip() for b in text.split(",") if b.strip())
    if not blocks:
        raise argparse.ArgumentTypeError("--blocks needs at least one column name, e.g. dataset,ratio")
    return blocks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="tidy results table (CSV or Parquet)")
    parser.add_argument("--control", required=True, help="control method, e.g. spcl")
    parser.add_argument("--metric", default="dice", help="metric column (default: dice)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--blocks", type=_blocks, default=SETTING_COLUMNS,
                        help="comma-separated blocking columns of the Friedman test, any labels "
                             "(default: dataset,ratio)")
    parser.add_argument("--alpha", type=float, default=stats.DEFAULT_ALPHA,
                        help=f"significance level (default {stats.DEFAULT_ALPHA:g}, the paper's)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher", action="store_true", default=None,
                           help="direction of a metric whose name is not a known one (required for those)")
    direction.add_argument("--lower-is-better", dest="higher", action="store_false")
    parser.add_argument("--percent", action="store_true",
                        help="the overlap metric (dice, jaccard, ...) is in percent, 0-100 (default: fractions)")
    parser.add_argument("--rope", type=float, default=None,
                        help="half-width of the region of practical equivalence of the Bayesian test, in the "
                             "reported unit (default: 1 point for overlaps, 1 mm / 1 px for Hausdorff distances "
                             "in mm / px; other metrics have none and the Bayesian test is skipped without it)")
    parser.add_argument("--exclude", nargs="*", default=list(DEFAULT_EXCLUDE),
                        help="methods left out of the ranking (default: suponly, as the paper's Table 2 and the "
                             "run report; --exclude with no name ranks every method)")
    parser.add_argument("--variant", default="default",
                        help="the variant compared when the table has a variant column (default: default); the "
                             "report lists the rows of other variants it left out")
    parser.add_argument("--paired-adjustment", choices=sorted(stats.ADJUSTMENTS), default="holm",
                        help="adjustment of the per-case Wilcoxon p-values (default holm)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--bayes-samples", type=int, default=stats.BAYES_SAMPLES,
                        help=f"posterior samples of the Bayesian test (default {stats.BAYES_SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap and posterior-sampling seed")
    return parser


def run_report(args) -> Path:
    if not 0 < args.alpha < 1:
        raise stats.StatsInputError(f"--alpha must lie in (0, 1), got {args.alpha}")
    if args.bootstrap < 1 or args.bayes_samples < 1:
        raise stats.StatsInputError("--bootstrap and --bayes-samples must be positive")
    blocks = tuple(args.blocks)
    table = read_tidy_table(args.results, (args.metric,), blocks=blocks)
    spec = resolve_metric(args.metric, args.higher, args.percent, args.rope)
    has_cases = bool(table.attrs.get("has_cases", True))
    table, quality = check_table(table, (args.metric,), blocks=blocks)
    table, quality.replacements = prepare_metrics(table, [spec], blocks)
    exclude = tuple(args.exclude)
    if exclude == DEFAULT_EXCLUDE and args.control in exclude:  # the default never removes the control
        exclude = ()
    result = compare_methods(table, spec, args.control, alpha=args.alpha, exclude=exclude,
                             variant=args.variant, paired_adjustment=args.paired_adjustment, n_boot=args.bootstrap,
                             seed=args.seed, blocks=blocks, per_case=has_cases, bayes_samples=args.bayes_samples)
    out = Path(args.out)
    selection = result.selection.sentences(args.variant)
    for sentence in selection:
        print(sentence)
    written = write_statistics(result, out, out)
    files = ", ".join(f"`{p.name}`" for key, paths in written.items() for p in paths if p.suffix in (".csv", ".pdf"))
    text = "\n".join([
        f"# Statistical comparison on `{args.metric}`: {method_label(args.control)} as control",
        "",
        f"Source: `{args.results}` ({len(table)} rows after checks). " + " ".join(selection)
        + f" Significance level α = {args.alpha:g}. "
        f"Blocks: {', '.join(blocks)}. Metric `{args.metric}`: {spec.direction}"
        + (f", {'percent' if spec.percent else 'fractions'} in the table, reported in {spec.unit}"
           if spec.kind == "overlap" else "") + ". Rules: docs/analysis.md.",
        "",
        "## Input checks",
        "",
        quality_markdown(quality),
        "## Friedman ranks, z against the control, Finner-adjusted p",
        "",
        statistics_markdown(result, bayes_figure_path="bayes_signed_rank.png" if "bayes_figure" in written else None),
        "## Critical-difference diagram",
        "",
        f"![Mean ranks (1 = best); methods joined by a bar are not separated by the Nemenyi test at α = {args.alpha:g}.](cd_diagram.png)",
        "",
        f"Files: {files}.",
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
