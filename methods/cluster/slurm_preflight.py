"""Checks a SLURM run before Snakemake submits its first job.

Why: on SLURM a wrong setting rarely fails, it waits. A job that asks for more CPUs, memory, GPUs
or time than any node of its partition offers stays in the queue for ever (`Reason=PartitionConfig`,
no error); a cluster without an accounting database (no slurmdbd) cannot answer the `sacct` status
query of snakemake-executor-plugin-slurm, so the head waits for ever after its jobs have finished;
and on a machine without `sbatch` every job fails with a message about `sacct`. So the workflow's
`onstart` handler (workflow/rules/resources.smk; on the head only, and only under
`--executor slurm`) asks SLURM itself (`sinfo`, `scontrol show config`), compares the answer with
what each job is about to request, and stops with one message that names the setting to change.

Everything that talks to SLURM goes through `run_command`, so the tests can put fake `sinfo` and
`scontrol` executables on PATH (tests/test_slurm_preflight.py); no SLURM is needed to test it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# What `sinfo` prints per (node, partition): partition (a trailing * marks the default), node,
# CPUs, memory in MB (RealMemory), generic resources, the partition's time limit.
SINFO_FORMAT = "%P|%N|%c|%m|%G|%l"
SINFO_COMMAND = ["sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}"]
SCONTROL_COMMAND = ["scontrol", "show", "config"]
# The commands the executor plugin needs: submission, status, cancellation, cluster facts.
REQUIRED_COMMANDS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol")
NO_ACCOUNTING = "accounting_storage/none"
# The profile key (and command-line flag) of the plugin's status query.
STATUS_SETTING = "slurm-status-command"
INIT_SETTING = "slurm-init-seconds-before-status-checks"


class SlurmPreflightError(RuntimeError):
    """The run would hang or fail on this cluster; the message lists every reason and its fix."""


@dataclass(frozen=True)
class JobRequest:
    """What one rule's jobs will ask SLURM for, and which setting decides each part.

    `sources` maps "cpus", "mem_mb", "gpus", "runtime" (and "partition", "gpu_model") to the name of
    the setting a user changes, e.g. {"cpus": "threads_per_job"}; messages quote it."""

    rule: str
    cpus: int
    mem_mb: int | None = None
    gpus: int = 0
    gpu_model: str | None = None
    runtime_min: int | None = None
    partitions: tuple[str, ...] = ()  # () = the cluster's default partition
    sources: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def source(self, what: str) -> str:
        return self.sources.get(what, f"the {what} resource of rule {self.rule}")


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: Mapping[str | None, int]  # GPU type (None: untyped) -> count

    def gpu_count(self, model: str | None = None) -> int:
        if model is None:
            return sum(self.gpus.values())
        return self.gpus.get(model, 0)


@dataclass
class Partition:
    name: str
    default: bool = False
    max_runtime_min: int | None = None  # None: no limit
    nodes: list[Node] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# parsing what SLURM prints


def parse_gres(text: str) -> dict[str | None, int]:
    """GPU counts per type from a GRES string: 'gpu:2' -> {None: 2}, 'gpu:a100:4(S:0-1),shard:8'
    -> {'a100': 4}; '(null)' -> {}. Other generic resources (shard, mps) are not GPUs."""
    gpus: dict[str | None, int] = {}
    text = re.sub(r"\([^)]*\)", "", text.strip())  # socket bindings, '(null)'
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        if parts[0] != "gpu":
            continue
        count_text = parts[-1] if len(parts) > 1 else "1"
        match = re.fullmatch(r"(\d+)([KMG]?)", count_text)
        if not match:  # 'gpu:a100' without a count means one
            gpu_type, count = ":".join(parts[1:]) or None, 1
        else:
            gpu_type = ":".join(parts[1:-1]) or None
            count = int(match[1]) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match[2]]
        gpus[gpu_type] = gpus.get(gpu_type, 0) + count
    return gpus


def parse_time_limit(text: str) -> int | None:
    """A SLURM time limit in whole minutes (rounded up); None for 'infinite'/'UNLIMITED'/'n/a'.
    Formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", "none", ""):
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        fields = [int(x) for x in text.split(":")] + [0, 0]
        hours, minutes, seconds = fields[:3]
    else:
        fields = [int(x) for x in text.split(":")]
        if len(fields) == 1:
            hours, minutes, seconds = 0, fields[0], 0
        elif len(fields) == 2:
            hours, minutes, seconds = 0, fields[0], fields[1]
        else:
            hours, minutes, seconds = fields[:3]
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions and their nodes from `sinfo --noheader --Node --format=SINFO_FORMAT`."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 6:
            raise SlurmPreflightError(f"cannot read this line of `{' '.join(SINFO_COMMAND)}`: {line!r}")
        part_name, node_name, cpus, mem, gres, limit = (f.strip() for f in fields)
        default = part_name.endswith("*")
        part_name = part_name.rstrip("*")
        part = partitions.setdefault(part_name, Partition(part_name))
        part.default = part.default or default
        part.max_runtime_min = parse_time_limit(limit)
        part.nodes.append(Node(node_name, _leading_int(cpus), _leading_int(mem), parse_gres(gres)))
    return partitions


