"""The whole analysis of one run: tables, statistics, figures, paper comparison, REPORT.md/.html.

    python -m analysis.run --results-dir results/phantom --out results/phantom/analysis

Inputs, all found under --results-dir: the per-case CSVs (eval/.../metrics.csv), features.npz and
predictions/ of the evaluations, similarities.npz of the training runs, and the resolved workflow
config (provenance/config.yaml, or --config). Options not given on the command line are read
from that config (control, figures.tsne_methods, figures.tsne_points_per_panel,
evaluation.paper_compatible -> HD95 in pixels), then from the defaults below.
Outputs under --out: tables/ (CSV, Markdown, LaTeX), figures/ (PNG, PDF), REPORT.md, REPORT.html.
Before any table or test, every metric column goes through analysis.policy exactly as in
`analysis.report`: fractions checked, undefined values replaced by the case's worst value.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from analysis import stats
from analysis.artefacts import ArtefactError, find_artefacts
from analysis.collect import METRIC_COLUMNS, SETTING_COLUMNS, CollectError, collect_run, failed_runs
from analysis.aggregate import case_values
from analysis.comparison import (DEFAULT_EXCLUDE, bootstrap_table, compare_methods, statistics_markdown,
                                 write_statistics)
from analysis.figure_inputs import (FigureOptions, FigureOutcome, make_fig3, make_fig4, make_fig5, make_fig6, make_fig7,
                                    sweep_default_cell, sweep_rows)
from analysis.formatting import Column, DisplayTable, Value, to_markdown
from analysis.html import heading_id, markdown_to_html
from analysis.io import write_csv, write_text
from analysis.naming import method_label, setting_label
from analysis.protocol_chain import make_protocol_chain, protocol_steps
from analysis.pseudo_label_curves import (
    END_WORDS,
    collect_pseudo_label_logs,
    end_of_training,
    end_of_training_markdown,
    make_pseudo_label_figures,
    unfinished_runs,
)
from analysis.paper import REFERENCE_DIR, compare_metrics, compare_statistics, load_reference
from analysis.paper_claims import check_claims, claims_frame, rank_agreement_text
from analysis.policy import prepare_metrics, resolve_metric
from analysis.report import quality_markdown
from analysis.scope import scope_lines
from analysis.tables import bcl_vs_infonce, class_tables, metric_summaries, table1, table3, table4


PRINTED_DECIMALS = {"rank": 4, "z": 6, "p": 6, "p_finner": 6}  # as printed in the paper's Table 2


@dataclass
class Options:
    results_dir: Path
    out: Path
    config: dict = field(default_factory=dict)
    config_path: Path | None = None
    control: str = "spcl"
    alpha: float = stats.DEFAULT_ALPHA
    hd95: str = "mm"
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    paired_adjustment: str = "holm"
    n_boot: int = 2000
    rope: float = 1.0  # Dice points, for the Bayesian signed-rank test
    bayes_samples: int = stats.BAYES_SAMPLES
    reference_dir: Path = REFERENCE_DIR
    figures: FigureOptions = field(default_factory=FigureOptions)


@dataclass
class Section:
    title: str
    body: str


def _read_config(path: Path | None) -> dict:
    if path is None or not Path(path).is_file():
        return {}
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise CollectError(f"{path}: cannot parse the run config ({err})") from err


def _rel(path: Path, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()


def _table_block(result) -> str:
    files = ", ".join(f"`tables/{result.name}.{ext}`" for ext in ("csv", "md", "tex"))
    return f"**{result.title}**\n\n{to_markdown(result.display)}\nFiles: {files}.\n"


def _figure_block(outcome: FigureOutcome, out: Path) -> str:
    if not outcome.produced:
        return f"*{outcome.name}: not produced: {outcome.reason}.*\n"
    pngs = [p for p in outcome.paths if p.suffix == ".png"]
    files = ", ".join(f"`{_rel(p, out)}`" for p in outcome.paths)
    captions = outcome.png_captions if len(outcome.png_captions) == len(pngs) else [outcome.caption] * len(pngs)
    images = "\n\n".join(f"![{caption}]({_rel(png, out)})" for caption, png in zip(captions, pngs))
    return f"{images}\n\nFiles: {files}.\n"


def _test_label_note(table: pd.DataFrame) -> str:
    """A warning listing the runs whose numbers used test labels (label-centred test crop or
    best_on_test selection): they are not fair test-set estimates."""
    if "uses_test_label" not in table:
        return ""
    flagged = table[table["uses_test_label"].astype(str).str.lower().isin(("true", "1"))]
    if flagged.empty:
        return ""
    runs = sorted({f"{method_label(r.method)}/{r.variant}" for r in flagged.itertuples()})
    return ("\n**Test labels used** (test-set selection or a test-label-centred crop; not a fair test-set estimate): "
            + ", ".join(runs) + ".\n")


def _numerics_note(table: pd.DataFrame) -> str:
    """The numeric path every run was trained and evaluated in (methods/precision.py), and a warning
    naming the runs when one table mixes paths (e.g. runs made on machines with and without bf16)."""
    if "precision" not in table or "memory_format" not in table:
        return ""
    paths = table["precision"].astype(str) + "+" + table["memory_format"].astype(str)
    per_path = {p: sorted({f"{method_label(r.method)}/{r.variant}/s{r.seed} at {setting_label(r.dataset, r.ratio)}"
                           for r in rows.itertuples()})
                for p, rows in table.groupby(paths)}
    if len(per_path) == 1:
        (path, runs), = per_path.items()
        return f"\nNumeric path: every run ({len(runs)}) trained and evaluated in {path.replace('+', ', ')}.\n"
    listing = "; ".join(f"{p.replace('+', ', ')}: {len(runs)} runs ({', '.join(runs[:4])}{', ...' if len(runs) > 4 else ''})"
                        for p, runs in per_path.items())
    return ("\n**Mixed numeric paths** (precision and memory format differ between runs, so differences between "
            f"them include rounding): {listing}.\n")


def _paper_section(diff: pd.DataFrame, summary_note: str) -> str:
    if diff.empty:
        return (summary_note + "No cell of this run matches a published cell (the paper reports SCD, ACDC and "
                "M&Ms at its label ratios), so there is nothing to subtract.\n")
    rows, cells = [], []
    for r in diff.itertuples():
        where = "all settings" if r.dataset == "all" else setting_label(r.dataset, r.ratio)
        rows.append(f"{r.table}: {where}, {method_label(r.method)}/{r.variant}")
        decimals = PRINTED_DECIMALS.get(r.quantity, 2)
        cells.append([r.quantity, f"{r.reproduced:.{decimals}f}", f"{r.published:.{decimals}f}",
                      f"{r.difference:+.{decimals}f}"])
    table = DisplayTable("Cell", rows, [Column("quantity"), Column("reproduced"), Column("published"),
                                        Column("reproduced − published")], cells)
    mean_abs = diff.groupby(["table", "quantity"])["difference"].agg(lambda d: d.abs().mean())
    summary = "; ".join(f"{t} {q}: mean |Δ| = {v:.2f}" for (t, q), v in mean_abs.items())
    return summary_note + f"{summary}.\n\n" + to_markdown(table) + "\nFiles: `tables/paper_comparison.csv`.\n"


def analyse(opts: Options) -> Path:
    """Run every step and write the report; returns the path of REPORT.md."""
    out = Path(opts.out)
    tables_dir, figures_dir = out / "tables", out / "figures"
    hd95_column = f"hd95_{opts.hd95}"
    table, quality = collect_run(opts.results_dir, exclude=(out,))
    # the rules of analysis.policy, as `analysis.report` applies them: fractions, and every undefined
    # value replaced by the case's worst value before any table, mean or test
    dice = resolve_metric("dice", rope=opts.rope)
    specs = [dice] + [resolve_metric(m, rope=0.0) for m in METRIC_COLUMNS if m != "dice"]
    table, quality.replacements = prepare_metrics(table, specs, SETTING_COLUMNS,
                                                  fix="per-case CSVs hold fractions (docs/architecture.md)")
    write_csv(table, tables_dir / "cases.csv")
    pl_logs = collect_pseudo_label_logs(opts.results_dir)
    sections: list[Section] = []
    not_produced: list[str] = [f"run `{where}`: training stopped: {why}"
                               for where, why in failed_runs(opts.results_dir, exclude=(out,))]
    sections.append(Section("What this run can and cannot show",
                            "\n".join(f"- {line}" for line in scope_lines(
                                table, opts.results_dir, opts.control, opts.exclude,
                                role=(opts.config.get("evaluation") or {}).get("role", "test"))) + "\n"))

    sections.append(Section("Input checks", f"{len(table)} per-case rows from "
                             f"{table['source_file'].nunique()} file(s); collected table: `tables/cases.csv`.\n\n"
                             + quality_markdown(quality) + _test_label_note(table)
                             + _numerics_note(table)))

    t1 = table1(table, hd95_column)
    t1.write(tables_dir)
    sections.append(Section("Table 1: comparison with the baselines", _table_block(t1)))

    friedman_table = None
    try:
        comparison = compare_methods(table, dice, opts.control, alpha=opts.alpha, exclude=opts.exclude,
                                     paired_adjustment=opts.paired_adjustment, n_boot=opts.n_boot,
                                     seed=opts.figures.seed, bayes_samples=opts.bayes_samples)
    except stats.StatsInputError as err:
        not_produced.append(f"Table 2 and the CD diagram: {err}")
        sections.append(Section("Table 2: statistical analysis", f"*Not produced: {err}.*\n"))
    else:
        written = write_statistics(comparison, tables_dir, figures_dir)
        friedman_table = comparison.table
        cd_png = next(p for p in written["cd_diagram"] if p.suffix == ".png")
        bayes_png = next((p for p in written.get("bayes_figure", []) if p.suffix == ".png"), None)
        body = (statistics_markdown(comparison, bayes_figure_path=_rel(bayes_png, out) if bayes_png else None)
                + f"\n![Critical-difference diagram: mean Dice ranks over the settings (1 = best); methods joined by a "
                  f"bar are not separated by the Nemenyi test at α = {opts.alpha:g}.]({_rel(cd_png, out)})\n\n"
                  "Files: " + ", ".join(f"`{_rel(p, out)}`" for paths in written.values() for p in paths) + ".\n")
        sections.append(Section("Table 2: statistical analysis (Friedman, z against the control, Finner)", body))
        # every method of the main comparison, the unranked ones (SupOnly) included
        main = table[table["variant"] == "default"].assign(dice=lambda d: d["dice"] * dice.scale)
        boot = bootstrap_table(case_values(main, "dice", SETTING_COLUMNS), "dice", SETTING_COLUMNS, opts.n_boot,
                               opts.figures.seed)
        write_csv(boot, tables_dir / "bootstrap_ci.csv")
        rows = [f"{r.block} / {method_label(r.method)}" for r in boot.itertuples()]
        cells = [[str(r.n_cases), str(r.n_seeds), Value(r.mean), f"[{r.ci_low:.2f}, {r.ci_high:.2f}]"] for r in boot.itertuples()]
        sections.append(Section("Bootstrap confidence intervals of mean Dice (%)",
                                "95% percentile bootstrap over test cases crossed with seeds "
                                f"({opts.n_boot} resamples; with one seed, over test cases only), every method of "
                                "the main comparison.\n\n"
                                + to_markdown(DisplayTable("Setting / method", rows,
                                                           [Column("cases"), Column("seeds"), Column("mean Dice"),
                                                            Column("95% CI")], cells))
                                + "\nFiles: `tables/bootstrap_ci.csv`.\n"))

    sections.append(Section("Pseudo-labels at the end of training", _pseudo_labels_at_end(pl_logs, table, tables_dir)))

    ablations = [("Table 3: SPCL components", table3(table, hd95_column)),
                 ("Table 4: subclass relation", table4(table, hd95_column)),
                 ("BCL against InfoNCE", bcl_vs_infonce(table, hd95_column))]
    for title, results in ablations:
        if not results:
            reason = "no ablation runs of these variants in the results"
            not_produced.append(f"{title}: {reason}")
            sections.append(Section(title, f"*Not produced: {reason}.*\n"))
            continue
        for r in results:
            r.write(tables_dir)
        sections.append(Section(title, "\n".join(_table_block(r) for r in results)))

    per_class = class_tables(table, hd95_column)
    for r in per_class:
        r.write(tables_dir)
    sections.append(Section("Per-class breakdown", "\n".join(_table_block(r) for r in per_class)))

    artefacts = find_artefacts(opts.results_dir, exclude=(out,))
    outcomes = [
        make_fig3(artefacts, figures_dir),
        make_fig4(artefacts, figures_dir, opts.figures),
        make_fig5(sweep_rows(table, *sweep_default_cell(opts.config)), figures_dir),
        make_fig6(artefacts, figures_dir, opts.figures),
        make_fig7(artefacts, figures_dir, opts.figures),
        make_pseudo_label_figures(opts.results_dir, figures_dir, tables_dir, df=pl_logs),
    ]
    fig_body = "\n".join(_figure_block(o, out) for o in outcomes)
    if artefacts.unattributed:
        fig_body += "\nFiles that could not be attributed to a run (not used): " + ", ".join(
            f"`{p}`" for p in artefacts.unattributed) + ".\n"
    sections.append(Section("Figures", fig_body))
    not_produced += [f"{o.name}: {o.reason}" for o in outcomes if not o.produced]

    if protocol_steps(opts.config):
        chain, chain_fig = make_protocol_chain(table, opts.config, tables_dir, figures_dir, n_boot=opts.n_boot,
                                               seed=opts.figures.seed)
        body = (_table_block(chain) + "\n" if chain is not None else "") + _figure_block(chain_fig, out)
        sections.append(Section("Protocol decomposition (official → fair)", body))
        if not chain_fig.produced:
            not_produced.append(f"{chain_fig.name}: {chain_fig.reason}")

    reference = load_reference(opts.reference_dir)
    sections.append(Section("Ranking against the paper", _ranking_against_paper(
        table, dice, opts, reference, comparison if friedman_table is not None else None, tables_dir, not_produced)))
    diff = compare_metrics(metric_summaries(table, hd95_column), reference)
    note = ""
    if friedman_table is not None:
        paper_settings = set(map(tuple, reference["table1"][["dataset", "ratio"]].astype({"ratio": float}).values.tolist()))
        run_settings = {(d, float(r)) for d, r in comparison.matrix.index}
        if run_settings == paper_settings:
            diff = pd.concat([diff, compare_statistics(friedman_table, reference)], ignore_index=True)
        else:
            note = "Table 2 is compared only when the run ranks the paper's six settings. "
    write_csv(diff, tables_dir / "paper_comparison.csv")
    unit = "HD95 here is in " + ("pixels (the paper's convention). " if opts.hd95 == "px" else
                                 "mm; the paper's is in voxels (use --hd95 px to compare like units). ")
    sections.append(Section("Comparison with the paper", _paper_section(diff, note + unit)))

    text = _report_text(opts, sections, not_produced)
    report = write_text(text, out / "REPORT.md")
    write_text(markdown_to_html(text, title="spcl-bench report", base_dir=out), out / "REPORT.html")
    return report


def _pseudo_labels_at_end(pl_logs: pd.DataFrame, table: pd.DataFrame, tables_dir: Path) -> str:
    """Each method's pseudo-labels over the last part of training: what its unlabelled loss was fed."""
    end, unfinished = end_of_training(pl_logs), unfinished_runs(pl_logs)
    if not end.empty:
        write_csv(end, tables_dir / "pseudo_labels_end.csv")
    defaults = table[table["variant"] == "default"]
    evaluated = {(d, float(r)): list(g["method"].unique()) for (d, r), g in defaults.groupby(["dataset", "ratio"])}
    return (f"What each method's unlabelled loss was fed over {END_WORDS} of its iterations "
            "(default variants; pooled over the iterations of each run, then the mean over seeds; in %): "
            "**cover** = share of the unlabelled pixels pseudo-labelled as the class past the method's filter, "
            "**prec** = share of those that are right, **recall** = share of the class's true unlabelled pixels "
            "that get a passing, right pseudo-label. The labels of the unlabelled patients score the "
            "pseudo-labels only; no loss reads them (methods/training/pseudo_label_logs.py).\n\n"
            + end_of_training_markdown(end, evaluated, unfinished)
            + ("\nFiles: `tables/pseudo_labels_end.csv`.\n" if not end.empty else ""))


