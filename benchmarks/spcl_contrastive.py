"""Time SPCL's contrastive part alone, at the paper profile's sizes, with the method's own code.

    python benchmarks/spcl_contrastive.py [--preset spcl|spcl_official] [--repeats 10] [--device cpu]

Sizes (defaults): 8 images (4 labelled + 4 unlabelled), 64 x 64 feature maps, 256-d projections,
4 classes, banks of 400 per subclass (full), 256 anchors per subclass. Every pixel is reliable and
hard, so each of the 8 subclasses yields its full 256 anchors. Reported, in ms (median of repeats):
- boundaries: the preset's boundary operator on the 8 label maps (both operators are also listed);
- losses fwd+bwd: anchor sampling, ICL and BCL forward, and the backward to the projections;
- bank update: per-image subclass centroids and the FIFO push;
- total = the three together (the part the official code spends ~600 ms on: 5 + 540 + 66 ms);
- GEMM floor: the four anchor x bank matrix products alone (forward and backward for the inner and
  the boundary anchors, 6.7 GFLOP at the default sizes), which any exact implementation performs.
Wall-clock and process CPU time are both printed: on a shared machine the wall time mostly measures
the other tenants, the CPU time the work done.
Labels are concentric discs (background / RV-like / MYO-like / LV-like) at random centres.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from methods.api import get_method, resolve_variant
from methods.nets import NetFactory, NetworkProfile
from spcl.boundaries import subclass_boundaries
from spcl.memory import subclass_centroids
from spcl.method import SubclassView


def disc_labels(b: int, size: int, generator: torch.Generator) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = size / 2 + (torch.rand(b, 2, generator=generator) - 0.5) * size / 4
    r = torch.hypot(yy[None] - c[:, 0, None, None], xx[None] - c[:, 1, None, None]) / size
    return (r < 0.30).long() + (r < 0.22).long() + (r < 0.14).long()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> tuple[float, float, object]:
    """Median wall-clock ms and median process CPU ms (all threads) over `repeats` calls."""
    fn()  # warm-up
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        sync(device)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return statistics.median(wall), statistics.median(cpu), out


def step_ratio(profile: str, steps: int, warmup: int, device: torch.device) -> None:
    """Whole steps of meanteacher / spcl / spcl_official, interleaved, on the same batches."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from step_time import NUM_CLASSES, synthetic_batches

    from methods.augment import CommonAugment
    from methods.precision import resolve_numerics
    from methods.runconfig import load_raw, parse_run_config, profile_path
    from methods.training.engine import build_optimizer, train_step

    raw = load_raw(profile_path(profile))
    raw.setdefault("data", {}).update({"cache": "-", "split": "-", "dataset": "-"})
    cfg = parse_run_config({"method": "benchmark", **raw}, where=f"profile {profile}")
    batches = synthetic_batches(warmup + steps, cfg.data.labelled_batch, cfg.data.unlabelled_batch, cfg.data.img_size, seed=0)
    info = {"labelled_slices": 0, "unlabelled_slices": 1000, "labelled_batch": cfg.data.labelled_batch,
            "unlabelled_batch": cfg.data.unlabelled_batch, "img_size": cfg.data.img_size}
    iters = 2 * len(batches)
    cfg.train.iterations = iters
    names = ("meanteacher", "spcl", "spcl_official")
    numerics = resolve_numerics(device, "auto", "auto")  # the engine's default path on this machine
    runs = {}
    for name in names:
        torch.manual_seed(0)
        cls = get_method(name)
        method = cls(cfg=resolve_variant(cls, "default", None), net_factory=NetFactory(cfg.network, NUM_CLASSES),
                     num_classes=NUM_CLASSES, max_iters=iters, data_info=info).to(device)
        numerics.format_module(method)
        optimizer, scheduler = build_optimizer(method, cfg.train)
        runs[name] = (method, optimizer, scheduler, CommonAugment(cfg.augment, torch.Generator().manual_seed(0)))
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for i, batch in enumerate(batches):
        for name in names:
            method, optimizer, scheduler, augment = runs[name]
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            logs, _ = train_step(method, optimizer, scheduler, augment, batch, iters // 2 + i, device, numerics)
            float(logs["loss"])
            sync(device)
            if i >= warmup:
                wall[name].append((time.perf_counter() - t0) * 1000.0)
                cpu[name].append((time.process_time() - c0) * 1000.0)
    print(f"whole steps, profile {profile}: {cfg.network.arch}/{cfg.network.encoder}, {cfg.data.img_size} px, "
          f"batch {cfg.data.labelled_batch}+{cfg.data.unlabelled_batch}, projection D {cfg.network.proj_dim}, "
          f"device {device}, torch threads {torch.get_num_threads()}, {steps} interleaved steps (median)")
    ref_wall, ref_cpu = statistics.median(wall["meanteacher"]), statistics.median(cpu["meanteacher"])
    print(f"  {'method':15s} {'wall ms':>9s} {'CPU ms':>9s} {'x MT wall':>10s} {'x MT CPU':>9s}")
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"  {name:15s} {w:9.1f} {c:9.1f} {w / ref_wall:10.2f} {c / ref_cpu:9.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="spcl", choices=("spcl", "spcl_official"))
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--size", type=int, default=64, help="feature map side")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--bank", type=int, default=400)
    p.add_argument("--anchors", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--step-ratio", action="store_true", help="time whole steps against the mean teacher instead")
    p.add_argument("--profile", default="cpu", help="network/data profile for --step-ratio (cpu | paper | YAML)")
    p.add_argument("--steps", type=int, default=8, help="timed steps per method for --step-ratio")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per method for --step-ratio")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.step_ratio:
        step_ratio(args.profile, args.steps, args.warmup, device)
        return 0

    cls = get_method(args.preset)
    cfg = resolve_variant(cls, "default", {"bank_size": args.bank, "anchors_per_subclass": args.anchors})
    profile = NetworkProfile(arch="unet", encoder="resnet18", proj_dim=args.dim)
    method = cls(cfg=cfg, net_factory=NetFactory(profile, args.classes), num_classes=args.classes,
                 max_iters=6000).to(device)
    g = torch.Generator().manual_seed(0)
    labels = disc_labels(args.images, args.size, g).to(device)
    projection = torch.randn(args.images, args.dim, args.size, args.size, generator=g).to(device).requires_grad_(True)
    bank_entries = F.normalize(torch.randn(2 * args.classes, args.bank, args.dim, generator=g), dim=-1)
    method.bank.push(bank_entries.transpose(0, 1).to(device), torch.ones(args.bank, 2 * args.classes, dtype=torch.bool, device=device))
    everything = torch.ones_like(labels, dtype=torch.bool)

    def boundaries(operator: str):
        return lambda: subclass_boundaries(labels, args.classes, operator, sigma=cfg.canny_sigma, low=cfg.canny_low,
                                           high=cfg.canny_high)

    boundary = subclass_boundaries(labels, args.classes, cfg.boundary)
    view = SubclassView(projection, labels, boundary, everything, everything)

    def losses():
        projection.grad = None
        loss, logs = method.contrastive_loss(view, it=3000)
        loss.backward()
        return logs

    subclass = method.bank_subclass_map(view)

    def bank_update():
        centroids, present = subclass_centroids(projection.detach(), subclass, 2 * args.classes)
        method.bank.push(centroids, present)

    anchors_rows = torch.randn(args.classes * args.anchors, args.dim, device=device)
    grad_rows = torch.randn(args.classes * args.anchors, 2 * args.classes * args.bank, device=device)
    flat_bank = method.bank.features().reshape(-1, args.dim)

    def matmul_floor():
        """The four products no exact implementation avoids: inner and boundary anchors x bank, forward
        ([A, D] x [D, M]) and backward to the anchors ([A, M] x [M, D])."""
        for _ in range(2):
            anchors_rows @ flat_bank.T
            grad_rows @ flat_bank

    ms, cpu = {}, {}
    for op in ("thick", "canny"):
        ms[f"boundaries ({op})"], cpu[f"boundaries ({op})"], _ = timed(boundaries(op), device, args.repeats)
    ms["losses fwd+bwd"], cpu["losses fwd+bwd"], logs = timed(losses, device, args.repeats)
    ms["  of which GEMM floor"], cpu["  of which GEMM floor"], _ = timed(matmul_floor, device, args.repeats)
    ms["bank update"], cpu["bank update"], _ = timed(bank_update, device, args.repeats)
    parts = (f"boundaries ({cfg.boundary})", "losses fwd+bwd", "bank update")
    ms["total"], cpu["total"] = sum(ms[k] for k in parts), sum(cpu[k] for k in parts)
    print(f"SPCL contrastive part, preset {args.preset} ({cfg.boundary} boundaries, bcl_form {cfg.bcl_form}); "
          f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"sizes: {args.images} images, {args.size}x{args.size} features, D={args.dim}, C={args.classes}, "
          f"bank {args.bank}, {args.anchors} anchors/subclass "
          f"(used: {int(logs['anchors_inner'])} inner + {int(logs['anchors_boundary'])} boundary)")
    print(f"  {'part':22s} {'wall ms':>9s} {'CPU ms':>9s}   (median of {args.repeats}; CPU = process time, all threads)")
    for k in ms:
        print(f"  {k:22s} {ms[k]:9.1f} {cpu[k]:9.1f}")
    print("  official implementation, same sizes, 2-core CPU: ~600 ms (boundaries 5, loss 540, bank update 66)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
