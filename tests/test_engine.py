"""Engine: exact resume after a kill, NaN guard, config and checkpoint errors, outputs."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from methods.api import ConfigError
from methods.runconfig import deep_merge, load_raw, parse_run_config
from methods.training.checkpoint import CheckpointError, load_method_state, load_trained_method
from methods.training.engine import NonFiniteLossError, Trainer

# timm's 0.4 M-parameter test ResNet keeps checkpoints small (resnet18 would write 140 MB each)
NET = {"arch": "unet", "encoder": "tu-test_resnet", "decoder_channels": [16, 8, 8, 8, 8], "proj_hidden": 8, "proj_dim": 8}


def run_config(cache, split, out, method="meanteacher", **train):
    raw = {
        "method": method, "seed": 5, "out_dir": str(out),
        "method_config": {"warmup_iters": 1} if method == "meanteacher" else {},
        "data": {"cache": str(cache), "split": str(split), "dataset": "phantom", "ratio": 5,
                 "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": NET,
        "train": {"iterations": 4, "checkpoint_every": 2, "log_every": 3, "device": "cpu", "amp": "off",
                  "progress": False, **train},
    }
    return parse_run_config(raw)


def assert_same_state(a, b, where="state"):
    """Tensors bit-identical (dtype and shape too), nested dicts and lists compared recursively."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    else:
        assert a == b, where


def _read_log(run_dir):
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def kill_at_third_iteration(trainer: Trainer) -> None:
    """Run `trainer` until it dies in iteration 2, after the checkpoint at 2 iterations."""
    real_on_step_end = trainer.method.on_step_end

    def die_at_third_iteration(it):
        if it == 2:  # after the checkpoint at 2 iterations, mid-iteration (optimiser already stepped)
            raise KeyboardInterrupt
        real_on_step_end(it)

    trainer.method.on_step_end = die_at_third_iteration
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert torch.load(trainer.ckpt_path, weights_only=True)["iteration"] == 2
    assert not (trainer.run_dir / "final.pt").exists()


def test_a_killed_run_resumes_to_bit_identical_weights_and_log(tiny_cache, tiny_split, tmp_path):
    ref = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "ref"))
    ref.run()

    kill_at_third_iteration(Trainer(run_config(tiny_cache, tiny_split, tmp_path / "killed")))

    Trainer(run_config(tiny_cache, tiny_split, tmp_path / "killed")).run()  # same command again
    a = torch.load(tmp_path / "ref/final.pt", weights_only=True)["method_state"]
    b = torch.load(tmp_path / "killed/final.pt", weights_only=True)["method_state"]
    assert_same_state(a, b)
    assert _read_log(tmp_path / "ref") == _read_log(tmp_path / "killed")
    rows = _read_log(tmp_path / "ref")
    assert [int(r["iteration"]) for r in rows] == [0, 1, 2, 3]
    assert rows[0]["unsup"] == "" and rows[3]["unsup"] != ""  # warm-up of 1 iteration, then semi-supervised
    assert float(rows[1]["lr"]) == pytest.approx(0.01 * (1 - 1 / 4) ** 0.9, rel=1e-5)  # poly(0.9)
    # each training process records where it ran and which iterations it trained
    ref_env = json.loads((tmp_path / "ref/environment.json").read_text())["sessions"]
    assert [(x["from_iteration"], x["to_iteration"]) for x in ref_env] == [(0, 4)]
    killed_env = json.loads((tmp_path / "killed/environment.json").read_text())["sessions"]
    assert [(x["from_iteration"], x["to_iteration"]) for x in killed_env] == [(2, 4)]  # the killed process left none
    session = killed_env[0]
    assert session["device"] == "cpu" and session["precision"] == "fp32" and session["torch"] == torch.__version__
    assert session["seconds"] >= 0 and session["seconds_per_iteration"] == pytest.approx(session["seconds"] / 2, rel=1e-3, abs=1e-5)


def poison(trainer: Trainer, at: int, key: str, value: float) -> None:
    """Make the method's logged `key` equal `value` at iteration `at` (the engine's guard sees it)."""
    step = trainer.method.training_step

    def poisoned(batch, it):
        out = step(batch, it)
        if it == at:
            out.logs[key] = torch.tensor(value)
        return out

    trainer.method.training_step = poisoned