def _ranking_against_paper(table, dice, opts: Options, reference, comparison, tables_dir: Path,
                           not_produced: list[str]) -> str:
    """Table 2 per case (the volumes of every setting as blocks), the rank agreement with the
    paper's Table 1 at the run's settings, and one verdict per claim of the paper."""
    lines = []
    cases_table, cases_scope = None, ""
    try:
        per_case = compare_methods(table, dice, opts.control, alpha=opts.alpha, exclude=opts.exclude,
                                   blocks=(*SETTING_COLUMNS, "case_id"), per_case=False, n_boot=opts.n_boot,
                                   seed=opts.figures.seed, bayes_samples=opts.bayes_samples)
    except stats.StatsInputError as err:
        not_produced.append(f"Table 2 per case: {err}")
        lines.append(f"*Table 2 per case: not produced: {err}.*\n")
    else:
        cases_table, cases_scope = per_case.table, per_case.scope
        write_csv(cases_table, tables_dir / "table2_cases.csv")
        rows = [method_label(m) for m in cases_table["method"]]
        cells = [[f"{r.rank:.2f}", "" if pd.isna(r.z) else f"{r.z:.2f}", "" if pd.isna(r.p) else f"{r.p:.3g}",
                  "" if pd.isna(r.p_finner) else f"{r.p_finner:.3g}"] for r in cases_table.itertuples()]
        lines += [f"**Table 2 per case**: Friedman mean ranks with every evaluated volume of every setting as a block "
                  f"(the volume's Dice averaged over seeds; {per_case.scope}), z against "
                  f"{method_label(opts.control)}, Finner's adjustment. The paper's version (settings as blocks) is "
                  "Table 2 above; this one has the power that two to six settings lack, and speaks about these "
                  "volumes.", "",
                  to_markdown(DisplayTable("Method", rows, [Column("mean rank"), Column("z"), Column("p"),
                                                           Column("p Finner")], cells)),
                  "Files: `tables/table2_cases.csv`.", ""]
    rankings = []
    if comparison is not None:
        rankings.append((comparison.table, [(d, float(r)) for d, r in comparison.matrix.index],
                         "settings as blocks, as the paper"))
    if cases_table is not None:
        rankings.append((cases_table, sorted({(d, float(r)) for d, r, _ in per_case.matrix.index}),
                         "volumes as blocks"))
    texts = [rank_agreement_text(ranked.set_index("method")["rank"], reference["table1"], settings, view)[0]
             for ranked, settings, view in rankings]
    lines += [text for text in dict.fromkeys(texts)] + [""]  # "not computed" once, not per ranking
    claims = check_claims(table, opts.control, cases_table, cases_scope,
                          sweep_table=sweep_rows(table, *sweep_default_cell(opts.config)), n_boot=opts.n_boot,
                          seed=opts.figures.seed)
    write_csv(claims_frame(claims), tables_dir / "paper_claims.csv")
    lines += ["**The paper's claims**, one verdict each (rules: `analysis/paper_claims.py`; a difference holds "
              "when its whole 95 % interval is on one side of zero):", ""]
    lines += [f"- {c.sentence()}" for c in claims]
    lines += ["", "Files: `tables/paper_claims.csv`.", ""]
    return "\n".join(lines)


