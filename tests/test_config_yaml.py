"""Numbers in exponent notation (`1e-4`) are numbers in every config a user writes: run configs
and the profiles they extend, `--set`, and (tests/test_workflow.py) the workflow config. PyYAML
alone reads them as strings (YAML 1.1)."""

import pytest
import yaml

from methods.api import ConfigError
from methods.config_yaml import exponent_numbers, load_yaml
from methods.runconfig import load_run_config
from methods.train import parse_settings


def test_pyyaml_alone_reads_exponents_as_strings():
    assert yaml.safe_load("x: 1e-4") == {"x": "1e-4"}  # what the loader below repairs


@pytest.mark.parametrize("text, value", [
    ("1e-4", 1e-4), ("1E5", 1e5), ("5e-3", 0.005), ("-2e1", -20.0), (".5e-2", 0.005), ("1.5e3", 1500.0),
    ("1.0e+2", 100.0),  # YAML 1.1's own form, a float either way
    ("3", 3), ("0.1", 0.1), ("1e", "1e"), ("e5", "e5"), ("'1e-4'", "1e-4"), ("1e-4x", "1e-4x"),
])
def test_load_yaml_reads_exponent_notation_as_numbers(text, value):
    loaded = load_yaml(f"x: {text}")["x"]
    assert loaded == value and type(loaded) is type(value)


def test_exponent_numbers_converts_nested_strings_only_in_exponent_notation():
    assert exponent_numbers({"a": ["1e-4", "run1e4", {"b": "2E3"}], "c": "abc", "d": 3}) == \
        {"a": [1e-4, "run1e4", {"b": 2000.0}], "c": "abc", "d": 3}


def test_a_run_config_and_the_profile_it_extends_read_exponents_as_numbers(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {lr: 5e-3, iterations: 1e1}\n")
    (tmp_path / "run.yaml").write_text(
        "extends: base.yaml\nmethod: meanteacher\nmethod_config: {ema_decay: 9.9e-1}\n"
        "data: {cache: c, split: s.json, dataset: phantom}\ntrain: {weight_decay: 1e-4}\n"
    )
    cfg = load_run_config(tmp_path / "run.yaml", out_dir=str(tmp_path / "out"))
    assert cfg.train.weight_decay == 1e-4 and isinstance(cfg.train.weight_decay, float)
    assert cfg.train.lr == 0.005
    assert cfg.train.iterations == 10 and type(cfg.train.iterations) is int  # a count: whole, stored as int
    assert cfg.method_config == {"ema_decay": 0.99}


def test_set_values_read_exponents_as_numbers():
    assert parse_settings(["train.log_every=2e1", "a.b='1e-4'", "c.d=1e-4"]) == \
        {"train.log_every": 20.0, "a.b": "1e-4", "c.d": 1e-4}


def test_a_count_in_exponent_notation_must_be_whole(tmp_path):
    (tmp_path / "run.yaml").write_text("method: suponly\ndata: {cache: c, split: s.json, dataset: phantom}\n"
                                       "train: {iterations: 1.5e0}\n")
    with pytest.raises(ConfigError, match=r"train: iterations must be a whole number, got 1.5"):
        load_run_config(tmp_path / "run.yaml", out_dir=str(tmp_path / "out"))


def test_nested_command_line_values_are_read_as_a_config_file_reads_them():
    """Snakemake reads `--config profile_overrides={train: {iterations: 20}}` with every scalar a
    string; the workflow reads the argument again, merging it over what the config file set."""
    from methods.config_yaml import typed_command_line

    as_snakemake_read = {"profile_overrides": {"train": {"iterations": "20", "lr": "0.02", "tag": "x"},
                                               "network": {"encoder": "resnet18"}},
                         "seeds": ["0", "1"], "run_name": "2024"}
    typed = typed_command_line(as_snakemake_read, [
        "profile_overrides={train: {iterations: 20, lr: 0.02, tag: '7'}}", "seeds=[0, 1]", "run_name=2024",
        "not an assignment", "broken={a: [}"])
    assert typed["profile_overrides"] == {"train": {"iterations": 20, "lr": 0.02, "tag": "7"},
                                          "network": {"encoder": "resnet18"}}
    assert typed["seeds"] == [0, 1]
    assert typed["run_name"] == "2024"  # a top-level scalar stays as Snakemake parsed it
    assert typed_command_line({"a": 1}, None) == {"a": 1}
