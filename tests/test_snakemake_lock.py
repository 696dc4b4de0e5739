"""The stale-lock rule (methods/cluster/snakemake_lock.py): Snakemake's lock is removed only when no
Snakemake that may hold it is alive. Unit tests on a folder with lock files; the workflow tests
(tests/test_workflow.py) check it with a real Snakemake killed with SIGKILL and a live one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from methods.cluster.liveness import boot_id, host_name, process_start
from methods.cluster.snakemake_lock import HEAD_DIR, LOCK_DIR, clear_stale_lock, is_snakemake, register_head


def leave_lock(workdir: Path) -> list[Path]:
    """What a Snakemake killed with SIGKILL leaves: its input and output lock files."""
    (workdir / LOCK_DIR).mkdir(parents=True)
    paths = [workdir / LOCK_DIR / "0.input.lock", workdir / LOCK_DIR / "0.output.lock"]
    for p in paths:
        p.write_text(f"{workdir}/results/x\n")
    return paths


def head_record(workdir: Path, pid: int, host: str | None = None, **extra) -> Path:
    record = {"host": host or host_name(), "boot_id": boot_id(), "pid": pid, "pid_start": process_start(pid),
              "slurm_job_id": None, "started": "2026-01-01T00:00:00+00:00", **extra}
    path = workdir / HEAD_DIR / f"{record['host']}.{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def live_process():
    procs = []

    def start(argv_name: str | None = None, cwd: Path | None = None, args: tuple[str, ...] = ()) -> subprocess.Popen:
        if argv_name:  # a Python script file called `snakemake`, run as `python .../snakemake ARGS`
            script = Path(cwd) / ".." / f"bin-{len(procs)}" / argv_name
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text("import time\ntime.sleep(600)\n")
            proc = subprocess.Popen([sys.executable, str(script.resolve()), *args], cwd=cwd)
        else:
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], cwd=cwd)
        procs.append(proc)
        deadline = time.monotonic() + 30  # until /proc shows its final command line
        while argv_name and argv_name not in Path(f"/proc/{proc.pid}/cmdline").read_text(errors="replace"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("argv, expected", [
    (["snakemake", "--cores", "all"], True),
    (["/home/u/.venv/bin/snakemake", "-n"], True),
    (["/usr/bin/python3", "-m", "snakemake", "--profile", "profiles/slurm"], True),
    (["python3.11", "/home/u/.venv/bin/snakemake", "--cores", "1"], True),
    (["python", "/site-packages/snakemake/__main__.py", "--cores", "1"], True),
    (["python", "-m", "pytest", "-k", "snakemake"], False),
    (["python", "-m", "methods.train", "--config", "snakemake.yaml"], False),
    (["bash", "-c", "snakemake"], False),
    ([], False),
])
def test_snakemake_command_lines_are_recognised(argv, expected):
    assert is_snakemake(argv) is expected


def test_a_lock_left_by_a_killed_snakemake_is_removed(tmp_path):
    locks = leave_lock(tmp_path)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = head_record(tmp_path, int(ended.stdout))  # the killed head's record: its pid has ended
    removed, kept = clear_stale_lock(tmp_path)
    assert (sorted(removed), kept) == (sorted(locks), None)
    assert not any(p.exists() for p in locks) and not record.exists()


def test_a_lock_is_kept_while_its_head_runs_on_this_machine(tmp_path, live_process):
    locks = leave_lock(tmp_path)
    head = live_process()
    head_record(tmp_path, head.pid)
    removed, kept = clear_stale_lock(tmp_path)
    assert removed == [] and f"pid {head.pid} on host {host_name()}" in kept and "is still running" in kept
    assert all(p.exists() for p in locks)


def test_a_lock_is_kept_while_a_snakemake_works_in_the_folder_even_without_a_record(tmp_path, live_process):
    """A head that left no record (started by another version of the workflow): found through /proc."""
    locks = leave_lock(tmp_path)
    head = live_process("snakemake", cwd=tmp_path, args=("--cores", "1"))
    removed, kept = clear_stale_lock(tmp_path)
    assert removed == [] and f"Snakemake process(es) [{head.pid}] on this machine work in" in kept
    assert all(p.exists() for p in locks)


def test_snakemakes_own_job_processes_and_other_folders_do_not_count(tmp_path, live_process):
    locks = leave_lock(tmp_path / "wd")
    (tmp_path / "elsewhere").mkdir()
    live_process("snakemake", cwd=tmp_path / "wd", args=("--target-jobs", "train:", "--nolock"))  # a job's process
    live_process("snakemake", cwd=tmp_path / "elsewhere", args=("--cores", "1"))  # another workflow
    live_process(cwd=tmp_path / "wd")  # a training job left running by the killed head: not Snakemake
    removed, kept = clear_stale_lock(tmp_path / "wd")
    assert sorted(removed) == sorted(locks) and kept is None


def test_a_head_on_another_machine_keeps_the_lock_unless_its_slurm_job_has_ended(tmp_path, monkeypatch):
    locks = leave_lock(tmp_path)
    record = head_record(tmp_path, 4321, host="login-2")
    removed, kept = clear_stale_lock(tmp_path)
    assert removed == [] and "pid 4321 on host login-2" in kept and "cannot be checked from this machine" in kept
    assert all(p.exists() for p in locks) and record.exists()

    # a head submitted as a SLURM batch job: squeue can tell
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text('#!/bin/sh\nprintf "%s" "$FAKE_STATE"\n')
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    record.unlink()
    head_record(tmp_path, 4321, host="node-7", slurm_job_id="555")
    monkeypatch.setenv("FAKE_STATE", "RUNNING")
    removed, kept = clear_stale_lock(tmp_path)
    assert removed == [] and "SLURM job 555" in kept
    monkeypatch.setenv("FAKE_STATE", "")  # no longer listed: ended
    removed, kept = clear_stale_lock(tmp_path)
    assert sorted(removed) == sorted(locks) and kept is None


def test_this_process_does_not_keep_its_own_lock_and_its_record_goes_with_it(tmp_path):
    locks = leave_lock(tmp_path)
    record = register_head(tmp_path)
    assert json.loads(record.read_text())["pid"] == os.getpid()
    removed, kept = clear_stale_lock(tmp_path)
    assert sorted(removed) == sorted(locks) and kept is None
    record.unlink()  # in a real head, at exit


def test_without_a_lock_nothing_happens_but_dead_records_are_tidied(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = head_record(tmp_path, int(ended.stdout))
    assert clear_stale_lock(tmp_path) == ([], None)
    assert not record.exists()
