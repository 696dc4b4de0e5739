"""One training process per run folder (methods/cluster/runlock.py) and private temporary names
(methods/atomic.py): what keeps two copies of a run, e.g. after a killed workflow head on a
cluster, from training twice or corrupting each other's files. No SLURM needed: `squeue` is a
stand-in script on PATH where a test needs one."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from methods.atomic import atomic_path
from methods.cluster.liveness import boot_id, holder_alive, host_name, process_start
from methods.cluster.runlock import LOCK_NAME, LiveCopyError, _clear_stale, run_lock


def record(pid: int, host: str | None = None, slurm_job_id: str | None = None, **extra) -> dict:
    return {"host": host or host_name(), "boot_id": boot_id(), "pid": pid, "pid_start": process_start(pid),
            "slurm_job_id": slurm_job_id, "started": "2026-01-01T00:00:00+00:00", "token": "theirs", **extra}


def place(run_dir: Path, rec: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    path.write_text(json.dumps(rec))
    return path


@pytest.fixture
def sleeper():
    """A live process on this host (the holder of a lock)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def fake_squeue(tmp_path, monkeypatch):
    """`squeue` on PATH that prints $FAKE_SQUEUE_OUT / $FAKE_SQUEUE_ERR and exits $FAKE_SQUEUE_RC;
    returns a function setting those (and the log of its calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "squeue_calls.txt"
    script = bin_dir / "squeue"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n'
                      'printf "%s" "$FAKE_SQUEUE_OUT"\nprintf "%s" "$FAKE_SQUEUE_ERR" >&2\nexit "${FAKE_SQUEUE_RC:-0}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)

    def configure(out: str = "", err: str = "", rc: int = 0) -> Path:
        monkeypatch.setenv("FAKE_SQUEUE_OUT", out)
        monkeypatch.setenv("FAKE_SQUEUE_ERR", err)
        monkeypatch.setenv("FAKE_SQUEUE_RC", str(rc))
        return calls

    return configure


def test_the_lock_names_this_process_and_is_gone_afterwards(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    with run_lock(tmp_path / "run") as path:
        held = json.loads(path.read_text())
        assert (held["host"], held["pid"], held["slurm_job_id"]) == (host_name(), os.getpid(), "777")
        assert held["pid_start"] == process_start(os.getpid())
    assert not path.exists()
    with pytest.raises(RuntimeError), run_lock(tmp_path / "run"):  # released on errors too
        raise RuntimeError
    assert not path.exists()


def test_a_live_copy_on_this_host_stops_a_second_one_in_fail_mode(tmp_path, sleeper):
    path = place(tmp_path / "run", record(sleeper.pid))
    with pytest.raises(LiveCopyError, match=rf"being trained by pid {sleeper.pid} on host {host_name()}"):
        with run_lock(tmp_path / "run", if_running="fail"):
            pytest.fail("a second copy got the lock")
    assert json.loads(path.read_text())["token"] == "theirs"  # left as it was


def test_a_second_copy_waits_for_the_live_one_and_then_takes_the_lock(tmp_path, sleeper):
    place(tmp_path / "run", record(sleeper.pid))
    checks, got = [], {}

    def counting_alive(rec):
        checks.append(rec["pid"])
        return holder_alive(rec)

    def second_copy():
        with run_lock(tmp_path / "run", poll_s=0.02, alive=counting_alive) as path:
            got["holder_ended"] = sleeper.poll() is not None
            got["pid"] = json.loads(path.read_text())["pid"]

    thread = threading.Thread(target=second_copy)
    thread.start()
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
    while len(checks) < 3:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    assert not got  # still waiting while the first copy runs
    sleeper.kill()
    sleeper.wait()
    thread.join(60)
    assert got == {"holder_ended": True, "pid": os.getpid()}


def test_a_lock_of_an_ended_process_or_a_reused_pid_is_taken_over(tmp_path, caplog):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    place(tmp_path / "a", record(int(ended.stdout)))
    with caplog.at_level(logging.WARNING, logger="methods.cluster.runlock"), run_lock(tmp_path / "a", if_running="fail"):
        pass
    assert "no longer runs; taking it over" in caplog.text
    reused = record(os.getpid(), pid_start="1")  # our pid, but another process's start time
    place(tmp_path / "b", reused)
    with run_lock(tmp_path / "b", if_running="fail") as path:
        assert json.loads(path.read_text())["token"] != "theirs"
    place(tmp_path / "c", record(os.getpid(), boot_id="another-boot"))  # the machine restarted since
    with run_lock(tmp_path / "c", if_running="fail"):
        pass


@pytest.mark.parametrize("out, err, rc, alive", [
    ("RUNNING\n", "", 0, True),
    ("COMPLETING\n", "", 0, True),
    ("SUSPENDED\n", "", 0, True),  # stopped, resumes where it was
    # requeued or waiting again: the process that wrote the lock is gone, a resubmission goes on
    ("PENDING\n", "", 0, False),
    ("REQUEUED\n", "", 0, False),
    ("REQUEUE_HOLD\n", "", 0, False),
    ("CONFIGURING\n", "", 0, False),
    ("SOME_NEW_STATE\n", "", 0, None),  # unknown: not cleared
    ("", "", 0, False),  # no longer listed
    ("COMPLETED\n", "", 0, False),
    ("TIMEOUT\n", "", 0, False),
    ("", "slurm_load_jobs error: Invalid job id specified\n", 1, False),
    ("", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", 1, None),
])
def test_a_copy_in_a_slurm_job_on_another_node_is_checked_with_squeue(out, err, rc, alive, tmp_path, fake_squeue):
    calls = fake_squeue(out, err, rc)
    path = place(tmp_path / "run", record(12345, host="node-elsewhere", slurm_job_id="4242"))
    if alive is False:
        with run_lock(tmp_path / "run", if_running="fail"):
            assert json.loads(path.read_text())["pid"] == os.getpid()
    else:
        match = "SLURM job 4242" if alive else "cannot be checked from here"
        with pytest.raises(LiveCopyError, match=match), run_lock(tmp_path / "run", if_running="fail"):
            pytest.fail("a second copy got the lock")
        assert json.loads(path.read_text())["token"] == "theirs"
    assert "-j 4242" in calls.read_text()


def test_without_squeue_a_copy_on_another_host_cannot_be_told_apart_and_is_left(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for name, rec in {"slurm": record(1, host="node-elsewhere", slurm_job_id="99"),
                      "plain": record(1, host="laptop-elsewhere")}.items():
        path = place(tmp_path / name, rec)
        with pytest.raises(LiveCopyError, match=rf"If no copy of this run is training, delete {path}"):
            with run_lock(tmp_path / name):
                pass
        assert path.exists()


def test_an_earlier_incarnation_of_this_very_slurm_job_is_gone(tmp_path, fake_squeue, monkeypatch):
    calls = fake_squeue("RUNNING\n")  # the job runs: it is this one, requeued onto another node
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    place(tmp_path / "run", record(12345, host="node-before-requeue", slurm_job_id="4242"))
    with run_lock(tmp_path / "run", if_running="fail"):
        pass
    assert not calls.exists()


def test_clearing_a_stale_lock_never_removes_a_newer_one(tmp_path):
    path = place(tmp_path / "run", {"token": "newer"})
    _clear_stale(path, {"token": "the stale one"})  # another process replaced it meanwhile
    assert json.loads(path.read_text()) == {"token": "newer"}
    _clear_stale(path, {"token": "newer"})
    assert not path.exists() and not list((tmp_path / "run").iterdir())


def test_temporary_names_are_private_to_each_write(tmp_path):
    target = tmp_path / "log.csv"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b and a.parent == b.parent == tmp_path
        assert a.name.startswith(f".log.csv.{os.getpid()}.") and a.name.endswith(".tmp")
        a.write_text("first")
        b.write_text("second")
    assert target.read_text() == "first"  # the outer block ends last: the last complete rename wins, whole
    with pytest.raises(ValueError), atomic_path(target) as c:
        c.write_text("half")
        raise ValueError
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


# ------------------------------------------------------------------------------------------------
# the engine: a second training process of one run


HOLDER = """
import sys, time
from pathlib import Path
from methods.cluster.runlock import run_lock
run_dir, release = map(Path, sys.argv[1:])
with run_lock(run_dir):
    (run_dir / "held").write_text("")
    while not release.exists():
        time.sleep(0.02)
