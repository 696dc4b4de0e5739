"""Network factory over segmentation-models-pytorch (smp).

Every method gets its networks from one `NetFactory`, so all methods in a comparison share the
same backbone. A network's forward returns `NetOutput(logits, features, projection)` from one pass:

- `logits`:     [B, C, H, W] at the input size (smp's segmentation head, incl. its upsampling);
- `features`:   the decoder output (DeepLabV3+: [B, 256, H/4, W/4]; U-Net: [B, c_last, H, W]);
- `projection`: a 1x1-conv MLP on `features` (in -> hidden -> D, BN + ReLU in between, no
                normalisation; contrastive losses L2-normalise it themselves).

Profiles (`NetworkProfile.arch`):
- `deeplabv3plus` (paper): ResNet-50 encoder, output stride 16, ASPP rates 6/12/18, 1-channel input,
  projection 256 -> 256 -> 256. Differences from the official SPCL/DGCL DeepLabV3+ (documented in
  docs/methods.md): smp uses torchvision's 7x7 stem, not the 3x3 "deep stem"; there is no
  multi-grid (2,2,4) in layer4; smp's decoder has one separable 3x3 conv block after the
  concatenation where the official one has two 3x3 conv+BN+ReLU+Dropout(0.1) blocks; the
  official projection is a per-pixel Linear-BN1d-ReLU-Linear, which equals our 1x1 convs.
- `unet` (phantom / CPU): a U-Net on a small encoder (default resnet18) with configurable decoder
  channels; the projection sits on the full-resolution decoder output.

Pretrained weights (`encoder_weights`, e.g. "imagenet") are optional: we try to build with them
with the Hugging Face hub forced offline, so weights already in the local cache are used and a
missing file gives a warning and random initialisation instead of a download that hangs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from methods.api import ConfigError


class NetOutput(NamedTuple):
    logits: Tensor
    features: Tensor
    projection: Tensor


@dataclass
class NetworkProfile:
    """Network hyper-parameters. `arch` selects the smp model; the rest are passed through."""

    arch: str = "unet"  # "unet" | "deeplabv3plus"
    encoder: str = "resnet18"
    encoder_weights: str | None = None  # e.g. "imagenet"; used only if already cached locally
    in_channels: int = 1
    output_stride: int = 16  # deeplabv3plus only
    atrous_rates: tuple[int, int, int] = (6, 12, 18)  # deeplabv3plus only
    decoder_channels: tuple[int, ...] = (128, 64, 32, 32, 32)  # unet only
    encoder_depth: int = 5  # unet only
    proj_hidden: int = 256
    proj_dim: int = 256

    @classmethod
    def from_dict(cls, d: dict | None) -> "NetworkProfile":
        d = dict(d or {})
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"network profile: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        for k in ("atrous_rates", "decoder_channels"):
            if k in d and isinstance(d[k], list):
                d[k] = tuple(d[k])
        prof = cls(**d)
        if prof.arch not in ("unet", "deeplabv3plus"):
            raise ConfigError(f"network profile: arch must be 'unet' or 'deeplabv3plus', got {prof.arch!r}")
        return prof

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
    """An smp model split into encoder / decoder / heads so one forward gives all three outputs."""

    def __init__(self, model: nn.Module, feat_channels: int, profile: NetworkProfile):
        super().__init__()
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.segmentation_head = model.segmentation_head
        self.projector = projection_head(feat_channels, profile.proj_hidden, profile.proj_dim)
        self.feat_channels = feat_channels

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
            logits = nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return NetOutput(logits, features, self.projector(features))


def _build_smp(profile: NetworkProfile, num_classes: int, weights: str | None) -> tuple[nn.Module, int]:
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
    if not profile.encoder_weights:
        return _build_smp(profile, num_classes, None)
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        return _build_smp(profile, num_classes, profile.encoder_weights)
    except Exception as exc:  # noqa: BLE001 - any failure to find cached weights means random init
        warnings.warn(
            f"encoder_weights={profile.encoder_weights!r} for {profile.encoder} are not in the local cache "
            f"({type(exc).__name__}); using random initialisation (nothing is downloaded at run time).",
            RuntimeWarning,
            stacklevel=3,
        )
        return _build_smp(profile, num_classes, None)
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
