# Evaluate each final checkpoint on the test patients: the per-case CSV of the results schema,
# plus predictions of a few cases (Fig. 6) and a class-balanced feature sample (Figs. 4 and 7).

EVAL = config.get("evaluation") or {}


rule evaluate:
    # lint accepted: "Specify a conda environment or container for each rule." it runs the project's own
    # code, in the environment Snakemake runs in (docs/install.md; versions in provenance/versions.txt)
    # lint accepted: "Shell command directly uses variable GPU_SLOTS from outside of the rule" as in rule
    # train (train.smk): where a job runs, not what it computes
    input:
        ckpt=f"{R}/runs/{RUN_PATTERN}/final.pt",
        cache=f"{R}/data/{{dataset}}/cache",
        split=f"{R}/data/{{dataset}}/splits/r{{pct}}_s{{seed}}.json",
    output:
        csv=f"{R}/eval/{RUN_PATTERN}/metrics.csv",
        features=f"{R}/eval/{RUN_PATTERN}/features.npz",
        predictions=directory(f"{R}/eval/{RUN_PATTERN}/predictions"),
    params:
        paper="--paper-compatible" if EVAL.get("paper_compatible", False) else "",
        cases=EVAL.get("prediction_cases", 2),
        per_class=EVAL.get("features_per_class", 200),
        role=EVAL.get("role", "test"),
    log:
        f"{R}/logs/evaluate/{RUN_PATTERN}.log",
    threads: RUN_JOB.threads
    resources:
        **RUN_JOB.declare(),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} {GPU_SLOTS} --gpus {resources.gpu} -- "
        "python -m methods.evaluate --checkpoint {input.ckpt} --cache {input.cache} --split {input.split} "
        "--out {output.csv} --role {params.role} {params.paper} --predictions-dir {output.predictions} "
        "--prediction-cases {params.cases} --features {output.features} "
        "--features-per-class {params.per_class} > {log} 2>&1"
