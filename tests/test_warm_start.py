"""The supervised warm start (methods/training/warm_start.py): every segmentation network of a run
starts from one trained SupOnly network of the same split; nothing else changes."""

from __future__ import annotations

import shutil

import pytest
import torch

from methods.training.checkpoint import CheckpointError
from methods.training.engine import Trainer
from methods.training.warm_start import segmentation_networks, warm_start
from test_engine import run_config


@pytest.fixture(scope="module")
def source(tiny_cache, tiny_split, tmp_path_factory):
    """A 3-iteration SupOnly run: the network every warm-started run begins with."""
    out = tmp_path_factory.mktemp("warm") / "suponly"
    Trainer(run_config(tiny_cache, tiny_split, out, method="suponly", iterations=3)).run()
    return out / "final.pt"


def source_network_state(path):
    from methods.training.checkpoint import load_trained_method

    method, _ = load_trained_method(path)
    return method.predictor().state_dict()


def assert_same(a: dict, b: dict, keys=None):
    for k in keys or a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("method,networks", [("meanteacher", ["student", "teacher"]),
                                             ("abd", ["model1", "model2"]),
                                             ("admt", ["student", "teacher1", "teacher2"])])
def test_every_segmentation_network_receives_the_source_network(source, tiny_cache, tiny_split, tmp_path, method,
                                                                 networks):
    trainer = Trainer(run_config(tiny_cache, tiny_split, tmp_path / method, method=method))
    rng = torch.get_rng_state()
    record = warm_start(trainer.method, source, trainer.config_dict)
    assert torch.equal(torch.get_rng_state(), rng)  # the run's own random draws do not depend on it
    assert record["networks"] == networks and record["method"] == "suponly" and record["iteration"] == 3
    assert record["own_initialisation"] == {}
    want = source_network_state(source)
    nets = segmentation_networks(trainer.method)
    for name in networks:
        assert_same(want, nets[name].state_dict())  # weights and batch-norm statistics


def test_ugpcl_keeps_its_own_decoder_and_heads(source, tiny_cache, tiny_split, tmp_path):
    trainer = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "ugpcl", method="ugpcl"))
    before = {k: v.clone() for k, v in trainer.method.net.state_dict().items()}
    record = warm_start(trainer.method, source, trainer.config_dict)
    assert record["networks"] == ["net"]
    assert record["own_initialisation"] == {"net": ["embed_head", "rotation_head", "tf_decoder"]}
    after, want = trainer.method.net.state_dict(), source_network_state(source)
    assert_same(want, after, [k for k in want if not k.startswith("projector.")])
    assert_same(before, after, [k for k in after if k.startswith(("tf_decoder.", "embed_head.", "rotation_head."))])


def test_a_warm_started_run_records_its_source_and_resumes_without_loading_it_again(
        source, tiny_cache, tiny_split, tmp_path):
    cfg = run_config(tiny_cache, tiny_split, tmp_path / "mt", init_from=str(source), iterations=4)
    assert cfg.to_dict()["train"]["init_from"] == str(source)
    assert "init_from" not in run_config(tiny_cache, tiny_split, tmp_path / "x").to_dict()["train"]  # identity kept
    ref = Trainer(cfg)
    ref.run()
    final = torch.load(tmp_path / "mt/final.pt", weights_only=False)
    assert final["meta"]["init_from"]["path"] == str(source)
    # killed after the checkpoint at 2, then resumed: the checkpoint's weights, not the source's again
    shutil.rmtree(tmp_path / "mt")
    trainer = Trainer(cfg)
    real = trainer.method.on_step_end

    def die(it):
        if it == 2:
            raise KeyboardInterrupt
        real(it)

    trainer.method.on_step_end = die
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    Trainer(cfg).run()
    resumed = torch.load(tmp_path / "mt/final.pt", weights_only=False)
    assert resumed["meta"]["init_from"]["path"] == str(source)
    for k, v in final["method_state"].items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, resumed["method_state"][k]), k


def test_a_source_from_another_split_or_a_failed_run_is_refused(source, tiny_cache, tiny_split, tmp_path):
    trainer = Trainer(run_config(tiny_cache, tiny_split, tmp_path / "mt"))
    other = {**trainer.config_dict, "data": {**trainer.config_dict["data"], "split": "other/split.json"}}
    with pytest.raises(CheckpointError, match=r"data\.split .*same cache, split and network"):
        warm_start(trainer.method, source, other)
    with pytest.raises(CheckpointError, match="does not exist"):
        warm_start(trainer.method, tmp_path / "none.pt", trainer.config_dict)
    failed = torch.load(source, weights_only=False)
    failed = {k: v for k, v in failed.items() if k != "method_state"} | {"kind": "failed", "reason": "nan"}
    torch.save(failed, tmp_path / "failed.pt")
    with pytest.raises(CheckpointError, match="'failed' checkpoint; it must be a run's final.pt"):
        warm_start(trainer.method, tmp_path / "failed.pt", trainer.config_dict)
