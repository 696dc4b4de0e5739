"""The official SPCL/DGCL DeepLabV3+: a deep-stem ResNet encoder (timm) and the U2PL-family decoder.

Source: the official SPCL code (`Jrstud203/SPCL`, commit 23c6a8a), `dgcl/models/resnet.py`
(`ResNet`, `resnet50`), `dgcl/models/decoder.py` (`dec_deeplabv3_plus`), the U2PL/DGCL
`models/base.py` (`ASPP`; SPCL ships it only as bytecode), `configs/spcl/acdc3.yaml` (encoder
kwargs) and `train_spcl.py` (`init_weight` on the decoder, `pred` upsampled with
`align_corners=True`). Written from reading that code, not copied; docs/methods.md has the
part-by-part comparison.

Network for an input x [B, 1 or 3, H, W]:

- input: a 1-channel slice is repeated to 3 channels inside the encoder (the official loader
  repeats the grey slice; the harness's data stay 1-channel, so every method and `encoder(x)` call
  sees the same network);
- stem: three 3x3 convs (the first with stride 2) with BN + ReLU between them, widths
  `stem_channels` (SPCL: 64, 64, 64; U2PL/DGCL: 64, 64, 128), then BN + ReLU and a 3x3 stride-2
  max-pool with `ceil_mode=True`;
- layer1..layer4: ResNet-50 (or -101) bottlenecks, stride on the 3x3 conv, output stride 16
  (layer4 dilated) or 8; layer4's three blocks use multi-grid (2, 2, 4) on top of the stage
  dilation d, as the official `_make_layer`: dilations (d_prev * 2, d * 2, d * 4), i.e. 2, 4, 8 at
  output stride 16;
- ASPP on layer4: image pooling + 1x1 + three 3x3 atrous convs (rates 6/12/18), each conv (no
  bias) + BN + ReLU, 256 channels each; the 1280 concatenated channels reduced by a 3x3 conv (no
  bias) + BN + ReLU + Dropout2d(0.1);
- low-level branch on layer1: 1x1 conv 256 -> 48 (with bias) + BN + ReLU;
- classifier on [low-level 48; ASPP 256 upsampled bilinearly, align_corners=True] (304 ch):
  twice a 3x3 conv 256 (with bias) + BN + ReLU + Dropout2d(0.1), giving `fts` [B, 256, h, w];
- head: a 1x1 conv on `fts` (logits at h, w); `SegNet` upsamples them bilinearly with
  `align_corners=True` to H, W.

Feature sizes with the ceil-mode pool: h = ceil((ceil(H / 2) - 1) / 2) + 1, e.g. 513 -> 129,
256 -> 65, 65 -> 17, 64 -> 17 (a floor-mode pool would give 16 for 64).

Library parts: timm's `resnet50s`/`resnet101s` (deep stem 64, 64, 128, no average-pool
downsampling, plain 1x1 strided shortcut) is the encoder; only the max-pool's ceil mode, layer4's
multi-grid dilations and, for other stem widths, the stem's convolutions (and the two layer1
convs that read the stem) are changed. torchvision's `ASPP` supplies the five branches (the
same conv + BN + ReLU branches; its concatenation order, [1x1, r6, r12, r18, pool], is a channel
permutation of the official [pool, 1x1, r6, r12, r18], i.e. the same function family), with its
1x1 + Dropout(0.5) projection replaced by the official 3x3 reduction. Written here: the low-level
branch, the classifier and the wiring.

Initialisation as the official code: encoder convs `kaiming_normal_` (fan_out, ReLU) and BN 1/0
(timm's ResNet init; `zero_init_last=False` as the official `zero_init_residual: False`);
decoder and head convs `kaiming_normal_` (fan_in, ReLU) with BN 1/0 (`init_weight`), conv
biases at PyTorch defaults.

Errors: `ValueError` for an encoder other than resnet50/resnet101, an output stride other than
8/16, a stem that is not three positive widths, or an input whose channel count is neither 1 nor
`in_channels`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: official `_make_layer(..., multi_grid=True)`: layer4's per-block dilation multipliers
MULTI_GRID = (2, 2, 4)
#: timm variants whose stem is the U2PL/DGCL deep stem (64, 64, 128) with torchvision-style blocks
TIMM_VARIANTS = {"resnet50": "resnet50s", "resnet101": "resnet101s"}
SPCL_STEM = (64, 64, 64)  # dgcl/models/resnet.py in the SPCL repo: `self.inplanes = 64`
U2PL_STEM = (64, 64, 128)  # U2PL / DGCL: `self.inplanes = 128`; timm's resnet50s


class DeepStemResNetEncoder(nn.Module):
    """The official deep-stem ResNet as an smp-style encoder.

    Its state_dict keys are the official model's (`conv1.{0,1,3,4,6}.*`, `bn1.*`,
    `layer{1-4}.{i}.{conv,bn}{1-3}.*`, `layer{1-4}.0.downsample.{0,1}.*`), so the official
    checkpoint loads without renaming. `forward(x)` returns smp's feature list
    [x, stem (H/2), layer1 (H/4), layer2 (H/8), layer3 (H/16), layer4 (H/16)] (at output stride
    16; sizes rounded up by the ceil-mode pool), `out_channels` their channel counts.
    """

    def __init__(self, encoder: str = "resnet50", in_channels: int = 1, output_stride: int = 16,
                 stem_channels: tuple[int, int, int] = SPCL_STEM):
        super().__init__()
        import timm

        if encoder not in TIMM_VARIANTS:
            raise ValueError(f"the official network's encoder must be one of {sorted(TIMM_VARIANTS)}, got {encoder!r}")
        if output_stride not in (8, 16):
            raise ValueError(f"the official network's output_stride must be 8 or 16, got {output_stride}")
        stem = tuple(int(c) for c in stem_channels)
        if len(stem) != 3 or min(stem) < 1:
            raise ValueError(f"stem_channels must be three positive widths, got {stem_channels!r}")
        if in_channels not in (1, 3):
            raise ValueError(f"the official network takes 1 (repeated to 3) or 3 input channels, got {in_channels}")
        base = timm.create_model(TIMM_VARIANTS[encoder], pretrained=False, num_classes=0,
                                 output_stride=output_stride, zero_init_last=False)
        self.conv1, self.bn1, self.act1 = base.conv1, base.bn1, base.act1
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.layer1, self.layer2, self.layer3, self.layer4 = base.layer1, base.layer2, base.layer3, base.layer4
        _set_stem_widths(self, stem)
        _set_multi_grid(self.layer4, *((1, 2) if output_stride == 16 else (2, 4)))  # layer3's, layer4's dilation
        self.in_channels = in_channels
        self.stem_channels = stem
        self.out_channels = (in_channels, stem[2], 256, 512, 1024, 2048)
        self.output_stride = output_stride

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"input has {x.shape[1]} channels; this encoder takes {self.in_channels}")
        h = x.repeat(1, 3, 1, 1) if self.in_channels == 1 else x  # the official grey slice, repeated
        stem = self.act1(self.bn1(self.conv1(h)))
        l1 = self.layer1(self.maxpool(stem))
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return [x, stem, l1, l2, l3, self.layer4(l3)]


def _conv_like(old: nn.Conv2d, in_ch: int, out_ch: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, old.kernel_size, old.stride, old.padding, old.dilation, bias=old.bias is not None)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # timm's / the official encoder init
    return conv


def _set_stem_widths(enc: DeepStemResNetEncoder, widths: tuple[int, int, int]) -> None:
    """Stem convs 3 -> a -> b -> c with their BNs, and the two layer1 convs that read the stem,
    rebuilt (freshly initialised) wherever timm's (64, 64, 128) differs."""
    a, b, c = widths
    block = enc.layer1[0]
    convs = [(enc.conv1, "0", 3, a), (enc.conv1, "3", a, b), (enc.conv1, "6", b, c),
             (block, "conv1", c, block.conv1.out_channels), (block.downsample, "0", c, block.downsample[0].out_channels)]
    for parent, name, cin, cout in convs:  # nn.Sequential children are attributes "0", "1", ...
        old = getattr(parent, name)
        if (old.in_channels, old.out_channels) != (cin, cout):
            setattr(parent, name, _conv_like(old, cin, cout))
    for parent, name, width in ((enc.conv1, "1", a), (enc.conv1, "4", b), (enc, "bn1", c)):
        if getattr(parent, name).num_features != width:
            setattr(parent, name, nn.BatchNorm2d(width))


