"""The official SPCL/DGCL DeepLabV3+ (methods/nets/official.py) against the official code's facts
(`dgcl/models/{resnet,decoder}.py`, U2PL `models/base.py`, `configs/spcl/acdc3.yaml`): stem widths,
ceil-mode pool, multi-grid dilations, decoder layout, parameter counts, shapes at small inputs,
the 1 -> 3 channel repeat, initialisation, and the `paper_official` profile through `NetFactory`.

ResNet-50s are built once per module (a few seconds each on one CPU thread).
"""

import csv

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from methods.api import ConfigError
from methods.nets import NetFactory, NetworkProfile
from methods.nets.official import U2PL_STEM, DeepStemResNetEncoder, OfficialDeepLabV3Plus
from methods.runconfig import load_raw, parse_run_config, profile_path


@pytest.fixture(scope="module")
def spcl_net():
    torch.manual_seed(0)
    return OfficialDeepLabV3Plus(4)  # SPCL's stem (64, 64, 64), output stride 16


@pytest.fixture(scope="module")
def u2pl_encoder():
    torch.manual_seed(0)
    return DeepStemResNetEncoder("resnet50", stem_channels=U2PL_STEM)


def _conv_shapes(enc):
    return [tuple(enc.conv1[i].weight.shape) for i in (0, 3, 6)]


def test_stem_widths_follow_the_official_code(spcl_net, u2pl_encoder):
    enc = spcl_net.encoder
    # SPCL: conv3x3(3, 64, stride=2), conv3x3(64, 64), conv3x3(64, inplanes=64); BN + ReLU between
    assert _conv_shapes(enc) == [(64, 3, 3, 3), (64, 64, 3, 3), (64, 64, 3, 3)]
    assert enc.conv1[0].stride == (2, 2) and enc.conv1[3].stride == enc.conv1[6].stride == (1, 1)
    assert [type(m) for m in enc.conv1] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2 + [nn.Conv2d]
    assert enc.bn1.num_features == 64
    assert enc.layer1[0].conv1.in_channels == enc.layer1[0].downsample[0].in_channels == 64
    # U2PL / DGCL: inplanes = 128 (timm's resnet50s as built)
    assert _conv_shapes(u2pl_encoder) == [(64, 3, 3, 3), (64, 64, 3, 3), (128, 64, 3, 3)]
    assert u2pl_encoder.bn1.num_features == 128 and u2pl_encoder.layer1[0].conv1.in_channels == 128
    assert all(c.bias is None for c in (enc.conv1[0], enc.conv1[3], enc.conv1[6]))


def test_max_pool_is_ceil_mode_and_shortcut_is_plain(spcl_net):
    enc = spcl_net.encoder
    pool = enc.maxpool
    assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (3, 2, 1, True)
    # no ResNet-D average-pool shortcut: a strided 1x1 conv + BN, stride on the 3x3 conv
    down = enc.layer2[0].downsample
    assert [type(m) for m in down] == [nn.Conv2d, nn.BatchNorm2d] and down[0].stride == (2, 2)
    assert enc.layer2[0].conv2.stride == (2, 2) and enc.layer2[0].conv1.stride == (1, 1)
    assert torch.all(enc.layer1[0].bn3.weight == 1)  # zero_init_residual: False


def test_output_stride_16_with_multi_grid_dilations(spcl_net):
    enc = spcl_net.encoder
    assert [b.conv2.dilation for b in enc.layer4] == [(2, 2), (4, 4), (8, 8)]
    assert [b.conv2.padding for b in enc.layer4] == [(2, 2), (4, 4), (8, 8)]
    assert all(b.conv2.stride == (1, 1) for b in enc.layer4) and enc.layer4[0].downsample[0].stride == (1, 1)
    assert [b.conv2.dilation for b in enc.layer3] == [(1, 1)] * 6 and enc.layer3[0].conv2.stride == (2, 2)


def test_output_stride_8_dilates_layer3_and_multiplies_layer4():
    enc = DeepStemResNetEncoder("resnet50", output_stride=8)
    assert [b.conv2.dilation[0] for b in enc.layer3] == [1, 2, 2, 2, 2, 2]
    assert [b.conv2.dilation[0] for b in enc.layer4] == [4, 8, 16]  # (prev 2) * 2, 4 * 2, 4 * 4


