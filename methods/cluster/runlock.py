"""One training process per run folder: `RUN/train.lock`.

After a workflow head is killed on a cluster, its SLURM jobs keep running or stay queued, and the
restarted head submits the unfinished runs again. Two copies of one run would then train side by
side from the same checkpoint and write the same files. So a training process first takes the
run's lock: a file naming its host, pid (with start time), SLURM job id and start (written
whole, then linked into place, so it is never seen half-written). A second process finds it and:

- if the holder is gone (its pid has ended on this host, its SLURM job is no longer in `squeue`
  or has ended, or it was an earlier incarnation of this same SLURM job), takes the lock over and
  resumes from the checkpoint;
- if the holder still runs, waits (`if_running="wait"`, the default: when the first copy
  finishes, the second finds the run complete and stops; if it dies, the second resumes), or
  stops with `LiveCopyError` (`if_running="fail"`);
- if it cannot tell (another host and no SLURM job, or `squeue` fails), stops with
  `LiveCopyError`, naming the file to delete once no copy runs.

The lock is released when training returns or raises; a process killed outright leaves it, and
the next one finds its holder gone (methods/cluster/liveness.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from methods.atomic import temporary_sibling
from methods.cluster.liveness import describe, holder_alive, this_process
from methods.errors import ConfigError

LOCK_NAME = "train.lock"
log = logging.getLogger(__name__)


class LiveCopyError(ConfigError):
    """Another copy of this run is (or may be) training; the message names it and the lock file."""


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _place(path: Path, record: dict[str, Any]) -> bool:
    """Create `path` holding `record`, atomically; False when it already exists."""
    tmp = temporary_sibling(path)
    try:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        try:
            os.link(tmp, path)  # appears complete or not at all; fails if the lock exists
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create instead
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(tmp.read_text())
            return True
    finally:
        tmp.unlink(missing_ok=True)


def _clear_stale(path: Path, seen: dict[str, Any]) -> None:
    """Remove the lock `seen` (judged stale), and nothing else: move it aside, check it is the one
    judged, put back a newer lock that another process placed meanwhile."""
    aside = path.with_name(f".{path.name}.stale.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # someone else cleared it first
    moved = _read(aside)
    if moved != seen:
        with contextlib.suppress(OSError):
            os.link(aside, path)  # not the one judged stale: restore it (unless a lock is back)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(run_dir: str | Path, if_running: str = "wait", poll_s: float = 30.0,
             alive: Callable[[dict[str, Any]], bool | None] = holder_alive) -> Iterator[Path]:
    """Hold `run_dir/train.lock` for the duration of the block (see the module docstring)."""
    if if_running not in ("wait", "fail"):
        raise ValueError(f"if_running must be 'wait' or 'fail', got {if_running!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    mine = this_process(started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        token=secrets.token_hex(8))
    waiting_since = None
    while not _place(path, mine):
        holder = _read(path)
        if holder is None:
            continue  # released between our two looks
        if not holder:  # unreadable: a lock written by hand or a crash of the fallback writer
            if time.time() - _mtime(path) > 60:
                log.warning("%s is unreadable and a minute old; removing it", path)
                _clear_stale(path, holder)
            else:
                time.sleep(min(poll_s, 1.0))
            continue
        state = alive(holder)
        if state is False:
            log.warning("%s: the copy that held it (%s) no longer runs; taking it over", path, describe(holder))
            _clear_stale(path, holder)
            continue
        if state is None:
            raise LiveCopyError(
                f"run {run_dir} is locked by {describe(holder)} ({path}), and whether that process still "
                "runs cannot be checked from here (another host, no SLURM job, or squeue failed). If no copy "
                f"of this run is training, delete {path} and start again.")
        if if_running == "fail":
            raise LiveCopyError(f"run {run_dir} is being trained by {describe(holder)} ({path}); not starting "
                                "a second copy. Wait for it to end (or cancel it), then start again.")
        now = time.monotonic()
        if waiting_since is None or now - waiting_since > 600:
            log.warning("run %s is being trained by %s; waiting for it to end (checking every %g s)",
                        run_dir, describe(holder), poll_s)
            waiting_since = now
        time.sleep(poll_s)
    try:
        yield path
    finally:
        if (_read(path) or {}).get("token") == mine["token"]:
            path.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
