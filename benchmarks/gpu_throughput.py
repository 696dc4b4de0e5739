"""Training runs per hour on one GPU with 1, 2, 4, 8 runs at once: what `runs_per_gpu` to choose.

    python benchmarks/gpu_throughput.py [--profile paper] [--concurrency 1,2,4,8]
        [--methods meanteacher,spcl] [--numerics fp32,bf16,bf16+channels_last] [--seconds 8]

For each concurrency N, N worker processes (one CUDA context each, as N workflow jobs sharing a
GPU through `runs_per_gpu`) train every (method, numeric path) in turn on the same synthetic
batches through the engine's own `train_step` (benchmarks/step_time.py). Per combination: build,
warm up, wait for all N workers (a barrier), count the steps each completes in `--seconds`, wait
again. Runs per hour = (steps per second summed over the workers) x 3600 / `--iterations`.
The paper plan's GPU-hours for the best N of each combination follow, with every one of its
`--plan-runs` runs costing as much as that method's run (the plan mixes methods; ABD costs about
3x the mean teacher, benchmarks/README.md). Peak memory: the largest
`torch.cuda.max_memory_allocated` of one worker, to set `gpu_mem_mb_per_run`.
It runs on the CPU too (`--device cpu`, for a smoke test), where N processes share the cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(rank: int, args, combos, barrier, results) -> None:
    import torch

    from methods.api import Batch, get_method, resolve_variant
    from methods.augment import CommonAugment
    from methods.nets import NetFactory
    from methods.runconfig import load_raw, parse_run_config, profile_path
    from methods.training.engine import build_optimizer, train_step
    from step_time import parse_numerics, synthetic_batches

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    raw = load_raw(profile_path(args.profile))
    raw.setdefault("data", {}).update({"cache": "-", "split": "-", "dataset": "-"})
    cfg = parse_run_config({"method": "benchmark", **raw}, where=f"profile {args.profile}")
    batches = synthetic_batches(8, cfg.data.labelled_batch, cfg.data.unlabelled_batch, cfg.data.img_size, seed=rank)
    for method_name, path_text in combos:
        numerics = parse_numerics(path_text, device)
        torch.manual_seed(rank)
        cls = get_method(method_name)
        info = {"labelled_slices": 0, "unlabelled_slices": 1000, "labelled_batch": cfg.data.labelled_batch,
                "unlabelled_batch": cfg.data.unlabelled_batch, "img_size": cfg.data.img_size}
        method = cls(cfg=resolve_variant(cls, "default", None), net_factory=NetFactory(cfg.network, 4),
                     num_classes=4, max_iters=2 * args.iterations, data_info=info).to(device)
        numerics.format_module(method)
        cfg.train.iterations = 2 * args.iterations
        optimizer, scheduler = build_optimizer(method, cfg.train)
        augment = CommonAugment(cfg.augment, torch.Generator().manual_seed(rank))
        uses_u = getattr(cls, "uses_unlabelled", True)

        # step() reads this combination's loop variables on purpose: it runs only within this iteration
        # (B023), and the `del` below, which frees the GPU memory before the next combination, clears
        # the closure's references too (pyflakes reads the del as leaving the names undefined: F821)
        def step(i: int) -> None:
            b = batches[i % len(batches)]
            if not uses_u:  # noqa: B023
                b = Batch(b.x_l, b.y_l, b.x_u[:0])
            logs, _ = train_step(method, optimizer, scheduler, augment, b, args.iterations + i, device, numerics)  # noqa: B023, F821
            float(logs["loss"])  # the step is done when its loss is on the host

        for i in range(args.warmup):
            step(i)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        barrier.wait()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            step(args.warmup + steps)
            steps += 1
        elapsed = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
        results.put((method_name, path_text, rank, steps, elapsed, peak))
        del method, optimizer, scheduler
        if device.type == "cuda":
            torch.cuda.empty_cache()
        barrier.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="paper")
    p.add_argument("--device", default="cuda")
    p.add_argument("--concurrency", default="1,2,4,8")
    p.add_argument("--methods", default="meanteacher,spcl")
    p.add_argument("--numerics", default="fp32,bf16,bf16+channels_last")
    p.add_argument("--seconds", type=float, default=8.0, help="timed window per combination and concurrency")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per worker")
    p.add_argument("--iterations", type=int, default=6000, help="iterations of one run (the paper profile: 6000)")
    p.add_argument("--plan-runs", type=int, default=222, help="runs of the plan (config/paper.yaml: 222)")
    args = p.parse_args(argv)
    levels = [int(n) for n in args.concurrency.split(",")]
    combos = [(m.strip(), n.strip()) for m in args.methods.split(",") for n in args.numerics.split(",")]
    ctx = mp.get_context("spawn")
    rows = []
    t0 = time.perf_counter()
    for n in levels:
        barrier, results = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(r, args, combos, barrier, results)) for r in range(n)]
        for proc in procs:
            proc.start()
        got = [results.get() for _ in range(n * len(combos))]
        for proc in procs:
            proc.join()
            if proc.exitcode != 0:
                print(f"a worker of concurrency {n} failed (exit {proc.exitcode})", file=sys.stderr)
                return 1
        for method_name, path_text in combos:
            mine = [g for g in got if g[0] == method_name and g[1] == path_text]
            per_s = sum(steps / elapsed for _, _, _, steps, elapsed, _ in mine)
            ms = statistics.median(1000 * elapsed / max(steps, 1) for _, _, _, steps, elapsed, _ in mine)
            rows.append({"n": n, "method": method_name, "path": path_text, "steps_s": per_s, "ms": ms,
                         "runs_h": per_s * 3600 / args.iterations, "peak": max(g[5] for g in mine)})
        print(f"[gpu_throughput] concurrency {n} done after {time.perf_counter() - t0:.0f} s", flush=True)
    device_name = args.device
    try:
        import torch

        if args.device.startswith("cuda") and torch.cuda.is_available():
            device_name = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    print(f"\nprofile {args.profile}, {device_name}, {args.seconds:g} s per cell, {args.iterations} iterations per run")
    print(f"{'N':>3} {'method':<12} {'path':<20} {'ms/step':>8} {'runs/h':>8} {'x N=1':>6} {'peak MiB':>9}")
    for r in rows:
        base = next(x for x in rows if x["n"] == levels[0] and x["method"] == r["method"] and x["path"] == r["path"])
        print(f"{r['n']:>3} {r['method']:<12} {r['path']:<20} {r['ms']:>8.1f} {r['runs_h']:>8.1f} "
              f"{r['runs_h'] / base['runs_h']:>6.2f} {r['peak']:>9.0f}")
    print(f"\nthe paper plan ({args.plan_runs} runs), every run costing as much as one of:")
    for method_name in dict.fromkeys(m for m, _ in combos):
        best = max((r for r in rows if r["method"] == method_name), key=lambda r: r["runs_h"])
        print(f"  {method_name}: best N = {best['n']} ({best['path']}): {best['runs_h']:.1f} runs/h -> "
              f"{args.plan_runs / best['runs_h']:.1f} GPU-hours (each run {args.iterations * best['ms'] / 1000 / 60:.1f} min "
              f"at that setting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
