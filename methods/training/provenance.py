"""Where and on what a run was trained: `RUN/environment.json`, written by the trainer itself.

The workflow's `provenance` rule runs once, on the machine that runs Snakemake (on a cluster, the
head node), so it cannot say which GPU a training job got. Each training process therefore
appends one "session" to its run folder's `environment.json`: the host, the SLURM job, the
device and its name, the library versions, the precision, the iterations it trained and how
long they took. A run resumed after an interruption has one session per process that trained
part of it; a process killed before the end leaves no session, and the next one records the
iteration it resumed from.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from methods.atomic import write_text_atomic

FILE_NAME = "environment.json"


def machine_record(device: torch.device) -> dict[str, Any]:
    """Host, scheduler job, device, and the versions that decide the numbers."""
    record: dict[str, Any] = {
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
        # the GPUs this process was given (by SLURM, by methods.cluster.gpu_slots, or by hand); recorded on
        # the CPU too, where it shows which slot a job held
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        record.update({
            "device_name": torch.cuda.get_device_name(index),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        })
    return record


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def append_session(run_dir: str | Path, session: dict[str, Any]) -> Path:
    """Add `session` to `run_dir/environment.json` (atomically; a broken file is replaced)."""
    path = Path(run_dir) / FILE_NAME
    sessions: list = []
    if path.exists():
        try:
            sessions = json.loads(path.read_text()).get("sessions", [])
        except (json.JSONDecodeError, AttributeError):
            sessions = []
    sessions.append(session)
    write_text_atomic(path, json.dumps({"sessions": sessions}, indent=1) + "\n")
    return path