def _leading_int(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match[0]) if match else 0


def parse_scontrol_config(text: str) -> dict[str, str]:
    """`scontrol show config` as {key: value} (the 'Key = value' lines)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def min_job_age_seconds(config: Mapping[str, str]) -> int | None:
    """MinJobAge in seconds ('300 sec', '1h', '300'); None when absent or unreadable."""
    match = re.match(r"(\d+)\s*([a-zA-Z]*)", config.get("MinJobAge", ""))
    if not match:
        return None
    return int(match[1]) * (3600 if match[2].lower() in ("h", "hour", "hours") else 1)


# ------------------------------------------------------------------------------------------------
# the checks; each returns a list of problems (empty: fine)


def check_commands(which=shutil.which) -> list[str]:
    missing = [cmd for cmd in REQUIRED_COMMANDS if which(cmd) is None]
    if not missing:
        return []
    return [f"`--executor slurm` (profiles/slurm) needs SLURM's {', '.join(missing)} on PATH, and this machine "
            f"has no {missing[0]}: SLURM is not installed here or not on PATH. Run Snakemake where `sbatch --version` "
            "works (a login node of the cluster), or run on this machine without the SLURM profile: "
            "snakemake --cores all"]


def check_accounting(config: Mapping[str, str], status_command: str | None, init_seconds: int) -> list[str]:
    """Without slurmdbd, `sacct` cannot report job states, and the plugin would wait for ever.

    `squeue` works there, but the plugin itself switches back to `sacct` when MinJobAge (how long
    slurmctld remembers a finished job) is below 3 x its first status-check delay."""
    storage = config.get("AccountingStorageType", "")
    if storage != NO_ACCOUNTING:
        return []
    problems = []
    if status_command != "squeue":
        problems.append(
            f"this cluster has no accounting database (AccountingStorageType = {storage}), so `sacct` cannot "
            f"report job states and the run would wait for ever after its jobs finish. Set `{STATUS_SETTING}: "
            f"squeue` in profiles/slurm/config.yaml (it is set there as shipped) or pass --{STATUS_SETTING} squeue; "
            f"the run asked for {status_command!r}")
    min_age = min_job_age_seconds(config)
    if min_age is not None and min_age < 3 * init_seconds:
        problems.append(
            f"this cluster has no accounting database and forgets finished jobs after MinJobAge = {min_age} s, less "
            f"than 3 x {INIT_SETTING} ({init_seconds} s): the executor plugin then falls back to `sacct`, which "
            f"cannot answer here. Set `{INIT_SETTING}: {max(1, min_age // 3)}` (at most MinJobAge / 3) in "
            "profiles/slurm/config.yaml, or ask the administrators for MinJobAge >= "
            f"{3 * init_seconds}")
    return problems


def _target_partitions(job: JobRequest, partitions: Mapping[str, Partition], any_partition: bool) -> tuple[list[Partition], str | None]:
    """The partitions the job may run in, or a problem: an unknown or missing partition."""
    if job.partitions:
        unknown = [p for p in job.partitions if p not in partitions]
        if unknown:
            return [], (f"rule {job.rule}: partition {', '.join(unknown)} ({job.source('partition')}) does not exist; "
                        f"`sinfo` lists {', '.join(sorted(partitions)) or 'none'}")
        return [partitions[p] for p in job.partitions], None
    if any_partition:  # the plugin picks one (its --slurm-partition-config)
        return list(partitions.values()), None
    defaults = [p for p in partitions.values() if p.default]
    if not defaults:
        return [], (f"rule {job.rule}: this cluster has no default partition; set slurm_partition in "
                    "profiles/slurm/config.yaml (default-resources, and a GPU partition for train and evaluate)")
    return defaults, None


def check_requests(jobs: Iterable[JobRequest], partitions: Mapping[str, Partition], any_partition: bool = False) -> list[str]:
    """Every job must fit at least one node of a partition it may use: CPUs, memory and GPUs on one
    node, run time within the partition's limit. Otherwise SLURM would keep it queued for ever."""
    problems = []
    for job in jobs:
        targets, problem = _target_partitions(job, partitions, any_partition)
        if problem:
            problems.append(problem)
            continue
        nodes = [n for p in targets for n in p.nodes]
        names = ", ".join(repr(p.name) for p in targets)
        where = f"partition {names}" if len(targets) == 1 else f"partitions {names}"
        if not nodes:
            problems.append(f"rule {job.rule}: {where} has no nodes")
            continue
        short = []
        if job.gpus > 0:
            gpus_best = max(n.gpu_count(job.gpu_model) for n in nodes)
            kind = f"GPUs of type {job.gpu_model!r} ({job.source('gpu_model')})" if job.gpu_model else "GPUs"
            if gpus_best == 0:
                short.append(f"asks for {job.gpus} GPU(s) per job ({job.source('gpus')}), but no node of {where} has "
                             f"{kind} as a generic resource (GRES, `sinfo -o %G`); set {job.source('gpus')} to 0 for "
                             "a CPU run, or slurm_partition to a GPU partition in profiles/slurm/config.yaml")
            elif gpus_best < job.gpus:
                short.append(f"asks for {job.gpus} GPUs per job ({job.source('gpus')}), but the nodes of {where} have "
                             f"at most {gpus_best} {kind}")
        cpus_best = max(n.cpus for n in nodes)
        if job.cpus > cpus_best:
            short.append(f"asks for {job.cpus} CPUs per job ({job.source('cpus')}), but the largest node of {where} "
                         f"has {cpus_best}")
        if job.mem_mb is not None:
            mem_best = max(n.mem_mb for n in nodes)
            if job.mem_mb > mem_best:
                short.append(f"asks for {job.mem_mb} MB of memory per job ({job.source('mem_mb')}), but the largest "
                             f"node of {where} has {mem_best} MB (RealMemory)")
        if not short:  # each limit fits some node; one node must fit them all at once
            fits = [n for n in nodes if n.cpus >= job.cpus and (job.mem_mb is None or n.mem_mb >= job.mem_mb)
                    and n.gpu_count(job.gpu_model) >= job.gpus]
            if not fits:
                short.append(f"asks for {job.cpus} CPUs, {job.mem_mb} MB and {job.gpus} GPU(s) per job, and no single "
                             f"node of {where} has all of them ({job.source('cpus')}, {job.source('mem_mb')}, "
                             f"{job.source('gpus')})")
        limits = [p.max_runtime_min for p in targets]
        if job.runtime_min is not None and None not in limits and job.runtime_min > max(limits):
            short.append(f"asks for {job.runtime_min} min of run time per job ({job.source('runtime')}), but the "
                         f"time limit of {where} is {max(limits)} min")
        problems += [f"rule {job.rule} {text}" for text in short]
    return problems


