"""The run config of one training run: YAML in, validated dataclasses out.

Shape (every key optional except `method`, `data.cache`, `data.split`, `data.dataset`;
unknown keys anywhere are an error naming the key):

    extends: cpu                 # profile name in config/profiles/ or a YAML path (relative to this file)
    method: meanteacher
    variant: default
    method_config: {...}         # overrides of the method's Config (checked by the method)
    seed: 0
    out_dir: results/runs/x
    data:    {cache, split, dataset, ratio, img_size, labelled_batch, unlabelled_batch,
              region: whole|crop|label_centred, spacing_mm, fov_mm, centre: image|labelled_mean|two_pass,
              crop_px, test_centre: label|predicted}
    network: {NetworkProfile fields}
    augment: {rotate_deg, hflip, vflip, jitter, brightness, contrast}
    train:   {iterations, lr, momentum, weight_decay, poly_power, checkpoint_every, log_every,
              amp: auto|bf16|off, channels_last: auto|on|off, device: auto|cpu|cuda, progress,
              pseudo_label_logs,
              selection: last|best_on_test, select_every}
    evaluation: {grid: native|official, grid_size}

Profiles are partial run configs; a file is deep-merged over the profile it `extends` (chains are
allowed), and the CLI's `--profile` is the same as an `extends:` on the file.

A run's *identity* is its config without the `BOOKKEEPING_KEYS` (settings that do not change the
numbers it produces). The workflow writes only the identity to `run.yaml` (Snakemake's params
trigger on it) and passes the bookkeeping settings on the command line (`--set`); the engine
compares only the identity before it resumes from a checkpoint or accepts a finished `final.pt`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from methods.api import ConfigError, build_config
from methods.atomic import write_text_atomic
from methods.config_yaml import load_yaml
from methods.augment import AugmentConfig
from methods.nets import NetworkProfile
from methods.precision import AMP_CHOICES, CHANNELS_LAST_CHOICES

PROFILE_DIR = Path(__file__).resolve().parents[1] / "config" / "profiles"

#: Run-config settings that do not change the numbers a run produces, defined here once: where the
#: run is written, how often it checkpoints and logs, the progress bar, and the pseudo-label
#: diagnostics (their labels travel beside the batch, never into it: tests/test_pseudo_label_logs.py
#: checks identical weights with and without them). Left out of a run's identity: the workflow's
#: `run.yaml` (so changing one reruns no training job; workflow/rules/train.smk) and what the engine
#: compares before it resumes (methods/training/checkpoint.py). Thread counts are not run-config settings at
#: all (`--threads`, OMP_NUM_THREADS, the workflow's `threads_per_job`).
BOOKKEEPING_KEYS: frozenset[tuple[str, ...]] = frozenset({
    ("out_dir",),
    ("train", "checkpoint_every"),
    ("train", "log_every"),
    ("train", "progress"),
    ("train", "pseudo_label_logs"),
    ("train", "on_failure"),
})


@dataclass
class DataConfig:
    cache: str = ""
    split: str = ""
    dataset: str = ""
    ratio: float = 0.0  # label ratio in percent; metadata for results tables
    img_size: int = 256
    labelled_batch: int = 4
    unlabelled_batch: int = 4
    # the region stage (methods/data/region/): "whole" slice, or a "crop" of fov_mm around a
    # label-free centre (image | labelled_mean | two_pass) at spacing_mm per pixel
    region: str = "whole"
    spacing_mm: float = 0.0
    fov_mm: float = 0.0
    centre: str = "image"
    # label_centred (the official SPCL input, methods/data/region/label_centred.py): window in native
    # pixels, and what places the test crop ("label": the test label, as the official code)
    crop_px: int = 160
    test_centre: str = "label"

    def validate(self) -> None:
        for key in ("cache", "split", "dataset"):
            if not getattr(self, key):
                raise ValueError(f"{key} is required")
        if self.img_size < 8 or self.labelled_batch < 1 or self.unlabelled_batch < 0:
            raise ValueError("img_size must be >= 8, labelled_batch >= 1, unlabelled_batch >= 0")
        self.region_spec().validate()

    def region_spec(self):
        from methods.data.region import RegionSpec

        return RegionSpec(self.region, self.img_size, self.spacing_mm, self.fov_mm, self.centre, self.crop_px,
                          self.test_centre)


@dataclass
class TrainConfig:
    iterations: int = 6000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    checkpoint_every: int = 500
    log_every: int = 20
    # the numeric path (methods/precision.py): auto = bf16 autocast on CUDA and on CPUs with native
    # bf16, fp32 elsewhere | bf16 | off; channels_last: auto = on the CPU only | on | off
    amp: str = "auto"
    channels_last: str = "auto"
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    # log pseudo-label coverage (and, where the cache has labels for the unlabelled patients,
    # precision) per class every log_every steps; those labels never reach a loss
    pseudo_label_logs: bool = True
    # which weights final.pt keeps (methods/training/selection.py): "last" (the harness) or "best_on_test"
    # (the official script: every select_every iterations, the best of the method's networks by
    # mean Dice on the test cases; uses the test labels, so never a default)
    selection: str = "last"
    select_every: int = 1000
    # a non-finite loss: "raise" (stop with an error; checkpoints kept) or "record" (the workflow:
    # final.pt records the failure and its reason, so the other runs and the report go on)
    on_failure: str = "raise"
    # a final.pt whose evaluated network starts every segmentation network of this run (the
    # supervised warm-start regime, methods/training/warm_start.py); "" = the profile's initialisation
    init_from: str = ""

    def validate(self) -> None:
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {list(AMP_CHOICES)}, got {self.amp!r}")
        if self.channels_last not in CHANNELS_LAST_CHOICES:
            raise ValueError(f"channels_last must be one of {list(CHANNELS_LAST_CHOICES)}, got {self.channels_last!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be one of ['auto', 'cpu', 'cuda'], got {self.device!r}")
        if self.iterations < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("iterations, checkpoint_every and log_every must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.selection not in ("last", "best_on_test"):
            raise ValueError(f"selection must be 'last' or 'best_on_test', got {self.selection!r}")
        if self.on_failure not in ("raise", "record"):
            raise ValueError(f"on_failure must be 'raise' or 'record', got {self.on_failure!r}")
        if self.select_every < 1:
            raise ValueError(f"select_every must be >= 1, got {self.select_every}")


@dataclass
class EvaluationConfig:
    """How the test cases are scored (methods/evaluation/evaluate.py). `grid: native` is the harness (native
    grid, mm); `official` is the official SPCL test loop (the input window at `grid_size` px,
    metrics in pixels, SPCL's empty-mask rule). Also used by `selection: best_on_test`."""

    grid: str = "native"
    grid_size: int = 224

    def validate(self) -> None:
        if self.grid not in ("native", "official"):
            raise ValueError(f"grid must be 'native' or 'official', got {self.grid!r}")
        if self.grid_size < 8:
            raise ValueError(f"grid_size must be >= 8, got {self.grid_size}")


@dataclass
class RunConfig:
    method: str
    data: DataConfig
    variant: str = "default"
    #: preset a custom variant starts from (e.g. a threshold-sweep point); None: `variant` is a preset
    variant_base: str | None = None
    method_config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    out_dir: str = ""
    network: NetworkProfile = field(default_factory=NetworkProfile)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def to_dict(self) -> dict:
        """The resolved config, plain YAML types only (what `RUN/config.yaml` holds)."""
        return {
            "method": self.method,
            "variant": self.variant,
            "variant_base": self.variant_base,
            "method_config": dict(self.method_config),
            "seed": self.seed,
            "out_dir": self.out_dir,
            "data": dataclasses.asdict(self.data),
            "network": self.network.to_dict(),
            "augment": dataclasses.asdict(self.augment),
            # init_from only where set: a run without a warm start keeps the identity it always had
            "train": {k: v for k, v in dataclasses.asdict(self.train).items() if k != "init_from" or v},
            "evaluation": dataclasses.asdict(self.evaluation),
        }


_TOP_KEYS = ("method", "variant", "variant_base", "method_config", "seed", "out_dir", "data", "network", "augment", "train",
             "evaluation")
_SECTIONS = ("data", "network", "augment", "train", "evaluation")


def deep_merge(base: dict, over: dict) -> dict:
    """`over` wins; nested dicts merge key by key (lists and scalars are replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    try:
        doc = load_yaml(path.read_text())  # `1e-4` is a number (methods/config_yaml.py)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return doc


def profile_path(ref: str, relative_to: Path | None = None) -> Path:
    """A profile reference: a name ("cpu") or a YAML path. From a file's `extends:` (`relative_to` its
    folder), a name is first a sibling `<name>.yaml`, so a profile extends the profile beside it
    (a copied or edited profile folder), then one in config/profiles/."""
    candidates = []
    if relative_to is not None:
        candidates += [relative_to / ref, relative_to / f"{ref}.yaml"]
    candidates += [Path(ref), PROFILE_DIR / ref, PROFILE_DIR / f"{ref}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    raise ConfigError(f"profile {ref!r} not found (a file, or one of {names} in {PROFILE_DIR})")


def load_raw(path: str | Path, profile: str | None = None, _seen: tuple = ()) -> dict:
    """Read a run config file with its `extends:` chain (and an extra base `profile`) merged in."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"config {path}: circular 'extends' chain {[str(p) for p in _seen]}")
    doc = _read_yaml(path)
    base: dict = {}
    if profile:
        base = load_raw(profile_path(profile), None, (*_seen, path))
    parent = doc.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError(f"config {path}: 'extends' must be a profile name or path, got {parent!r}")
        base = deep_merge(base, load_raw(profile_path(parent, path.parent), None, (*_seen, path)))
    return deep_merge(base, doc)