def test_the_nan_guard_names_the_loss_and_the_iteration(tiny_cache, tiny_split, tmp_path):
    trainer = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "nan", method="suponly", log_every=10,
                                 checkpoint_every=10, iterations=3))
    poison(trainer, 1, "contrast", float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"'contrast' is nan at iteration 1"):
        trainer.run()
    assert not (tmp_path / "nan/checkpoints/last.pt").exists()  # nothing saved from non-finite state


def test_a_failed_run_is_recorded_and_its_evaluation_says_why(tiny_cache, tiny_split, tmp_path):
    """`train.on_failure: record` (the workflow's setting): final.pt holds the reason and no weights,
    running again does nothing, and `methods.evaluate` writes empty outputs and failed.json."""
    cfg = run_config(tiny_cache, tiny_split, tmp_path / "nan", method="suponly", log_every=1, checkpoint_every=1,
                     iterations=3, on_failure="record")
    trainer = Trainer(cfg)
    poison(trainer, 2, "sup", float("inf"))
    assert trainer.run() == tmp_path / "nan"
    final = torch.load(tmp_path / "nan/final.pt", weights_only=False)
    assert final["kind"] == "failed" and "method_state" not in final
    assert "'sup' is inf at iteration 2" in final["reason"]
    assert not (tmp_path / "nan/checkpoints").exists()  # the same configuration would fail again
    session = json.loads((tmp_path / "nan/environment.json").read_text())["sessions"][-1]
    assert "'sup' is inf" in session["failure"]
    assert Trainer(cfg).is_complete()  # the same command again trains nothing

    from methods.evaluate import main as evaluate_main

    out = tmp_path / "eval" / "metrics.csv"
    code = evaluate_main(["--checkpoint", str(tmp_path / "nan/final.pt"), "--cache", str(tiny_cache), "--split",
                          str(tiny_split), "--out", str(out), "--features", str(tmp_path / "eval/features.npz"),
                          "--predictions-dir", str(tmp_path / "eval/predictions")])
    assert code == 0
    assert len(pd.read_csv(out)) == 0 and "dice" in pd.read_csv(out).columns
    record = json.loads((tmp_path / "eval/failed.json").read_text())
    assert "'sup' is inf at iteration 2" in record["reason"]
    assert (tmp_path / "eval/predictions").is_dir() and (tmp_path / "eval/features.npz").is_file()


def test_a_run_resumes_under_changed_bookkeeping_settings_to_the_same_weights(tiny_cache, tiny_split, tmp_path):
    """Checkpoint and log intervals and the pseudo-label logs are not part of a run's identity
    (methods.runconfig.BOOKKEEPING_KEYS): the checkpoint is accepted and the numbers are the same."""
    ref = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "ref"))
    ref.run()
    kill_at_third_iteration(Trainer(run_config(tiny_cache, tiny_split, tmp_path / "killed")))
    changed = run_config(tiny_cache, tiny_split, tmp_path / "killed", checkpoint_every=3, log_every=1,
                         pseudo_label_logs=False, progress=True)
    Trainer(changed).run()
    a = torch.load(tmp_path / "ref/final.pt", weights_only=True)["method_state"]
    b = torch.load(tmp_path / "killed/final.pt", weights_only=True)["method_state"]
    assert_same_state(a, b)
    sessions = json.loads((tmp_path / "killed/environment.json").read_text())["sessions"]
    assert [(x["from_iteration"], x["to_iteration"]) for x in sessions] == [(2, 4)]  # resumed, not restarted
    resolved = yaml.safe_load((tmp_path / "killed/config.yaml").read_text())["train"]
    assert (resolved["checkpoint_every"], resolved["log_every"], resolved["pseudo_label_logs"]) == (3, 1, False)
    with pytest.raises(CheckpointError, match=r"train.momentum: 0.9 \(checkpoint\) != 0.5"):
        Trainer(run_config(tiny_cache, tiny_split, tmp_path / "killed", momentum=0.5)).run()


