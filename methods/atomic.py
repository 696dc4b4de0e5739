"""Write-then-rename through a temporary name that belongs to this process alone.

A fixed temporary name (`.log.csv.tmp`) is safe only while one process writes a file. After a
killed workflow head a second copy of a training job may run beside the first one (on a cluster,
on another node sharing the folder; `methods/cluster/runlock.py` makes the second wait, but a file system
without working locks or a hand-started copy can still race). Two writers of one fixed temporary
name interleave their bytes and rename a mix. Here each write gets `.NAME.<pid>.<random>.tmp`,
created exclusively (O_EXCL) with the usual permissions (umask applies, unlike `mkstemp`'s 0600),
so two copies never share a temporary file: the last complete rename wins, whole.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


def temporary_sibling(path: str | Path, keep_suffix: bool = False) -> Path:
    """Create and return an empty file beside `path` whose name no other process uses; with
    `keep_suffix` it ends in `path`'s suffix (writers that choose the format by the file name,
    such as matplotlib's `savefig`, need it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if keep_suffix else ".tmp"
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:  # astronomically unlikely; draw again
            continue


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a private temporary path; on success rename it to `path`, on any error remove it."""
    tmp = temporary_sibling(path, keep_suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
