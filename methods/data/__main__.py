"""Command line: `python -m methods.data {prepare,split} ...`.

    prepare --dataset {acdc,mnms,scd,ssl4mis_acdc,phantom} --root DIR --out DIR
            [--patients N --seed S]      phantom only: generated into --root if it is not there yet
            [--classes lv|lv_myo]        scd only
            [--contour-convention one_based|zero_based|pixel_corner]   scd only
            [--spacing-from ACDC_ROOT]   ssl4mis_acdc only: voxel sizes from the raw ACDC release
            [--normalisation clip_minmax|minmax] [--overwrite]
            Prints one line per case (shape, spacing, label check) and every reader note.
    split   --cache DIR --labelled N --seed S [--val N] [--test N]
            [--preset random|paper] [--selection paper|random] --out FILE

Errors (a missing folder, a malformed file, an impossible split) print one line naming the file
or setting and exit with status 2; nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from methods.data.normalise import DEFAULT_NORMALISATION, NORMALISATIONS
from methods.data.prepare import DATASETS, prepare_dataset
from methods.data.types import DatasetFormatError

DEFAULT_PHANTOM_PATIENTS = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m methods.data", description="Prepare dataset caches and splits.")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare", help="read a dataset (or generate the phantom) and write the prepared cache")
    prepare.add_argument("--dataset", required=True, choices=DATASETS)
    prepare.add_argument("--root", required=True, type=Path, help="dataset folder (phantom: where the tree is or will be generated)")
    prepare.add_argument("--out", required=True, type=Path, help="cache folder to create")
    prepare.add_argument("--patients", type=int, help=f"phantom only: number of patients (default {DEFAULT_PHANTOM_PATIENTS})")
    prepare.add_argument("--seed", type=int, help="phantom only: generator seed (default 0)")
    prepare.add_argument("--classes", choices=("lv", "lv_myo"), help="scd only: LV cavity only (default) or LV and myocardium")
    prepare.add_argument("--contour-convention", choices=("one_based", "zero_based", "pixel_corner"),
                         help="scd only: what a contour vertex (x, y) means (default one_based: MATLAB pixel centres, "
                              "as the challenge's own evaluation code rasterises them; docs/datasets.md)")
    prepare.add_argument("--spacing-from", type=Path, metavar="ACDC_ROOT",
                         help="ssl4mis_acdc only: raw ACDC release to take voxel sizes from (without it the "
                              "cache is pixel-only: no mm metrics)")
    prepare.add_argument("--normalisation", choices=sorted(NORMALISATIONS), default=DEFAULT_NORMALISATION)
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing cache at --out (only once the new one is complete)")

    split = commands.add_parser("split", help="write a patient-level split file for a prepared cache")
    split.add_argument("--cache", required=True, type=Path)
    split.add_argument("--labelled", required=True, type=int, help="number of labelled training patients")
    split.add_argument("--seed", required=True, type=int)
    split.add_argument("--val", type=int, default=0, help="validation patients carved from the training patients")
    split.add_argument("--test", type=int, help="random preset only: test patients (default 30%% of the patients)")
    split.add_argument("--preset", choices=("random", "paper"), default="random",
                       help="random: seeded split of any dataset; paper: the SPCL paper's train/test partition")
    split.add_argument("--selection", choices=("paper", "random"),
                       help="paper preset only: published labelled ids (default) or a seeded draw")
    split.add_argument("--out", required=True, type=Path, help="split JSON file to write")
    return parser


def _prepare(args: argparse.Namespace) -> str:
    if args.dataset != "phantom" and (args.patients is not None or args.seed is not None):
        raise ValueError("--patients and --seed apply to --dataset phantom only")
    if args.dataset != "scd" and (args.classes is not None or args.contour_convention is not None):
        raise ValueError("--classes and --contour-convention apply to --dataset scd only")
    if args.dataset != "ssl4mis_acdc" and args.spacing_from is not None:
        raise ValueError("--spacing-from applies to --dataset ssl4mis_acdc only")
    reader_options = {
        key: value for key, value in (
            ("classes", args.classes), ("contour_convention", args.contour_convention), ("spacing_from", args.spacing_from),
        ) if value is not None
    }
    started = time.perf_counter()
    print(f"reading {args.dataset} from {args.root}", flush=True)
    out = prepare_dataset(
        args.dataset, args.root, args.out,
        reader_options=reader_options,
        phantom_patients=DEFAULT_PHANTOM_PATIENTS if args.patients is None else args.patients,
        phantom_seed=0 if args.seed is None else args.seed,
        normalisation=args.normalisation,
        overwrite=args.overwrite,
        log=lambda line: print(line, flush=True),
    )
    from methods.data.cache import CachedDataset

    cache = CachedDataset(out)
    tail = f"; PIXEL-ONLY: {cache.pixel_only_reason}" if cache.pixel_only else ""
    return (f"prepared {cache.name}: {len(cache.patients())} patients, {len(cache)} cases, classes "
            f"{', '.join(cache.class_names)}, {len(cache.reader_notes)} reader note(s) -> {out} "
            f"({time.perf_counter() - started:.1f} s){tail}")


def _split(args: argparse.Namespace) -> str:
    from methods.data.cache import CachedDataset
    from methods.data.splits import make_split, write_split

    if args.preset == "paper" and args.test is not None:
        raise ValueError("--test applies to --preset random only; the paper preset fixes the test set")
    if args.preset == "random" and args.selection == "paper":
        raise ValueError("--selection paper needs --preset paper")
    cache = CachedDataset(args.cache)
    split = make_split(cache, args.labelled, args.seed, n_val=args.val, n_test=args.test,
                       rule=args.preset, selection=args.selection)
    write_split(split, args.out)
    counts = ", ".join(f"{len(split[role])} {role}" for role in ("train_labelled", "train_unlabelled", "val", "test"))
    return f"split of {cache.name} ({split['rule']}): {counts} -> {args.out}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        message = _prepare(args) if args.command == "prepare" else _split(args)
    except (DatasetFormatError, ValueError, FileNotFoundError, FileExistsError, KeyError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