@pytest.mark.parametrize("size, low", [(65, 17), (64, 17)])  # a floor-mode pool gives 16 for 64
def test_feature_and_logit_shapes_at_small_inputs(spcl_net, size, low):
    spcl_net.eval()
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        feats = spcl_net.encoder(x)
        fts = spcl_net.decoder(feats)
        logits = spcl_net(x)
    stem = (size + 1) // 2
    deep = (low + 1) // 2
    assert [tuple(f.shape) for f in feats] == [
        (2, 1, size, size), (2, 64, stem, stem), (2, 256, low, low), (2, 512, deep, deep),
        (2, 1024, (deep + 1) // 2, (deep + 1) // 2), (2, 2048, (deep + 1) // 2, (deep + 1) // 2)]
    assert spcl_net.encoder.out_channels == (1, 64, 256, 512, 1024, 2048)
    assert fts.shape == (2, 256, low, low) and logits.shape == (2, 4, size, size)


def test_decoder_layout_is_the_official_one(spcl_net):
    dec = spcl_net.decoder
    branches = dec.aspp.convs
    assert len(branches) == 5
    pool = branches[4]  # torchvision's order: 1x1, r6, r12, r18, pooling
    assert isinstance(pool[0], nn.AdaptiveAvgPool2d) and pool[1].kernel_size == (1, 1)
    assert branches[0][0].kernel_size == (1, 1)
    for branch, rate in zip(branches[1:4], (6, 12, 18)):
        conv = branch[0]
        assert conv.kernel_size == (3, 3) and conv.dilation == (rate, rate) and conv.groups == 1  # plain, not separable
    for branch in branches:
        conv = [m for m in branch if isinstance(m, nn.Conv2d)][0]
        assert conv.out_channels == 256 and conv.bias is None
        assert [type(m) for m in branch][-2:] == [nn.BatchNorm2d, nn.ReLU]
    proj = dec.aspp.project
    assert [type(m) for m in proj] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Dropout2d]
    assert proj[0].in_channels == 1280 and proj[0].kernel_size == (3, 3) and proj[3].p == 0.1
    low = dec.low_conv
    assert low[0].in_channels == 256 and low[0].out_channels == 48 and low[0].bias is not None
    cls = dec.classifier
    assert [type(m) for m in cls] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Dropout2d] * 2
    assert (cls[0].in_channels, cls[0].out_channels, cls[4].in_channels, cls[4].out_channels) == (304, 256, 256, 256)
    assert cls[0].bias is not None and cls[3].p == cls[7].p == 0.1
    head = spcl_net.segmentation_head
    assert len(head) == 1 and head[0].kernel_size == (1, 1) and (head[0].in_channels, head[0].out_channels) == (256, 4)


def _bn(c):
    return 2 * c


def test_parameter_counts_equal_the_official_network(spcl_net):
    """Counted from the official definitions, term by term (not from our modules)."""
    def bottleneck(inp, planes, down):
        n = inp * planes + _bn(planes) + 9 * planes * planes + _bn(planes) + planes * 4 * planes + _bn(4 * planes)
        return n + (inp * 4 * planes + _bn(4 * planes) if down else 0)

    stem = 3 * 64 * 9 + _bn(64) + 64 * 64 * 9 + _bn(64) + 64 * 64 * 9 + _bn(64)  # SPCL: inplanes = 64
    enc, inp = stem, 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        enc += bottleneck(inp, planes, True) + (blocks - 1) * bottleneck(4 * planes, planes, False)
        inp = 4 * planes
    aspp = 2 * (2048 * 256 + _bn(256)) + 3 * (2048 * 256 * 9 + _bn(256))  # pooling, 1x1, three atrous
    head = 1280 * 256 * 9 + _bn(256)
    low = 256 * 48 + 48 + _bn(48)
    classifier = (304 * 256 * 9 + 256 + _bn(256)) + (256 * 256 * 9 + 256 + _bn(256))
    final = 256 * 4 + 4
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(spcl_net.encoder) == enc == 23_574_336
    assert count(spcl_net.decoder) == aspp + head + low + classifier == 19_460_752
    assert count(spcl_net.segmentation_head) == final


