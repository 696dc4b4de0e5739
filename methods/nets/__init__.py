"""Network factory over segmentation-models-pytorch (smp) and the official SPCL/DGCL DeepLabV3+.

Every method gets its networks from one `NetFactory`, so all methods in a comparison share the
same backbone. A network's forward returns `NetOutput(logits, features, projection)` from one pass:

- `logits`:     [B, C, H, W] at the input size (the segmentation head, then bilinear upsampling);
- `features`:   the decoder output (DeepLabV3+: [B, 256, H/4, W/4]; official: `fts`
                [B, 256, h, w] with h = ceil-mode H/4, e.g. 17 for 65 or 64; U-Net: [B, c_last, H, W]);
- `projection`: a 1x1-conv MLP on `features` (in -> hidden -> D, BN + ReLU in between, no
                normalisation; contrastive losses L2-normalise it themselves), computed when it is
                first read (`Deferred`), so the methods that never read it (SupOnly, the mean
                teacher, every teacher whose projection no loss uses) do not pay for the head.

Profiles (`NetworkProfile.arch`):
- `deeplabv3plus` (paper): ResNet-50 encoder, output stride 16, ASPP rates 6/12/18, 1-channel input,
  projection 256 -> 256 -> 256. Differences from the official SPCL/DGCL DeepLabV3+ (documented in
  docs/methods.md): smp uses torchvision's 7x7 stem, not the 3x3 "deep stem"; there is no
  multi-grid (2,2,4) in layer4; smp's decoder has one separable 3x3 conv block after the
  concatenation where the official one has two 3x3 conv+BN+ReLU+Dropout(0.1) blocks; the
  official projection is a per-pixel Linear-BN1d-ReLU-Linear, which equals our 1x1 convs.
- `deeplabv3plus_official` (paper_official): the official SPCL/DGCL network
  (methods/nets/official.py): timm deep-stem ResNet-50 (`stem_channels`, SPCL's 64/64/64 by
  default), ceil-mode max-pool, output stride 16 with multi-grid (2, 2, 4) in layer4, plain ASPP
  6/12/18 with the 3x3 reduction, the two-block classifier giving `fts`, logits upsampled with
  `align_corners=True`; a 1-channel input is repeated to 3 channels inside the encoder.
- `unet` (phantom / CPU): a U-Net on a small encoder (default resnet18) with configurable decoder
  channels; the projection sits on the full-resolution decoder output.

Pretrained weights (`encoder_weights`) are optional:
- a weight-set name such as "imagenet" (smp architectures only): we try to build with it with the
  Hugging Face hub forced offline, so weights already in the local cache are used and a missing
  file gives a warning and random initialisation instead of a download that hangs;
- a path to a checkpoint file the user downloaded (any architecture): loaded into the encoder by
  methods/nets/encoder_weights.py (key mapping, strict missing/unexpected check, `ConfigError` naming
  the file on any mismatch). Relative paths are read from the working directory.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from methods.errors import ConfigError
from methods.nets.encoder_weights import is_weights_path, load_encoder_weights

log = logging.getLogger(__name__)
ARCHS = ("unet", "deeplabv3plus", "deeplabv3plus_official")


class Deferred:
    """A tensor computed on first use, once: `fn()` under the autocast state and grad mode of the
    moment the Deferred was made (the network's forward), so the value and its graph are those of
    computing it eagerly there. `d[a:b]` is a Deferred of the slice that shares the computation."""

    def __init__(self, fn, device_type: str = "cpu"):
        self._fn, self._value = fn, None
        self._grad = torch.is_grad_enabled()
        self._device_type = device_type
        self._autocast = torch.is_autocast_enabled(device_type)
        self._dtype = torch.get_autocast_dtype(device_type) if self._autocast else None

    def get(self) -> Tensor:
        if self._value is None:
            with torch.set_grad_enabled(self._grad), torch.autocast(
                    self._device_type, dtype=self._dtype, enabled=self._autocast):
                self._value = self._fn()
            self._fn = None
        return self._value

    def __getitem__(self, index) -> "Deferred":
        part = copy.copy(self)  # the same captured autocast state and grad mode
        part._fn, part._value = (lambda: self.get()[index]), None
        return part


class _NetFields(NamedTuple):
    logits: Tensor
    features: Tensor
    projection_or_deferred: "Tensor | Deferred"


class NetOutput(_NetFields):
    """(logits, features, projection); the projection may be `Deferred` (computed when read).
    Slicing every field, `NetOutput(*(t[a:b] for t in out))`, keeps it deferred."""

    @property
    def projection(self) -> Tensor:
        p = self.projection_or_deferred
        return p.get() if isinstance(p, Deferred) else p


@dataclass
class NetworkProfile:
    """Network hyper-parameters. `arch` selects the model; the rest are passed through."""

    arch: str = "unet"  # "unet" | "deeplabv3plus" | "deeplabv3plus_official"
    encoder: str = "resnet18"  # official: resnet50 | resnet101
    # "imagenet" (smp only; used only if already cached locally) or a checkpoint file path (any arch)
    encoder_weights: str | None = None
    in_channels: int = 1  # official: 1 (repeated to 3 inside the encoder) or 3
    output_stride: int = 16  # deeplabv3plus (official: 8 or 16)
    atrous_rates: tuple[int, int, int] = (6, 12, 18)  # deeplabv3plus
    decoder_channels: tuple[int, ...] = (128, 64, 32, 32, 32)  # unet only
    encoder_depth: int = 5  # unet only
    # official only: the three stem conv widths; SPCL's code (64, 64, 64), U2PL/DGCL's (64, 64, 128)
    stem_channels: tuple[int, int, int] = (64, 64, 64)
    proj_hidden: int = 256
    proj_dim: int = 256

    @classmethod
    def from_dict(cls, d: dict | None) -> "NetworkProfile":
        d = dict(d or {})
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"network profile: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        for k in ("atrous_rates", "decoder_channels", "stem_channels"):
            if k in d and isinstance(d[k], list):
                d[k] = tuple(d[k])
        prof = cls(**d)
        if prof.arch not in ARCHS:
            raise ConfigError(f"network profile: arch must be one of {list(ARCHS)}, got {prof.arch!r}")
        if prof.encoder_weights is not None and not isinstance(prof.encoder_weights, str):
            raise ConfigError(f"network profile: encoder_weights must be a weight-set name, a file path or null, "
                              f"got {prof.encoder_weights!r}")
        if prof.arch == "deeplabv3plus_official":
            prof._check_official()
        return prof

    def _check_official(self) -> None:
        from methods.nets.official import TIMM_VARIANTS

        where = "network profile (arch deeplabv3plus_official)"
        if self.encoder not in TIMM_VARIANTS:
            raise ConfigError(f"{where}: encoder must be one of {sorted(TIMM_VARIANTS)}, got {self.encoder!r}")
        if self.output_stride not in (8, 16):
            raise ConfigError(f"{where}: output_stride must be 8 or 16, got {self.output_stride}")
        if self.in_channels not in (1, 3):
            raise ConfigError(f"{where}: in_channels must be 1 (repeated to 3) or 3, got {self.in_channels}")
        stem = self.stem_channels
        if len(stem) != 3 or not all(isinstance(c, int) and c > 0 for c in stem):
            raise ConfigError(f"{where}: stem_channels must be three positive integers, got {list(stem)}")
        if self.encoder_weights and not is_weights_path(self.encoder_weights):
            raise ConfigError(
                f"{where}: encoder_weights must be a checkpoint file path or null, got {self.encoder_weights!r} "
                "(no weight set is cached for this network; give the downloaded ImageNet file, e.g. the "
                "U2PL/DGCL resnet50.pth with stem_channels: [64, 64, 128])"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def projection_head(in_ch: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Pixel-wise MLP as 1x1 convolutions: in -> hidden (BN, ReLU) -> out."""
    return nn.Sequential(
        nn.Conv2d(in_ch, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_dim, 1),
    )


class SegNet(nn.Module):
    """A model (smp, or the official DeepLabV3+) split into encoder / decoder / heads so one forward
    gives all three outputs."""

    def __init__(self, model: nn.Module, feat_channels: int, profile: NetworkProfile):
        super().__init__()
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.segmentation_head = model.segmentation_head
        self.projector = projection_head(feat_channels, profile.proj_hidden, profile.proj_dim)
        self.feat_channels = feat_channels
        # the official network upsamples its logits with align_corners=True; smp heads upsample themselves
        self.align_corners = bool(getattr(model, "logits_align_corners", False))

    def decode(self, x: Tensor) -> Tensor:
        """Decoder features for input x (used by methods that attach extra heads)."""
        feats = self.encoder(x)
        try:
            return self.decoder(feats)
        except TypeError:  # smp < 0.5 decoders take *features
            return self.decoder(*feats)

    def forward(self, x: Tensor) -> NetOutput:
        features = self.decode(x)
        logits = self.segmentation_head(features)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                               align_corners=self.align_corners)
        projector = self.projector
        return NetOutput(logits, features, Deferred(lambda: projector(features), features.device.type))


