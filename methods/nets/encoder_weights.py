"""Pretrained encoder weights from a local checkpoint file (`network.encoder_weights: PATH`).

Nothing is downloaded: the user places the file, the network profile names it. One entry point,
`load_encoder_weights(encoder, path, official=...)`, used by `NetFactory` for smp encoders and for
the official deep-stem ResNet (methods/nets/official.py) alike.

Reading (`read_state_dict`):
- `*.safetensors` through safetensors; anything else through `torch.load(weights_only=True)`
  (tensors and plain containers only; a pickled module is refused);
- a checkpoint wrapped as {'state_dict': ...} or {'model': ...} (nested wrappers too) is unwrapped;
  a 'module.' prefix (DataParallel) on every key is removed.

Key mapping onto the encoder's state_dict:
- official network: the official `resnet50(pretrained=True)` loads `../pretrain/resnet50.pth`
  straight into its `ResNet` with `load_state_dict(strict=False)`, so the checkpoint's keys are
  that model's keys (the U2PL/DGCL deep-stem layout): `conv1.0.weight`, `conv1.1.*` (BN),
  `conv1.3.weight`, `conv1.4.*`, `conv1.6.weight`, `bn1.*`, `layer{1-4}.{i}.conv{1,2,3}.weight`,
  `layer{1-4}.{i}.bn{1,2,3}.*`, `layer{1-4}.0.downsample.{0,1}.*`, plus the classifier `fc.*`.
  `DeepStemResNetEncoder` uses these names, so they map 1:1. Also accepted (detected by
  top-level `conv2.weight`): the flat "deep_base" layout of the PSPNet/semseg family, mapped
  conv1 -> conv1.0, bn1 -> conv1.1, conv2 -> conv1.3, bn2 -> conv1.4, conv3 -> conv1.6,
  bn3 -> bn1, everything under layer* unchanged;
- smp encoders: the encoder's own keys (torchvision layout for smp's ResNets); for timm-universal
  (`tu-`) encoders, whose keys sit under `model.`, a checkpoint without that prefix gets it.

Ignored, and nothing else: the classifier `fc.*`; BN `num_batches_tracked` counters missing from
or extra in the file; keys of ResNet stages the encoder does not build (`layer4.*` for a U-Net with
`encoder_depth: 4`). A first conv stored with 3 input channels is adapted to a 1-channel encoder
by summing the RGB filters (timm's `adapt_input_conv`, smp's rule for pretrained weights).

Errors (`ConfigError`, naming the file): the file does not exist, is not a checkpoint, holds no
tensor mapping, leaves encoder keys missing or has unexpected keys (the first few of each are
listed), or has tensors of the wrong shape (the first few, with both shapes; for the official
stem, the `stem_channels` the file needs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from methods.errors import ConfigError

WRAPPERS = ("state_dict", "model")
WEIGHT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".tar", ".bin", ".ckpt", ".safetensors")
_SHOW = 5  # how many missing / unexpected / mismatched keys an error lists
_STAGE = re.compile(r"^(?:model\.)?(layer[1-4])\.")
_FLAT_STEM = {"conv1": "conv1.0", "bn1": "conv1.1", "conv2": "conv1.3", "bn2": "conv1.4", "conv3": "conv1.6", "bn3": "bn1"}


def is_weights_path(value: str | None) -> bool:
    """True if `encoder_weights` names a file (an existing one, or anything with a path separator or
    a checkpoint suffix); False for weight-set names such as smp's "imagenet" and for None."""
    if not value:
        return False
    return Path(value).expanduser().is_file() or "/" in value or "\\" in value or value.lower().endswith(WEIGHT_SUFFIXES)


