"""The evaluation's files, each written whole or not at all (methods/atomic.py): the per-case CSV,
`predictions/<case_id>.npz` and compressed npz samples. Layout: docs/architecture.md,
"Evaluation outputs"."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from methods.atomic import write_bytes_atomic
from methods.data.types import Case


def save_npz_atomic(path: str | Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(Path(path), buf.getvalue())


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    write_bytes_atomic(Path(path), df.to_csv(index=False).encode())


def all_class_names(class_names: Sequence[str]) -> np.ndarray:
    """The stored `class_names`: background first, so `class_names[v]` names label value v."""
    return np.array(["background", *class_names])


def save_prediction(directory: str | Path, case: Case, pred: np.ndarray, class_names: Sequence[str]) -> Path:
    """`directory/<case_id>.npz` with image, label, pred, spacing, class_names (background first)."""
    path = Path(directory) / f"{case.case_id}.npz"
    save_npz_atomic(
        path,
        image=case.image.astype(np.float32),
        label=case.label.astype(np.uint8),
        pred=pred.astype(np.uint8),
        spacing=np.asarray(case.spacing, dtype=np.float64),
        class_names=all_class_names(class_names),
    )
    return path