def parse_run_config(raw: dict, where: str = "run config") -> RunConfig:
    """Validate a merged mapping into a RunConfig; every unknown key is an error naming it."""
    raw = dict(raw)
    raw.pop("extends", None)
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid top-level keys: {list(_TOP_KEYS)}")
    if not isinstance(raw.get("method"), str) or not raw["method"]:
        raise ConfigError(f"{where}: 'method' is required (a registered method name; see `python -m methods list`)")
    for section in (*_SECTIONS, "method_config"):
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise ConfigError(f"{where}: '{section}' must be a mapping, got {raw[section]!r}")
    if "data" not in raw:
        raise ConfigError(f"{where}: the 'data' section (cache, split, dataset) is required")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: seed must be a non-negative integer, got {seed!r}")
    variant = raw.get("variant") or "default"
    if not isinstance(variant, str):
        raise ConfigError(f"{where}: variant must be a string, got {variant!r}")
    variant_base = raw.get("variant_base")
    if variant_base is not None and not isinstance(variant_base, str):
        raise ConfigError(f"{where}: variant_base must be a preset name, got {variant_base!r}")
    return RunConfig(
        method=raw["method"],
        variant=variant,
        variant_base=variant_base,
        method_config=dict(raw.get("method_config") or {}),
        seed=seed,
        out_dir=str(raw.get("out_dir") or ""),
        data=build_config(DataConfig, raw.get("data"), where=f"{where}: data"),
        network=_network(raw.get("network"), where),
        augment=build_config(AugmentConfig, raw.get("augment"), where=f"{where}: augment"),
        train=build_config(TrainConfig, _yaml_off(raw.get("train")), where=f"{where}: train"),
        evaluation=build_config(EvaluationConfig, raw.get("evaluation"), where=f"{where}: evaluation"),
    )


