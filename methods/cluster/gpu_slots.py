"""One GPU per job on a machine with several: `python -I methods/cluster/gpu_slots.py --gpus K -- COMMAND ...`
(or `python -m methods.cluster.gpu_slots ...`). The rules run the file by path in isolated mode
(`-I`: no PYTHONPATH, no user site-packages), so the wrapper starts in a moment whatever the job's
environment: this file needs the standard library only (tests/test_import_layout.py checks it).

Snakemake's `--resources gpu=N` only counts: it lets N jobs that declare `gpu=1` run at once, but
each of them sees every GPU of the machine, and every PyTorch process picks GPU 0. Snakemake
9.27 has no mechanism that hands a job a device (its `gpu` resource only becomes a request to a
cluster scheduler). So the training and evaluation rules start their command through this
wrapper, which takes K free slots among the GPUs this process may use (its CUDA_VISIBLE_DEVICES,
or every GPU `nvidia-smi` lists when that is unset), sets CUDA_VISIBLE_DEVICES to them, and
replaces itself with COMMAND (exec). A slot is an exclusive `fcntl.flock` on a file
`gpu-<device>.lock`; the exec'd command inherits the open file, so the slot is held exactly as
long as the process that uses the GPU lives, and the kernel frees it however that process ends.
When no K slots are free (more jobs than GPUs, or another workflow of the same user on the
machine), the job waits for one rather than share a GPU.

Several runs per GPU (`--runs-per-gpu R`, the workflow's `runs_per_gpu`): each GPU has R slots
(`gpu-<device>.<i>.lock`), so up to R jobs share one device; a job that needs K GPUs still takes
K distinct devices. A small model leaves most of a large GPU idle (benchmarks/README.md), and R
runs at once then finish several times sooner than one after another. `check_gpu_memory` is the
start-up check: R runs of `mem_mb` each must fit the smallest visible GPU.

Out of the way where a GPU is not this wrapper's to assign:
- K = 0, or no GPU visible (a CPU machine): COMMAND runs unchanged, on the CPU;
- inside a SLURM job (SLURM_JOB_ID set): SLURM has already given the job its GPUs;
- SPCL_BENCH_GPU_SLOTS=off disables the slots, =on forces them (e.g. several jobs inside one
  interactive `salloc` allocation).
The slot files live in SPCL_BENCH_GPU_SLOTS_DIR, by default one folder per user in the system's
temporary directory, so that every workflow of a user on the machine shares one set of slots.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


class SlotError(RuntimeError):
    """A job asks for more GPUs than it can ever get; the message says how many are visible."""


def visible_devices(env: dict[str, str] | None = None) -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set (an empty value or a leading
    -1 means none), else the indices `nvidia-smi` lists, else none."""
    env = os.environ if env is None else env
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices = [d.strip() for d in listed.split(",") if d.strip()]
        return [] if not devices or devices[0].startswith("-1") else devices
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return []
    try:
        done = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def slots_active(env: dict[str, str] | None = None) -> bool:
    """Whether this wrapper assigns GPUs here (not inside a SLURM job unless forced)."""
    env = os.environ if env is None else env
    setting = env.get("SPCL_BENCH_GPU_SLOTS", "auto").strip().lower()
    if setting not in ("auto", "on", "off"):
        raise SlotError(f"SPCL_BENCH_GPU_SLOTS must be auto, on or off, got {setting!r}")
    if setting != "auto":
        return setting == "on"
    return not env.get("SLURM_JOB_ID")


