# The whole analysis of the run: Tables 1-4, the Table 2 statistics, the figures, the comparison
# with the paper, REPORT.md and REPORT.html (python -m analysis.run; docs/analysis.md).

from methods.paper_plan import FIG3

FIG3_RUNS = [r for r in RUNS if (r.method, r.variant) in {row.run for row in FIG3}]

ANALYSIS_OUT = f"{R}/analysis"


rule analysis:
    # lint accepted: "Specify a conda environment or container for each rule." it runs the project's own
    # code, in the environment Snakemake runs in (docs/install.md; versions in provenance/versions.txt)
    # lint accepted: "Shell command directly uses variable R from outside of the rule" and the two below:
    # as params entries they would change this command's text, which reruns every finished analysis;
    # R is the results folder the inputs lie in
    # lint accepted: "Shell command directly uses variable ANALYSIS_OUT from outside of the rule" the
    # folder the outputs lie in
    # lint accepted: "Shell command directly uses variable config from outside of the rule" a change of
    # config[control] rewrites the input provenance/config.yaml, which reruns the analysis
    input:
        metrics=[metrics_csv(r) for r in RUNS],
        features=[f"{eval_dir(r)}/features.npz" for r in RUNS],
        predictions=[f"{eval_dir(r)}/predictions" for r in RUNS],
        # Fig. 3 reads similarities.npz, written by the same training job as final.pt
        similarities=[f"{run_dir(r)}/final.pt" for r in FIG3_RUNS],
        config=f"{R}/provenance/config.yaml",
        versions=f"{R}/provenance/versions.txt",
    output:
        report=report(f"{ANALYSIS_OUT}/REPORT.md", category="Report"),
        html=report(f"{ANALYSIS_OUT}/REPORT.html", category="Report"),
        tables=report(
            directory(f"{ANALYSIS_OUT}/tables"),
            patterns=["{name}.csv"],
            category="Tables",
        ),
        figures=report(
            directory(f"{ANALYSIS_OUT}/figures"),
            patterns=["{name}.png"],
            category="Figures",
        ),
    params:
        tsne_methods=" ".join((config.get("figures") or {}).get("tsne_methods", [])),
        tsne_points=(config.get("figures") or {}).get("tsne_points_per_panel", 600),
        tsne_jobs=(config.get("figures") or {}).get("tsne_jobs", 1),
    log:
        f"{R}/logs/analysis.log",
    # figures.tsne_jobs threads (workflow/rules/resources.smk says why)
    threads: ANALYSIS_JOB.threads
    resources:
        **ANALYSIS_JOB.declare(),
    shell:
        "python -m analysis.run --results-dir {R} --out {ANALYSIS_OUT} --config {input.config} "
        "--control {config[control]} --tsne-methods {params.tsne_methods} "
        "--tsne-points {params.tsne_points} --n-jobs {params.tsne_jobs} > {log} 2>&1"
