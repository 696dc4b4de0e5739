"""The checks of .ci/slurm_check on the runs it makes (python .ci/slurm_check_runs.py COMMAND ...).

  outputs WORKDIR CONFIG          every table, figure and REPORT.md of the run exist, and every
                                  training run ran as a SLURM job: its environment.json names the
                                  job, whose log is under WORKDIR/.snakemake/slurm_logs/rule_train/
  target CONFIG                   the final.pt of the config's (single) training run
  cancel WORKDIR CONFIG HEAD_PID  wait for that run's first checkpoint, scancel its SLURM job; prints
                                  "<job id> ..." (what was cancelled, at which iteration)
  resumed WORKDIR CONFIG JOB_ID   the run finished in a later job, from its checkpoint: one trainer
                                  session from an iteration > 0, every iteration logged once

The lists of tables, figures and runs are the end-to-end test's (tests/test_workflow.py), so the
two cannot drift apart.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_workflow import FIGURES, TABLES, expected_runs, run_key  # noqa: E402


def fail(msg: str) -> None:
    print(f"[slurm_check] FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def load(config: str) -> dict:
    return yaml.safe_load(Path(config).read_text())


def results(workdir: str, cfg: dict) -> Path:
    return Path(workdir) / cfg.get("results_root", "results") / cfg["run_name"]


def slurm_log_dir(workdir: str, rule: str, run: tuple) -> Path:
    """The plugin's log folder of one job: rule_<rule>/<wildcard values joined by '_'>."""
    return Path(workdir) / ".snakemake" / "slurm_logs" / f"rule_{rule}" / "_".join(map(str, run))


def sessions(run_dir: Path) -> list[dict]:
    path = run_dir / "environment.json"
    if not path.is_file():
        fail(f"{path} is missing")
    return json.loads(path.read_text())["sessions"]


def check_outputs(workdir: str, config: str) -> None:
    cfg = load(config)
    out = results(workdir, cfg)
    analysis = out / "analysis"
    missing = [f"tables/{n}.{e}" for n in TABLES for e in ("csv", "md", "tex")]
    missing += [f"tables/{n}.csv" for n in ("cases", "paper_comparison")]
    missing += [f"figures/{n}.{e}" for n in FIGURES for e in ("png", "pdf")]
    missing += ["REPORT.md", "REPORT.html"]
    missing = [m for m in missing if not (analysis / m).is_file()]
    if missing:
        fail(f"missing in {analysis}: {missing}")
    runs = sorted(expected_runs(cfg))
    for run in runs:
        run_dir = out / "runs" / run_key(run)
        if not (run_dir / "final.pt").is_file():
            fail(f"{run_dir}/final.pt is missing")
        job_ids = [s.get("slurm_job_id") for s in sessions(run_dir)]
        if not job_ids or None in job_ids:
            fail(f"{run_key(run)}: a training session ran outside SLURM (slurm_job_id {job_ids})")
        logs = slurm_log_dir(workdir, "train", run)
        absent = [j for j in job_ids if not (logs / f"{j}.log").is_file()]
        if absent:
            fail(f"{run_key(run)}: no SLURM log {logs}/<job>.log for job(s) {absent}")
    print(f"[slurm_check]    {len(TABLES)} tables (+ cases, paper_comparison), {len(FIGURES)} figures, REPORT.md and "
          f".html; {len(runs)} training runs, each a SLURM job with its log under "
          f"{Path(workdir) / '.snakemake' / 'slurm_logs' / 'rule_train'}")


def the_run(cfg: dict) -> tuple:
    runs = sorted(expected_runs(cfg))
    if len(runs) != 1:
        fail(f"the resume config must plan one training run, it plans {len(runs)}")
    return runs[0]


def target(config: str) -> None:
    cfg = load(config)
    print(Path(cfg.get("results_root", "results")) / cfg["run_name"] / "runs" / run_key(the_run(cfg)) / "final.pt")


def logged_iterations(run_dir: Path) -> list[int]:
    try:
        with (run_dir / "log.csv").open(newline="") as f:
            return [int(row["iteration"]) for row in csv.DictReader(f)]
    except (OSError, KeyError, ValueError):
        return []


def slurm_job_of(run: tuple) -> str | None:
    """The id of the running train job of `run` (the plugin's --comment names rule and wildcards)."""
    comment = "rule_train_wildcards_" + "_".join(map(str, run))
    out = subprocess.run(["squeue", "--noheader", "--format=%i|%k|%T"], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    for line in out.splitlines():
        job_id, job_comment, state = line.split("|")
        if job_comment == comment and state == "RUNNING":
            return job_id
    return None


def cancel(workdir: str, config: str, head_pid: str) -> None:
    cfg = load(config)
    run = the_run(cfg)
    run_dir = results(workdir, cfg) / "runs" / run_key(run)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 900  # a guard against a hang, not a timing assertion
    while not checkpoint.exists():
        if time.monotonic() > deadline:
            fail(f"no checkpoint {checkpoint} after 900 s")
        try:
            os.kill(int(head_pid), 0)
        except ProcessLookupError:
            fail("the Snakemake head ended before the training job wrote its first checkpoint")
        time.sleep(0.2)
    job_id = slurm_job_of(run)
    if job_id is None:
        fail(f"{checkpoint} exists but no RUNNING train job of {run_key(run)} is in squeue")
    at = max(logged_iterations(run_dir), default=-1)
    subprocess.run(["scancel", job_id], check=True)
    if (run_dir / "final.pt").exists():
        fail("the training run finished before it was cancelled: raise its iterations in the resume config")
    print(f"{job_id} (SLURM job of {run_key(run)}) cancelled at iteration {at}, after its first checkpoint")


def resumed(workdir: str, config: str, cancelled: str) -> None:
    cfg = load(config)
    run = the_run(cfg)
    run_dir = results(workdir, cfg) / "runs" / run_key(run)
    iterations = cfg["profile_overrides"]["train"]["iterations"]
    if not (run_dir / "final.pt").is_file():
        fail(f"{run_dir}/final.pt is missing")
    done = sessions(run_dir)  # the cancelled process wrote none; the job that finished it one
    if len(done) != 1:
        fail(f"expected one finished trainer session, found {len(done)}: {done}")
    session = done[0]
    if session.get("slurm_job_id") in (None, cancelled):
        fail(f"the finishing session ran in SLURM job {session.get('slurm_job_id')!r}, not a new one")
    if not 0 < session["from_iteration"] < iterations:
        fail(f"the run was finished from iteration {session['from_iteration']}, not resumed from a checkpoint")
    logged = logged_iterations(run_dir)
    if logged != list(range(iterations)):
        fail(f"log.csv does not hold each of the {iterations} iterations once")
    logs = slurm_log_dir(workdir, "train", run)
    for job_id in (cancelled, session["slurm_job_id"]):
        if not (logs / f"{job_id}.log").is_file():
            fail(f"no SLURM log {logs}/{job_id}.log")
    print(f"[slurm_check]    resumed in SLURM job {session['slurm_job_id']} from iteration {session['from_iteration']} "
          f"to {session['to_iteration']}; log.csv holds iterations 0-{iterations - 1} once each")


if __name__ == "__main__":
    commands = {"outputs": check_outputs, "target": target, "cancel": cancel, "resumed": resumed}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
