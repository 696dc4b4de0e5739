# Shared definitions: the table of training runs the config asks for, and the paths of every
# output. Rules only read from here; nothing else knows the folder layout.
#
# results/<run_name>/
#   data/<dataset>/cache/                 prepared cache (dataset.json + cases/*.npz)
#   data/<dataset>/splits/r<pct>_s<seed>.json
#   runs/<dataset>/r<pct>/<method>/<variant>/s<seed>/   run.yaml, final.pt, log.csv,
#                                         checkpoints/last.pt (not a declared output: resume)
#   eval/<dataset>/r<pct>/<method>/<variant>/s<seed>/   metrics.csv, features.npz, predictions/
#   analysis/                             tables, figures, REPORT.md, REPORT.html
#   logs/, benchmarks/, provenance/

import copy
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from snakemake.exceptions import WorkflowError

from methods.paper_plan import ablation_runs, sweep_variant

R = os.path.join(config["results_root"], config["run_name"])

# Jobs that declare GPUs start through this wrapper: it gives each its own GPU(s) among those the
# workflow sees (CUDA_VISIBLE_DEVICES), so that `--resources gpu=N` on an N-GPU machine runs N jobs
# on N different GPUs; on a CPU machine and inside SLURM jobs it changes nothing
# (methods/cluster/gpu_slots.py). `python -I FILE`: isolated, standard library only, so a job does
# not import torch twice.
GPU_SLOTS = (f"python -I {shlex.quote(os.path.join(workflow.basedir, 'methods', 'cluster', 'gpu_slots.py'))}"
             f" --runs-per-gpu {int(config.get('runs_per_gpu', 1))}")


def _expand_root(d):
    """`root` may name environment variables (`${SPCL_BENCH_ACDC}`): the data stays outside the
    project, wherever each machine keeps it."""
    root = d.get("root")
    if root:
        expanded = os.path.expanduser(os.path.expandvars(root))
        if "$" in expanded or not expanded.strip():
            raise WorkflowError(f"config error: dataset {d['name']!r}: root {root!r} names an environment "
                                "variable that is not set or empty; export it (e.g. SPCL_BENCH_ACDC=/path/to/ACDC/database) "
                                "or write the path")
        d["root"] = expanded
    return d


ROOTS_AS_WRITTEN = {d["name"]: d.get("root") for d in config["datasets"]}
DATASETS = {d["name"]: _expand_root(d) for d in config["datasets"]}

DATA_SOURCES = {
    "acdc": "ACDC: register and download at https://humanheart-project.creatis.insa-lyon.fr/database/ "
    "(point `root` at the folder holding patientNNN/ folders, e.g. database/)",
    "mnms": "M&Ms: register and download at https://www.ub.edu/mnms/ (point `root` at the folder "
    "holding the information CSV and Training/, Validation/, Testing/)",
    "ssl4mis_acdc": "SSL4MIS's preprocessed ACDC (HiLab-git/SSL4MIS, data/ACDC: slices/*.h5, *.h5 and the .list "
    "files; point `root` at that folder, and `options: {spacing_from: RAW_ACDC_ROOT}` for spacing in mm)",
    "scd": "Sunnybrook Cardiac Data: download at https://www.cardiacatlas.org/sunnybrook-cardiac-data/ "
    "(point `root` at the MICCAI-2009 release folder)",
}

# Table 3 / Table 4 / BCL-vs-InfoNCE runs, by the switches of the `ablations` section (methods/paper_plan.py).
ABLATION_RUNS = ablation_runs()


def pct_label(percent):
    """5 -> '5', 2.5 -> '2.5': the label-ratio folder name and wildcard value."""
    return f"{float(percent):g}"


def _fail(msg):
    raise WorkflowError(f"config error: {msg}")


def _root_named(name):
    """The root as this machine resolved it, and as the config wrote it where that differs
    (`${SPCL_BENCH_ACDC}`), so that the message names what to fix."""
    written, root = ROOTS_AS_WRITTEN[name], DATASETS[name].get("root")
    return f"{root!r}" + (f" (from {written!r})" if written and written != root else "")