def test_outputs_final_checkpoint_and_similarities(tiny_cache, tiny_split, tmp_path):
    trainer = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "run", method="suponly", iterations=2))
    trainer.method.similarity_samples = lambda: {"positive": np.array([0.5, 0.75]), "negative": np.array([-0.25])}
    run_dir = trainer.run()
    assert (run_dir / "config.yaml").is_file()
    assert not (run_dir / "checkpoints/last.pt").exists()  # removed once final.pt is written
    sims = np.load(run_dir / "similarities.npz")
    assert sims["positive"].tolist() == [0.5, 0.75] and sims["negative"].tolist() == [-0.25]
    method, config = load_trained_method(run_dir / "final.pt")
    assert not method.training and config["method"] == "suponly" and config["train"]["iterations"] == 2
    assert_same_state(method.state_dict(), trainer.method.state_dict())


def test_resuming_with_another_config_or_method_is_refused(tiny_cache, tiny_split, tmp_path):
    Trainer(run_config(tiny_cache, tiny_split, tmp_path / "run", method="suponly", iterations=2)).run()
    with pytest.raises(CheckpointError, match=r"method: 'suponly' \(checkpoint\) != 'meanteacher'"):
        Trainer(run_config(tiny_cache, tiny_split, tmp_path / "run", iterations=2)).run()
    with pytest.raises(CheckpointError, match=r"train.lr: 0.01 \(checkpoint\) != 0.02"):
        Trainer(run_config(tiny_cache, tiny_split, tmp_path / "run", method="suponly", iterations=2, lr=0.02)).run()
    assert "method: suponly" in (tmp_path / "run/config.yaml").read_text()  # the refused runs changed nothing


def test_a_checkpoint_of_another_network_shape_is_a_clear_error(tiny_cache, tiny_split, tmp_path):
    trainer = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "run", method="suponly"))
    state = trainer.method.state_dict()
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(CheckpointError, match="different network or method shape"):
        load_method_state(trainer.method, state, "some.pt")


def test_config_errors_name_the_setting(tiny_cache, tiny_split, tmp_path):
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        Trainer(run_config(tiny_cache, tiny_split, tmp_path / "a", method="nope"))
    base = run_config(tiny_cache, tiny_split, tmp_path / "b").to_dict()
    for section, key in (("train", "iterz"), ("data", "img_sise"), ("network", "depth"), ("augment", "rotate")):
        raw = {**base, section: {**base[section], key: 1}}
        with pytest.raises(ConfigError, match=key):
            parse_run_config(raw)
    with pytest.raises(ConfigError, match="unknown key.*'tutor'"):
        parse_run_config({**base, "tutor": 1})
    with pytest.raises(ConfigError, match="unknown key.*'ema'"):
        Trainer(parse_run_config({**base, "method_config": {"ema": 0.9}}))
    with pytest.raises(ConfigError, match="data.dataset = 'acdc'"):
        Trainer(parse_run_config({**base, "data": {**base["data"], "dataset": "acdc"}}))
    with pytest.raises(ConfigError, match="amp must be one of"):
        parse_run_config({**base, "train": {**base["train"], "amp": "fp16"}})


def test_profiles_merge_beneath_the_run_file(tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("extends: cpu\nmethod: suponly\ntrain: {iterations: 7, amp: off}\nnetwork: {proj_dim: 16}\n")
    raw = load_raw(run)
    assert raw["train"]["iterations"] == 7 and raw["train"]["lr"] == 0.01  # file wins, profile fills in
    assert raw["network"]["proj_dim"] == 16 and raw["network"]["encoder"] == "tu-resnet10t"
    plain = tmp_path / "plain.yaml"
    plain.write_text("method: suponly\ndata: {cache: c, split: s, dataset: phantom}\n")
    paper = parse_run_config(load_raw(plain, profile="paper"))  # the CLI's --profile paper
    assert paper.network.arch == "deeplabv3plus" and paper.train.iterations == 6000 and paper.data.img_size == 256
    cfg = parse_run_config(deep_merge(load_raw(run), {"data": {"cache": "c", "split": "s", "dataset": "phantom"}}))
    assert cfg.train.amp == "off" and cfg.data.img_size == 48  # YAML `off` is read as the string "off"
