"""Is the process that left a record still running? Host, pid, start time and SLURM job.

Lock files outlive SIGKILL (node failure, the OOM killer, a killed workflow head). Before one is
cleared, the process it names must be known to be gone. A record (`this_process()`) holds the
host, the kernel's boot id, the pid with its start time (a pid is reused; the pair is not) and the
SLURM job id when there is one. `holder_alive(record)` answers True, False, or None (cannot tell:
another host and no SLURM job to ask about, `squeue` unavailable, or a job state it does not know).
Callers treat None as "may be alive": they never clear what they cannot check. A SLURM job that is
pending again (requeued, held) has no process left: its record is stale, so a resubmitted copy of
the run does not sit on its allocation waiting for the old job to be scheduled.

Linux: pids are checked through /proc; elsewhere only `os.kill(pid, 0)` (no start time).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

# squeue job states (squeue(1), "JOB STATE CODES"), by whether the job's processes exist. A record
# is written by a running process, so a job that is waiting again (requeued, held, pending) has no
# process left from that record: it cannot be the one training, and a resubmitted copy may go on.
#: states in which the job's processes exist (running, or stopped and able to resume)
SLURM_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "RESIZING"}
#: states of a job that no longer runs (a job not listed at all has ended too)
SLURM_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
               "PREEMPTED", "TIMEOUT", "SPECIAL_EXIT", "REVOKED", "STAGE_OUT"}
#: states of a job waiting to (re)start: no process of an earlier start is left
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING"}


def host_name() -> str:
    return socket.gethostname()


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3 (state)


def this_process(**extra: Any) -> dict[str, Any]:
    """The record of the calling process (add your own fields through `extra`)."""
    pid = os.getpid()
    return {"host": host_name(), "boot_id": boot_id(), "pid": pid, "pid_start": process_start(pid),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID") or None, **extra}


def pid_alive(record: dict[str, Any]) -> bool | None:
    """Whether the pid of `record` still runs; None when it ran on another host."""
    if record.get("host") != host_name():
        return None
    if record.get("boot_id") and boot_id() and record["boot_id"] != boot_id():
        return False  # the machine restarted since
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    start = process_start(pid)
    if record.get("pid_start") and start and start != record["pid_start"]:
        return False  # the pid now belongs to another process
    return True


def slurm_job_state(job_id: str, timeout: float = 30.0) -> str | None:
    """The job's squeue state ("RUNNING", ...), "" when SLURM no longer lists it, None when squeue
    is not available or fails (the controller unreachable): then nobody can tell."""
    squeue = shutil.which("squeue")
    if squeue is None:
        return None
    try:
        done = subprocess.run([squeue, "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return "" if "invalid job id" in (done.stderr + done.stdout).lower() else None
    states = [line.strip().upper() for line in done.stdout.splitlines() if line.strip()]
    return states[0] if states else ""


def holder_alive(record: dict[str, Any]) -> bool | None:
    """True: the recorded process (or its SLURM job) still runs; False: it is gone; None: cannot tell."""
    job = record.get("slurm_job_id")
    same_host = record.get("host") == host_name()
    if job:
        if str(job) == os.environ.get("SLURM_JOB_ID"):
            # this very job: an earlier incarnation (requeued) is gone; on this node, ask the pid
            return pid_alive(record) if same_host else False
        state = slurm_job_state(str(job))
        if state is None:
            return pid_alive(record)  # None on another host
        if state == "" or state in SLURM_ENDED or state in SLURM_WAITING:
            return False
        if state not in SLURM_RUNNING:
            return pid_alive(record)  # a state this code does not know: the pid decides, None elsewhere
        return pid_alive(record) if same_host else True
    return pid_alive(record)


def describe(record: dict[str, Any]) -> str:
    """'pid 123 on host node7 (SLURM job 456, started ...)' for messages."""
    text = f"pid {record.get('pid')} on host {record.get('host')}"
    extra = [f"SLURM job {record['slurm_job_id']}"] if record.get("slurm_job_id") else []
    if record.get("started"):
        extra.append(f"started {record['started']}")
    return text + (f" ({', '.join(extra)})" if extra else "")