def _check_acdc_paper_patients(name, root):
    """At start-up, not hours later in `prepare`: the paper split needs all 100 ACDC training
    patients (the SSL4MIS lists) under root."""
    from methods.data.acdc import patient_folders
    from methods.data.types import DatasetFormatError
    from methods.data.splits import ACDC_SSL4MIS_TEST, ACDC_SSL4MIS_TRAIN, ACDC_SSL4MIS_VAL, acdc_id

    try:
        found = set(patient_folders(Path(root)))
    except DatasetFormatError as exc:
        _fail(f"dataset {name!r}: root {_root_named(name)} is not an ACDC release: {exc}. {DATA_SOURCES['acdc']}")
    wanted = {acdc_id(n) for n in ACDC_SSL4MIS_TRAIN + ACDC_SSL4MIS_VAL + ACDC_SSL4MIS_TEST}
    missing = sorted(wanted - found)
    if missing:
        _fail(f"dataset {name!r}: root {_root_named(name)} lacks {len(missing)} of the {len(wanted)} ACDC training "
              f"patients the paper split needs (first: {', '.join(missing[:5])}). Point it at the "
              f"release's database/ folder (patientNNN/Info.cfg underneath). {DATA_SOURCES['acdc']}")


def _check_config():
    from methods.api import list_methods

    registered = list_methods()
    wanted = set(config["methods"]) | {config["control"]}
    if config.get("ablations"):
        wanted |= {m for runs in ABLATION_RUNS.values() for m, _ in runs}
    if config.get("sweep"):
        wanted.add("spcl")
    missing = sorted(wanted - set(registered))
    if missing:
        _fail(f"method(s) {missing} are not registered; registered: {sorted(registered)}. "
              "Add a module to baselines/ (see README, 'Add a baseline') or fix the name.")
    if config["control"] not in config["methods"]:
        _fail(f"control {config['control']!r} must be one of methods {config['methods']}")
    for name, d in DATASETS.items():
        if d["format"] != "phantom":
            root = d.get("root")
            if not root or not os.path.isdir(root):
                _fail(f"dataset {name!r}: root {_root_named(name)} does not exist. {DATA_SOURCES[d['format']]}")
            if d["format"] == "acdc" and (d.get("split") or {}).get("preset") == "paper":
                _check_acdc_paper_patients(name, root)
        labelled = [r["labelled"] for r in d["ratios"]]
        if len(set(map(pct_label, (r["percent"] for r in d["ratios"])))) != len(labelled):
            _fail(f"dataset {name!r}: duplicate label ratios")
    for key in ("ablations", "sweep"):
        sec = config.get(key) or {}
        if sec:
            if sec.get("dataset") not in DATASETS:
                _fail(f"{key}.dataset {sec.get('dataset')!r} is not one of the datasets {sorted(DATASETS)}")
            pcts = {pct_label(r["percent"]) for r in DATASETS[sec["dataset"]]["ratios"]}
            if pct_label(sec.get("percent", -1)) not in pcts:
                _fail(f"{key}.percent {sec.get('percent')!r} is not a ratio of dataset {sec['dataset']!r} ({sorted(pcts)})")
    if int(config.get("gpus_per_job", 0)) > 0:
        from methods.cluster.gpu_slots import check_gpu_memory

        problem = check_gpu_memory(int(config.get("runs_per_gpu", 1)), int(config.get("gpu_mem_mb_per_run", 10000)))
        if problem:
            _fail(problem)
    sweep = config.get("sweep") or {}
    if sweep and not (sweep.get("gamma_s") and sweep.get("gamma_t")):
        _fail("sweep needs non-empty gamma_s and gamma_t lists")
    proto = config.get("protocols") or {}
    if proto:
        if proto.get("dataset") not in DATASETS:
            _fail(f"protocols.dataset {proto.get('dataset')!r} is not one of the datasets {sorted(DATASETS)}")
        pcts = {pct_label(r["percent"]) for r in DATASETS[proto["dataset"]]["ratios"]}
        if pct_label(proto.get("percent", -1)) not in pcts:
            _fail(f"protocols.percent {proto.get('percent')!r} is not a ratio of dataset {proto['dataset']!r} ({sorted(pcts)})")
        missing = sorted(set(proto.get("methods") or []) - set(registered))
        if missing or not proto.get("methods"):
            _fail(f"protocols.methods {proto.get('methods')!r}: give registered methods (unknown: {missing})")
        names = [s.get("name") for s in proto.get("steps") or []]
        if len(names) < 2 or len(set(names)) != len(names):
            _fail(f"protocols.steps needs at least two steps with distinct names, got {names}")