def _set_multi_grid(layer4: nn.Sequential, prev_dilation: int, dilation: int) -> None:
    """Official multi-grid: block 0 at prev_dilation * 2, block i > 0 at dilation * MULTI_GRID[i]
    (padding = dilation keeps the size). timm builds (prev_dilation, dilation, dilation)."""
    if len(layer4) != len(MULTI_GRID):
        raise ValueError(f"multi-grid {MULTI_GRID} needs a 3-block layer4, got {len(layer4)} blocks")
    for i, (block, grid) in enumerate(zip(layer4, MULTI_GRID)):
        d = (prev_dilation if i == 0 else dilation) * grid
        block.conv2.dilation = (d, d)
        block.conv2.padding = (d, d)


class OfficialDecoder(nn.Module):
    """`dec_deeplabv3_plus` without its prediction layers: features list -> `fts` [B, 256, h, w]
    at layer1's resolution (h = features[2].shape[-2])."""

    def __init__(self, in_channels: int = 2048, low_channels: int = 256, atrous_rates=(6, 12, 18), inner: int = 256):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import ASPP

        self.aspp = ASPP(in_channels, list(atrous_rates), inner)
        n_branches = len(self.aspp.convs)
        self.aspp.project = nn.Sequential(  # the official `head`: 3x3 reduction, not torchvision's 1x1
            nn.Conv2d(n_branches * inner, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256),
            nn.ReLU(inplace=True), nn.Dropout2d(0.1),
        )
        self.low_conv = nn.Sequential(nn.Conv2d(low_channels, 48, 1), nn.BatchNorm2d(48), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(
            nn.Conv2d(256 + 48, 256, 3, padding=1), nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Dropout2d(0.1),
            nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Dropout2d(0.1),
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        low = self.low_conv(features[2])
        context = F.interpolate(self.aspp(features[-1]), size=low.shape[-2:], mode="bilinear", align_corners=True)
        return self.classifier(torch.cat([low, context], dim=1))


def official_decoder_init(*modules: nn.Module) -> None:
    """The official `init_weight(decoder, kaiming_normal_, BatchNorm2d, 1e-5, 0.1, mode='fan_in',
    nonlinearity='relu')`: conv weights Kaiming-normal, BN weight 1 / bias 0, eps 1e-5,
    momentum 0.1; conv biases untouched."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = 1e-5, 0.1
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class OfficialDeepLabV3Plus(nn.Module):
    """Encoder + decoder + 1x1 head with smp's attribute names, so `SegNet` wraps it like an smp
    model. `logits_align_corners`: the official `pred` upsampling (bilinear, align_corners=True)."""

    logits_align_corners = True

    def __init__(self, num_classes: int, encoder: str = "resnet50", in_channels: int = 1, output_stride: int = 16,
                 atrous_rates=(6, 12, 18), stem_channels: tuple[int, int, int] = SPCL_STEM):
        super().__init__()
        self.encoder = DeepStemResNetEncoder(encoder, in_channels, output_stride, stem_channels)
        self.decoder = OfficialDecoder(self.encoder.out_channels[-1], self.encoder.out_channels[2], atrous_rates)
        self.segmentation_head = nn.Sequential(nn.Conv2d(256, num_classes, 1))
        official_decoder_init(self.decoder, self.segmentation_head)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.segmentation_head(self.decoder(self.encoder(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)