"""


def test_a_second_training_process_waits_then_finds_the_run_complete(tiny_cache, tiny_split, tmp_path):
    from _tiny_run import TINY_NET
    from methods.runconfig import parse_run_config
    from methods.training.engine import Trainer, train

    run_dir = tmp_path / "run"
    cfg = lambda: parse_run_config({  # noqa: E731
        "method": "suponly", "seed": 0, "out_dir": str(run_dir),
        "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom", "ratio": 5,
                 "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": TINY_NET, "train": {"iterations": 2, "device": "cpu", "amp": "off", "progress": False}})
    release = tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(release)], env=env)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
        while not (run_dir / "held").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        waiting = threading.Event()

        class Spy(logging.Handler):
            def emit(self, rec):
                if "waiting for it to end" in rec.getMessage():
                    waiting.set()

        spy = Spy()
        logging.getLogger("methods.cluster.runlock").addHandler(spy)
        result = {}
        second = threading.Thread(target=lambda: result.setdefault("dir", train(cfg(), poll_s=0.02)))
        second.start()
        assert waiting.wait(120)
        assert not (run_dir / "log.csv").exists()  # the second copy has not trained
        Trainer(cfg()).run()  # the first copy finishes the run meanwhile (in this process, for speed)
        release.touch()
        second.join(120)
        logging.getLogger("methods.cluster.runlock").removeHandler(spy)
        assert result["dir"] == run_dir and first.wait(60) == 0
    finally:
        release.touch()
        first.wait(60)
    sessions = json.loads((run_dir / "environment.json").read_text())["sessions"]
    assert len(sessions) == 1  # trained once; the second copy found the run complete
    assert not (run_dir / LOCK_NAME).exists()
    assert not [p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