# ------------------------------------------------------------------------------------------------
# the whole pre-flight check


def run_command(cmd: list[str], timeout: float = 60) -> str:
    """stdout of `cmd`; a failure (cannot reach slurmctld, ...) is a SlurmPreflightError with stderr."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmPreflightError(f"`{' '.join(cmd)}` failed: {exc}") from exc
    if proc.returncode != 0:
        raise SlurmPreflightError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()} -- "
                                  "is slurmctld reachable from this machine (SLURM_CONF, the login node)?")
    return proc.stdout


def preflight(jobs: Iterable[JobRequest], status_command: str | None, init_seconds: int = 40,
              any_partition: bool = False) -> None:
    """Raise SlurmPreflightError listing every reason this run would fail or hang on this cluster."""
    problems = check_commands()
    if problems:
        raise SlurmPreflightError(_message(problems))
    config = parse_scontrol_config(run_command(SCONTROL_COMMAND))
    partitions = parse_sinfo(run_command(SINFO_COMMAND))
    problems = check_accounting(config, status_command, init_seconds)
    problems += check_requests(jobs, partitions, any_partition)
    if problems:
        raise SlurmPreflightError(_message(problems))


def _message(problems: list[str]) -> str:
    lines = "\n".join(f"- {p}" for p in problems)
    return ("SLURM pre-flight check: nothing was submitted, because this run would fail or wait for ever on this "
            f"cluster:\n{lines}\nPer-job resources come from the config (threads_per_job, gpus_per_job, "
            "mem_mb_per_job, runtime_min_per_job, ...; config/README.md, 'Resources').")
