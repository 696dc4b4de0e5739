"""Supervised warm start: every segmentation network of a run starts from one trained network.

The paper starts every network from ImageNet weights (Sec. 3.1), which a machine without downloads
does not have. The CPU analogue is a named regime, never a silent replacement: a SupOnly run of the
same split and seed is trained first (N iterations), and `train.init_from` points each run of the
regime at its `final.pt`. Before the first iteration, every `SegNet` inside the method (students,
EMA teachers, AD-MT's teachers, ABD's second model, the backbone inside UGPCL's network) receives
that checkpoint's evaluated network, weights and batch-norm statistics alike; modules that are not
a `SegNet` (SPCL's memory banks) keep their own initialisation. A resumed run skips this: its
checkpoint already holds the weights.

A method whose networks are built from a SegNet's parts rather than being one (UGPCL keeps the
encoder, decoder and head inside a network of its own) names them with the optional, duck-typed
hook `warm_start_networks() -> dict[str, nn.Module]`. Each such network receives every tensor whose
name and shape it shares with the source; it must take the whole segmentation path (everything but
the projection head), and what keeps its own initialisation (UGPCL's attention decoder and heads)
is listed in the record.

The checkpoint must come from the same cache, split and network profile as the run (a warm start
from another split would show the network other patients' labels); anything else is refused with
a message that names the file and the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from methods.nets import SegNet
from methods.training.checkpoint import CheckpointError, load_trained_method, read_checkpoint

#: run-config keys that must be equal in the warm-start checkpoint and the run it starts
MUST_MATCH: tuple[tuple[str, str], ...] = (("data", "cache"), ("data", "split"), ("data", "dataset"), ("network", ""))


def segmentation_networks(method: nn.Module) -> dict[str, nn.Module]:
    """The networks a warm start sets: the method's `warm_start_networks()` if it has the hook,
    else every `SegNet` inside it by module path (a SegNet's own submodules are never SegNets)."""
    hook = getattr(method, "warm_start_networks", None)
    if callable(hook):
        return dict(hook())
    return {name: m for name, m in method.named_modules() if isinstance(m, SegNet)}


#: source tensors a target may lack: the projection head, which only some methods train
OPTIONAL_PREFIXES = ("projector.",)


def load_into(target: nn.Module, state: dict, name: str, path: Path) -> list[str]:
    """Copy every tensor of `state` that `target` has under the same name and shape; returns the
    top-level parts of `target` that kept their own initialisation."""
    own = target.state_dict()
    shared = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = sorted(k for k in state if k not in shared and not k.startswith(OPTIONAL_PREFIXES))
    if missing:
        raise CheckpointError(
            f"train.init_from {path}: network {name!r} of this run does not fit its weights "
            f"({len(missing)} tensors of the segmentation path have no counterpart, e.g. {missing[:3]})"
        )
    target.load_state_dict(shared, strict=False)
    return sorted({k.split(".")[0] for k in own if k not in shared})


def _section(config: dict, section: str, key: str) -> Any:
    value = config.get(section) or {}
    return value.get(key) if key else value


def check_source(source_config: dict, run_config: dict, path: str | Path) -> None:
    """Refuse a warm-start checkpoint trained on other data, another split or another network."""
    for section, key in MUST_MATCH:
        ours, theirs = _section(run_config, section, key), _section(source_config, section, key)
        if section == "network":  # the encoder file is not needed once the weights are trained
            ours = {k: v for k, v in (ours or {}).items() if k != "encoder_weights"}
            theirs = {k: v for k, v in (theirs or {}).items() if k != "encoder_weights"}
        if ours != theirs:
            name = f"{section}.{key}" if key else section
            raise CheckpointError(
                f"train.init_from {path}: its {name} ({theirs!r}) differs from this run's ({ours!r}); "
                "a warm start must come from a run of the same cache, split and network profile"
            )


def warm_start(method: nn.Module, path: str | Path, run_config: dict) -> dict[str, Any]:
    """Load the evaluated network of the run at `path` (a `final.pt`) into every SegNet of `method`.

    Returns the record kept in the run's checkpoint meta: the file, the source method and
    iteration, and which networks were set. The global random state is left as it was, so the
    run's own draws (data order, augmentation, mixing) do not depend on whether it is warm-started.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"train.init_from {path} does not exist (train the warm-start run first)")
    ckpt = read_checkpoint(path, map_location="cpu")
    if ckpt.get("kind") != "final":
        raise CheckpointError(f"train.init_from {path} is a {ckpt.get('kind')!r} checkpoint; it must be a run's final.pt")
    check_source(ckpt.get("config", {}), run_config, path)
    with torch.random.fork_rng(devices=[]):  # rebuilding the source method draws random weights
        source, source_config = load_trained_method(path)
    network = source.predictor()
    if not isinstance(network, SegNet):
        raise CheckpointError(
            f"train.init_from {path}: method {source_config.get('method')!r} evaluates a "
            f"{type(network).__name__}, not a segmentation network (SegNet) to start from"
        )
    state = network.state_dict()
    targets = segmentation_networks(method)
    if not targets:
        raise CheckpointError(f"train.init_from {path}: method {type(method).__name__} has no SegNet to start "
                              "(and no warm_start_networks() hook naming its networks)")
    kept = {name: load_into(net, state, name, path) for name, net in targets.items()}
    return {
        "path": str(path),
        "method": source_config.get("method"),
        "iteration": int(ckpt.get("iteration", -1)),
        "networks": list(targets),
        "own_initialisation": {name: parts for name, parts in kept.items() if parts},
    }
