"""How good would a trained network's confident pseudo-labels be? A diagnostic for self-training.

`python -m methods.pseudo_labels --checkpoint RUN/final.pt --cache CACHE --split SPLIT
[--role train_unlabelled] [--threshold 0.95] [--network teacher|student] [--mode train|eval]
[--out CSV]`

Runs a network of a trained method on the slices of one split role (by default the unlabelled
training patients, whose labels the cache still holds: the phantom's, or a real dataset's when
the split hides them) on the run's training grid (its region stage), keeps the pixels whose top softmax probability
reaches `threshold` (the mean teacher's pseudo-label rule), and counts per ground-truth class:

- `coverage`: fraction of the class's pixels that receive a confident pseudo-label;
- `correct`: fraction that receive the right one (recall of the confident pseudo-labels);
- `wrong`: fraction confidently labelled as another class (`coverage - correct`);
- `precision`: of the pixels confidently labelled as this class, the fraction that are.

A class whose `wrong` exceeds its `correct` is pushed out of the student's predictions by a
pseudo-label loss (docs/methods.md, "Mean teacher against SupOnly on the phantom").
`--mode train` reproduces the official teacher forward (BN batch statistics, batches of
`--batch-size` slices).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import torch
from torch import Tensor

from methods.errors import ConfigError

COLUMNS = ["class_name", "pixels", "coverage", "correct", "wrong", "precision"]


def confident_label_quality(probs: Tensor, labels: Tensor, threshold: float, class_names: list[str]) -> pd.DataFrame:
    """probs [N,C,H,W] softmax, labels [N,H,W] int: one row per class (background included)."""
    conf, pred = probs.max(1)
    confident = conf >= threshold
    rows = []
    for c, name in enumerate(class_names):
        gt = labels == c
        n = int(gt.sum())
        covered = int((gt & confident).sum())
        correct = int((gt & confident & (pred == c)).sum())
        labelled_c = int((confident & (pred == c)).sum())
        rows.append({
            "class_name": name, "pixels": n,
            "coverage": covered / n if n else float("nan"),
            "correct": correct / n if n else float("nan"),
            "wrong": (covered - correct) / n if n else float("nan"),
            "precision": correct / labelled_c if labelled_c else float("nan"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


@torch.no_grad()
def network_probs(net: torch.nn.Module, images: Tensor, mode: str, batch_size: int) -> Tensor:
    """Softmax of `net` on `images` [N,1,S,S], in `mode` ("train": BN batch statistics)."""
    was_training = net.training
    net.train(mode == "train")
    try:
        return torch.cat([net(images[i:i + batch_size]).logits.float().softmax(1)
                          for i in range(0, images.shape[0], batch_size)])
    finally:
        net.train(was_training)


def pick_network(method: torch.nn.Module, which: str) -> torch.nn.Module:
    """The method's teacher or the network it is evaluated with (`predictor()`)."""
    if which == "student":
        return method.predictor()
    teacher = getattr(method, "teacher", None)
    if not isinstance(teacher, torch.nn.Module):
        raise ConfigError(f"{type(method).__name__} has no EMA teacher; use --network student")
    return teacher


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m methods.pseudo_labels", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="RUN/final.pt (or checkpoints/last.pt)")
    p.add_argument("--cache", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--role", default="train_unlabelled", choices=("train_unlabelled", "train_labelled", "val", "test"))
    p.add_argument("--threshold", type=float, default=0.95)
    p.add_argument("--network", default="teacher", choices=("teacher", "student"))
    p.add_argument("--mode", default="train", choices=("train", "eval"))
    p.add_argument("--batch-size", type=int, default=8, help="slices per forward (the official teacher sees 8)")
    p.add_argument("--out", help="write the table as CSV here (atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    from methods.training.checkpoint import load_trained_method
    from methods.data.loaders import cases_of_role, load_slices, open_run_inputs
    from methods.evaluation.outputs import write_csv_atomic

    args = build_parser().parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        print(f"error: --threshold must be in [0, 1], got {args.threshold}", file=sys.stderr)
        return 2
    try:
        method, config = load_trained_method(args.checkpoint)
        net = pick_network(method, args.network)
        inputs = open_run_inputs(config["data"], args.cache, args.split)
        cache, region = inputs.cache, inputs.region
        ids = cases_of_role(cache, inputs.split, args.role, args.split)
    except (ConfigError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    slices = load_slices(cache, ids, region)
    probs = network_probs(net, slices.images, args.mode, args.batch_size)
    table = confident_label_quality(probs, slices.labels.long(), args.threshold, ["background", *cache.class_names])
    print(f"{config['method']} {args.network} ({args.mode} mode) on {len(ids)} {args.role} cases, "
          f"{slices.images.shape[0]} slices, confidence >= {args.threshold}: "
          f"{float((probs.max(1).values >= args.threshold).float().mean()):.3f} of the pixels labelled")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        write_csv_atomic(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
