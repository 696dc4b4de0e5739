"""YAML for configs, with numbers read as YAML 1.2 reads them.

PyYAML follows YAML 1.1, whose float needs a dot and a signed exponent: `1e-4`, `1E5` and `5e-3`
load as *strings*, so `weight_decay: 1e-4` would pass the start-up checks and stop every training
job. Every config load path (run configs and their profiles, `--set`, the workflow config and its
profiles) goes through `load_yaml`, or `exponent_numbers` for a mapping another loader built
(Snakemake's `--configfile` and `--config`). Snakemake reads a nested `--config` value
(`profile_overrides={train: {iterations: 20}}`) with YAML's base loader, which leaves every scalar
a string ('20'); `typed_command_line` reads those values again as a config file would.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

#: YAML 1.2 core-schema floats in exponent notation (the forms YAML 1.1 leaves as strings too are
#: harmless to match: they are floats either way)
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, plus exponent-notation floats (`1e-4`)."""


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, with `1e-4` a float (raises yaml.YAMLError as it does)."""
    return yaml.load(text, Loader=ConfigLoader)


def exponent_numbers(value: Any) -> Any:
    """`value` with every string in exponent notation ("1e-4") turned into its float, in nested
    mappings and lists; for configs loaded by a YAML 1.1 loader this module does not control."""
    if isinstance(value, dict):
        return {k: exponent_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exponent_numbers(v) for v in value]
    if isinstance(value, str) and EXPONENT_FLOAT.match(value):
        return float(value)
    return value


def typed_command_line(config: dict, config_args: list[str] | None) -> dict:
    """`config` with the nested values of Snakemake's `--config KEY=VALUE` arguments read by
    `load_yaml` (numbers as numbers, quoted text as text) and merged over what the config file set
    for KEY, as Snakemake merges them. Top-level scalars are left to Snakemake, which already tries
    int and float first. Arguments that are not `KEY=VALUE` YAML are left as Snakemake read them."""
    typed = dict(config)
    for entry in config_args or []:
        key, sep, text = entry.partition("=")
        if not sep:
            continue
        try:
            value = load_yaml(text)
        except yaml.YAMLError:
            continue
        if isinstance(value, (dict, list)):
            typed[key] = _merge(typed.get(key), value)
    return typed


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v)
        return out
    return over
