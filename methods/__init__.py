"""The harness every method runs in, laid out by stage (docs/architecture.md, "Layout"): data,
networks (`nets`), the Method API and registry (`api`), training, evaluation, and the cluster
helpers the workflow starts jobs through.

`import methods` imports nothing else: the names below come from `methods.api` on first use
(PEP 562), so tools that need only a standard-library helper (the workflow's start-up checks,
`methods.cluster`) or a plain-data module (`methods.results_schema`, `methods.paper_plan`) do not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["Batch", "Method", "StepOutput", "get_method", "list_methods", "register_method"]

if TYPE_CHECKING:  # for type checkers only; at run time `__getattr__` imports them on first use
    from methods.api import Batch, Method, StepOutput, get_method, list_methods, register_method


def __getattr__(name: str):
    if name in __all__:
        value = getattr(importlib.import_module("methods.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