_check_config()


@dataclass(frozen=True)
class Run:
    dataset: str
    pct: str
    method: str
    variant: str
    seed: int

    @property
    def key(self):
        return f"{self.dataset}/r{self.pct}/{self.method}/{self.variant}/s{self.seed}"


def _labelled(dataset, pct):
    for r in DATASETS[dataset]["ratios"]:
        if pct_label(r["percent"]) == pct:
            return int(r["labelled"])
    _fail(f"dataset {dataset!r} has no ratio {pct}")


def _spcl_default_thresholds():
    """SPCL's (gamma_s, gamma_t) as the default runs train them (its config, then method_config)."""
    from methods.api import get_method, resolve_variant

    cfg = resolve_variant(get_method("spcl"), "default", (config.get("method_config") or {}).get("spcl"))
    return float(cfg.gamma_s), float(cfg.gamma_t)


def _sweep_seeds():
    return list((config.get("sweep") or {}).get("seeds") or config["seeds"])


def _sweep_reuses_default(sweep):
    """The default SPCL runs stand for the sweep's cell at the default thresholds when they exist
    for every sweep seed at the sweep's setting (analysis/figure_inputs.py reads them so)."""
    return ("spcl" in config["methods"] and set(_sweep_seeds()) <= set(config["seeds"])
            and any(d["name"] == sweep["dataset"] for d in config["datasets"]))


def _sweep_variants():
    sweep = config.get("sweep") or {}
    if not sweep:
        return {}
    default = _spcl_default_thresholds() if _sweep_reuses_default(sweep) else None
    return {
        sweep_variant(gs, gt): {"gamma_s": float(gs), "gamma_t": float(gt)}
        for gs in sweep.get("gamma_s", []) for gt in sweep.get("gamma_t", [])
        if (float(gs), float(gt)) != default
    }


SWEEP_VARIANTS = _sweep_variants()

# The supervised warm-start regime (methods/training/warm_start.py): one SupOnly run of N iterations per
# (dataset, ratio, seed) under variant WARM_START_VARIANT, never evaluated, whose final.pt starts
# every network of every run of that split and seed.
WARM_START_ITERS = int((config.get("warm_start") or {}).get("iterations") or 0)
WARM_START_VARIANT = "warm_start"

# The protocol decomposition (config/experiments/protocol_decomposition.yaml, analysis/protocol_chain.py):
# variant "protocol_<step>" = the default method config under that step's run-config overrides.
PROTOCOL_PREFIX = "protocol_"
PROTOCOL_STEPS = {f"{PROTOCOL_PREFIX}{s['name']}": s for s in (config.get("protocols") or {}).get("steps") or []}


def protocol_config(step):
    """A step's run config before the run's own keys: its `profile` (default: the run's), then
    `profile_overrides`, then the step's `overrides`, merged section by section."""
    base = load_profile(step["profile"]) if step.get("profile") else PROFILE
    return _deep_merge(base, step.get("overrides") or {})


def _all_runs():
    runs = []
    for d in config["datasets"]:
        for r in d["ratios"]:
            for m in config["methods"]:
                for s in config["seeds"]:
                    runs.append(Run(d["name"], pct_label(r["percent"]), m, "default", s))
    abl = config.get("ablations") or {}
    if abl:
        for table, pairs in ABLATION_RUNS.items():
            if abl.get(table, True):
                for m, v in pairs:
                    for s in abl.get("seeds") or config["seeds"]:
                        runs.append(Run(abl["dataset"], pct_label(abl["percent"]), m, v, s))
    sweep = config.get("sweep") or {}
    for v in SWEEP_VARIANTS:
        for s in _sweep_seeds():
            runs.append(Run(sweep["dataset"], pct_label(sweep["percent"]), "spcl", v, s))
    proto = config.get("protocols") or {}
    for v in PROTOCOL_STEPS:
        for m in proto["methods"]:
            for s in proto.get("seeds") or config["seeds"]:
                runs.append(Run(proto["dataset"], pct_label(proto["percent"]), m, v, s))
    return list(dict.fromkeys(runs))  # de-duplicated, order kept


