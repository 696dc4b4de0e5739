"""The harness every method runs in: data, networks, the Method API and registry, the training
engine, evaluation and metrics. See docs/architecture.md for the contracts between the parts."""

from methods.api import Batch, Method, StepOutput, get_method, list_methods, register_method

__all__ = ["Batch", "Method", "StepOutput", "get_method", "list_methods", "register_method"]
