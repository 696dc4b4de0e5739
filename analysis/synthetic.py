"""A small synthetic run folder in the workflow's layout, to try and test the analysis without training.

    python -m analysis.synthetic --out /tmp/demo && python -m analysis.run --results-dir /tmp/demo --out /tmp/demo/analysis

Writes, like workflow/rules/common.smk:
  eval/<dataset>/r<pct>/<method>/<variant>/s<seed>/metrics.csv, features.npz, predictions/<case>.npz
  runs/<dataset>/r<pct>/spcl/<variant>/s<seed>/similarities.npz
  runs/<dataset>/r<pct>/<method>/default/s<seed>/log.csv (pseudo-label columns, methods with pseudo-labels)
  provenance/config.yaml
Metric values are random draws around a per-method level (SPCL highest), not results of anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.collect import CASE_COLUMNS
from analysis.io import write_csv, write_text
from methods.paper_plan import ablation_variants, sweep_variant

CLASSES = ("RV", "MYO", "LV")
METHODS = ("suponly", "ugpcl", "dgcl", "admt", "abd", "bus", "bass", "spcl")
ABLATION_VARIANTS = ablation_variants()  # the ablation runs beside the default ones (methods/paper_plan.py)


def _pct(ratio: float) -> str:
    return f"{float(ratio):g}"


def case_rows(dataset, ratio, method, variant, seed, level, n_cases, rng) -> pd.DataFrame:
    """Per-case rows of one run: Dice around `level`, Jaccard from Dice, HD95 falling with Dice."""
    rows = []
    for c in range(n_cases):
        for k, name in enumerate(CLASSES):
            dice = float(np.clip(level + 0.03 * k + rng.normal(0, 0.03), 0.05, 0.995))
            hd = float(max(0.5, (1 - dice) * 40 + rng.normal(0, 0.5)))
            rows.append({"dataset": dataset, "ratio": ratio, "labelled_cases": 2, "method": method, "variant": variant,
                         "seed": seed, "case_id": f"patient{c:03d}_ED", "class_name": name, "dice": dice,
                         "jaccard": dice / (2 - dice), "hd95_mm": hd * 1.5, "hd95_px": hd, "asd_mm": hd / 3,
                         "evaluated_network": "teacher", "checkpoint": f"runs/{dataset}/r{_pct(ratio)}/{method}/{variant}/s{seed}/final.pt"})
    return pd.DataFrame(rows, columns=list(CASE_COLUMNS))


def features(rng, per_group: int, spread: float) -> dict:
    """Gaussian clusters per (class, inner/boundary); boundary points lie between class centres."""
    dim = 16
    centres = rng.normal(0, 1, size=(len(CLASSES) + 1, dim))
    feats, cls, bnd = [], [], []
    for c in range(len(CLASSES) + 1):
        for boundary in (False, True):
            centre = centres[c] * (0.6 if boundary else 1.0)
            feats.append(centre + rng.normal(0, spread, size=(per_group, dim)))
            cls += [c] * per_group
            bnd += [boundary] * per_group
    x = np.concatenate(feats).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return {"features": x, "class_index": np.array(cls, dtype=np.int64), "boundary": np.array(bnd),
            "class_names": np.array(("background",) + CLASSES)}


def prediction(rng, size: int, quality: float) -> dict:
    """A 3-slice phantom: nested discs (LV inside MYO, RV beside), prediction = label with noise."""
    z, y, x = np.mgrid[0:3, 0:size, 0:size]
    r = np.hypot(y - size / 2, x - size / 2)
    label = np.zeros((3, size, size), np.uint8)
    label[r < size * 0.25] = 2
    label[r < size * 0.17] = 3
    label[(np.hypot(y - size / 2, x - size * 0.22) < size * 0.12) & (label == 0)] = 1
    label[0] = 0
    pred = label.copy()
    flip = rng.random(label.shape) > quality
    pred[flip] = rng.integers(0, 4, size=int(flip.sum()))
    image = (label * 0.3 + rng.normal(0, 0.1, label.shape)).astype(np.float32)
    return {"image": image, "label": label, "pred": pred, "spacing": np.array([10.0, 1.5, 1.5]),
            "class_names": np.array(CLASSES)}


def training_log(rng, level: float, iterations: int = 200, every: int = 20) -> pd.DataFrame:
    """A log.csv with the engine's pseudo-label columns at every `every`-th iteration: coverage
    rising and precision approaching `level` (random draws, not results of anything)."""
    rows = []
    for it in range(iterations):
        row = {"iteration": it, "lr": 0.01 * (1 - it / iterations) ** 0.9, "loss": 1.0 / (1 + it / 50)}
        if (it + 1) % every == 0:
            t = (it + 1) / iterations
            for name, share in (("background", 0.85), *((c, 0.05) for c in CLASSES)):
                row[f"pl_cover_{name}"] = share * t * float(rng.uniform(0.9, 1.0))
                row[f"pl_prec_{name}"] = min(1.0, level * t + float(rng.uniform(0, 0.05)))
        rows.append(row)
    return pd.DataFrame(rows)


def write_synthetic_run(root: Path, settings=(("phantom", 10.0), ("phantom", 20.0)), methods=METHODS, seeds=(0,),
                        n_cases: int = 6, ablation_setting=("phantom", 10.0), sweep=((0.65, 0.75), (0.9, 0.95)),
                        artefacts: bool = True, features_per_group: int = 20, seed: int = 0) -> Path:
    """Write the folder; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    levels = {m: 0.70 + 0.02 * i for i, m in enumerate(METHODS)}
    runs = [(d, r, m, "default", s) for d, r in settings for m in methods for s in seeds]
    if ablation_setting is not None:
        runs += [(*ablation_setting, m, v, s) for m, v in ABLATION_VARIANTS for s in seeds]
    if sweep:
        runs += [(*ablation_setting, "spcl", sweep_variant(gs, gt), s) for gs in sweep[0] for gt in sweep[1] for s in seeds]
    for dataset, ratio, method, variant, s in runs:
        key = f"{dataset}/r{_pct(ratio)}/{method}/{variant}/s{s}"
        level = levels.get(method, 0.75) - (0.01 if variant != "default" else 0.0)
        eval_dir = root / "eval" / key
        write_csv(case_rows(dataset, ratio, method, variant, s, level, n_cases, rng), eval_dir / "metrics.csv")
        if not artefacts:
            continue
        np.savez(eval_dir / "features.npz", **features(rng, features_per_group, 0.9 - level))
        (eval_dir / "predictions").mkdir(parents=True, exist_ok=True)
        for c in range(2):
            np.savez(eval_dir / "predictions" / f"patient{c:03d}_ED.npz", **prediction(rng, 32, level))
        if method != "suponly" and variant == "default":
            write_csv(training_log(rng, level), root / "runs" / key / "log.csv")
        if method == "spcl":
            run_dir = root / "runs" / key
            run_dir.mkdir(parents=True, exist_ok=True)
            shift = 0.1 if variant == "default" else 0.0
            np.savez(run_dir / "similarities.npz", positive=np.clip(rng.normal(0.6 + shift, 0.15, 300), -1, 1),
                     negative=np.clip(rng.normal(0.1 - shift, 0.2, 300), -1, 1))
    config = {"run_name": root.name, "control": "spcl", "seeds": list(seeds), "methods": list(methods),
              "figures": {"tsne_methods": ["bus", "bass", "spcl"], "tsne_points_per_panel": 120},
              "evaluation": {"paper_compatible": False}}
    write_text(yaml.safe_dump(config, sort_keys=False), root / "provenance" / "config.yaml")
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cases", type=int, default=6)
    args = parser.parse_args(argv)
    write_synthetic_run(args.out, seeds=tuple(args.seeds), n_cases=args.cases)
    print(f"wrote a synthetic run to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
