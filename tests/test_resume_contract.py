"""The resume contract, for every registered method: a run killed after a checkpoint and started
again with the same config ends bit-identical to a run that was never interrupted.

Per method (`methods.api.list_methods()`, so a newly registered method is covered without an
edit here), on the shared tiny phantom cache with timm's 0.4 M-parameter test ResNet at 32 px,
6 iterations, a checkpoint every 2, a log flush every 3:

1. the reference: uninterrupted;
2. a first process, killed inside iteration 3, i.e. one whole iteration after the checkpoint at 2
   and after its optimiser step: it has moved weights, optimiser, teachers, memory banks and
   random streams past the checkpoint and has written a log row (iteration 2) the checkpoint
   does not cover, which the resume must drop;
3. a second process (the same command), which resumes from that checkpoint, writes its own at 4
   and is killed inside iteration 5, with iteration 4's log row still unwritten: a checkpoint
   written by a resumed process, whose random streams were restored from the first one;
4. a third process (the same command again), which resumes from 4 and finishes.

The kill is an exception (`KeyboardInterrupt`, what Ctrl-C raises) from `on_step_end`, at a fixed
point after a checkpoint. On its way out it passes only the engine's `finally`, which closes the
progress bar and the TensorBoard writer: nothing the resume reads is written there, so the run
folder is left as a SIGKILL would leave it. A SIGKILLed subprocess would be literally faithful but
costs a Python + torch start per process and dies at a point that depends on timing; a real
SIGKILL of a whole training job is exercised once, for SupOnly, by tests/test_workflow.py. What a
new process adds, losing everything in memory, each fresh `Trainer` reproduces: it rebuilds the
method, optimiser, data streams and augmentation from the config and reseeds the global RNGs
before the checkpoint overwrites them; the engine and the methods keep no state at module level.

Asserted: every tensor of the final `state_dict` (weights, buffers such as memory banks, queues
and EMA teachers, and the nested extra state with its generator states), `log.csv` byte for byte,
and `similarities.npz` where a method writes one, equal to the reference's. At each checkpoint:
every `torch.Generator` the method holds is in it (a random stream that is not would restart
from its seed on resume), and its state round-trips (`set_extra_state`, then `state_dict()` gives
it back) into two methods that hold other state, a freshly built one (initial state) and the
killed one (one iteration further), so a field `set_extra_state` forgets shows up even where the
end-to-end run happens not to depend on it (e.g. AD-MT's alternation period drawn equal by
chance).

Method configs shorten warm-ups, thresholds and memory sizes so that each method's own machinery
(EMA teachers, pseudo-labels, contrast terms, memory banks and queues, teacher alternation, ramps)
is at work on both sides of the checkpoints; `ACTIVE_AFTER_CHECKPOINT` checks that. CPU, fp32,
one thread (tests/conftest.py): the engine is bit-reproducible there.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from test_engine import NET, assert_same_state
from torch import nn

from methods.api import list_methods
from methods.runconfig import parse_run_config
from methods.training.checkpoint import build_method, load_method_state, read_checkpoint
from methods.training.engine import Trainer

# NET: timm's 0.4 M-parameter test ResNet in a U-Net, the smallest network the tests train
ITERATIONS, CHECKPOINT_EVERY, LOG_EVERY = 6, 2, 3
#: (killed inside iteration, the checkpoint it leaves, the log rows it leaves); flushes at 2 (with
#: the checkpoint) and 3 leave row 2 behind the first kill; the second dies with row 4 unflushed
KILLS = ((3, 2, [0, 1, 2]), (5, 4, [0, 1, 2, 3]))

#: per method, overrides that put its own machinery to work within 6 iterations (the defaults are
#: sized for 6000: warm-ups of an epoch, memories of thousands of pixels; an untrained network's
#: softmax never reaches 0.95, so no pseudo-label would pass); a method without an entry runs with
#: its defaults
METHOD_CONFIG = {
    "meanteacher": {"warmup_iters": 1, "conf_threshold": 0.5},
    "spcl": {"warmup_iters": 1, "conf_threshold": 0.5, "bank_size": 2, "anchors_per_subclass": 16, "gamma_t": 0.5},
    "spcl_official": {"warmup_iters": 1, "conf_threshold": 0.5, "bank_size": 2, "anchors_per_subclass": 16,
                      "gamma_t": 0.5},
    "dgcl": {"warmup_iters": 1, "memory_size": 16, "memory_update_samples": 16, "memory_density_min": 16,
             "density_k": [4, 8, 16]},
    "bus": {"warmup_iters": 1, "conf_threshold": 0.5, "window_fraction": 0.75},
    "bass": {"warmup_iters": 1, "conf_threshold": 0.5, "lrd": True, "min_set_size": 1},
    "ugpcl": {"contrast_start": 0, "tf_dim": 24, "tf_depth": 1, "memory_size": 8},
    "admt": {"period_max": 3, "ema_copy_steps": 1, "conf_threshold": 0.5},
    "abd": {},
    "suponly": {},
}

#: log columns that must be non-zero in some iteration after the last checkpoint: the resumed part
#: of the run exercises the method's own state, not only a supervised warm-up
ACTIVE_AFTER_CHECKPOINT = {
    "meanteacher": ["unsup"],
    "spcl": ["unsup", "icl", "bcl"],
    "spcl_official": ["unsup", "icl", "bcl"],
    "dgcl": ["unsup", "contrast"],
    "bus": ["unsup", "contrast"],
    "bass": ["unsup", "contrast", "lrd"],
    "ugpcl": ["consistency", "contrast", "rotation"],
    "admt": ["unsup", "conflict_ratio"],
    "abd": ["cps1", "abd_r1", "abd_i1"],
    "suponly": ["sup"],
}


def run_config(cache, split, out, method):
    return parse_run_config({
        "method": method, "method_config": METHOD_CONFIG.get(method, {}), "seed": 3, "out_dir": str(out),
        "data": {"cache": str(cache), "split": str(split), "dataset": "phantom", "ratio": 5,
                 "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": NET,
        "train": {"iterations": ITERATIONS, "checkpoint_every": CHECKPOINT_EVERY, "log_every": LOG_EVERY,
                  "device": "cpu", "amp": "off", "channels_last": "off", "progress": False},
    })


def generators_of(method: nn.Module) -> dict[str, torch.Generator]:
    """Every torch.Generator reachable from the method's modules through plain attributes, helper
    objects (e.g. a sampler or a state machine holding one), lists, tuples and dicts."""
    found: dict[int, tuple[str, torch.Generator]] = {}
    seen: set[int] = set()

    def visit(obj, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            found.setdefault(id(obj), (path, obj))
        elif isinstance(obj, (nn.Module, torch.Tensor, str, bytes, int, float, bool, type(None))):
            return
        elif isinstance(obj, dict):
            for k, v in obj.items():
                visit(v, f"{path}[{k!r}]", depth + 1)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                visit(v, f"{path}[{i}]", depth + 1)
        elif hasattr(obj, "__dict__"):
            for k, v in vars(obj).items():
                visit(v, f"{path}.{k}", depth + 1)

    for name, module in method.named_modules():
        for k, v in vars(module).items():
            if k not in ("_modules", "_parameters", "_buffers"):
                visit(v, f"{name or 'method'}.{k}", 0)
    return {path: gen for path, gen in found.values()}


def extra_state_tensors(state: dict) -> list[torch.Tensor]:
    """Every tensor inside the `_extra_state` entries of a state_dict."""
    out: list[torch.Tensor] = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    for key, value in state.items():
        if key.endswith("_extra_state"):
            walk(value)
    return out


def run_and_kill(cfg, kill_at: int) -> Trainer:
    """Train (or resume) `cfg` until it dies inside iteration `kill_at`; at each checkpoint, check
    that every generator the live method holds is in the checkpoint's extra state. Returns the
    dead trainer."""
    trainer = Trainer(cfg)
    saves: list[int] = []
    real_save = trainer.save_checkpoint

    def save_and_check():
        real_save()
        saved = read_checkpoint(trainer.ckpt_path)["method_state"]
        kept = extra_state_tensors(saved)
        for path, gen in generators_of(trainer.method).items():
            state = gen.get_state()
            assert any(t.dtype == state.dtype and torch.equal(t, state) for t in kept), (
                f"{cfg.method}: generator {path} is not in the checkpoint (get_extra_state), "
                "so a resumed run would restart it from its seed")
        saves.append(trainer.iteration)

    real_on_step_end = trainer.method.on_step_end

    def dies_inside_iteration(it):
        if it == kill_at:  # after this iteration's optimiser step
            raise KeyboardInterrupt
        real_on_step_end(it)

    trainer.save_checkpoint = save_and_check
    trainer.method.on_step_end = dies_inside_iteration
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert saves, "the process died before writing a checkpoint"
    return trainer


def same_state(a, b) -> bool:
    """`assert_same_state` as a predicate."""
    try:
        assert_same_state(a, b)
    except AssertionError:
        return False
    return True


def read_rows(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", sorted(list_methods()))
def test_a_killed_run_resumes_bit_identically(method, tiny_cache, tiny_split, tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    Trainer(run_config(tiny_cache, tiny_split, ref_dir, method)).run()

    for kill_at, checkpoint, rows_left in KILLS:
        dead = run_and_kill(run_config(tiny_cache, tiny_split, run_dir, method), kill_at)
        ckpt = read_checkpoint(run_dir / "checkpoints/last.pt")
        saved = ckpt["method_state"]
        assert ckpt["iteration"] == checkpoint and not (run_dir / "final.pt").exists()
        assert [int(r["iteration"]) for r in read_rows(run_dir)] == rows_left
        # the state round-trips into a freshly built method and into the killed one
        fresh = build_method(ckpt["config"], ckpt["meta"]["data_info"], ckpt["meta"]["num_classes"])
        assert not same_state(dead.method.state_dict(), saved)  # it had moved past the checkpoint
        for target in (fresh, dead.method):
            load_method_state(target, saved, "last.pt")
            assert_same_state(target.state_dict(), saved)
        buffer = io.BytesIO()
        torch.save(fresh.state_dict(), buffer)  # plain types only: the engine loads with weights_only
        buffer.seek(0)
        assert_same_state(torch.load(buffer, weights_only=True), saved)

    Trainer(run_config(tiny_cache, tiny_split, run_dir, method)).run()  # the same command, a third time

    ref = read_checkpoint(ref_dir / "final.pt")["method_state"]
    resumed = read_checkpoint(run_dir / "final.pt")["method_state"]
    assert_same_state(resumed, ref)
    assert (run_dir / "log.csv").read_text() == (ref_dir / "log.csv").read_text()
    assert (run_dir / "similarities.npz").exists() == (ref_dir / "similarities.npz").exists()
    if (ref_dir / "similarities.npz").exists():
        a, b = np.load(ref_dir / "similarities.npz"), np.load(run_dir / "similarities.npz")
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    sessions = json.loads((run_dir / "environment.json").read_text())["sessions"]
    # a killed process records no session; the last one trained from the last checkpoint
    assert [(s["from_iteration"], s["to_iteration"]) for s in sessions] == [(KILLS[-1][1], ITERATIONS)]

    rows = read_rows(ref_dir)
    for key in ACTIVE_AFTER_CHECKPOINT.get(method, ["loss"]):
        after = [float(r[key]) for r in rows[KILLS[-1][1]:] if r.get(key, "") != ""]
        assert any(v != 0.0 for v in after), f"{method}: {key} is never non-zero after the last checkpoint"


def test_every_configured_method_is_registered():
    """No stale entries: a renamed method must not silently fall back to its defaults here."""
    assert set(METHOD_CONFIG) <= set(list_methods()) and set(ACTIVE_AFTER_CHECKPOINT) <= set(list_methods())