RUNS = _all_runs()


def cache_dir(dataset):
    return f"{R}/data/{dataset}/cache"


def split_file(dataset, pct, seed):
    return f"{R}/data/{dataset}/splits/r{pct}_s{seed}.json"


def run_dir(run):
    return f"{R}/runs/{run.key}"


def eval_dir(run):
    return f"{R}/eval/{run.key}"


def metrics_csv(run):
    return f"{eval_dir(run)}/metrics.csv"


def _deep_merge(base, extra):
    out = copy.deepcopy(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_profile(name=None):
    """The profile with its `extends:` chain merged in (methods.runconfig.load_raw, the resolver the
    engine uses), then `profile_overrides`: every run.yaml is fully resolved, so an edit of a parent
    profile changes the run.yaml of every run that inherits it, and Snakemake reruns them."""
    from methods.errors import ConfigError
    from methods.runconfig import load_raw

    name = name or config["profile"]
    path = os.path.join(workflow.basedir, "config", "profiles", f"{name}.yaml")
    if not os.path.isfile(path):
        _fail(f"profile {name!r}: {path} does not exist")
    try:
        prof = load_raw(path)
    except ConfigError as exc:
        _fail(f"profile {name!r}: {exc}")
    return _deep_merge(prof, config.get("profile_overrides") or {})


PROFILE = load_profile()


def warm_start_run(dataset, pct, seed):
    return Run(dataset, pct, "suponly", WARM_START_VARIANT, int(seed))


def warm_start_checkpoint(wc):
    """The final.pt a run starts from ([] outside the warm-start regime and for the warm start itself)."""
    if not WARM_START_ITERS or (wc.method, wc.variant) == ("suponly", WARM_START_VARIANT):
        return []
    return [f"{run_dir(warm_start_run(wc.dataset, wc.pct, wc.seed))}/final.pt"]


def run_config(wc):
    """The resolved run config (methods.train's RUN.yaml) for one training run."""
    run = Run(wc.dataset, wc.pct, wc.method, wc.variant, int(wc.seed))
    is_warm_start = (run.method, run.variant) == ("suponly", WARM_START_VARIANT)
    if is_warm_start and not WARM_START_ITERS:
        _fail(f"run {run.key}: variant {WARM_START_VARIANT!r} exists only with warm_start.iterations")
    cfg = copy.deepcopy(protocol_config(PROTOCOL_STEPS[run.variant]) if run.variant in PROTOCOL_STEPS else PROFILE)
    overrides = dict((config.get("method_config") or {}).get(run.method, {}))
    cfg["method"] = run.method
    cfg["variant"] = run.variant
    if run.variant in SWEEP_VARIANTS:
        cfg["variant_base"] = "default"
        overrides.update(SWEEP_VARIANTS[run.variant])
    if run.variant in PROTOCOL_STEPS:
        cfg["variant_base"] = "default"
    if is_warm_start:
        cfg["variant_base"] = "default"
        cfg.setdefault("train", {})["iterations"] = WARM_START_ITERS
    for path in warm_start_checkpoint(wc):
        cfg.setdefault("train", {})["init_from"] = path
    cfg["method_config"] = overrides
    cfg["seed"] = run.seed
    cfg["out_dir"] = run_dir(run)
    data = cfg.setdefault("data", {})
    data.update(
        cache=cache_dir(run.dataset),
        split=split_file(run.dataset, run.pct, run.seed),
        dataset=run.dataset,
        ratio=float(run.pct),
    )
    return cfg


def runs_where(**kw):
    return [r for r in RUNS if all(getattr(r, k) == v for k, v in kw.items())]
