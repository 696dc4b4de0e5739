"""Files others share are created as any file the user writes: the umask decides their mode
(REPORT.md, tables, figures, split files; run and evaluation files go through the same writer)."""

import os
import stat

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from analysis.io import save_figure, write_csv, write_text  # noqa: E402
from methods.atomic import write_text_atomic  # noqa: E402
from methods.data.splits import write_split  # noqa: E402

SPLIT = {"dataset": "phantom", "seed": 0, "labelled_count": 1, "train_labelled": ["p1"], "train_unlabelled": ["p2"],
         "val": ["p3"], "test": ["p4"]}


@pytest.fixture
def umask():
    previous = os.umask(0o022)

    def set_umask(value: int) -> None:
        os.umask(value)
    yield set_umask
    os.umask(previous)


def written(folder) -> dict[str, int]:
    import matplotlib.pyplot as plt

    write_text("# report\n", folder / "REPORT.md")
    write_csv(pd.DataFrame({"a": [1]}), folder / "tables" / "table1.csv")
    save_figure(plt.figure(figsize=(1, 1)), folder / "figures" / "fig")
    write_text_atomic(folder / "run.yaml", "x: 1\n")
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files}


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(umask, tmp_path, mask, mode):
    umask(mask)
    modes = written(tmp_path)
    assert set(modes) == {"REPORT.md", "tables/table1.csv", "figures/fig.png", "figures/fig.pdf", "run.yaml"}
    assert all(m == mode for m in modes.values()), modes
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary file left behind


def test_a_split_file_follows_the_umask(umask, tmp_path):
    path = write_split(SPLIT, tmp_path / "splits" / "r5_s0.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
