# One training run per (dataset, ratio, method, variant, seed). The run config is its own small
# rule so that a changed setting reruns exactly the runs it affects (Snakemake's params trigger),
# and training checkpoints live beside final.pt but are not declared outputs: a killed run
# restarted with the same command resumes from checkpoints/last.pt.
#
# Only what changes the numbers makes a run: run.yaml holds the run's identity (its config without
# methods.runconfig.BOOKKEEPING_KEYS), and the bookkeeping settings (checkpoint and log intervals,
# the pseudo-label logs, ...) reach `python -m methods.train` as `--set` options through
# TRAIN_BOOKKEEPING, a global in the shell command. Snakemake's code trigger compares the command's
# text before formatting and its params trigger sees only params, so changing one of them reruns
# no job; the next training process that starts (a new run, or one resumed after a kill) uses the
# new values, and the engine accepts its checkpoint (it compares the identity only).
#
# lint accepted: "Mixed rules and functions in same snakefile." `_run_yaml` is the params function
# of run_config, kept beside the rule whose output it is

import json as _json
import shlex as _shlex

import yaml as _yaml

from methods.runconfig import bookkeeping_settings as _bookkeeping_settings, run_identity as _run_identity

RUN_PATTERN = "{dataset}/r{pct}/{method}/{variant}/s{seed}"


def _run_yaml(wc):
    return _yaml.safe_dump(_run_identity(run_config(wc)), sort_keys=False)


# The same for every run: the profile's bookkeeping (profile + profile_overrides); out_dir is --out.
# A run whose loss turns non-finite is recorded as failed (final.pt of kind "failed") rather than
# stopping the workflow: the other runs go on and the report lists it under "Not produced".
TRAIN_BOOKKEEPING = " ".join(
    _shlex.quote(f"--set={name}={_json.dumps(value)}")
    for name, value in {"train.on_failure": "record", **_bookkeeping_settings(PROFILE)}.items()
)


rule run_config:
    # A shell job on purpose: Snakemake spawns every `run:` job as a new Snakemake process that parses
    # the whole workflow again (importing torch and every method), several seconds per run config.
    # A changed config never resumes an old run: the run's checkpoints go with the old run.yaml.
    # lint accepted: "No log directive defined" the command prints nothing unless rm, printf or mv
    # fails, and that message reaches the terminal with Snakemake's report of the failed job
    # lint accepted: "Specify a conda environment or container for each rule." it runs rm, printf and mv
    # of the shell Snakemake runs in, nothing else
    output:
        f"{R}/runs/{RUN_PATTERN}/run.yaml",
    params:
        text=_run_yaml,
        checkpoints=lambda wc, output: os.path.join(os.path.dirname(output[0]), "checkpoints"),
    shell:
        "rm -rf {params.checkpoints:q} && tmp={output:q}.$$.$RANDOM.tmp "
        "&& printf '%s' {params.text:q} > \"$tmp\" && mv \"$tmp\" {output:q}"


rule train:
    # lint accepted: "Specify a conda environment or container for each rule." it runs the project's own
    # code, in the environment Snakemake runs in (docs/install.md; versions in provenance/versions.txt)
    # lint accepted: "Shell command directly uses variable GPU_SLOTS from outside of the rule" the launcher
    # (common.smk) decides where a job runs, not what it computes; as a params entry it would change
    # this command's text (rerunning every finished run), and so would each later move of the
    # checkout (its path) or change of runs_per_gpu
    # lint accepted: "Shell command directly uses variable TRAIN_BOOKKEEPING from outside of the rule" on
    # purpose, so that a changed bookkeeping setting reruns no job (the header of this file)
    input:
        cfg=f"{R}/runs/{RUN_PATTERN}/run.yaml",
        cache=f"{R}/data/{{dataset}}/cache",
        split=f"{R}/data/{{dataset}}/splits/r{{pct}}_s{{seed}}.json",
        warm_start=warm_start_checkpoint,
    output:
        f"{R}/runs/{RUN_PATTERN}/final.pt",
    log:
        f"{R}/logs/train/{RUN_PATTERN}.log",
    benchmark:
        f"{R}/benchmarks/train/{RUN_PATTERN}.tsv"
    params:
        run_dir=lambda wc, output: os.path.dirname(output[0]),
    threads: RUN_JOB.threads
    resources:
        **RUN_JOB.declare(),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} {GPU_SLOTS} --gpus {resources.gpu} -- "
        "python -m methods.train --config {input.cfg:q} --out {params.run_dir:q} {TRAIN_BOOKKEEPING} "
        "--no-progress > {log:q} 2>&1"