def slot_dir(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SPCL_BENCH_GPU_SLOTS_DIR"):
        return Path(env["SPCL_BENCH_GPU_SLOTS_DIR"])
    return Path(tempfile.gettempdir()) / f"spcl-bench-gpu-slots-{os.getuid()}"


def _slot_file(folder: Path, device: str, index: int = 0, runs_per_gpu: int = 1) -> Path:
    name = re.sub(r'[^A-Za-z0-9._-]', '_', device)
    return folder / (f"gpu-{name}.lock" if runs_per_gpu == 1 else f"gpu-{name}.{index}.lock")


def _lock_one_slot(folder: Path, device: str, runs_per_gpu: int) -> int | None:
    """An open fd holding one free slot of `device`, or None when all its slots are taken."""
    for index in range(runs_per_gpu):
        fd = os.open(_slot_file(folder, device, index, runs_per_gpu), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


def try_acquire(devices: list[str], count: int, folder: Path, runs_per_gpu: int = 1) -> dict[str, int] | None:
    """Lock a free slot on each of `count` distinct `devices` (in order, `runs_per_gpu` slots per
    device); {device: open fd}, or None (nothing kept)."""
    if runs_per_gpu < 1:
        raise SlotError(f"runs_per_gpu must be >= 1, got {runs_per_gpu}")
    folder.mkdir(parents=True, exist_ok=True)
    held: dict[str, int] = {}
    for device in devices:
        fd = _lock_one_slot(folder, device, runs_per_gpu)
        if fd is None:
            continue
        held[device] = fd
        if len(held) == count:
            return held
    release(held)  # never hold some while waiting for more: two jobs could block each other
    return None


def release(held: dict[str, int]) -> None:
    for fd in held.values():
        os.close(fd)  # closing the last descriptor drops the flock
    held.clear()


def _note_holder(fd: int, command: list[str]) -> None:
    """Write who holds the slot into its file (for a person looking; the flock is what counts)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {' '.join(command)[:500]}\n".encode(), 0)
    os.utime(fd)  # keep the file fresh for temporary-folder cleaners


def acquire(devices: list[str], count: int, folder: Path, poll_s: float = 2.0, runs_per_gpu: int = 1) -> dict[str, int]:
    """Wait until `count` slots on distinct devices are free; return them held."""
    if count > len(devices):
        raise SlotError(f"the job asks for {count} GPU(s) (gpus_per_job) but {len(devices)} are visible "
                        f"({', '.join(devices) or 'none'}; CUDA_VISIBLE_DEVICES or nvidia-smi)")
    announced = False
    while True:
        held = try_acquire(devices, count, folder, runs_per_gpu)
        if held is not None:
            return held
        if not announced:
            log.warning("all GPU slots of %s are taken (%s); waiting for one to be released", ",".join(devices), folder)
            announced = True
        time.sleep(poll_s)


def gpu_memory_mb(env: dict[str, str] | None = None) -> dict[str, int]:
    """Total memory (MiB) of each GPU `nvidia-smi` lists, by index and by UUID; {} without it."""
    smi = shutil.which("nvidia-smi", path=(os.environ if env is None else env).get("PATH"))
    if smi is None:
        return {}
    try:
        done = subprocess.run([smi, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    memory: dict[str, int] = {}
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[2].isdigit():
            memory[parts[0]] = memory[parts[1]] = int(parts[2])
    return memory


def check_gpu_memory(runs_per_gpu: int, mem_mb_per_run: int, env: dict[str, str] | None = None) -> str | None:
    """The start-up check of `runs_per_gpu`: None if R runs of `mem_mb_per_run` fit the smallest
    visible GPU (or no GPU can be seen here, e.g. a CPU machine), else the reason, naming the keys."""
    if runs_per_gpu < 1:
        return f"runs_per_gpu must be >= 1, got {runs_per_gpu}"
    if runs_per_gpu == 1:
        return None
    devices = visible_devices(env)
    memory = gpu_memory_mb(env)
    sizes = {d: memory[d] for d in devices if d in memory}
    if not sizes:
        return None
    device, smallest = min(sizes.items(), key=lambda kv: kv[1])
    if runs_per_gpu * mem_mb_per_run > smallest:
        fits = smallest // mem_mb_per_run
        return (f"runs_per_gpu: {runs_per_gpu} runs x gpu_mem_mb_per_run {mem_mb_per_run} MB = "
                f"{runs_per_gpu * mem_mb_per_run} MB do not fit GPU {device} ({smallest} MiB); at most {fits} fit. "
                "Lower runs_per_gpu, or set gpu_mem_mb_per_run to the peak memory measured for your profile "
                "(benchmarks/gpu_throughput.sh prints it)")
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m methods.cluster.gpu_slots",
                                description="Run COMMAND on its own GPU(s): take free slots, set CUDA_VISIBLE_DEVICES, exec.")
    p.add_argument("--gpus", type=int, required=True, help="GPUs the job needs (the job's `gpu` resource)")
    p.add_argument("--runs-per-gpu", type=int, default=1, help="jobs that may share one GPU (runs_per_gpu)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given (put it after --)")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        devices = visible_devices() if args.gpus > 0 and slots_active() else []
        if devices:
            held = acquire(devices, args.gpus, slot_dir() / _host(), runs_per_gpu=args.runs_per_gpu)
            for fd in held.values():
                _note_holder(fd, command)
                os.set_inheritable(fd, True)  # the exec'd command keeps the slot until it ends
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(held)
            log.info("GPU slot(s): CUDA_VISIBLE_DEVICES=%s", os.environ["CUDA_VISIBLE_DEVICES"])
    except SlotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"error: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())


if __name__ == "__main__":
    sys.exit(main())
