"""Atomic file writing: a crash never leaves a half-written table, figure or report behind, and
every file is created as any other the user writes (the umask applies; methods/atomic.py)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from methods.atomic import atomic_path as methods_atomic_path


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path in the target's folder, with the target's suffix (matplotlib picks
    the format by it); rename it onto `path` on success, remove it on any error."""
    with methods_atomic_path(path, keep_suffix=True) as tmp:
        yield tmp


def write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(df: pd.DataFrame, path: Path, index: bool = False) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index)
    return Path(path)


def save_figure(fig, stem: Path, tight: bool = True) -> list[Path]:
    """Save a matplotlib figure as `<stem>.png` and `<stem>.pdf` and close it. `tight=False`
    keeps the figure's own size (a figure laid out at a column width)."""
    import matplotlib.pyplot as plt

    paths = []
    try:
        for ext in ("png", "pdf"):
            target = Path(stem).with_suffix(f".{ext}")
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight" if tight else None)
            paths.append(target)
    finally:
        plt.close(fig)
    return paths