@dataclass
class LoadReport:
    """What `load_encoder_weights` did: tensors loaded, keys ignored (by rule), inputs adapted."""

    path: str
    loaded: int = 0
    layout: str = ""
    ignored: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        extra = f"; ignored {len(self.ignored)} ({_first(self.ignored)})" if self.ignored else ""
        adapted = f"; RGB filters summed for {', '.join(self.adapted)}" if self.adapted else ""
        return f"encoder weights: {self.loaded} tensors from {self.path} ({self.layout} layout){extra}{adapted}"


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensor mapping stored in `path`, unwrapped and without a 'module.' prefix."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"encoder_weights: file {p} does not exist (weights are never downloaded; place the file first)")
    try:
        if p.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not a checkpoint"
        raise ConfigError(
            f"encoder_weights: {p} is not a checkpoint readable with torch.load(weights_only=True) or safetensors "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    while isinstance(obj, dict) and any(k in obj and isinstance(obj[k], dict) for k in WRAPPERS):
        obj = next(obj[k] for k in WRAPPERS if k in obj and isinstance(obj[k], dict))
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        kind = type(obj).__name__ if not isinstance(obj, dict) else f"a dict with keys {_first(list(map(str, obj)))}"
        raise ConfigError(f"encoder_weights: {p} holds no state dict of tensors (found {kind})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def map_official_keys(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """Checkpoint keys -> `DeepStemResNetEncoder` keys (see the module docstring)."""
    if "conv2.weight" not in state and "conv3.weight" not in state:
        return dict(state), "official deep-stem"
    out = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        out[f"{_FLAT_STEM[head]}.{rest}" if head in _FLAT_STEM else k] = v
    return out, "flat deep_base (mapped)"


def map_smp_keys(state: dict[str, Tensor], encoder_keys: list[str]) -> tuple[dict[str, Tensor], str]:
    """Checkpoint keys -> smp encoder keys: as stored, or under timm-universal's `model.` prefix."""
    wants_prefix = encoder_keys and all(k.startswith("model.") for k in encoder_keys)
    if wants_prefix and not any(k.startswith("model.") for k in state):
        return {f"model.{k}": v for k, v in state.items()}, "timm (prefixed 'model.')"
    return dict(state), "smp encoder"


def _ignorable(key: str, built_stages: set[str]) -> bool:
    if key.endswith("num_batches_tracked") or re.match(r"^(?:model\.)?fc\.", key):
        return True
    stage = _STAGE.match(key)
    return bool(stage) and stage.group(1) not in built_stages


def load_encoder_weights(encoder: nn.Module, path: str | Path, official: bool = False) -> LoadReport:
    """Load `path` into `encoder` (strict up to the documented ignores); return what was done."""
    state = read_state_dict(path)
    target = encoder.state_dict()
    mapped, layout = map_official_keys(state) if official else map_smp_keys(state, list(target))
    report = LoadReport(str(path), layout=layout)
    built = {m.group(1) for k in target if (m := _STAGE.match(k))}
    missing = [k for k in target if k not in mapped and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in mapped if k not in target and not _ignorable(k, built)]
    report.ignored = [k for k in mapped if k not in target and _ignorable(k, built)]
    if missing or unexpected:
        raise ConfigError(
            f"encoder_weights: {path} does not match the encoder {type(encoder).__name__} ({layout} key layout): "
            f"{len(missing)} missing key(s) {_first(missing)}, {len(unexpected)} unexpected key(s) "
            f"{_first(unexpected)}{_torchvision_hint(mapped) if official else ''}"
        )
    load = {}
    mismatched = []
    for k, v in mapped.items():
        if k not in target:
            continue
        want = target[k]
        if v.shape != want.shape and v.dim() == 4 and v.shape[1] == 3 and v.shape[0] == want.shape[0] \
                and v.shape[2:] == want.shape[2:]:
            from timm.models import adapt_input_conv

            v = adapt_input_conv(want.shape[1], v)
            report.adapted.append(k)
        if v.shape != want.shape:
            mismatched.append(f"{k}: file {tuple(v.shape)} vs network {tuple(want.shape)}")
            continue
        load[k] = v.to(want.dtype)
    if mismatched:
        raise ConfigError(
            f"encoder_weights: {path} has {len(mismatched)} tensor(s) of the wrong shape for the "
            f"encoder {type(encoder).__name__}: {'; '.join(mismatched[:_SHOW])}{_stem_hint(mapped) if official else ''}"
        )
    encoder.load_state_dict(load, strict=False)
    report.loaded = len(load)
    return report


def _torchvision_hint(mapped: dict[str, Tensor]) -> str:
    conv = mapped.get("conv1.weight")
    if conv is None or conv.dim() != 4 or tuple(conv.shape[2:]) != (7, 7):
        return ""
    return (" (a torchvision-style ResNet with a 7x7 stem; the official network has the 3x3 deep stem and "
            "needs the deep-stem checkpoint, or an smp architecture for this file)")


def _stem_hint(mapped: dict[str, Tensor]) -> str:
    try:
        widths = [int(mapped[f"conv1.{i}.weight"].shape[0]) for i in (0, 3, 6)]
    except KeyError:
        return ""
    return f" (the file's stem is {widths}: set network.stem_channels: {widths})"


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return f"[{shown}{', ...' if len(keys) > _SHOW else ''}]"
