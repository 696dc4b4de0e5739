"""`python -m methods list`: the registered methods, their one-line descriptions and variants.

Also the `spcl-bench` console script: `spcl-bench list`, `spcl-bench train --config RUN.yaml ...`.
"""

from __future__ import annotations

import argparse
import sys

from methods.api import list_methods


def format_methods() -> str:
    lines = []
    for name, cls in list_methods().items():
        lines.append(f"{name:<14} {cls.description}")
        lines.append(f"{'':<14} variants: {', '.join(['default', *sorted(cls.variants)])}")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
