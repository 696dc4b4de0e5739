"""`python -m methods.train --config RUN.yaml [--profile cpu|paper|FILE] [--out DIR]`.

Trains one run (or resumes it from `RUN/checkpoints/last.pt`, or only rewrites `final.pt` when the
checkpoint is already at the last iteration). The run config shape is documented in
`methods/runconfig.py` and docs/architecture.md ("Training run folder").

`--set train.checkpoint_every=250` (repeatable) overrides a setting that does not change the
numbers (`methods.runconfig.BOOKKEEPING_KEYS`); the workflow passes its current bookkeeping
settings this way, so a changed interval reaches the next (re)started process without making the
run a different run. Any other key belongs in the run config and is refused here.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

from methods.config_yaml import load_yaml
from methods.data.splits import SplitError
from methods.data.types import DatasetFormatError
from methods.errors import ConfigError
from methods.runconfig import load_run_config
from methods.training.engine import NonFiniteLossError, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m methods.train", description="Train one method on one prepared dataset split.")
    p.add_argument("--config", required=True, help="run config YAML (may 'extends:' a profile)")
    p.add_argument("--profile", help="base profile merged beneath the config: a name in config/profiles/ or a YAML path")
    p.add_argument("--out", help="run folder (overrides out_dir in the config)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (e.g. in batch jobs)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                   help="a setting that does not change the numbers, e.g. train.checkpoint_every=250 "
                        "(repeatable; VALUE is read as YAML)")
    p.add_argument("--if-running", choices=["wait", "fail"], default="wait",
                   help="when another copy of this run is training (RUN/train.lock names a live process or SLURM "
                        "job): wait for it to end (default; then the run is complete or resumes from its "
                        "checkpoint) or stop with an error")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, i.e. OMP_NUM_THREADS or all cores); "
                   "on a shared CPU 1 thread per job is often several times faster than oversubscribing")
    return p


def parse_settings(items: list[str]) -> dict:
    """["train.log_every=5", ...] -> {"train.log_every": 5}; a malformed item names itself."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: expected NAME=VALUE, e.g. train.checkpoint_every=250")
        try:
            out[name.strip()] = load_yaml(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        cfg = load_run_config(args.config, profile=args.profile, out_dir=args.out,
                              bookkeeping=parse_settings(args.settings))
        if args.no_progress:
            cfg.train.progress = False
        run_dir = train(cfg, if_running=args.if_running)
    except (ConfigError, SplitError, DatasetFormatError, NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"finished: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