def _report_text(opts: Options, sections: list[Section], not_produced: list[str]) -> str:
    run_name = opts.config.get("run_name", Path(opts.results_dir).name)
    lines = [f"# spcl-bench report: {run_name}", "",
             f"Results: `{opts.results_dir}`. Control: {method_label(opts.control)}. Significance level "
             f"α = {opts.alpha:g} (the paper's). Friedman ranking without: "
             f"{', '.join(method_label(m) for m in opts.exclude) or 'none'}. HD95 unit: {opts.hd95}. "
             "How to read this report: docs/analysis.md.", "", "## Contents", ""]
    titles = [s.title for s in sections] + ["Not produced", "Run configuration"]
    lines += [f"- [{title}](#{heading_id(title)})" for title in titles] + [""]
    for s in sections:
        lines += [f"## {s.title}", "", s.body.rstrip(), ""]
    lines += ["## Not produced", ""]
    lines += [f"- {item}" for item in not_produced] or ["Every table and figure was produced."]
    lines += ["", "## Run configuration", ""]
    if opts.config:
        source = f"`{opts.config_path}`" if opts.config_path else "the given config"
        lines += [f"Resolved workflow config ({source}):", "", "```yaml",
                  yaml.safe_dump(opts.config, sort_keys=False).rstrip(), "```"]
    else:
        lines.append("No resolved config was found (looked for provenance/config.yaml under the results folder).")
    versions = Path(opts.results_dir) / "provenance" / "versions.txt"
    if versions.is_file():
        lines += ["", "Package versions (`provenance/versions.txt`):", "", "```", versions.read_text().rstrip(), "```"]
    fig = opts.figures
    lines += ["", f"Analysis options: t-SNE ≤ {fig.tsne_points} points per panel, {fig.tsne_iter} iterations, "
              f"seed {fig.seed}, n_jobs {fig.n_jobs}; Fig. 4 methods: {', '.join(fig.tsne_methods)}; "
              f"Fig. 6 cases: {fig.prediction_cases}; bootstrap resamples: {opts.n_boot}; per-case test adjustment: "
              f"{opts.paired_adjustment}; Bayesian test: ROPE ±{opts.rope:g} Dice points, {opts.bayes_samples} "
              "posterior samples.", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, help="resolved workflow config (default: RESULTS/provenance/config.yaml)")
    parser.add_argument("--control", help="control method (config: control; default spcl)")
    parser.add_argument("--alpha", type=float, default=stats.DEFAULT_ALPHA)
    parser.add_argument("--hd95", choices=("mm", "px"), help="HD95 unit (default: px if evaluation.paper_compatible, else mm)")
    parser.add_argument("--exclude", nargs="*", help="methods not ranked in Table 2 (default: suponly, as the paper)")
    parser.add_argument("--paired-adjustment", choices=sorted(stats.ADJUSTMENTS), default="holm")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--rope", type=float, default=1.0,
                        help="region of practical equivalence of the Bayesian signed-rank test, Dice points (default 1)")
    parser.add_argument("--bayes-samples", type=int, default=stats.BAYES_SAMPLES,
                        help=f"posterior samples of the Bayesian test (default {stats.BAYES_SAMPLES})")
    parser.add_argument("--tsne-methods", nargs="+", help="Fig. 4 panels (config: figures.tsne_methods)")
    parser.add_argument("--tsne-points", type=int, help="t-SNE points per panel (config: figures.tsne_points_per_panel; default 1000)")
    parser.add_argument("--tsne-iter", type=int, default=500)
    parser.add_argument("--n-jobs", type=int, default=1, help="openTSNE threads; the embedding depends on it")
    parser.add_argument("--seed", type=int, default=0, help="t-SNE, subsampling and bootstrap seed")
    parser.add_argument("--prediction-cases", type=int,
                        help="cases of Fig. 6 (config: evaluation.prediction_cases, the cases whose predictions the "
                             "evaluation saves; default 3)")
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE_DIR)
    return parser


