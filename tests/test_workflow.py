"""The Snakemake workflow as a user runs it: `python -m snakemake` in a subprocess.

- the paper config (config/paper.yaml) on fixture ACDC, M&Ms and SCD trees plans the right number
  of jobs (dry run), its runs get the paper profile and nothing of the phantom default, and it
  parses for a cluster run (--jobs, no --cores); without --configfile the default is planned;
- a missing dataset root, an unknown method and an unknown config key stop it at start-up with
  a message naming the setting;
- a tiny phantom config (tests/workflow_configs/tiny.yaml) runs end to end to every figure and
  every table but Table 2 (one setting; the report must say so), REPORT.md/.html, logs,
  benchmarks and provenance, and a second invocation has nothing to do;
- a training job killed with the whole Snakemake process group (SIGKILL) resumes from its
  checkpoint when the same command is run again, without --unlock, and with a checkpoint interval
  changed meanwhile (that the resumed weights are bit-identical to an uninterrupted run's is the
  engine's own test, tests/test_engine.py; here it would cost one more training process); the
  same command started beside a running workflow leaves that workflow's lock alone;
- changing a bookkeeping setting (methods.runconfig.BOOKKEEPING_KEYS, threads_per_job) on finished
  runs plans no job, changing lr plans every run, a method's own setting that method's runs;
- with `--resources gpu=2` and a stand-in CUDA_VISIBLE_DEVICES=5,7 on the CPU, jobs that train at
  the same time hold different GPU slots.

Every invocation gets its own working directory (Snakemake locks it) and `--workflow-profile
none` (the repo's profiles/default must not leak in).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fixtures_datasets import write_acdc_stubs, write_acdc_fixture, write_mnms_fixture, write_scd_fixture
from methods.runconfig import run_identity

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
CONFIGS = Path(__file__).parent / "workflow_configs"

# The paper's ablation runs (docs/architecture.md, "Variant names the analysis relies on"):
# Table 3, Table 4 and BCL against InfoNCE, each on one setting.
PAPER_ABLATION_RUNS = {
    ("suponly", "default"), ("spcl", "sup_unsup"), ("spcl", "icl_only"), ("spcl", "bcl_only"),
    ("spcl", "default"), ("spcl", "relation_neg"), ("spcl", "relation_pos"), ("spcl", "bcl_infonce"),
}


def _env() -> dict[str, str]:
    """This interpreter's `python` first on PATH (the rules call `python -m ...`), the repo importable."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["HF_HUB_OFFLINE"] = "1"
    return env


def snakemake_cmd(workdir: Path, configfile: Path | None, *options: str, targets: tuple[str, ...] = (),
                  cores: int = 1) -> list[str]:
    # targets first: --configfile takes every argument after it
    return [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), "--workflow-profile", "none",
            "-s", str(SNAKEFILE), "-d", str(workdir), *options,
            *(["--configfile", str(configfile)] if configfile else [])]


def snakemake(workdir: Path, configfile: Path | None, *options: str, targets: tuple[str, ...] = (), cores: int = 1,
              timeout: float = 900, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run Snakemake in `workdir` (also its cwd, as a user would from there); stdout + stderr in `.stdout`.
    `env`: variables set (or, with None as the value, removed) on top of `_env()`."""
    environment = _env()
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(snakemake_cmd(workdir, configfile, *options, targets=targets, cores=cores), cwd=workdir,
                          env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a (dry) run: rule -> number of jobs, without the total."""
    assert "Job stats:" in output, output[-3000:]
    counts = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:  # after the header and the dashes
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match[1]] = int(match[2])
    counts.pop("total")
    return counts


def expected_runs(cfg: dict) -> set[tuple[str, str, str, str, int]]:
    """(dataset, ratio folder label, method, variant, seed) of every training run `cfg` asks for,
    from the config alone: the grid, the paper's ablation runs, the threshold sweep."""
    pct = lambda p: f"{float(p):g}"  # noqa: E731  the r<pct> folder: 5 -> "5", 2.5 -> "2.5"
    runs = {(d["name"], pct(r["percent"]), m, "default", s)
            for d in cfg["datasets"] for r in d["ratios"] for m in cfg["methods"] for s in cfg["seeds"]}
    abl = cfg.get("ablations") or {}
    if abl:
        runs |= {(abl["dataset"], pct(abl["percent"]), m, v, s) for m, v in PAPER_ABLATION_RUNS
                 for s in abl.get("seeds") or cfg["seeds"]}
    sweep = cfg.get("sweep") or {}
    if sweep:
        seeds = sweep.get("seeds") or cfg["seeds"]
        spcl = (cfg.get("method_config") or {}).get("spcl") or {}
        # the cell at SPCL's default thresholds is the default run itself, when that run exists
        reused = ((spcl.get("gamma_s", 0.75), spcl.get("gamma_t", 0.95))
                  if "spcl" in cfg["methods"] and set(seeds) <= set(cfg["seeds"]) else None)
        runs |= {(sweep["dataset"], pct(sweep["percent"]), "spcl", f"sweep_gs{gs:g}_gt{gt:g}", s)
                 for gs in sweep["gamma_s"] for gt in sweep["gamma_t"] for s in seeds if (gs, gt) != reused}
    return runs