def _build_model(profile: NetworkProfile, num_classes: int, weights: str | None) -> tuple[nn.Module, int]:
    """(model with .encoder / .decoder / .segmentation_head, decoder feature channels).
    `weights`: an smp weight-set name or None (files are loaded afterwards, `_build_offline`)."""
    if profile.arch == "deeplabv3plus_official":
        from methods.nets.official import OfficialDeepLabV3Plus

        model = OfficialDeepLabV3Plus(num_classes, profile.encoder, profile.in_channels, profile.output_stride,
                                      tuple(profile.atrous_rates), tuple(profile.stem_channels))
        return model, 256
    import segmentation_models_pytorch as smp

    if profile.arch == "deeplabv3plus":
        model = smp.DeepLabV3Plus(
            encoder_name=profile.encoder,
            encoder_weights=weights,
            in_channels=profile.in_channels,
            classes=num_classes,
            encoder_output_stride=profile.output_stride,
            decoder_atrous_rates=tuple(profile.atrous_rates),
            decoder_channels=256,
        )
        return model, 256
    model = smp.Unet(
        encoder_name=profile.encoder,
        encoder_weights=weights,
        encoder_depth=profile.encoder_depth,
        in_channels=profile.in_channels,
        classes=num_classes,
        decoder_channels=tuple(profile.decoder_channels)[: profile.encoder_depth],
    )
    _drop_unused_resnet_stages(model.encoder, profile.encoder_depth)
    return model, tuple(profile.decoder_channels)[: profile.encoder_depth][-1]