def options_from_args(args) -> Options:
    config_path = args.config or (args.results_dir / "provenance" / "config.yaml")
    if args.config is not None and not args.config.is_file():
        raise CollectError(f"config file {args.config} does not exist")
    config = _read_config(config_path)
    fig_cfg = config.get("figures") or {}
    paper_mode = bool((config.get("evaluation") or {}).get("paper_compatible", False))
    figs = FigureOptions(
        tsne_methods=tuple(args.tsne_methods or fig_cfg.get("tsne_methods") or FigureOptions.tsne_methods),
        tsne_points=int(args.tsne_points or fig_cfg.get("tsne_points_per_panel") or FigureOptions.tsne_points),
        tsne_iter=args.tsne_iter, n_jobs=args.n_jobs, seed=args.seed,
        prediction_cases=int(args.prediction_cases or (config.get("evaluation") or {}).get("prediction_cases")
                             or FigureOptions.prediction_cases),
    )
    return Options(
        results_dir=args.results_dir, out=args.out, config=config,
        config_path=config_path if config else None,
        control=args.control or config.get("control") or "spcl", alpha=args.alpha,
        hd95=args.hd95 or ("px" if paper_mode else "mm"),
        exclude=tuple(args.exclude) if args.exclude is not None else DEFAULT_EXCLUDE,
        paired_adjustment=args.paired_adjustment, n_boot=args.bootstrap, rope=args.rope,
        bayes_samples=args.bayes_samples, reference_dir=args.reference_dir, figures=figs,
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = analyse(options_from_args(args))
    except (CollectError, ArtefactError, stats.StatsInputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report} and {report.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
