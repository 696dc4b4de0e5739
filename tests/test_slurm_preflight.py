"""The SLURM pre-flight check (methods/cluster/slurm_preflight.py) without SLURM: fake `sinfo`, `scontrol`,
`sbatch`, ... executables on PATH print what a cluster would.

- parsing: GRES strings, time limits, `sinfo --Node` lines, `scontrol show config`;
- a job that asks for more CPUs, memory, GPUs or time than any node of its partition has, a GPU
  job on a cluster without GPU GRES, an unknown or missing partition: each is named, with the
  setting to change; a job that fits passes;
- no accounting database: `sacct` as the status command, or a MinJobAge too short for `squeue`,
  is refused naming the profile setting;
- through Snakemake itself (`--profile profiles/slurm` on the tiny config): a missing `sbatch` and
  a GPU job on a cluster without GPUs stop the run before anything is submitted (the fake sbatch
  records every call), and a job that fits the fake cluster passes the check.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from methods.cluster.slurm_preflight import (
    JobRequest,
    SlurmPreflightError,
    check_accounting,
    check_commands,
    check_requests,
    parse_gres,
    parse_scontrol_config,
    parse_sinfo,
    parse_time_limit,
    preflight,
)

REPO = Path(__file__).resolve().parents[1]
SLURM_COMMANDS = ("sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol", "sacct", "sacctmgr", "sshare")

# one node, 2 CPUs, ~24 GB, two GPUs, default partition 'ci' without a time limit
SINFO_GPU = "ci*|vm|2|24105|gpu:2|infinite\n"
SINFO_NO_GPU = "ci*|vm|2|24105|(null)|infinite\n"
SCONTROL_NO_ACCOUNTING = ("Configuration data as of 2026-11-29T22:00:00\n"
                          "AccountingStorageType   = accounting_storage/none\nMinJobAge               = 300 sec\n")
SCONTROL_SLURMDBD = "AccountingStorageType   = accounting_storage/slurmdbd\nMinJobAge               = 300 sec\n"


def job(**kw) -> JobRequest:
    base = dict(rule="train", cpus=1, mem_mb=4000, gpus=0, runtime_min=60,
                sources={"cpus": "threads_per_job: 1 in cfg.yaml", "mem_mb": "mem_mb_per_job: 4000 in cfg.yaml",
                         "gpus": "gpus_per_job: 0 in cfg.yaml", "runtime": "runtime_min_per_job: 60 in cfg.yaml"})
    base.update(kw)
    return JobRequest(**base)


# ------------------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize("text, expected", [
    ("(null)", {}),
    ("gpu:2", {None: 2}),
    ("gpu:a100:4(S:0-1)", {"a100": 4}),
    ("gpu:a100:2,gpu:v100:1,shard:8", {"a100": 2, "v100": 1}),
    ("gpu:tesla:2(S:0,1),mps:100", {"tesla": 2}),
    ("gpu", {None: 1}),
])
def test_gres_strings_give_gpu_counts_per_type(text, expected):
    assert parse_gres(text) == expected


@pytest.mark.parametrize("text, minutes", [
    ("infinite", None), ("UNLIMITED", None), ("30", 30), ("30:00", 30), ("30:01", 31), ("2:00:00", 120),
    ("1-00:00:00", 1440), ("2-12", 3600), ("1-01:30", 1530),
])
def test_time_limits_in_minutes(text, minutes):
    assert parse_time_limit(text) == minutes


def test_sinfo_lines_give_partitions_with_their_nodes():
    parts = parse_sinfo("cpu*|n1|64|256000|(null)|2-00:00:00\ncpu*|n2|32|128000|(null)|2-00:00:00\n"
                        "gpu|g1|16|512000|gpu:a100:4(S:0-1)|1-00:00:00\n")
    assert sorted(parts) == ["cpu", "gpu"]
    assert parts["cpu"].default and not parts["gpu"].default
    assert [n.cpus for n in parts["cpu"].nodes] == [64, 32]
    assert parts["gpu"].max_runtime_min == 1440 and parts["gpu"].nodes[0].gpu_count("a100") == 4
    with pytest.raises(SlurmPreflightError, match="cannot read"):
        parse_sinfo("garbage\n")


def test_scontrol_config_lines():
    config = parse_scontrol_config(SCONTROL_NO_ACCOUNTING)
    assert config["AccountingStorageType"] == "accounting_storage/none" and config["MinJobAge"] == "300 sec"


# ------------------------------------------------------------------------------------------------
# jobs against partitions


def test_a_job_that_fits_a_node_passes():
    assert check_requests([job(cpus=2, gpus=2, mem_mb=24000)], parse_sinfo(SINFO_GPU)) == []


@pytest.mark.parametrize("request_kw, words", [
    ({"cpus": 8, "sources": {"cpus": "threads_per_job: 8 in paper.yaml"}},
     ["rule train", "8 CPUs", "threads_per_job: 8 in paper.yaml", "partition 'ci' has 2"]),
    ({"mem_mb": 32000, "sources": {"mem_mb": "mem_mb_per_job: 32000 in paper.yaml"}},
     ["32000 MB", "mem_mb_per_job: 32000 in paper.yaml", "24105 MB"]),
    ({"gpus": 4, "sources": {"gpus": "gpus_per_job: 4 in x.yaml"}}, ["4 GPUs", "gpus_per_job: 4 in x.yaml", "at most 2"]),
    ({"gpus": 1, "gpu_model": "a100", "sources": {"gpu_model": "gpu_model in profiles/slurm/config.yaml"}},
     ["type 'a100'", "gpu_model in profiles/slurm/config.yaml", "no node"]),
])
def test_a_job_larger_than_every_node_is_named_with_its_setting(request_kw, words):
    problems = check_requests([job(**request_kw)], parse_sinfo(SINFO_GPU))
    assert len(problems) == 1
    for word in words:
        assert word in problems[0], problems[0]


def test_a_gpu_job_on_a_cluster_without_gpu_gres_is_named():
    problems = check_requests([job(gpus=1, sources={"gpus": "gpus_per_job: 1 in cfg.yaml"})], parse_sinfo(SINFO_NO_GPU))
    assert len(problems) == 1
    assert "no node of partition 'ci' has GPUs" in problems[0] and "gpus_per_job: 1 in cfg.yaml" in problems[0]


def test_cpus_memory_and_gpus_must_fit_one_node_and_run_time_the_partition():
    sinfo = "p*|big_cpu|64|16000|(null)|1:00:00\np*|big_gpu|4|16000|gpu:4|1:00:00\n"
    problems = check_requests([job(cpus=32, gpus=1)], parse_sinfo(sinfo))
    assert len(problems) == 1 and "no single node" in problems[0]
    problems = check_requests([job(runtime_min=120, sources={"runtime": "runtime_min_per_job: 120 in c.yaml"})],
                              parse_sinfo(sinfo))
    assert len(problems) == 1 and "runtime_min_per_job: 120 in c.yaml" in problems[0] and "60 min" in problems[0]


def test_partitions_named_by_the_job_or_the_default_one():
    parts = parse_sinfo("cpu*|n1|4|8000|(null)|infinite\ngpu|g1|8|64000|gpu:1|infinite\n")
    assert check_requests([job(gpus=1, partitions=("gpu",))], parts) == []
    assert check_requests([job(gpus=1, partitions=("cpu", "gpu"))], parts) == []
    assert "no node of partition 'cpu'" in check_requests([job(gpus=1)], parts)[0]  # the default
    unknown = check_requests([job(partitions=("a100",), sources={"partition": "slurm_partition in P"})], parts)
    assert "partition a100 (slurm_partition in P) does not exist" in unknown[0] and "cpu, gpu" in unknown[0]
    no_default = parse_sinfo("cpu|n1|4|8000|(null)|infinite\n")
    assert "no default partition" in check_requests([job()], no_default)[0]
    assert check_requests([job()], no_default, any_partition=True) == []  # the plugin's partition config picks


# ------------------------------------------------------------------------------------------------
# accounting


def test_without_accounting_the_status_command_must_be_squeue():
    config = parse_scontrol_config(SCONTROL_NO_ACCOUNTING)
    problems = check_accounting(config, "sacct", 40)
    assert len(problems) == 1 and "slurm-status-command: squeue" in problems[0] and "accounting_storage/none" in problems[0]
    assert check_accounting(config, "squeue", 40) == []
    assert check_accounting(parse_scontrol_config(SCONTROL_SLURMDBD), "sacct", 40) == []


def test_without_accounting_a_short_min_job_age_is_named():
    config = parse_scontrol_config(SCONTROL_NO_ACCOUNTING.replace("300 sec", "60 sec"))
    problems = check_accounting(config, "squeue", 40)
    assert len(problems) == 1
    assert "MinJobAge = 60 s" in problems[0] and "slurm-init-seconds-before-status-checks: 20" in problems[0]
    assert check_accounting(config, "squeue", 20) == []


def test_missing_commands_are_named():
    present = {"squeue", "scancel", "sinfo", "scontrol"}
    problems = check_commands(which=lambda cmd: f"/usr/bin/{cmd}" if cmd in present else None)
    assert len(problems) == 1 and "sbatch" in problems[0] and "snakemake --cores all" in problems[0]
    assert check_commands(which=lambda cmd: f"/usr/bin/{cmd}") == []


# ------------------------------------------------------------------------------------------------
# fake SLURM commands on PATH


def fake_slurm(bin_dir: Path, sinfo: str = SINFO_GPU, scontrol: str = SCONTROL_NO_ACCOUNTING,
               without: tuple[str, ...] = ()) -> Path:
    """Fake client commands in `bin_dir`; each call is appended to bin_dir/calls.log."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "sinfo.txt").write_text(sinfo)
    (bin_dir / "scontrol.txt").write_text(scontrol)
    outputs = {"sinfo": "sinfo.txt", "scontrol": "scontrol.txt"}
    for cmd in SLURM_COMMANDS:
        if cmd in without:
            continue
        body = f'cat "{bin_dir / outputs[cmd]}"' if cmd in outputs else "true"
        if cmd == "sbatch":
            body = 'echo "sbatch: error: this fake cluster takes no jobs" >&2; exit 1'
        script = bin_dir / cmd
        script.write_text(f'#!/bin/sh\necho "{cmd} $*" >> "{bin_dir / "calls.log"}"\n{body}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def path_hiding_real_slurm(tmp_path: Path, fake_bin: Path) -> str:
    """PATH with `fake_bin` first and no real SLURM client anywhere: a folder of PATH that holds one
    (e.g. /usr/bin on a machine with SLURM) is replaced by a mirror of links to everything else."""
    dirs = [str(fake_bin)]
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        folder = Path(entry)
        if not folder.is_dir():
            continue
        if not any((folder / cmd).exists() for cmd in SLURM_COMMANDS):
            dirs.append(entry)
            continue
        mirror = tmp_path / f"path{i}"
        mirror.mkdir(exist_ok=True)
        for item in folder.iterdir():
            if item.name not in SLURM_COMMANDS and not (mirror / item.name).exists():
                (mirror / item.name).symlink_to(item)
        dirs.append(str(mirror))
    return os.pathsep.join(dirs)


def test_preflight_reads_the_fake_cluster(tmp_path, monkeypatch):
    fake = fake_slurm(tmp_path / "bin", sinfo=SINFO_NO_GPU)
    monkeypatch.setenv("PATH", path_hiding_real_slurm(tmp_path, fake))
    preflight([job()], status_command="squeue")  # fits: no error
    with pytest.raises(SlurmPreflightError) as err:
        preflight([job(gpus=1), job(rule="evaluate", cpus=16)], status_command="sacct")
    text = str(err.value)
    assert "nothing was submitted" in text and "slurm-status-command: squeue" in text
    assert "rule train asks for 1 GPU(s)" in text and "rule evaluate asks for 16 CPUs" in text
    assert "sbatch" not in (fake / "calls.log").read_text()


def test_preflight_names_a_missing_sbatch(tmp_path, monkeypatch):
    fake = fake_slurm(tmp_path / "bin", without=("sbatch",))
    monkeypatch.setenv("PATH", path_hiding_real_slurm(tmp_path, fake))
    with pytest.raises(SlurmPreflightError, match=r"needs SLURM's sbatch on PATH.*snakemake --cores all"):
        preflight([job()], status_command="squeue")


def test_preflight_reports_an_unreachable_controller(tmp_path, monkeypatch):
    fake = fake_slurm(tmp_path / "bin")
    (fake / "scontrol").write_text('#!/bin/sh\necho "slurm_load_ctl_conf error: Unable to contact slurm controller" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", path_hiding_real_slurm(tmp_path, fake))
    with pytest.raises(SlurmPreflightError, match="Unable to contact slurm controller"):
        preflight([job()], status_command="squeue")


# ------------------------------------------------------------------------------------------------
# through Snakemake: --profile profiles/slurm


def snakemake_slurm(tmp_path: Path, path: str, *config: str) -> subprocess.CompletedProcess:
    """`snakemake --profile profiles/slurm` on the tiny config, from the repo root as a user runs it."""
    env = dict(os.environ, PATH=path, HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--directory", str(tmp_path / "work"),
           "--configfile", str(REPO / "tests" / "workflow_configs" / "tiny.yaml"), "--config", *config]
    return subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def slurm_plugin():
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]' (or '.[test]')")


@pytest.mark.parametrize("case", ["no_sbatch", "gpu_without_gres"])
def test_a_slurm_run_that_cannot_work_stops_before_submitting(case, slurm_plugin, tmp_path):
    if case == "no_sbatch":
        fake = fake_slurm(tmp_path / "bin", without=("sbatch",))
        expected = ["needs SLURM's sbatch on PATH"]
    else:
        fake = fake_slurm(tmp_path / "bin", sinfo=SINFO_NO_GPU)
        expected = ["rule train asks for 1 GPU(s) per job (gpus_per_job: 1 (--config))",
                    "rule evaluate asks for 1 GPU(s)", "no node of partition 'ci' has GPUs"]
    result = snakemake_slurm(tmp_path, path_hiding_real_slurm(tmp_path, fake), "gpus_per_job=1")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "SLURM pre-flight check: nothing was submitted" in result.stdout, result.stdout[-3000:]
    for text in expected:
        assert text in result.stdout, result.stdout[-3000:]
    calls = (fake / "calls.log").read_text() if (fake / "calls.log").exists() else ""
    assert "sbatch" not in calls
    assert not list((tmp_path / "work").glob("results/tiny/runs/*/*/*/*/*/final.pt"))


def test_a_slurm_run_that_fits_passes_the_check_and_submits(slurm_plugin, tmp_path):
    """On a fake cluster that fits every job, the check passes and the plugin calls sbatch (which
    the fake refuses, so the run then fails: at submission, with sbatch's message, not in a queue)."""
    fake = fake_slurm(tmp_path / "bin", sinfo=SINFO_GPU)
    result = snakemake_slurm(tmp_path, path_hiding_real_slurm(tmp_path, fake), "gpus_per_job=1")
    assert "SLURM pre-flight check" not in result.stdout, result.stdout[-3000:]
    assert result.returncode != 0 and "this fake cluster takes no jobs" in result.stdout, result.stdout[-3000:]
    sbatch = [line for line in (fake / "calls.log").read_text().splitlines() if line.startswith("sbatch ")]
    assert sbatch and all("rule_prepare" in line for line in sbatch)  # the first job; nothing after it ran