def _yaml_off(train: dict | None) -> dict | None:
    """YAML 1.1 reads an unquoted `off` / `on` as false / true: accept `amp: off` and
    `channels_last: on|off` as the strings."""
    if not isinstance(train, dict):
        return train
    fixed = dict(train)
    if fixed.get("amp") is False:
        fixed["amp"] = "off"
    if isinstance(fixed.get("channels_last"), bool):
        fixed["channels_last"] = "on" if fixed["channels_last"] else "off"
    return fixed


def _network(d: dict | None, where: str) -> NetworkProfile:
    try:
        return NetworkProfile.from_dict(d)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_run_config(path: str | Path, profile: str | None = None, out_dir: str | None = None,
                    bookkeeping: dict[str, Any] | None = None) -> RunConfig:
    """The CLI's entry: file (+ `--profile`, + `--out`, + `--set` bookkeeping) -> validated RunConfig."""
    raw = apply_bookkeeping(load_raw(path, profile), bookkeeping or {})
    if out_dir:
        raw["out_dir"] = str(out_dir)
    cfg = parse_run_config(raw, where=f"run config {path}")
    if not cfg.out_dir:
        raise ConfigError(f"run config {path}: no output folder (set out_dir or pass --out)")
    return cfg


def run_identity(config: dict) -> dict:
    """`config` (a run-config mapping) without its bookkeeping settings: what makes the run's numbers."""
    return _without(config, ())


def _without(d: dict, prefix: tuple) -> dict:
    out = {}
    for key, value in d.items():
        where = (*prefix, key)
        if where in BOOKKEEPING_KEYS:
            continue
        out[key] = _without(value, where) if isinstance(value, dict) else copy.deepcopy(value)
    return out


def bookkeeping_settings(config: dict) -> dict[str, Any]:
    """The bookkeeping settings `config` sets, as {"train.log_every": 20, ...} (dotted names, in
    `BOOKKEEPING_KEYS` order), the form `python -m methods.train --set NAME=VALUE` takes."""
    found = {}
    for where in sorted(BOOKKEEPING_KEYS):
        node: Any = config
        for key in where:
            node = node.get(key, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            found[".".join(where)] = node
    return found


_ABSENT = object()


def apply_bookkeeping(raw: dict, settings: dict[str, Any], where: str = "--set") -> dict:
    """`raw` with bookkeeping `settings` ({"train.log_every": 5}) merged over it. Any other setting
    is refused: what changes the numbers belongs in the run config, so it is part of the run's
    identity and of what a resumed run is checked against."""
    allowed = {".".join(k) for k in BOOKKEEPING_KEYS}
    out = raw
    for name, value in settings.items():
        if name not in allowed:
            raise ConfigError(f"{where} {name}: only settings that do not change the numbers may be given "
                              f"outside the run config ({sorted(allowed)}); put {name} in the run config file")
        path = tuple(name.split("."))
        patch: dict = {path[-1]: value}
        for key in reversed(path[:-1]):
            patch = {key: patch}
        out = deep_merge(out, patch)
    return out


def write_yaml_atomic(path: Path, doc: dict) -> None:
    write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False))