def test_grey_input_is_repeated_to_three_channels(spcl_net):
    enc = spcl_net.encoder.eval()
    x = torch.randn(2, 1, 33, 33)
    with torch.no_grad():
        stem = enc(x)[1]
        manual = enc.act1(enc.bn1(enc.conv1(x.repeat(1, 3, 1, 1))))
    assert torch.equal(stem, manual)
    with pytest.raises(ValueError, match="2 channels"):
        enc(torch.randn(1, 2, 33, 33))


def test_decoder_init_is_kaiming_normal_fan_in(spcl_net):
    conv = spcl_net.decoder.aspp.project[0]  # fan_in 1280 * 9: std sqrt(2 / fan_in)
    expected = (2.0 / (1280 * 9)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.02
    head = spcl_net.segmentation_head[0]
    assert abs(head.weight.std().item() / (2.0 / 256) ** 0.5 - 1) < 0.15
    bns = [m for m in spcl_net.decoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) and b.eps == 1e-5 for b in bns)


def test_paper_official_profile_builds_the_official_network_through_net_factory():
    raw = load_raw(profile_path("paper_official"))
    prof = NetworkProfile.from_dict(raw["network"])
    assert (prof.arch, prof.encoder, prof.encoder_weights, prof.stem_channels) == (
        "deeplabv3plus_official", "resnet50", None, (64, 64, 64))
    assert raw["data"]["img_size"] == 256 and raw["train"]["iterations"] == 6000  # the paper profile beneath
    small = NetworkProfile.from_dict({**raw["network"], "proj_hidden": 16, "proj_dim": 8})
    torch.manual_seed(0)
    net = NetFactory(small, 4)().train()
    x = torch.randn(2, 1, 65, 65)
    out = net(x)
    assert out.logits.shape == (2, 4, 65, 65)
    assert out.features.shape == (2, 256, 17, 17) and out.projection.shape == (2, 8, 17, 17)
    (out.logits.mean() + out.projection.mean()).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    assert not no_grad, no_grad[:5]
    net.eval()
    with torch.no_grad():
        out = net(x)
        expected = F.interpolate(net.segmentation_head(out.features), size=(65, 65), mode="bilinear", align_corners=True)
    assert torch.allclose(out.logits, expected, atol=1e-6)


@pytest.mark.parametrize("override, message", [
    ({"encoder": "resnet18"}, "encoder must be one of"),
    ({"output_stride": 32}, "output_stride must be 8 or 16"),
    ({"stem_channels": [64, 64]}, "stem_channels must be three positive integers"),
    ({"in_channels": 2}, "in_channels must be 1"),
    ({"encoder_weights": "imagenet"}, "must be a checkpoint file path or null"),
    ({"arch": "deeplabv3"}, "arch must be one of"),
])
def test_profile_errors_name_the_setting(override, message):
    with pytest.raises(ConfigError, match=message):
        NetworkProfile.from_dict({"arch": "deeplabv3plus_official", "encoder": "resnet50", **override})


@pytest.mark.parametrize("method", ["spcl", "ugpcl", "dgcl"])  # logits at feature size; encoder/decoder reuse; feat_channels
def test_methods_that_reach_into_the_network_train_with_it(method, tiny_cache, tiny_split, tmp_path):
    cfg = parse_run_config({
        "method": method, "seed": 0, "out_dir": str(tmp_path / "run"),
        "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom", "ratio": 5,
                 "img_size": 33, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": {"arch": "deeplabv3plus_official", "encoder": "resnet50", "proj_hidden": 16, "proj_dim": 8},
        "train": {"iterations": 2, "device": "cpu", "amp": "off", "progress": False, "log_every": 1,
                  "checkpoint_every": 1000},
    })
    from methods.training.engine import train

    with open(train(cfg) / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(float(r["loss"]) == float(r["loss"]) for r in rows)