def _drop_unused_resnet_stages(encoder: nn.Module, depth: int) -> None:
    """smp's ResNet encoders keep layer{depth}..layer4 even when `encoder_depth` never runs them;
    removing them keeps dead weights out of the optimiser, the EMA teachers and checkpoints."""
    for stage in range(max(depth, 1), 5):
        if isinstance(getattr(encoder, f"layer{stage}", None), nn.Module):
            delattr(encoder, f"layer{stage}")


def _build_offline(profile: NetworkProfile, num_classes: int) -> tuple[nn.Module, int]:
    if is_weights_path(profile.encoder_weights):
        model, feat_ch = _build_model(profile, num_classes, None)
        report = load_encoder_weights(model.encoder, profile.encoder_weights,
                                      official=profile.arch == "deeplabv3plus_official")
        log.info(report.summary())
        return model, feat_ch
    if not profile.encoder_weights:
        return _build_model(profile, num_classes, None)
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        return _build_model(profile, num_classes, profile.encoder_weights)
    except Exception as exc:  # noqa: BLE001 - any failure to find cached weights means random init
        warnings.warn(
            f"encoder_weights={profile.encoder_weights!r} for {profile.encoder} are not in the local cache "
            f"({type(exc).__name__}); using random initialisation (nothing is downloaded at run time).",
            RuntimeWarning,
            stacklevel=3,
        )
        return _build_model(profile, num_classes, None)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class NetFactory:
    """Builds fresh networks of one profile. Methods call `net_factory()` once per network."""

    profile: NetworkProfile = field(default_factory=NetworkProfile)
    num_classes: int = 4

    def __call__(self, num_classes: int | None = None) -> SegNet:
        model, feat_ch = _build_offline(self.profile, num_classes or self.num_classes)
        return SegNet(model, feat_ch, self.profile)
