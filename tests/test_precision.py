"""The numeric path (methods/precision.py): the choice, its record, its part in a run's identity,
and determinism and exact resume in bf16 autocast with channels-last weights."""

import json

import pandas as pd
import pytest
import torch
import yaml

from methods import precision
from methods.api import ConfigError
from methods.evaluation.evaluate import evaluate_checkpoint
from methods.precision import FP32, Numerics, cpu_flags, resolve_numerics
from methods.runconfig import load_raw, parse_run_config, run_identity
from methods.training.checkpoint import CheckpointError
from methods.training.engine import Trainer
from test_engine import assert_same_state, kill_at_third_iteration, run_config

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16; bf16 still runs, emulated, on any CPU."""
    def set_native(value: bool):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)
    return set_native


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx512f", "avx512_bf16"}  # the first processor's
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_auto_is_bf16_on_a_native_bf16_cpu_and_on_cuda(native_bf16):
    native_bf16(True)
    assert resolve_numerics(CPU, "auto", "auto") == Numerics("bf16", "channels_last")
    assert resolve_numerics(CUDA, "auto", "auto") == Numerics("bf16", "contiguous")
    assert resolve_numerics(CPU, "off", "off") == FP32
    assert resolve_numerics(CUDA, "off", "on") == Numerics("fp32", "channels_last")


def test_a_cpu_without_native_bf16_falls_back_to_fp32_and_refuses_forced_bf16(native_bf16):
    native_bf16(False)
    assert resolve_numerics(CPU, "auto", "auto") == Numerics("fp32", "channels_last")
    with pytest.raises(ConfigError, match=r"train.amp is 'bf16' but this CPU has no native bf16"):
        resolve_numerics(CPU, "bf16", "auto")
    assert resolve_numerics(CUDA, "bf16", "auto").bf16  # a GPU always has it


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"train.channels_last must be one of"):
        resolve_numerics(CPU, "auto", "maybe")
    base = {"method": "suponly", "data": {"cache": "c", "split": "s", "dataset": "phantom"}}
    with pytest.raises(ConfigError, match="channels_last must be one of"):
        parse_run_config({**base, "train": {"channels_last": "sometimes"}})
    # YAML 1.1 reads unquoted on/off as booleans; they mean the strings
    parsed = parse_run_config({**base, **yaml.safe_load("train: {amp: off, channels_last: on}")})
    assert (parsed.train.amp, parsed.train.channels_last) == ("off", "on")


def test_the_numeric_settings_are_part_of_the_run_identity():
    """The workflow's run.yaml is the profile's identity: the precision policy and the memory format
    are in it, so a config from before they existed (or another policy) is a different run."""
    cpu = run_identity(load_raw(precision.__file__.replace("methods/precision.py", "config/profiles/cpu.yaml")))
    assert (cpu["train"]["amp"], cpu["train"]["channels_last"]) == ("auto", "auto")
    acdc = run_identity(load_raw(precision.__file__.replace("methods/precision.py", "config/profiles/acdc_cpu.yaml")))
    assert "extends" not in acdc and acdc["train"]["channels_last"] == "auto"  # inherited, resolved


def _train(tiny_cache, tiny_split, out, **train):
    return Trainer(run_config(tiny_cache, tiny_split, out, **{"amp": "bf16", "channels_last": "on", **train}))


def test_bf16_channels_last_is_repeatable_and_resumes_bit_identically(native_bf16, tiny_cache, tiny_split, tmp_path):
    native_bf16(True)  # one torch thread (tests/conftest.py)
    first = _train(tiny_cache, tiny_split, tmp_path / "first")
    assert first.numerics == Numerics("bf16", "channels_last")
    weight = next(p for p in first.method.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    first.run()
    _train(tiny_cache, tiny_split, tmp_path / "second").run()
    kill_at_third_iteration(_train(tiny_cache, tiny_split, tmp_path / "killed"))
    _train(tiny_cache, tiny_split, tmp_path / "killed").run()
    states = [torch.load(tmp_path / name / "final.pt", weights_only=True) for name in ("first", "second", "killed")]
    assert_same_state(states[0]["method_state"], states[1]["method_state"])
    assert_same_state(states[0]["method_state"], states[2]["method_state"])
    # bf16 really changed the numbers: an fp32 run of the same seed ends elsewhere
    fp32 = _train(tiny_cache, tiny_split, tmp_path / "fp32", amp="off", channels_last="off")
    fp32.run()
    other = torch.load(tmp_path / "fp32/final.pt", weights_only=True)["method_state"]
    assert any(not torch.equal(v, other[k]) for k, v in states[0]["method_state"].items()
               if isinstance(v, torch.Tensor) and v.is_floating_point())
    # the record: the checkpoint's config, the run folder's config.yaml and environment.json
    assert states[0]["config"]["numerics"] == {"precision": "bf16", "memory_format": "channels_last"}
    assert yaml.safe_load((tmp_path / "first/config.yaml").read_text())["numerics"]["precision"] == "bf16"
    session = json.loads((tmp_path / "killed/environment.json").read_text())["sessions"][0]
    assert (session["precision"], session["memory_format"]) == ("bf16", "channels_last")


def test_a_run_is_not_continued_on_another_numeric_path(native_bf16, tiny_cache, tiny_split, tmp_path):
    native_bf16(True)
    kill_at_third_iteration(_train(tiny_cache, tiny_split, tmp_path / "run", amp="auto", channels_last="auto"))
    native_bf16(False)  # the same settings on a CPU without bf16 resolve to fp32
    with pytest.raises(CheckpointError, match=r"another numeric path.*numerics.precision: 'bf16' \(checkpoint\) != 'fp32'"):
        _train(tiny_cache, tiny_split, tmp_path / "run", amp="auto", channels_last="auto").run()
    native_bf16(True)
    _train(tiny_cache, tiny_split, tmp_path / "run", amp="auto", channels_last="auto").run()  # where it was trained
    native_bf16(False)
    with pytest.raises(CheckpointError, match="another numeric path"):  # nor is its final.pt taken as done
        _train(tiny_cache, tiny_split, tmp_path / "run", amp="auto", channels_last="auto").is_complete()


def test_evaluation_uses_and_records_the_training_path(native_bf16, tiny_cache, tiny_split, tmp_path):
    native_bf16(True)
    run = _train(tiny_cache, tiny_split, tmp_path / "run", iterations=2).run()
    native_bf16(False)  # evaluation follows the checkpoint, not the evaluating machine's default
    df = evaluate_checkpoint(run / "final.pt", tiny_cache, tiny_split, device="cpu")
    assert set(df["precision"]) == {"bf16"} and set(df["memory_format"]) == {"channels_last"}
    fp32_run = _train(tiny_cache, tiny_split, tmp_path / "fp32", iterations=2, amp="off", channels_last="off").run()
    df32 = evaluate_checkpoint(fp32_run / "final.pt", tiny_cache, tiny_split, device="cpu")
    assert set(df32["precision"]) == {"fp32"} and set(df32["memory_format"]) == {"contiguous"}
    assert isinstance(df, pd.DataFrame) and len(df) == len(df32)


def test_the_deferred_projection_equals_the_eager_one_and_carries_its_gradient():
    """The projection head runs when a method first reads `projection`, under the forward's autocast
    and grad mode: same value, same gradient as computing it inside the forward."""
    from methods.nets import NetFactory, NetworkProfile

    torch.manual_seed(0)
    net = NetFactory(NetworkProfile(encoder="tu-test_resnet", decoder_channels=(16, 8, 8, 8, 8), proj_hidden=8,
                                    proj_dim=8), 4)().train()
    x = torch.randn(2, 1, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
        eager = net.projector(out.features)
    with torch.autocast("cpu", enabled=False):  # a loss that leaves autocast (SPCL's contrastive terms)
        lazy = out.projection
        half = out.projection_or_deferred[1:]
    assert lazy.dtype == eager.dtype == torch.bfloat16 and torch.equal(lazy, eager)
    assert torch.equal(half.get(), eager[1:]) and half.get().data_ptr() == lazy[1:].data_ptr()  # one computation
    lazy.float().sum().backward()
    assert net.projector[0].weight.grad is not None and net.projector[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        teacher_out = net(x)
    assert not teacher_out.projection.requires_grad  # made under no_grad, read outside it


def test_the_report_names_the_numeric_path_and_warns_when_runs_mix_paths():
    from analysis.run import _numerics_note

    rows = pd.DataFrame({"dataset": "phantom", "ratio": [10.0, 10.0, 20.0, 10.0], "method": ["spcl", "spcl", "spcl", "suponly"],
                         "variant": "default", "seed": 0, "precision": "bf16", "memory_format": "channels_last"})
    # three runs: SPCL at two ratios (its two rows at 10 % are one run) and SupOnly
    assert _numerics_note(rows).strip() == "Numeric path: every run (3) trained and evaluated in bf16, channels_last."
    rows.loc[3, ["precision", "memory_format"]] = ["fp32", "contiguous"]
    note = _numerics_note(rows)
    assert "**Mixed numeric paths**" in note and "bf16, channels_last: 2 runs (SPCL/default/s0 at Phantom 10%" in note
    assert "fp32, contiguous: 1 runs (SupOnly/default/s0 at Phantom 10%)" in note
    assert _numerics_note(rows.drop(columns=["precision"])) == ""  # a table from elsewhere, without the record


def test_class_argmax_is_argmax_ties_and_nan_included():
    from methods.tensors import class_argmax

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randint(0, 3, (4, 4, 9, 7), generator=g).to(dtype)  # many ties
            x[0, 2, 1, 1] = float("nan")
            x = x.contiguous(memory_format=layout)
            assert torch.equal(class_argmax(x), x.argmax(1))
    assert class_argmax(torch.tensor([[1.0, 3.0, 3.0]])).tolist() == [1]  # the first maximum