def contains(full, part) -> bool:
    """Every setting of `part` is in `full` with the same value (dicts may have more keys)."""
    if isinstance(part, dict):
        return isinstance(full, dict) and all(k in full and contains(full[k], v) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(full, list) and len(full) == len(part) and all(map(contains, full, part))
    return full == part


def run_key(run: tuple) -> str:
    dataset, pct, method, variant, seed = run
    return f"{dataset}/r{pct}/{method}/{variant}/s{seed}"


def write_yaml(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_log(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------
# the paper config on fixture data: job graph and start-up checks


@pytest.fixture(scope="module")
def raw_roots(tmp_path_factory) -> dict[str, Path]:
    """Tiny ACDC, M&Ms and SCD trees in their release layouts (tests/fixtures_datasets.py)."""
    base = tmp_path_factory.mktemp("raw")
    write_acdc_fixture(base / "ACDC")
    write_acdc_stubs(base / "ACDC" / "database")  # these tests only plan
    write_mnms_fixture(base / "MnMs")
    write_scd_fixture(base / "SCD")
    return {"acdc": base / "ACDC" / "database", "mnms": base / "MnMs", "scd": base / "SCD"}


def paper_config(raw_roots: dict[str, Path]) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for d in cfg["datasets"]:
        d["root"] = str(raw_roots[d["name"]])
    return cfg


def test_paper_config_plans_every_training_run_once(raw_roots, tmp_path):
    cfg = paper_config(raw_roots)
    result = snakemake(tmp_path, write_yaml(cfg, tmp_path / "paper.yaml"), "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stdout[-3000:]
    counts = job_counts(result.stdout)

    # 3 datasets x 2 ratios x 8 methods x 3 seeds = 144; ablations on ACDC 5% not in that grid:
    # 6 SPCL variants x 3 seeds = 18 (suponly/default and spcl/default are in it); sweep 5 x 4 x 3 = 60
    # less the 3 runs of the cell (0.75, 0.95), which are SPCL's default runs
    assert len(expected_runs(cfg)) == 144 + 18 + 57 == 219
    assert counts["train"] == 219
    assert counts["run_config"] == counts["evaluate"] == counts["train"]
    assert counts["prepare"] == 3
    assert counts["split"] == 3 * 2 * 3  # one per (dataset, ratio, seed)
    assert counts["analysis"] == counts["provenance"] == counts["all"] == 1


def test_without_a_configfile_the_default_phantom_config_is_planned_from_any_directory(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    result = snakemake(tmp_path, None, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stdout[-3000:]
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["evaluate"] == len(expected_runs(cfg))
    assert counts["prepare"] == len(cfg["datasets"])


def test_the_mean_teacher_experiment_config_plans_its_sixteen_runs(tmp_path):
    cfg_path = REPO / "config" / "experiments" / "mt_vs_suponly.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    result = snakemake(tmp_path, cfg_path, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stdout[-3000:]
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["evaluate"] == len(expected_runs(cfg)) == 16
    assert counts["split"] == 8


def test_the_acdc_experiment_config_plans_its_runs_from_the_data_root_variable(raw_roots, tmp_path, monkeypatch):
    cfg_path = REPO / "config" / "experiments" / "acdc_cpu.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    assert cfg["datasets"][0]["root"] == "${SPCL_BENCH_ACDC}"
    monkeypatch.setenv("SPCL_BENCH_ACDC", str(raw_roots["acdc"]))
    result = snakemake(tmp_path, cfg_path, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stdout[-3000:]
    counts = job_counts(result.stdout)
    assert counts["train"] == counts["evaluate"] == len(expected_runs(cfg)) == 18  # 2 ratios x 3 methods x 3 seeds
    assert counts["split"] == 6
    monkeypatch.delenv("SPCL_BENCH_ACDC")
    result = snakemake(tmp_path, cfg_path, "-n")
    assert result.returncode != 0 and "names an environment variable that is not set" in result.stdout, result.stdout[-3000:]
    assert "Job stats:" not in result.stdout
    # a folder without the release's training patients stops at start-up too, naming the variable
    partial = tmp_path / "partial"
    write_acdc_fixture(partial)
    monkeypatch.setenv("SPCL_BENCH_ACDC", str(partial / "database"))
    result = snakemake(tmp_path, cfg_path, "-n")
    assert result.returncode != 0 and "Job stats:" not in result.stdout
    assert "lacks 98 of the 100 ACDC training patients" in result.stdout and "${SPCL_BENCH_ACDC}" in result.stdout


def test_the_acdc_paper_experiment_plans_table_1_the_ablations_the_sweep_and_the_warm_starts(
        raw_roots, tmp_path, monkeypatch):
    cfg_path = REPO / "config" / "experiments" / "acdc_paper_cpu.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    monkeypatch.setenv("SPCL_BENCH_ACDC", str(raw_roots["acdc"]))
    result = snakemake(tmp_path, cfg_path, "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stdout[-3000:]
    counts = job_counts(result.stdout)
    # Table 1: 2 ratios x 8 methods x 3 seeds = 48; ablations at 5 %: 6 SPCL variants x 2 seeds = 12;
    # sweep 3 x 3 at one seed, less its centre (the default run) = 8
    assert len(expected_runs(cfg)) == 48 + 12 + 8 == 68
    assert counts["evaluate"] == 68
    # one SupOnly warm start per (ratio, seed), trained but never evaluated
    assert counts["train"] == counts["run_config"] == 68 + 2 * 3
    assert counts["split"] == 6 and counts["prepare"] == 1 and counts["analysis"] == 1
    # every run of a split starts from that split's warm start; the warm start from nothing
    plan = snakemake(tmp_path, cfg_path, "-n", "--printshellcmds")
    assert plan.returncode == 0, plan.stdout[-3000:]
    warm = "results/acdc_paper_cpu/runs/acdc/r5/suponly/warm_start/s1/final.pt"
    assert f"{warm}" in plan.stdout
    done = snakemake(tmp_path, cfg_path, targets=("results/acdc_paper_cpu/runs/acdc/r5/bass/default/s1/run.yaml",
                                                  "results/acdc_paper_cpu/runs/acdc/r5/suponly/warm_start/s1/run.yaml"))
    assert done.returncode == 0, done.stdout[-3000:]
    run = yaml.safe_load((tmp_path / "results/acdc_paper_cpu/runs/acdc/r5/bass/default/s1/run.yaml").read_text())
    source = yaml.safe_load((tmp_path / "results/acdc_paper_cpu/runs/acdc/r5/suponly/warm_start/s1/run.yaml").read_text())
    assert run["train"]["init_from"] == warm and run["train"]["iterations"] == 1500
    assert "init_from" not in source["train"] and source["train"]["iterations"] == 3000
    assert source["method"] == "suponly" and source["data"]["split"] == run["data"]["split"]


def test_a_configfile_replaces_the_default_config(raw_roots, tmp_path):
    """From the repo root, config/config.yaml sits next to the Snakefile; the paper's runs must get
    the paper profile and nothing of the phantom default (its profile_overrides: 300 iterations)."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")  # as in the repo root
    run_yaml = "results/paper/runs/acdc/r5/spcl/default/s0/run.yaml"
    result = snakemake(tmp_path, write_yaml(paper_config(raw_roots), tmp_path / "paper.yaml"), targets=(run_yaml,))
    assert result.returncode == 0, result.stdout[-3000:]

    run_cfg = yaml.safe_load((tmp_path / run_yaml).read_text())
    paper_profile = yaml.safe_load((REPO / "config" / "profiles" / "paper.yaml").read_text())
    assert run_cfg["train"] == run_identity(paper_profile)["train"]  # 6000 iterations, not the phantom's 300
    assert run_cfg["network"] == paper_profile["network"]
    assert (run_cfg["method"], run_cfg["variant"], run_cfg["seed"]) == ("spcl", "default", 0)
    assert run_cfg["data"]["split"] == "results/paper/data/acdc/splits/r5_s0.json"


def test_exponent_notation_in_the_workflow_config_reaches_the_run_as_a_number(tmp_path):
    """PyYAML reads `1e-4` as a string; the workflow reads it as a number, from the config file and
    from --config alike, so the run config a training job loads holds numbers."""
    cfg = _two_run_config()
    cfg["profile_overrides"]["train"]["weight_decay"] = "WEIGHT_DECAY"
    text = yaml.safe_dump(cfg, sort_keys=False).replace("WEIGHT_DECAY", "1e-4")
    assert "weight_decay: 1e-4" in text
    (tmp_path / "exp.yaml").write_text(text)
    run_yaml = "results/tiny/runs/phantom/r20/meanteacher/default/s0/run.yaml"
    # nested --config values: Snakemake's own parser leaves every scalar a string ('20', '0.02')
    result = snakemake(tmp_path, tmp_path / "exp.yaml", "--config", "method_config={meanteacher: {ema_decay: 9.9e-1}}",
                       "profile_overrides={train: {iterations: 20, lr: 0.02, weight_decay: 1e-4}, data: {img_size: 32}}",
                       targets=(run_yaml,))
    assert result.returncode == 0, result.stdout[-3000:]
    run_cfg = yaml.safe_load((tmp_path / run_yaml).read_text())
    assert run_cfg["train"]["weight_decay"] == 1e-4 and isinstance(run_cfg["train"]["weight_decay"], float)
    assert run_cfg["train"]["iterations"] == 20 and isinstance(run_cfg["train"]["iterations"], int)
    assert run_cfg["train"]["lr"] == 0.02 and run_cfg["data"]["img_size"] == 32
    assert run_cfg["network"]["encoder"] == "tu-test_resnet"  # the file's overrides are kept beside them
    assert run_cfg["method_config"] == {"ema_decay": 0.99}


CLUSTER_PARSE = """
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings

snakefile, workdir, configfile = map(Path, sys.argv[1:])
with SnakemakeApi(OutputSettings(quiet=None)) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(nodes=40), snakefile=snakefile, workdir=workdir,
                            config_settings=ConfigSettings(configfiles=[configfile]), storage_settings=StorageSettings())
    workflow.dag(DAGSettings())  # parses the Snakefile
    print("rules:", sorted(rule.name for rule in workflow._workflow.rules))
"""


def test_the_workflow_parses_for_a_cluster_run(raw_roots, tmp_path):
    """`--profile profiles/slurm` gives --jobs and no --cores, so the workflow's core count is
    undefined: no rule may ask for it (workflow.cores raised at parse time)."""
    configfile = write_yaml(paper_config(raw_roots), tmp_path / "paper.yaml")
    result = subprocess.run([sys.executable, "-c", CLUSTER_PARSE, str(SNAKEFILE), str(tmp_path), str(configfile)],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "rules: ['all', 'analysis', 'evaluate', 'prepare', 'provenance', 'run_config', 'split', 'train']" in result.stdout


def _missing_root(cfg, tmp_path):
    cfg["datasets"][1]["root"] = str(tmp_path / "no" / "MnMs")
    return [f"dataset 'mnms': root '{tmp_path / 'no' / 'MnMs'}' does not exist", "https://www.ub.edu/mnms/"]


def _unknown_method(cfg, tmp_path):
    from methods.api import list_methods

    cfg["methods"].append("unet_plus_plus")
    return ["method(s) ['unet_plus_plus'] are not registered", f"registered: {sorted(list_methods())}"]


def _unknown_top_level_key(cfg, tmp_path):
    cfg["learning_rate"] = 0.01
    return ["Error validating config file", "'learning_rate' was unexpected"]


def _unknown_nested_key(cfg, tmp_path):
    cfg["ablations"]["tabel3"] = False
    return ["Error validating config file", "'tabel3' was unexpected"]


@pytest.mark.parametrize("break_config", [_missing_root, _unknown_method, _unknown_top_level_key, _unknown_nested_key],
                         ids=lambda f: f.__name__.lstrip("_"))
def test_a_bad_config_stops_at_start_up_naming_the_setting(break_config, raw_roots, tmp_path):
    cfg = paper_config(raw_roots)
    messages = break_config(cfg, tmp_path)
    result = snakemake(tmp_path, write_yaml(cfg, tmp_path / "bad.yaml"), "-n")
    assert result.returncode != 0
    for message in messages:
        assert message in result.stdout, result.stdout[-3000:]
    assert "Job stats:" not in result.stdout  # stopped before planning any job


def test_runs_per_gpu_is_refused_at_start_up_below_one_or_beyond_the_gpu_memory(tmp_path):
    """Two stand-in GPUs of 80 and 40 GB (a fake nvidia-smi): 5 runs of 10 GB do not fit the smaller."""
    cfg = _two_run_config()
    cfg.update(gpus_per_job=1, runs_per_gpu=0)
    result = snakemake(tmp_path, write_yaml(cfg, tmp_path / "zero.yaml"), "-n")
    assert result.returncode != 0 and "runs_per_gpu" in result.stdout and "Job stats:" not in result.stdout
    from test_gpu_slots import fake_nvidia_smi

    path = os.pathsep.join([fake_nvidia_smi(tmp_path)["PATH"], _env()["PATH"]])
    cfg.update(runs_per_gpu=5, gpu_mem_mb_per_run=10000)
    result = snakemake(tmp_path, write_yaml(cfg, tmp_path / "five.yaml"), "-n",
                       env={"PATH": path, "CUDA_VISIBLE_DEVICES": None})
    assert result.returncode != 0 and "Job stats:" not in result.stdout
    assert "runs_per_gpu: 5 runs x gpu_mem_mb_per_run 10000 MB = 50000 MB do not fit GPU 1" in result.stdout
    cfg.update(runs_per_gpu=4)
    result = snakemake(tmp_path, write_yaml(cfg, tmp_path / "four.yaml"), "-n", "-p",
                       env={"PATH": path, "CUDA_VISIBLE_DEVICES": None})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "gpu_slots.py --runs-per-gpu 4 --gpus 1 -- " in result.stdout  # each job's slot wrapper


# ------------------------------------------------------------------------------------------------
# the whole workflow on a tiny phantom

TABLES = ["table1", "table3_phantom_20", "table4_phantom_20", "bcl_vs_infonce_phantom_20", "classes_phantom_20"]
FIGURES = ["fig3_similarities", "fig4_tsne_methods", "fig5_threshold_sweep", "fig6_qualitative",
           "fig7_tsne_relations"]


@pytest.mark.slow
def test_tiny_workflow_produces_every_output_and_then_has_nothing_to_do(tmp_path):
    config = CONFIGS / "tiny.yaml"
    cfg = yaml.safe_load(config.read_text())
    result = snakemake(tmp_path, config, cores=2, timeout=1800)
    assert result.returncode == 0, result.stdout[-5000:]
    out = tmp_path / "results" / "tiny"

    runs = expected_runs(cfg)
    assert len(runs) == 3 + 6 + 1  # the grid, the ablation variants, the 1 x 2 sweep less its default cell
    assert {str(p.parent.relative_to(out / "runs")) for p in (out / "runs").glob("*/*/*/*/*/final.pt")} == {
        run_key(r) for r in runs}
    for run in runs:
        key = run_key(run)
        rows = read_log(out / "runs" / key / "log.csv")
        assert [int(r["iteration"]) for r in rows] == [0, 1, 2, 3], key
        assert not (out / "runs" / key / "checkpoints" / "last.pt").exists(), key
        assert (out / "eval" / key / "metrics.csv").is_file() and (out / "eval" / key / "features.npz").is_file()
        assert len(list((out / "eval" / key / "predictions").glob("*.npz"))) == 1  # prediction_cases: 1
        train_log = (out / "logs" / "train" / f"{key}.log").read_text()
        assert train_log.strip().endswith(f"finished: results/tiny/runs/{key}"), key
        assert (out / "logs" / "evaluate" / f"{key}.log").stat().st_size > 0
        with (out / "benchmarks" / "train" / f"{key}.tsv").open() as f:
            bench = list(csv.DictReader(f, delimiter="\t"))
        assert len(bench) == 1 and float(bench[0]["s"]) > 0 and "cpu_time" in bench[0], key
    for spcl_run in ("phantom/r20/spcl/default/s0", "phantom/r20/spcl/relation_pos/s0"):  # Fig. 3's input
        assert (out / "runs" / spcl_run / "similarities.npz").is_file()
    assert (out / "logs" / "prepare" / "phantom.log").is_file() and (out / "logs" / "analysis.log").is_file()
    assert sorted(p.name for p in (out / "logs" / "split").iterdir()) == ["phantom_r20_s0.log"]

    provenance = yaml.safe_load((out / "provenance" / "config.yaml").read_text())
    assert contains(provenance, cfg)  # the resolved config: the file plus schema defaults
    versions = (out / "provenance" / "versions.txt").read_text()
    assert re.search(r"^torch \d", versions, re.M) and re.search(r"^snakemake \d", versions, re.M)

    analysis = out / "analysis"
    for name in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (analysis / "tables" / f"{name}.{ext}").is_file(), f"{name}.{ext}"
    for name in ("cases", "paper_comparison"):
        assert (analysis / "tables" / f"{name}.csv").is_file(), name
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (analysis / "figures" / f"{name}.{ext}").is_file(), f"{name}.{ext}"
    with (analysis / "tables" / "cases.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == len(runs) * 2 * 2 * 3  # runs x 2 test patients x (ED, ES) x 3 classes
    report = (analysis / "REPORT.md").read_text()
    for name in FIGURES:
        assert f"(figures/{name}.png)" in report, name
    import torch

    from methods.precision import resolve_numerics  # the path this machine gives the tiny profile's amp: auto
    path = resolve_numerics(torch.device("cpu"), "auto", "auto")
    assert f"Numeric path: every run ({len(runs)}) trained and evaluated in {path.precision}, {path.memory_format}." in report
    # one setting: the only thing missing is Table 2 (and its CD diagram), and the report says why
    not_produced = report.split("## Not produced", 1)[1].split("\n## ", 1)[0]
    items = [line for line in not_produced.splitlines() if line.startswith("- ")]
    assert len(items) == 1 and items[0].startswith("- Table 2 and the CD diagram:"), not_produced
    assert "at least 2 settings" in items[0] and "[('phantom', 20.0)]" in items[0]
    assert not (analysis / "tables" / "friedman.csv").exists() and not list(analysis.glob("figures/cd_diagram.*"))
    html = (analysis / "REPORT.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "Table 1" in html

    again = snakemake(tmp_path, config, cores=2)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Nothing to be done" in again.stdout, again.stdout[-3000:]


# ------------------------------------------------------------------------------------------------
# only settings that change the numbers rerun a training job


def _two_run_config() -> dict:
    """tests/workflow_configs/tiny.yaml cut to two runs: SupOnly and the mean teacher."""
    cfg = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    for key in ("ablations", "sweep", "method_config", "figures"):
        cfg.pop(key, None)
    cfg.update(methods=["suponly", "meanteacher"], control="suponly")
    return cfg


def _changed(cfg: dict, change) -> dict:
    out = yaml.safe_load(yaml.safe_dump(cfg))
    change(out)
    return out


# every bookkeeping setting a workflow config can reach (methods.runconfig.BOOKKEEPING_KEYS: out_dir
# is the run's folder), and the threads per job
BOOKKEEPING_CHANGES = {
    "train.checkpoint_every": lambda c: c["profile_overrides"]["train"].update(checkpoint_every=3),
    "train.log_every": lambda c: c["profile_overrides"]["train"].update(log_every=2),
    "train.progress": lambda c: c["profile_overrides"]["train"].update(progress=False),
    "train.pseudo_label_logs": lambda c: c["profile_overrides"]["train"].update(pseudo_label_logs=False),
    "train.on_failure": lambda c: c["profile_overrides"]["train"].update(on_failure="raise"),
    "threads_per_job": lambda c: c.update(threads_per_job=2),
}


@pytest.mark.slow
def test_only_settings_that_change_the_numbers_rerun_a_training_job(tmp_path):
    from methods.runconfig import BOOKKEEPING_KEYS

    assert {".".join(k) for k in BOOKKEEPING_KEYS} - {"out_dir"} <= set(BOOKKEEPING_CHANGES)
    cfg = _two_run_config()
    runs = sorted(expected_runs(cfg))
    targets = tuple(f"results/tiny/runs/{run_key(r)}/final.pt" for r in runs)
    done = snakemake(tmp_path, write_yaml(cfg, tmp_path / "base.yaml"), targets=targets, cores=2)
    assert done.returncode == 0, done.stdout[-3000:]

    for name, change in BOOKKEEPING_CHANGES.items():
        configfile = write_yaml(_changed(cfg, change), tmp_path / "changed.yaml")
        plan = snakemake(tmp_path, configfile, "-n", targets=targets)
        assert plan.returncode == 0, plan.stdout[-3000:]
        assert "Nothing to be done" in plan.stdout, f"{name} planned jobs:\n{plan.stdout[-3000:]}"

    # lr changes every run: each is planned again, with the current bookkeeping on its command line
    lr_and_interval = _changed(cfg, lambda c: c["profile_overrides"]["train"].update(lr=0.02, checkpoint_every=3))
    plan = snakemake(tmp_path, write_yaml(lr_and_interval, tmp_path / "lr.yaml"), "-n", "-p", targets=targets)
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert job_counts(plan.stdout) == {"run_config": 2, "train": 2}
    assert plan.stdout.count("--set=train.checkpoint_every=3") == 2
    # a method's own setting changes that method's runs only
    mt_only = _changed(cfg, lambda c: c.update(method_config={"meanteacher": {"ema_decay": 0.99}}))
    plan = snakemake(tmp_path, write_yaml(mt_only, tmp_path / "mt.yaml"), "-n", "-p", targets=targets)
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert job_counts(plan.stdout) == {"run_config": 1, "train": 1}
    planned = re.findall(r"^\s+output: (.+)$", plan.stdout, re.M)
    assert sorted(planned) == ["results/tiny/runs/phantom/r20/meanteacher/default/s0/final.pt",
                               "results/tiny/runs/phantom/r20/meanteacher/default/s0/run.yaml"], planned


# ------------------------------------------------------------------------------------------------
# several GPUs on one machine: one per job


@pytest.mark.slow
def test_with_two_gpu_slots_concurrent_training_jobs_get_distinct_gpus(tmp_path):
    """`--resources gpu=2` with gpus_per_job 1 and a stand-in CUDA_VISIBLE_DEVICES=5,7 on a CPU
    machine: every job trains on the CPU (no such GPU), each holds one of the two slots, and two
    jobs that ran at the same time never had the same one (methods/cluster/gpu_slots.py)."""
    cfg = _two_run_config()
    cfg.update(seeds=[0, 1], gpus_per_job=1)
    runs = sorted(expected_runs(cfg))
    targets = tuple(f"results/tiny/runs/{run_key(r)}/final.pt" for r in runs)
    result = snakemake(tmp_path, write_yaml(cfg, tmp_path / "gpus.yaml"), "--resources", "gpu=2", targets=targets,
                       cores=2, env={"CUDA_VISIBLE_DEVICES": "5,7", "SPCL_BENCH_GPU_SLOTS_DIR": str(tmp_path / "slots"),
                                     "SLURM_JOB_ID": None, "SPCL_BENCH_GPU_SLOTS": None})
    assert result.returncode == 0, result.stdout[-3000:]
    sessions = []
    for run in runs:
        env = json.loads((tmp_path / "results/tiny/runs" / run_key(run) / "environment.json").read_text())["sessions"]
        assert len(env) == 1 and env[0]["device"] == "cpu", run
        sessions.append(env[0])
    assert {s["cuda_visible_devices"] for s in sessions} == {"5", "7"}  # one slot each, both in use
    for i, a in enumerate(sessions):
        for b in sessions[i + 1:]:
            if a["started"] < b["finished"] and b["started"] < a["finished"]:  # ran at the same time
                assert a["cuda_visible_devices"] != b["cuda_visible_devices"], (a, b)


# ------------------------------------------------------------------------------------------------
# a training job killed mid-run resumes


def _kill_when_checkpointed(cmd: list[str], workdir: Path, run_dir: Path, log: Path) -> None:
    """Start Snakemake in its own process group; SIGKILL the whole group (Snakemake and the training
    job) as soon as the first resume checkpoint exists; return once no process of it is left."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=workdir, env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 900  # a guard against a hang, not a timing assertion
    try:
        while not (run_dir / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None, f"snakemake ended before the first checkpoint:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint after 900 s"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is already gone if snakemake failed
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    gone_by = time.monotonic() + 60
    while _alive_in_group(proc.pid):  # the training job is in the same group: wait until it is gone too
        assert time.monotonic() < gone_by, "a process of the killed group survived SIGKILL"
        time.sleep(0.05)


def _alive_in_group(pgid: int) -> bool:
    """Any process of process group `pgid` that is not a zombie (/proc/PID/stat: state, ppid, pgrp)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(group) == pgid and state != "Z":
            return True
    return False


@pytest.mark.slow
def test_a_killed_training_job_resumes_from_its_checkpoint_with_the_same_command(tmp_path):
    """SIGKILL of Snakemake and its training job leaves Snakemake's lock; the same command removes
    it (no Snakemake holds it any more), reruns the training job, which resumes from its checkpoint
    with the interval changed meanwhile (a bookkeeping setting: run.yaml is not rewritten)."""
    cfg = yaml.safe_load((CONFIGS / "resume.yaml").read_text())
    config = write_yaml(cfg, tmp_path / "resume.yaml")
    iterations = cfg["profile_overrides"]["train"]["iterations"]
    run_dir = tmp_path / "results/resume/runs/phantom/r20/suponly/default/s0"
    target = str((run_dir / "final.pt").relative_to(tmp_path))

    cmd = snakemake_cmd(tmp_path, config, "--rerun-incomplete", targets=(target,))
    _kill_when_checkpointed(cmd, tmp_path, run_dir, tmp_path / "killed.log")
    assert not (run_dir / "final.pt").exists(), "the run finished before it was killed: raise its iterations"
    killed_at = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["iteration"]
    assert 0 < killed_at < iterations and killed_at % 5 == 0  # checkpoint_every: 5
    assert list((tmp_path / ".snakemake" / "locks").glob("*.lock")), "SIGKILL left no lock: nothing to test"

    # A marker in the killed run's log: a resumed run keeps the rows before its checkpoint as they
    # are on disk, a restarted one writes them anew.
    rows = read_log(run_dir / "log.csv")
    assert len(rows) >= killed_at
    rows[0]["lr"] = "-1"
    with (run_dir / "log.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    cfg["profile_overrides"]["train"]["checkpoint_every"] = 7  # changed before the restart
    write_yaml(cfg, config)
    rerun = subprocess.run(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=900)  # the same command, no --unlock
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "removed Snakemake's lock" in rerun.stdout
    assert re.search(r"^train\s+1$", rerun.stdout, re.M) and not re.search(r"^run_config\s", rerun.stdout, re.M)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["checkpoint_every"] == 7
    sessions = json.loads((run_dir / "environment.json").read_text())["sessions"]
    assert [(x["from_iteration"], x["to_iteration"]) for x in sessions] == [(killed_at, iterations)]

    assert (run_dir / "final.pt").is_file() and not (run_dir / "checkpoints" / "last.pt").exists()
    resumed = read_log(run_dir / "log.csv")
    assert [int(r["iteration"]) for r in resumed] == list(range(iterations))
    assert resumed[0]["lr"] == "-1", "the rerun started again from iteration 0 instead of resuming"
    run_cfg = yaml.safe_load((run_dir / "run.yaml").read_text())["train"]
    poly = lambda it: run_cfg["lr"] * (1 - it / iterations) ** run_cfg["poly_power"]  # noqa: E731
    assert float(resumed[killed_at]["lr"]) == pytest.approx(poly(killed_at), rel=1e-5)  # the schedule went on
    train_log = (tmp_path / "results/resume/logs/train/phantom/r20/suponly/default/s0.log").read_text()
    assert "no longer runs; taking it over" in train_log  # the killed job's train.lock
    assert train_log.strip().endswith("finished: results/resume/runs/phantom/r20/suponly/default/s0")


@pytest.mark.slow
def test_the_lock_of_a_running_snakemake_is_never_removed(tmp_path):
    """The same command started while the first still runs stops with Snakemake's LockException
    and says why the lock stays; the running workflow keeps its lock and goes on."""
    cfg = yaml.safe_load((CONFIGS / "resume.yaml").read_text())
    cfg["profile_overrides"]["train"]["iterations"] = 10**6  # it runs until this test stops it
    config = write_yaml(cfg, tmp_path / "long.yaml")
    run_dir = tmp_path / "results/resume/runs/phantom/r20/suponly/default/s0"
    target = str((run_dir / "final.pt").relative_to(tmp_path))
    cmd = snakemake_cmd(tmp_path, config, targets=(target,))
    locks = tmp_path / ".snakemake" / "locks"
    with (tmp_path / "first.log").open("w") as fh:
        first = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # a guard against a hang, not a timing assertion
        while not (run_dir / "log.csv").exists():  # training: the lock has long been taken
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        held = sorted(p.read_text() for p in locks.glob("*.lock"))
        assert held

        second = subprocess.run(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=900)
        assert second.returncode != 0 and "LockException" in second.stdout, second.stdout[-3000:]
        assert "Snakemake's lock in" in second.stdout and "is kept" in second.stdout
        assert "--unlock" in second.stdout  # the two commands for when the other one is known to be gone
        assert first.poll() is None and sorted(p.read_text() for p in locks.glob("*.lock")) == held
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_editing_a_parent_profile_replans_exactly_the_runs_of_the_profiles_that_extend_it(tmp_path):
    """Every run.yaml is fully resolved (the profile's `extends:` chain merged in), so an edit of
    cpu.yaml reaches the runs of a profile extending it through Snakemake's params trigger, and
    leaves the runs of a profile that does not extend it alone (dry run after the edit)."""
    repo = tmp_path / "repo"  # a copy of the workflow whose profiles the test may edit
    repo.mkdir()
    shutil.copy(SNAKEFILE, repo / "Snakefile")
    for part in ("workflow", "config"):
        shutil.copytree(REPO / part, repo / part)
    (repo / "config" / "profiles" / "child.yaml").write_text("extends: cpu\ndata: {img_size: 32}\n")
    tiny = yaml.safe_load((REPO / "tests" / "workflow_configs" / "tiny.yaml").read_text())
    configs = {name: write_yaml({**tiny, "run_name": name, "profile": profile}, tmp_path / f"{name}.yaml")
               for name, profile in (("child", "child"), ("other", "paper"))}
    work = tmp_path / "work"
    work.mkdir()

    def run(name, *options):
        cmd = snakemake_cmd(work, configs[name], *options, "--until", "run_config")
        cmd[cmd.index("-s") + 1] = str(repo / "Snakefile")
        return subprocess.run(cmd, cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=900)

    def planned(name) -> dict[str, int]:
        result = run(name, "-n", "--quiet", "rules")
        assert result.returncode == 0, result.stdout[-3000:]
        return job_counts(result.stdout) if "Job stats:" in result.stdout else {}

    for name in configs:
        assert run(name).returncode == 0  # every run.yaml written
        assert planned(name) == {}
    cpu = repo / "config" / "profiles" / "cpu.yaml"
    edited = cpu.read_text().replace("weight_decay: 0.0001", "weight_decay: 0.0002")
    assert edited != cpu.read_text()
    cpu.write_text(edited)
    assert planned("child") == {"run_config": len(expected_runs(tiny))}  # every run of the child profile
    assert planned("other") == {}  # the paper profile does not extend cpu
