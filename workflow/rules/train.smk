# One training run per (dataset, ratio, method, variant, seed). The run config is its own small
# rule so that a changed setting reruns exactly the runs it affects (Snakemake's params trigger),
# and training checkpoints live beside final.pt but are not declared outputs: a killed run
# restarted with the same command resumes from checkpoints/last.pt.

import yaml as _yaml

RUN_PATTERN = "{dataset}/r{pct}/{method}/{variant}/s{seed}"


rule run_config:
    output:
        f"{R}/runs/{RUN_PATTERN}/run.yaml",
    params:
        cfg=run_config,
    run:
        import shutil

        text = _yaml.safe_dump(params.cfg, sort_keys=False)
        ckpts = os.path.join(os.path.dirname(output[0]), "checkpoints")
        shutil.rmtree(ckpts, ignore_errors=True)  # a changed config never resumes an old run
        tmp = output[0] + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, output[0])


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
    threads: config["threads_per_job"]
    resources:
        gpu=config["gpus_per_job"],
        mem_mb=config["mem_mb_per_job"],
        runtime=config["runtime_min_per_job"],
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
        "python -m methods.train --config {input.cfg} --no-progress > {log} 2>&1"
