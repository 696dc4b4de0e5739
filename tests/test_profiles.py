"""The profiles, read the way the `snakemake` command line reads them (snakemake.cli.parse_args, from
the repo root), and where per-job resources come from.

- Snakemake 9 loads profiles/default (the workflow profile) for every run and lets its keys win
  over a --profile. So it holds only settings that are right for every executor, and a run with
  --profile profiles/slurm gets every setting of that profile (latency-wait 60, not a local 10;
  squeue status queries; ...). A local run gets the workflow profile and nothing of the cluster's.
- Per-job resources come from the config only: a dry run through the SLURM profile asks each job
  for exactly the config's threads, GPUs, memory and run time; a set-resources, set-threads or
  default-resources entry that would override them stops the run at start-up, naming the config
  key; site settings (partition, account, GPU model) pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "workflow_configs" / "tiny.yaml"
# Settings of the workflow itself, right whatever executes it: the only keys profiles/default may set.
WORKFLOW_PROFILE_KEYS = {"keep-going", "rerun-incomplete", "printshellcmds", "show-failed-logs"}


def read_profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def effective_args(monkeypatch, *argv: str):
    """The settings `snakemake ARGV` runs with, typed in the repo root (profiles merged)."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    return parse_args(list(argv))[1]


@pytest.fixture(scope="module")
def slurm_plugin():
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]' (or '.[test]')")


def test_a_slurm_run_gets_every_setting_of_the_slurm_profile(slurm_plugin, monkeypatch):
    profile = read_profile("slurm")
    args = effective_args(monkeypatch, "--profile", "profiles/slurm", "--dry-run")
    for key, value in profile.items():
        assert getattr(args, key.replace("-", "_")) == value, key
    assert (args.executor, args.latency_wait, args.jobs) == ("slurm", 60, 40)
    assert args.slurm_status_command == "squeue"  # works without an accounting database
    assert not args.set_resources and not args.set_threads and not args.default_resources


def test_the_workflow_profile_holds_only_settings_right_for_every_executor():
    workflow_profile = read_profile("default")
    assert set(workflow_profile) <= WORKFLOW_PROFILE_KEYS, set(workflow_profile) - WORKFLOW_PROFILE_KEYS
    slurm = read_profile("slurm")
    for key in set(workflow_profile) & set(slurm):
        assert workflow_profile[key] == slurm[key], key


def test_a_local_run_gets_the_workflow_profile_and_nothing_of_the_cluster(monkeypatch):
    args = effective_args(monkeypatch, "--cores", "1", "--dry-run")
    assert args.keep_going and args.rerun_incomplete
    assert args.executor in (None, "local") and args.jobs is None
    assert args.latency_wait == 5  # Snakemake's default, not the cluster's 60


# ------------------------------------------------------------------------------------------------
# resources from the config


def snakemake(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(tmp_path), *options, "--configfile", str(TINY)]
    return subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)


def job_resources(output: str) -> dict[str, dict[str, str]]:
    """rule -> the `resources:` of its first job in a dry run's listing. (Not its threads: a dry run
    scales them to its one core; the SLURM request is cpus_per_task, which the rules set to them.)"""
    found = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if match and res and match[1] not in found:
            found[match[1]] = dict(kv.split("=", 1) for kv in res[1].split(", "))
    return found


def test_a_slurm_run_asks_each_job_for_the_config_resources(slurm_plugin, tmp_path):
    result = snakemake(tmp_path, "--profile", "profiles/slurm", "--dry-run", "--config", "threads_per_job=2",
                       "gpus_per_job=1", "mem_mb_per_job=3000", "runtime_min_per_job=45", "mem_mb_per_small_job=1500",
                       "runtime_min_per_small_job=20")
    assert result.returncode == 0, result.stdout[-3000:]
    found = job_resources(result.stdout)
    for rule in ("train", "evaluate"):
        res = found[rule]
        assert (res["cpus_per_task"], res["gpu"], res["mem_mb"], res["runtime"]) == ("2", "1", "3000", "45"), (rule, res)
    for rule in ("prepare", "split", "analysis"):
        res = found[rule]
        assert (res["cpus_per_task"], res["gpu"], res["mem_mb"], res["runtime"]) == ("1", "0", "1500", "20"), (rule, res)


@pytest.mark.parametrize("options, names", [
    (["--set-resources", "train:mem_mb=32000"], ["set-resources train:mem_mb=32000 overrides mem_mb_per_job: 4000 in"]),
    (["--set-resources", "evaluate:gpu=1", "prepare:runtime=600"],
     ["set-resources evaluate:gpu=1 overrides gpus_per_job: 0 in", "prepare:runtime=600 overrides runtime_min_per_small_job"]),
    (["--set-threads", "train=8"], ["set-threads train=8 overrides threads_per_job: 1 in"]),
    (["--set-threads", "analysis=4"], ["set-threads analysis=4 overrides figures.tsne_jobs"]),
    (["--default-resources", "mem_mb_per_cpu=1000"], ["default-resources mem_mb_per_cpu=1000 would change every job's"]),
])
def test_a_profile_or_command_line_override_of_the_config_resources_stops_the_run(options, names, tmp_path):
    result = snakemake(tmp_path, "--workflow-profile", "none", "--cores", "1", "--dry-run", *options)
    assert result.returncode != 0
    assert "per-job resources come from the config only" in result.stdout, result.stdout[-3000:]
    for name in names:
        assert name in result.stdout, result.stdout[-3000:]
    assert "Job stats:" not in result.stdout


def test_site_settings_in_a_profile_pass(tmp_path):
    result = snakemake(tmp_path, "--workflow-profile", "none", "--cores", "1", "--dry-run", "--set-resources",
                       "train:slurm_partition=gpu", "evaluate:gpu_model=a100", "--default-resources", "slurm_account=abc")
    assert result.returncode == 0, result.stdout[-3000:]
