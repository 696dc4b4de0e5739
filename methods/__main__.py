"""`python -m methods list`: the registered methods (one-line descriptions, display names,
variants) and the network/training profiles in config/profiles/ (network, input size, iterations).

Also the `spcl-bench` console script: `spcl-bench list`, `spcl-bench train --config RUN.yaml ...`.
"""

from __future__ import annotations

import argparse
import sys

from methods.api import ConfigError, list_methods


def format_methods() -> str:
    lines = []
    for name, cls in list_methods().items():
        lines.append(f"{name:<14} {cls.description}")
        variants = ", ".join(["default", *sorted(cls.variants)])
        lines.append(f"{'':<14} shown as {cls.display_name!r}; variants: {variants}")
    return "\n".join(lines)


def format_profiles() -> str:
    """One line per profile in config/profiles/ (resolved through its `extends` chain)."""
    from methods.nets import NetworkProfile
    from methods.runconfig import PROFILE_DIR, DataConfig, TrainConfig, load_raw

    lines = []
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        try:
            raw = load_raw(path)
            net = NetworkProfile.from_dict(raw.get("network"))
        except ConfigError as exc:
            lines.append(f"{path.stem:<16} (invalid: {exc})")
            continue
        stem = f" (stem {list(net.stem_channels)})" if net.arch == "deeplabv3plus_official" else ""
        img = (raw.get("data") or {}).get("img_size", DataConfig.img_size)
        iters = (raw.get("train") or {}).get("iterations", TrainConfig.iterations)
        lines.append(f"{path.stem:<16} {net.arch}, {net.encoder}{stem}, encoder_weights {net.encoder_weights}, "
                     f"{img} px, {iters} iterations")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m methods", description="spcl-bench harness commands")
    parser.add_argument("command", choices=("list", "train"), help="list: registered methods; train: see `train --help`")
    args, _ = parser.parse_known_args(argv[:1])
    if args.command == "train":
        from methods.train import main as train_main

        return train_main(argv[1:])
    if argv[1:]:
        parser.error(f"'list' takes no arguments, got {argv[1:]}")
    print(format_methods())
    print(f"\nprofiles (config/profiles/; `--profile NAME` or `extends: NAME`):\n{format_profiles()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
