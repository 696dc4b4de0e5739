# One training run per (dataset, ratio, method, variant, seed). The run config is its own small
# rule so that a changed setting reruns exactly the runs it affects (Snakemake's params trigger),
# and training checkpoints live beside final.pt but are not declared outputs: a killed run
# restarted with the same command resumes from checkpoints/last.pt.

import yaml as _yaml

RUN_PATTERN = "{dataset}/r{pct}/{method}/{variant}/s{seed}"


def _run_yaml(wc):
    return _yaml.safe_dump(run_config(wc), sort_keys=False)


rule run_config:
    # A shell job on purpose: Snakemake spawns every `run:` job as a new Snakemake process that parses
    # the whole workflow again (importing torch and every method), several seconds per run config.
    # A changed config never resumes an old run: the run's checkpoints go with the old run.yaml.
    output:
        f"{R}/runs/{RUN_PATTERN}/run.yaml",
    params:
        text=_run_yaml,
        checkpoints=lambda wc, output: os.path.join(os.path.dirname(output[0]), "checkpoints"),
    shell:
        "rm -rf {params.checkpoints:q} && printf '%s' {params.text:q} > {output:q}.tmp "
        "&& mv {output:q}.tmp {output:q}"


rule train:
    input:
        cfg=f"{R}/runs/{RUN_PATTERN}/run.yaml",
        cache=f"{R}/data/{{dataset}}/cache",
        split=f"{R}/data/{{dataset}}/splits/r{{pct}}_s{{seed}}.json",
    output:
        f"{R}/runs/{RUN_PATTERN}/final.pt",
    log:
        f"{R}/logs/train/{RUN_PATTERN}.log",
    benchmark:
        f"{R}/benchmarks/train/{RUN_PATTERN}.tsv"
    threads: RUN_JOB.threads
    resources:
        **RUN_JOB.declare(),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
        "python -m methods.train --config {input.cfg} --no-progress > {log} 2>&1"
