"""Restart after a hard kill with the same command: clear Snakemake's lock when nobody holds it.

Snakemake locks its working directory (`.snakemake/locks/N.input.lock`, `N.output.lock`: the
files a running workflow reads and writes) and removes the lock when it stops, on SIGINT and
SIGTERM too. A head killed with SIGKILL (node failure, the OOM killer, a closed terminal's
kill) leaves it behind, and the same command then stops with a LockException until
`snakemake --unlock` is run. The lock files do not say who wrote them, so the Snakefile calls
`at_startup(workflow)` first, in the main Snakemake process only (a job's own Snakemake process
runs with --nolock beside a live head):

1. it removes the lock files only when no Snakemake that may hold them is alive:
   - no other Snakemake process on this machine whose working directory is this one (found
     through /proc; processes started with --nolock, i.e. Snakemake's own job processes, hold no
     lock), and
   - no live head among the records heads leave in `.snakemake/spcl-bench/heads/` (host, pid with
     start time, SLURM job): a head on this machine is checked by its pid, a head inside a SLURM
     job by `squeue`, and a head on another machine (a second login node of a cluster sharing
     the folder) cannot be checked at all, so its lock is kept and the message gives the two
     commands to run once it is known to be gone;
   - and every lock file belongs to this user;
2. it records this process as a head (the record is removed when the process exits normally;
   after SIGKILL the next head finds its pid gone).

Snakemake 9.27 parses the Snakefile before it takes (or checks) the lock: `WorkflowApi` reads the
Snakefile when the DAG API is created, `Workflow.execute` locks after building the DAG (checked:
a Snakefile that removes `.snakemake/locks/` at parse time turns the LockException into a normal
run). So the check runs before Snakemake's own, in every mode (a dry run too: a lock that no
live process can hold is stale whatever the command).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from methods.atomic import write_text_atomic
from methods.cluster.liveness import describe, holder_alive, host_name, this_process

LOCK_DIR = Path(".snakemake") / "locks"
HEAD_DIR = Path(".snakemake") / "spcl-bench" / "heads"


def is_snakemake(argv: list[str]) -> bool:
    """Whether a command line runs Snakemake (`snakemake ...`, `python -m snakemake ...`,
    `python .../bin/snakemake ...`, `python .../snakemake/__main__.py ...`)."""
    if not argv:
        return False
    if os.path.basename(argv[0]).startswith("snakemake"):
        return True
    if "python" not in os.path.basename(argv[0]):
        return False
    args = argv[1:]
    if "-m" in args:
        i = args.index("-m")
        return i + 1 < len(args) and args[i + 1] == "snakemake"
    script = next((a for a in args if not a.startswith("-")), "")
    return os.path.basename(script) == "snakemake" or script.replace("\\", "/").endswith("snakemake/__main__.py")


def snakemake_heads_here(workdir: Path, exclude: set[int]) -> list[int]:
    """Pids of Snakemake processes on this machine working in `workdir` that may hold its lock
    (not started with --nolock); empty where /proc is not available."""
    workdir = workdir.resolve()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            argv = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            if not is_snakemake(argv) or "--nolock" in argv:
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # ended meanwhile, or another user's (who cannot hold this user's lock files)
        if cwd == workdir:
            found.append(int(entry.name))
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def head_records(workdir: Path) -> list[tuple[Path, dict[str, Any]]]:
    folder = workdir / HEAD_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        record = _read(path)
        if record is not None:
            out.append((path, record))
    return out


def unlock_commands() -> str:
    """The two commands, spelled with this invocation's own arguments."""
    args = " ".join(a for a in sys.argv[1:] if a != "--unlock")
    return f"  snakemake {args} --unlock\n  snakemake {args}"


def clear_stale_lock(workdir: Path, own_pid: int | None = None) -> tuple[list[Path], str | None]:
    """Remove Snakemake's lock files in `workdir` if no Snakemake that may hold them is alive.

    Returns (the lock files removed, why a lock was kept or None). Records of heads that are known
    to be gone are removed too."""
    workdir = Path(workdir)
    own_pid = os.getpid() if own_pid is None else own_pid
    locks = sorted(p for p in (workdir / LOCK_DIR).glob("*.lock") if p.is_file()) if (workdir / LOCK_DIR).is_dir() else []
    keep: list[str] = []
    for path, record in head_records(workdir):
        if record.get("pid") == own_pid and record.get("host") == host_name():
            continue
        alive = holder_alive(record)
        if alive is False:
            path.unlink(missing_ok=True)
        elif alive:
            keep.append(f"the Snakemake with {describe(record)} is still running")
        else:
            keep.append(f"the Snakemake with {describe(record)} may still be running, and that cannot be "
                        f"checked from this machine ({host_name()})")
    if not locks:
        return [], None
    foreign = [p for p in locks if p.stat().st_uid != os.getuid()]
    if foreign:
        keep.append(f"{foreign[0]} belongs to another user")
    live = snakemake_heads_here(workdir, exclude={own_pid})
    if live:
        keep.append(f"Snakemake process(es) {live} on this machine work in {workdir.resolve()}")
    if keep:
        return [], "; ".join(dict.fromkeys(keep))
    for path in locks:
        path.unlink(missing_ok=True)
    return locks, None


def register_head(workdir: Path) -> Path:
    """Record this process as a head of `workdir` until it exits (see the module docstring)."""
    record = this_process(started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          workdir=str(Path(workdir).resolve()), argv=sys.argv)
    path = Path(workdir) / HEAD_DIR / f"{record['host']}.{record['pid']}.json"
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    atexit.register(lambda: path.unlink(missing_ok=True))
    return path


def at_startup(workflow) -> None:
    """Called by the Snakefile: in the main Snakemake process with the file-based lock, clear a stale
    lock (saying so) or explain why a lock stays, then record this head."""
    if not workflow.is_main_process:
        return
    backend = str(getattr(workflow.workflow_settings, "persistence_backend", "file")).lower()
    if "file" not in backend:
        return  # a database-backed lock is not a file here
    workdir = Path.cwd()  # Snakemake has changed to the working directory (-d) before parsing
    removed, kept = clear_stale_lock(workdir)
    if removed:
        print(f"spcl-bench: removed Snakemake's lock ({', '.join(p.name for p in removed)} in {workdir / LOCK_DIR}): "
              "no Snakemake that could hold it is running (the last one was killed); continuing", file=sys.stderr)
    elif kept:
        print(f"spcl-bench: Snakemake's lock in {workdir / LOCK_DIR} is kept: {kept}. If you know that no other "
              f"Snakemake works in this folder any more, remove the lock and run again:\n{unlock_commands()}",
              file=sys.stderr)
    if "--nolock" not in sys.argv:  # a run without a lock holds none that others must respect
        register_head(workdir)
