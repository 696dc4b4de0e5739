"""The CLIs: `python -m methods.train` on the tiny phantom cache, and `python -m methods list`."""

import csv

import pytest
import torch
import yaml

from methods.__main__ import main as methods_main
from methods.train import main as train_main

RUN = """\
extends: cpu
method: {method}
seed: 1
data: {{cache: {cache}, split: {split}, dataset: phantom, ratio: 5, img_size: 32, labelled_batch: 2, unlabelled_batch: 2}}
network: {{encoder: tu-test_resnet, decoder_channels: [16, 8, 8, 8, 8], proj_hidden: 8, proj_dim: 8}}
method_config: {method_config}
train: {{iterations: 3, checkpoint_every: 2, log_every: 2, progress: false}}
"""


@pytest.mark.parametrize("method, method_config", [("suponly", "{}"), ("meanteacher", "{warmup_iters: 1}")])
def test_train_cli_writes_the_run_folder(method, method_config, tiny_cache, tiny_split, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.format(method=method, cache=tiny_cache, split=tiny_split, method_config=method_config))
    out = tmp_path / "out"
    assert train_main(["--config", str(cfg), "--out", str(out)]) == 0
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["iteration"] for r in rows] == ["0", "1", "2"] and all(float(r["loss"]) > 0 for r in rows)
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["method"] == method and resolved["out_dir"] == str(out)
    assert resolved["train"]["lr"] == 0.01 and resolved["train"]["poly_power"] == 0.9  # from the cpu profile
    final = torch.load(out / "final.pt", weights_only=True)
    assert final["iteration"] == 3 and final["meta"]["class_names"] == ["RV", "MYO", "LV"]
    if method == "meanteacher":
        assert rows[0]["unsup"] == "" and rows[2]["unsup"] != ""
    # running the same command again finds the finished run and leaves it as it is
    stamp = (out / "final.pt").stat().st_mtime_ns
    assert train_main(["--config", str(cfg), "--out", str(out)]) == 0
    assert (out / "final.pt").stat().st_mtime_ns == stamp


def test_train_cli_reports_config_errors_without_a_traceback(tiny_cache, tiny_split, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.format(method="suponly", cache=tiny_cache, split=tiny_split, method_config="{}") + "shuffle: true\n")
    assert train_main(["--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "unknown key(s) ['shuffle']" in capsys.readouterr().err


def test_bookkeeping_settings_are_given_with_set_and_nothing_else_is(tiny_cache, tiny_split, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.format(method="suponly", cache=tiny_cache, split=tiny_split, method_config="{}"))
    out = tmp_path / "out"
    assert train_main(["--config", str(cfg), "--out", str(out), "--set", "train.log_every=1",
                       "--set=train.pseudo_label_logs=false"]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (resolved["log_every"], resolved["pseudo_label_logs"]) == (1, False)
    with open(out / "log.csv", newline="") as f:
        assert [r["iteration"] for r in csv.DictReader(f)] == ["0", "1", "2"]
    assert train_main(["--config", str(cfg), "--out", str(tmp_path / "b"), "--set", "train.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "--set train.lr: only settings that do not change the numbers" in err and "put train.lr in the run config" in err
    assert train_main(["--config", str(cfg), "--out", str(tmp_path / "b"), "--set", "train.log_every"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_a_runs_identity_is_its_config_without_the_bookkeeping_keys():
    from methods.runconfig import BOOKKEEPING_KEYS, TrainConfig, bookkeeping_settings, run_identity

    full = {"method": "spcl", "seed": 0, "out_dir": "results/x", "data": {"cache": "c"},
            "train": {"iterations": 9, "lr": 0.01, "checkpoint_every": 5, "log_every": 2, "progress": False,
                      "pseudo_label_logs": True}}
    assert run_identity(full) == {"method": "spcl", "seed": 0, "data": {"cache": "c"},
                                  "train": {"iterations": 9, "lr": 0.01}}
    assert bookkeeping_settings(full) == {"out_dir": "results/x", "train.checkpoint_every": 5, "train.log_every": 2,
                                          "train.progress": False, "train.pseudo_label_logs": True}
    assert full["train"]["log_every"] == 2  # not modified in place
    train_keys = {f for section, *rest in BOOKKEEPING_KEYS if section == "train" for f in rest}
    assert train_keys <= set(TrainConfig.__dataclass_fields__)  # every key names a real setting


def test_methods_list_prints_every_method_with_its_description(capsys):
    assert methods_main(["list"]) == 0
    out = capsys.readouterr().out
    for line in ("suponly ", "Supervised only: 0.5 (CE + Dice)", "meanteacher ", "variants: default"):
        assert line in out


def test_methods_list_shows_every_profile_and_each_profile_is_a_valid_network(capsys):
    from methods.nets import NetworkProfile
    from methods.runconfig import PROFILE_DIR, load_raw

    names = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    assert {"cpu", "acdc_cpu", "paper", "paper_official"} <= set(names)
    assert methods_main(["list"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.split("profiles (", 1)[1].splitlines()[1:] if line.strip()}
    assert listed == set(names)
    assert "paper_official   deeplabv3plus_official, resnet50 (stem [64, 64, 64])" in out
    for name in names:  # each profile, through its extends chain, is a valid network section
        NetworkProfile.from_dict(load_raw(PROFILE_DIR / f"{name}.yaml").get("network"))
