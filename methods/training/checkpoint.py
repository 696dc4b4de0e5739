"""Checkpoint files: atomic writes, strict loading, and rebuilding a trained method.

Two kinds, one format (a dict saved with `torch.save`, loaded with `weights_only=True`, so a
checkpoint can hold tensors, numbers, strings, lists and dicts only; a method's extra state must
keep to those types too):

- `RUN/checkpoints/last.pt` (resumable): `format_version`, `kind="resume"`, `config` (the resolved
  run config), `iteration` (completed iterations), `method_state`, `optimizer`, `scheduler`,
  `data` (stream positions), `rng` (python, numpy, torch CPU/CUDA, augmentation), `meta`;
- `RUN/final.pt`: `format_version`, `kind="final"`, `config`, `iteration`, `method_state`, `meta`.

`config` is the resolved run config plus `numerics` (methods/precision.py: the precision and memory
format the run computed in), which is compared like any setting before a run resumes.

`meta` = {`num_classes`, `class_names`, `dataset`, `data_info`, `evaluated_network`}: what is needed
to rebuild the method without opening the cache.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from methods.api import ConfigError, Method
from methods.atomic import atomic_path
from methods.runconfig import BOOKKEEPING_KEYS

FORMAT_VERSION = 1


class CheckpointError(ConfigError):
    """A checkpoint is unreadable or belongs to another method, config or network shape."""


def save_atomic(obj: dict, path: str | Path) -> None:
    """torch.save to a temporary sibling of this process's own, then rename: a crash never leaves a
    half-written file, and two copies of one run never write into the same temporary file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain Python values; "
            f"a method's get_extra_state must return only those ({exc})"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {exc}") from None
    has_state = isinstance(ckpt, dict) and ("method_state" in ckpt or ckpt.get("kind") == "failed")
    if not has_state or ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a spcl-bench checkpoint (format_version {FORMAT_VERSION})")
    return ckpt


def config_differences(saved: dict, current: dict, prefix: tuple = ()) -> list[str]:
    """Human-readable 'key: saved != current' entries, ignoring the bookkeeping settings
    (`methods.runconfig.BOOKKEEPING_KEYS`, the list the workflow's run.yaml leaves out too): only
    what changes the numbers must match before a run resumes or a final.pt is accepted."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        where = (*prefix, key)
        if where in BOOKKEEPING_KEYS:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, where)
        elif a != b:
            diffs.append(f"{'.'.join(where)}: {a!r} (checkpoint) != {b!r} (this run)")
    return diffs


def check_compatible(ckpt: dict, config: dict, path: str | Path) -> None:
    """Refuse to resume from a checkpoint written by another method or configuration."""
    diffs = config_differences(ckpt.get("config", {}), config)
    if any(d.startswith("numerics.") for d in diffs):
        raise CheckpointError(
            f"checkpoint {path} was computed on another numeric path ({'; '.join(diffs)}): train.amp "
            f"{config.get('train', {}).get('amp')!r} / train.channels_last {config.get('train', {}).get('channels_last')!r} "
            "resolve differently on this machine (methods/precision.py). Continue it where it was trained, set "
            "train.amp and train.channels_last explicitly, or delete the run to retrain it here."
        )
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was written by a different run configuration; refusing to resume. "
            f"Differences: {'; '.join(diffs)}. Use another out_dir or delete the checkpoint."
        )


def load_method_state(method: Method, state: dict, path: str | Path) -> None:
    """Strict load with a message that names the file and the first mismatching tensors."""
    try:
        method.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:4]
        raise CheckpointError(
            f"checkpoint {path} does not fit method {type(method).name!r} as configured "
            f"(different network or method shape): {' '.join(first)}"
        ) from None


def build_method(config: dict, data_info: dict, num_classes: int, device: str | torch.device = "cpu") -> Method:
    """Instantiate the configured method (registry, variant, network profile) on `device`."""
    from methods.api import get_method, resolve_variant
    from methods.nets import NetFactory, NetworkProfile

    cls = get_method(config["method"])
    cfg = resolve_variant(cls, config.get("variant"), config.get("method_config"), base=config.get("variant_base"))
    # the trained state replaces every weight: no pretrained file (or cache) is needed to rebuild
    network = {**(config.get("network") or {}), "encoder_weights": None}
    factory = NetFactory(NetworkProfile.from_dict(network), num_classes)
    method = cls(cfg=cfg, net_factory=factory, num_classes=num_classes, max_iters=config["train"]["iterations"], data_info=data_info)
    return method.to(device)


class RunFailedError(CheckpointError):
    """final.pt records a run whose training stopped (`train.on_failure: record`); `reason` says why."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: the run failed and has no weights: {reason}")
        self.reason = reason


def load_trained_method(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> tuple[Method, dict[str, Any]]:
    """Rebuild a trained method from `final.pt` (or a resumable `last.pt`), in eval mode.

    Returns the method and the resolved run config dict it was trained with.
    """
    ckpt = read_checkpoint(checkpoint_path, map_location="cpu")
    if ckpt.get("kind") == "failed":
        raise RunFailedError(checkpoint_path, str(ckpt.get("reason")))
    config = ckpt["config"]
    meta = ckpt.get("meta", {})
    method = build_method(config, meta.get("data_info", {}), int(meta["num_classes"]), "cpu")
    load_method_state(method, ckpt["method_state"], checkpoint_path)
    method = method.to(device)
    method.eval()
    # how final.pt's weights were chosen ("last", or the best_on_test record of methods/training/selection.py)
    method.selection_record = str(meta.get("selection", "last"))
    return method, config
