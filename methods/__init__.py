"""The harness every method runs in: data, networks, the Method API and registry, the training
engine, evaluation and metrics. See docs/architecture.md for the contracts between the parts.

The names below come from `methods.api` on first use (PEP 562), so that importing a plain-data
module of the package (`methods.results_schema`, `methods.paper_plan`, `methods.atomic`) does not
load torch: the analysis and the workflow read those cheaply."""

__all__ = ["Batch", "Method", "StepOutput", "get_method", "list_methods", "register_method"]


def __getattr__(name):
    if name in __all__:
        from methods import api

        return getattr(api, name)
    raise AttributeError(f"module 'methods' has no attribute {name!r}")
