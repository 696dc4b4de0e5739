"""Walk a dataset root the way a user expects: through symbolic links to folders.

Data on clusters usually sits behind links (`training -> /scratch/acdc/training`). Neither
`Path.glob("**/...")` (before Python 3.13) nor `os.walk` (by default) enters a linked folder, so a
reader built on them skips it without a word. Every reader's folder search goes through `walk`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator


def walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """`os.walk(root)` top-down, following links to folders, names sorted. A real folder reached
    a second time (a link back up the tree, or two links to one folder) is not entered again, so a
    loop ends. As with `os.walk`, the caller may prune the `dirnames` list it is given."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        filenames.sort()
        yield Path(dirpath), dirnames, filenames
