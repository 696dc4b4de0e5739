# Prepare each dataset once (raw folder -> cache), then one split file per (label ratio, seed).
# lint accepted: "Mixed rules and functions in same snakefile." each function builds the command-line
# arguments of the rule below it, and stays beside the command it completes


def _prepare_args(wc):
    d = DATASETS[wc.dataset]
    args = [f"--dataset {d['format']}"]
    root = d.get("root") or f"{R}/data/{wc.dataset}/raw"
    args.append(f"--root '{root}'")
    if d["format"] == "phantom":
        ph = d.get("phantom") or {}
        if "patients" in ph:
            args.append(f"--patients {ph['patients']}")
        if "seed" in ph:
            args.append(f"--seed {ph['seed']}")
    for k, v in (d.get("options") or {}).items():
        args.append(f"--{k.replace('_', '-')} {v}")
    return " ".join(args)


rule prepare:
    # lint accepted: "Specify a conda environment or container for each rule." it runs the project's own
    # code, in the environment Snakemake runs in (docs/install.md; versions in provenance/versions.txt)
    output:
        directory(f"{R}/data/{{dataset}}/cache"),
    params:
        args=_prepare_args,
    log:
        f"{R}/logs/prepare/{{dataset}}.log",
    threads: SMALL_JOB.threads
    resources:
        **SMALL_JOB.declare(),
    shell:
        "python -m methods.data prepare {params.args} --out {output} > {log} 2>&1"


def _split_args(wc):
    d = DATASETS[wc.dataset]
    sp = d.get("split") or {}
    args = [f"--labelled {_labelled(wc.dataset, wc.pct)}", f"--seed {wc.seed}"]
    args.append(f"--preset {sp.get('preset', 'random')}")
    if "val" in sp:
        args.append(f"--val {sp['val']}")
    if "test" in sp:
        args.append(f"--test {sp['test']}")
    return " ".join(args)


rule split:
    # lint accepted: "Specify a conda environment or container for each rule." it runs the project's own
    # code, in the environment Snakemake runs in (docs/install.md; versions in provenance/versions.txt)
    input:
        cache=f"{R}/data/{{dataset}}/cache",
    output:
        f"{R}/data/{{dataset}}/splits/r{{pct}}_s{{seed}}.json",
    params:
        args=_split_args,
    log:
        f"{R}/logs/split/{{dataset}}_r{{pct}}_s{{seed}}.log",
    threads: SMALL_JOB.threads
    resources:
        **SMALL_JOB.declare(),
    shell:
        "python -m methods.data split --cache {input.cache} {params.args} --out {output} > {log} 2>&1"
