"""Train a method for a few iterations with the real engine on the shared tiny phantom cache.

Used by the baseline tests (tests/test_baseline_*.py); the fixtures come from tests/conftest.py.
"""

from __future__ import annotations

import csv
import math

TINY_NET = {"arch": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8, 8], "proj_hidden": 16, "proj_dim": 8}


def train_tiny(method: str, method_config: dict, cache, split, out_dir, iterations: int = 2, img_size: int = 32) -> list[dict]:
    """Run `iterations` steps (batch 2 + 2, CPU, every iteration logged); return log.csv rows."""
    from methods.runconfig import parse_run_config
    from methods.training.engine import train

    cfg = parse_run_config({
        "method": method, "method_config": method_config, "seed": 0, "out_dir": str(out_dir),
        "data": {"cache": str(cache), "split": str(split), "dataset": "phantom", "ratio": 5,
                 "img_size": img_size, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": TINY_NET,
        "train": {"iterations": iterations, "device": "cpu", "amp": "off", "progress": False,
                  "log_every": 1, "checkpoint_every": 1000},
    })
    run_dir = train(cfg)
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_logged_and_finite(rows: list[dict], keys: list[str], iterations: int) -> None:
    """Every key is a column of every logged iteration and every value is a finite number."""
    assert [int(r["iteration"]) for r in rows] == list(range(iterations))
    for row in rows:
        missing = [k for k in keys if k not in row or row[k] == ""]
        assert not missing, f"iteration {row['iteration']}: missing {missing}"
        bad = {k: row[k] for k in keys if not math.isfinite(float(row[k]))}
        assert not bad, f"iteration {row['iteration']}: non-finite {bad}"
