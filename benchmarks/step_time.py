"""Time training steps of several methods side by side, in one process, on the same batches.

    python benchmarks/step_time.py --profile cpu --methods suponly,meanteacher [--steps 20] [--rounds 3]
    python benchmarks/step_time.py --profile acdc_cpu --threads 1 --numerics fp32,auto --rounds 3
    python benchmarks/step_time.py --profile paper --numerics bf16 --methods suponly,meanteacher,spcl

Every method gets the same network profile, batch sizes and sequence of batches (synthetic
cardiac-like discs, or real slices with `--cache DIR --split FILE`) and runs the engine's own
`train_step` (augmentation, autocast, backward, SGD, `on_step_end`) on each numeric path of
`--numerics` (methods/precision.py: `auto` is what the engine picks on this machine; `fp32`,
`bf16`, `fp32+channels_last`, `bf16+channels_last` force one). Steps are timed after
`--warmup` untimed steps; the iteration counter starts at the middle of the run so ramps are on,
and the methods' sup-only warm-up is disabled by telling them there are no labelled slices per
"epoch" (`data_info['labelled_slices'] = 0`), so the semi-supervised step is what is timed.

Times: the median wall time per step and, with `--threads 1`, the median CPU time of the thread
that runs the step (`time.thread_time`), which time-slicing by other processes does not inflate;
on a shared machine it is the better measure of the step's own cost.

Peak memory: on CUDA `torch.cuda.max_memory_allocated` (reset per method); on the CPU the peak
resident-set growth over the method's timed steps, sampled every millisecond from /proc with freed
heap returned to the OS (`malloc_trim`) between methods; an approximation, good for ratios.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import sys
import threading
import time

import torch

from methods.api import Batch, get_method, resolve_variant
from methods.augment import CommonAugment
from methods.nets import NetFactory
from methods.precision import Numerics, resolve_numerics
from methods.runconfig import load_raw, parse_run_config, profile_path
from methods.training.engine import build_optimizer, train_step

NUM_CLASSES = 4


def synthetic_batches(n: int, b_l: int, b_u: int, size: int, seed: int) -> list[Batch]:
    """Concentric discs (RV/MYO/LV-like labels 1..3) at random centres, plus noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")

    def images(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = size / 2 + (torch.rand(b, 2, generator=g) - 0.5) * size / 4
        r = torch.hypot(yy[None] - c[:, 0, None, None], xx[None] - c[:, 1, None, None]) / size
        y = (r < 0.30).long() + (r < 0.22).long() + (r < 0.14).long()
        x = y.float() / 3 + 0.1 * torch.randn(b, size, size, generator=g)
        return x[:, None], y

    out = []
    for _ in range(n):
        x_l, y_l = images(b_l)
        out.append(Batch(x_l, y_l, images(b_u)[0]))
    return out


def cache_batches(n: int, cfg, seed: int) -> list[Batch]:
    from methods.data.loaders import TrainingData, open_run_inputs

    inputs = open_run_inputs(cfg.data, check_dataset=False)  # the profile need not name the cache's dataset
    data = TrainingData(inputs.cache, inputs.split, inputs.region, cfg.data.labelled_batch, cfg.data.unlabelled_batch, seed)
    return [data.next_batch() for _ in range(n)]


class RssPeak:
    """Peak resident set size (bytes) over a block, sampled from /proc/self/statm every ms."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __enter__(self):
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def release_heap() -> int:
    """Collect garbage, give freed heap back to the OS (glibc), return the RSS afterwards."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return RssPeak().rss()


def parse_numerics(text: str, device: torch.device) -> Numerics:
    """'auto' (the engine's choice here), or 'fp32' / 'bf16', optionally '+channels_last'."""
    if text == "auto":
        return resolve_numerics(device, "auto", "auto")
    precision, _, layout = text.partition("+")
    if precision not in ("fp32", "bf16") or layout not in ("", "channels_last"):
        raise SystemExit(f"--numerics: {text!r} is not auto, fp32, bf16, fp32+channels_last or bf16+channels_last")
    return Numerics(precision, layout or "contiguous")


def bench_method(name: str, cfg, batches: list[Batch], warmup: int, device: torch.device, numerics: Numerics) -> dict:
    torch.manual_seed(0)
    base_rss = release_heap() if device.type == "cpu" else 0
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    cls = get_method(name)
    mcfg = resolve_variant(cls, "default", None)
    info = {"labelled_slices": 0, "unlabelled_slices": 1000, "labelled_batch": cfg.data.labelled_batch,
            "unlabelled_batch": cfg.data.unlabelled_batch, "img_size": cfg.data.img_size}
    iters = 2 * len(batches)
    method = cls(cfg=mcfg, net_factory=NetFactory(cfg.network, NUM_CLASSES), num_classes=NUM_CLASSES,
                 max_iters=iters, data_info=info).to(device)
    numerics.format_module(method)
    cfg.train.iterations = iters
    optimizer, scheduler = build_optimizer(method, cfg.train)
    augment = CommonAugment(cfg.augment, torch.Generator().manual_seed(0))
    uses_u = getattr(cls, "uses_unlabelled", True)
    times, cpu_times = [], []
    with RssPeak() as rss:
        for i, b in enumerate(batches):
            if not uses_u:
                b = Batch(b.x_l, b.y_l, b.x_u[:0])
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.thread_time()
            logs, _ = train_step(method, optimizer, scheduler, augment, b, iters // 2 + i, device, numerics)
            float(logs["loss"])  # one sync per step, so the time covers the whole step
            if i >= warmup:
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.thread_time() - c0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss.peak - base_rss
    del method, optimizer, scheduler
    ms = 1000 * statistics.median(times)
    return {"method": name, "path": numerics.label(), "ms": ms, "cpu_ms": 1000 * statistics.median(cpu_times),
            "it_s": 1000 / ms, "peak_mib": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu", help="cpu | paper | a profile YAML")
    p.add_argument("--methods", default="suponly,meanteacher")
    p.add_argument("--steps", type=int, default=10, help="timed steps per method")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per method before timing")
    p.add_argument("--numerics", default="auto",
                   help="comma-separated numeric paths, timed side by side: auto | fp32 | bf16 | fp32+channels_last | "
                        "bf16+channels_last (default: auto, the engine's choice on this machine)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    p.add_argument("--cache", help="prepared cache for real slices (with --split)")
    p.add_argument("--split")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole list of methods this many times (alternating) and report "
                        "medians over rounds: robust to load that changes while the benchmark runs")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    raw = load_raw(profile_path(args.profile))
    raw.setdefault("data", {}).update({"cache": args.cache or "-", "split": args.split or "-", "dataset": raw.get("data", {}).get("dataset") or "-"})
    cfg = parse_run_config({"method": "benchmark", **raw}, where=f"profile {args.profile}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    n = args.warmup + args.steps
    if args.cache:
        batches = cache_batches(n, cfg, seed=0)
    else:
        batches = synthetic_batches(n, cfg.data.labelled_batch, cfg.data.unlabelled_batch, cfg.data.img_size, seed=0)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    paths = list(dict.fromkeys(parse_numerics(t.strip(), device) for t in args.numerics.split(",") if t.strip()))
    one_thread = torch.get_num_threads() == 1
    print(f"profile {args.profile}: {cfg.network.arch}/{cfg.network.encoder}, {cfg.data.img_size}px, "
          f"batch {cfg.data.labelled_batch}+{cfg.data.unlabelled_batch}, device {device}, "
          f"paths {', '.join(p.label() for p in paths)}, torch threads {torch.get_num_threads()}, "
          f"{args.steps} timed steps (median), load average {os.getloadavg()[0]:.1f} at start")
    # a discarded first pass initialises the libraries' lazy state (oneDNN/cuDNN primitives,
    # thread pools), which would otherwise be charged to the first method's time and memory
    for path in paths:
        bench_method(names[0], cfg, batches[: args.warmup + 1], args.warmup, device, path)
    rounds = [[bench_method(name, cfg, batches, args.warmup, device, path) for path in paths for name in names]
              for _ in range(max(1, args.rounds))]
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    key = "cpu_ms" if one_thread else "ms"

    def ratio(j: int, ref_of) -> str:
        """Median over rounds of (this cell / its reference cell), both from the same round."""
        values = []
        for r in rounds:
            ref = ref_of(r, r[j])
            if ref is None:
                return "-"
            values.append(r[j][key] / ref[key])
        return f"{statistics.median(values):.2f}"

    def same_path_meanteacher(r, cell):
        return next((x for x in r if x["method"] == "meanteacher" and x["path"] == cell["path"]), None)

    def first_path_same_method(r, cell):
        return next((x for x in r if x["method"] == cell["method"] and x["path"] == paths[0].label()), None)

    cpu_col = "cpu ms" if one_thread else ""
    print(f"{'method':<14}{'path':<20}{'ms/step':>9}{cpu_col:>9}{'it/s':>7}{'peak MiB':>10}"
          f"{'x meanteacher':>15}{'x ' + paths[0].label():>24}")
    for j, cell in enumerate(rounds[0]):
        ms = statistics.median(r[j]["ms"] for r in rounds)
        cpu = f"{statistics.median(r[j]['cpu_ms'] for r in rounds):>9.1f}" if one_thread else f"{'':>9}"
        peak = max(r[j]["peak_mib"] for r in rounds)
        print(f"{cell['method']:<14}{cell['path']:<20}{ms:>9.1f}{cpu}{1000 / ms:>7.2f}{peak:>10.0f}"
              f"{ratio(j, same_path_meanteacher):>15}{ratio(j, first_path_same_method):>24}")
    if one_thread:
        print("ratios are of the CPU time of the step's thread (one torch thread), each within one round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
