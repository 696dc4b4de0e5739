"""GPU slots (methods/cluster/gpu_slots.py): each job started through the wrapper gets its own GPU(s) of the
visible list, waits while none is free, and changes nothing on a CPU machine or inside a SLURM job.
No GPU needed: a stand-in CUDA_VISIBLE_DEVICES list ("5,7") and a stand-in nvidia-smi. The whole
workflow with two GPU slots is in tests/test_workflow.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from methods.cluster.gpu_slots import SlotError, check_gpu_memory, slots_active, visible_devices

WRAPPER = Path(__file__).resolve().parents[1] / "methods" / "cluster" / "gpu_slots.py"

# the job: write the GPUs it was given, then hold them until told to finish
JOB = 'printf "%s" "${CUDA_VISIBLE_DEVICES-unset}" > "$1.devices"; while [ ! -e "$1.release" ]; do sleep 0.02; done'


def start_job(tmp_path: Path, name: str, gpus: int = 1, runs_per_gpu: int = 1, **env) -> tuple[subprocess.Popen, Path]:
    base = tmp_path / name
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SPCL_BENCH_GPU_SLOTS"))}
    environment.update(SPCL_BENCH_GPU_SLOTS_DIR=str(tmp_path / "slots"), **env)
    log = (tmp_path / f"{name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-I", str(WRAPPER), "--gpus", str(gpus), "--runs-per-gpu",
                             str(runs_per_gpu), "--", "sh", "-c", JOB, "job",
                             str(base)], env=environment, stdout=log, stderr=subprocess.STDOUT)
    return proc, base


def wait_for(predicate, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
    while not predicate():
        assert proc is None or proc.poll() is None, f"{what}: the job ended early"
        assert time.monotonic() < deadline, f"{what}: not within 60 s"
        time.sleep(0.02)


def devices_of(base: Path) -> str:
    path = Path(f"{base}.devices")
    wait_for(path.exists, f"{base.name} to start")
    return path.read_text()


def finish(proc: subprocess.Popen, base: Path) -> None:
    Path(f"{base}.release").touch()
    assert proc.wait(60) == 0


def test_concurrent_jobs_get_distinct_gpus_and_a_third_waits_for_a_free_one(tmp_path):
    a, base_a = start_job(tmp_path, "a", CUDA_VISIBLE_DEVICES="5,7")
    b, base_b = start_job(tmp_path, "b", CUDA_VISIBLE_DEVICES="5,7")
    got = {devices_of(base_a), devices_of(base_b)}
    assert got == {"5", "7"}
    c, base_c = start_job(tmp_path, "c", CUDA_VISIBLE_DEVICES="5,7")
    wait_for(lambda: "waiting for one to be released" in (tmp_path / "c.log").read_text(), "c to wait", c)
    assert not Path(f"{base_c}.devices").exists()  # no third job on a GPU that two already use
    freed = devices_of(base_a)
    finish(a, base_a)
    assert devices_of(base_c) == freed
    finish(b, base_b)
    finish(c, base_c)


def test_a_job_may_take_several_gpus_but_never_more_than_are_visible(tmp_path):
    two, base = start_job(tmp_path, "two", gpus=2, CUDA_VISIBLE_DEVICES="5,7")
    assert devices_of(base) == "5,7"
    finish(two, base)
    three, _ = start_job(tmp_path, "three", gpus=3, CUDA_VISIBLE_DEVICES="5,7")
    assert three.wait(60) == 2
    assert "asks for 3 GPU(s) (gpus_per_job) but 2 are visible (5, 7" in (tmp_path / "three.log").read_text()


@pytest.mark.parametrize("env, expected", [
    ({"CUDA_VISIBLE_DEVICES": "5,7", "SLURM_JOB_ID": "4242"}, "5,7"),  # SLURM assigned them already
    ({"CUDA_VISIBLE_DEVICES": "5,7", "SPCL_BENCH_GPU_SLOTS": "off"}, "5,7"),
    ({"CUDA_VISIBLE_DEVICES": ""}, ""),  # no GPU: the job runs on the CPU, unchanged
])
def test_the_wrapper_stays_out_of_the_way(env, expected, tmp_path):
    job, base = start_job(tmp_path, "job", **env)
    assert devices_of(base) == expected
    finish(job, base)
    zero, base = start_job(tmp_path, "zero", gpus=0, CUDA_VISIBLE_DEVICES="5,7")  # gpus_per_job: 0
    assert devices_of(base) == "5,7"
    finish(zero, base)


def test_inside_an_interactive_slurm_allocation_the_slots_can_be_forced_on(tmp_path):
    job, base = start_job(tmp_path, "job", CUDA_VISIBLE_DEVICES="5,7", SLURM_JOB_ID="4242", SPCL_BENCH_GPU_SLOTS="on")
    assert devices_of(base) == "5"
    finish(job, base)


def test_the_visible_list_comes_from_cuda_visible_devices_or_nvidia_smi(tmp_path, monkeypatch):
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "5, 7"}) == ["5", "7"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "GPU-1a2b,MIG-3c4d"}) == ["GPU-1a2b", "MIG-3c4d"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert visible_devices({}) == []  # no nvidia-smi: a CPU machine
    smi = bin_dir / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$1" = "--query-gpu=index" ] && printf "0\\n1\\n2\\n"\n')
    smi.chmod(0o755)
    assert visible_devices({}) == ["0", "1", "2"]


def test_slurm_jobs_are_left_alone_unless_forced():
    assert slots_active({}) and not slots_active({"SLURM_JOB_ID": "1"})
    assert slots_active({"SLURM_JOB_ID": "1", "SPCL_BENCH_GPU_SLOTS": "on"})
    assert not slots_active({"SPCL_BENCH_GPU_SLOTS": "off"})
    with pytest.raises(SlotError, match="must be auto, on or off"):
        slots_active({"SPCL_BENCH_GPU_SLOTS": "yes"})


def test_with_runs_per_gpu_jobs_share_a_gpu_up_to_the_limit(tmp_path):
    """runs_per_gpu 2 on one stand-in GPU: two jobs run on it at once, a third waits for a slot."""
    a, base_a = start_job(tmp_path, "a", runs_per_gpu=2, CUDA_VISIBLE_DEVICES="5")
    b, base_b = start_job(tmp_path, "b", runs_per_gpu=2, CUDA_VISIBLE_DEVICES="5")
    assert devices_of(base_a) == devices_of(base_b) == "5"
    c, base_c = start_job(tmp_path, "c", runs_per_gpu=2, CUDA_VISIBLE_DEVICES="5")
    wait_for(lambda: "waiting for one to be released" in (tmp_path / "c.log").read_text(), "c to wait", c)
    finish(b, base_b)
    assert devices_of(base_c) == "5"
    finish(a, base_a)
    finish(c, base_c)
    # a job of two GPUs takes two distinct devices, each with a free slot
    two, base = start_job(tmp_path, "two", gpus=2, runs_per_gpu=3, CUDA_VISIBLE_DEVICES="5,7")
    assert devices_of(base) == "5,7"
    finish(two, base)
    bad, _ = start_job(tmp_path, "bad", runs_per_gpu=0, CUDA_VISIBLE_DEVICES="5")
    assert bad.wait(60) == 2 and "runs_per_gpu must be >= 1, got 0" in (tmp_path / "bad.log").read_text()


def fake_nvidia_smi(tmp_path: Path) -> dict[str, str]:
    """A PATH whose nvidia-smi lists an 80 GB GPU 0 and a 40 GB GPU 1."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text('#!/bin/sh\ncase "$1" in\n'
                   '  --query-gpu=index) printf "0\\n1\\n" ;;\n'
                   '  --query-gpu=index,uuid,memory.total) printf "0, GPU-aaa, 81559\\n1, GPU-bbb, 40960\\n" ;;\n'
                   'esac\n')
    smi.chmod(0o755)
    return {"PATH": str(bin_dir)}


def test_the_memory_check_allows_what_fits_the_smallest_visible_gpu(tmp_path):
    env = fake_nvidia_smi(tmp_path)
    assert check_gpu_memory(4, 10000, env) is None  # 40000 MB <= 40960 MiB of GPU 1
    problem = check_gpu_memory(5, 10000, env)
    assert "runs_per_gpu: 5 runs x gpu_mem_mb_per_run 10000 MB = 50000 MB do not fit GPU 1 (40960 MiB)" in problem
    assert "at most 4 fit" in problem
    assert check_gpu_memory(8, 10000, {**env, "CUDA_VISIBLE_DEVICES": "0"}) is None  # only the 80 GB GPU
    assert check_gpu_memory(9, 10000, {**env, "CUDA_VISIBLE_DEVICES": "GPU-aaa"}) is not None  # by UUID too
    assert check_gpu_memory(64, 10000, {"PATH": str(tmp_path / "none")}) is None  # no GPU to check here
    assert check_gpu_memory(0, 10000, env) == "runs_per_gpu must be >= 1, got 0"
