"""`network.encoder_weights: PATH` (methods/nets/encoder_weights.py): checkpoints the user downloaded,
loaded into the official deep-stem encoder and into smp encoders; the bad inputs fail loudly.

The official checkpoint is written here from the official `ResNet` definition (key names and shapes
of `dgcl/models/resnet.py`'s `resnet50`, written out independently of our modules), with random
values, so a load that put a tensor in the wrong place, or missed one, shows.
"""

import pytest
import torch
from torch import nn

from methods.api import ConfigError
from methods.nets import NetFactory, NetworkProfile
from methods.nets.encoder_weights import is_weights_path, load_encoder_weights, read_state_dict
from methods.nets.official import U2PL_STEM, DeepStemResNetEncoder
from methods.training.checkpoint import build_method

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def official_resnet50_state(stem=(64, 64, 128), seed=0) -> dict[str, torch.Tensor]:
    """The official resnet50's state_dict layout (conv1 = Sequential(conv, BN, ReLU, conv, BN, ReLU,
    conv), bn1, layer1-4 Bottlenecks with downsample in block 0) plus an ImageNet `fc`."""
    g = torch.Generator().manual_seed(seed)
    out = {}

    def conv(key, cout, cin, k):
        out[f"{key}.weight"] = torch.randn(cout, cin, k, k, generator=g)

    def bn(key, c):
        out.update({f"{key}.weight": torch.rand(c, generator=g) + 0.5, f"{key}.bias": torch.randn(c, generator=g),
                    f"{key}.running_mean": torch.randn(c, generator=g), f"{key}.running_var": torch.rand(c, generator=g) + 0.1,
                    f"{key}.num_batches_tracked": torch.tensor(7)})

    a, b, c = stem
    conv("conv1.0", a, 3, 3), bn("conv1.1", a), conv("conv1.3", b, a, 3), bn("conv1.4", b), conv("conv1.6", c, b, 3)
    bn("bn1", c)
    inplanes = c
    for layer, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for i in range(blocks):
            key = f"layer{layer}.{i}"
            conv(f"{key}.conv1", planes, inplanes, 1), bn(f"{key}.bn1", planes)
            conv(f"{key}.conv2", planes, planes, 3), bn(f"{key}.bn2", planes)
            conv(f"{key}.conv3", 4 * planes, planes, 1), bn(f"{key}.bn3", 4 * planes)
            if i == 0:
                conv(f"{key}.downsample.0", 4 * planes, inplanes, 1), bn(f"{key}.downsample.1", 4 * planes)
            inplanes = 4 * planes
    out["fc.weight"] = torch.randn(1000, 2048, generator=g)
    out["fc.bias"] = torch.randn(1000, generator=g)
    return out


@pytest.fixture(scope="module")
def u2pl_state():
    return official_resnet50_state((64, 64, 128))


@pytest.fixture(scope="module")
def u2pl_encoder():
    return DeepStemResNetEncoder("resnet50", stem_channels=U2PL_STEM)


@pytest.fixture(scope="module")
def spcl_encoder():
    return DeepStemResNetEncoder("resnet50")  # SPCL's stem (64, 64, 64)


def _assert_landed(encoder: nn.Module, state: dict, rename=lambda k: k):
    target = encoder.state_dict()
    for k, v in state.items():
        if k.startswith("fc."):
            continue
        assert torch.equal(target[rename(k)], v.to(target[rename(k)].dtype)), k


def test_official_layout_loads_every_encoder_tensor_into_its_place(u2pl_encoder, u2pl_state, tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(u2pl_state, path)
    report = load_encoder_weights(u2pl_encoder, path, official=True)
    encoder_keys = set(u2pl_encoder.state_dict())
    assert encoder_keys == {k for k in u2pl_state if not k.startswith("fc.")}  # no missing encoder key
    assert report.loaded == len(encoder_keys) and report.ignored == ["fc.weight", "fc.bias"]
    assert report.layout == "official deep-stem" and not report.adapted
    _assert_landed(u2pl_encoder, u2pl_state)
    assert torch.equal(u2pl_encoder.conv1[6].weight, u2pl_state["conv1.6.weight"])
    assert torch.equal(u2pl_encoder.layer4[2].bn3.running_var, u2pl_state["layer4.2.bn3.running_var"])


@pytest.mark.parametrize("wrap", ["state_dict", "model", "nested"])
def test_wrapped_and_data_parallel_checkpoints_load_the_same(u2pl_encoder, u2pl_state, tmp_path, wrap):
    prefixed = {f"module.{k}": v for k, v in u2pl_state.items()}
    obj = {"state_dict": {"model": prefixed}} if wrap == "nested" else {wrap: prefixed, "epoch": 90}
    path = tmp_path / "wrapped.pth.tar"
    torch.save(obj, path)
    load_encoder_weights(u2pl_encoder, path, official=True)
    _assert_landed(u2pl_encoder, u2pl_state)


def test_flat_deep_base_layout_is_mapped_onto_the_sequential_stem(u2pl_encoder, tmp_path):
    state = official_resnet50_state((64, 64, 128), seed=3)
    flat_names = {"conv1.0": "conv1", "conv1.1": "bn1", "conv1.3": "conv2", "conv1.4": "bn2", "conv1.6": "conv3", "bn1": "bn3"}
    flat = {}
    for k, v in state.items():
        module, _, param = k.rpartition(".")
        flat[f"{flat_names[module]}.{param}" if module in flat_names else k] = v
    torch.save(flat, tmp_path / "deep_base.pth")
    report = load_encoder_weights(u2pl_encoder, tmp_path / "deep_base.pth", official=True)
    assert report.layout.startswith("flat deep_base")
    _assert_landed(u2pl_encoder, state)
    assert torch.equal(u2pl_encoder.conv1[4].weight, flat["bn2.weight"])
    assert torch.equal(u2pl_encoder.bn1.running_mean, flat["bn3.running_mean"])


def test_spcl_stem_file_loads_into_the_default_network_through_the_profile(tmp_path):
    state = official_resnet50_state((64, 64, 64), seed=1)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # older files lack them
    path = tmp_path / "spcl_stem.pth"
    torch.save(state, path)
    prof = NetworkProfile.from_dict({"arch": "deeplabv3plus_official", "encoder": "resnet50",
                                     "encoder_weights": str(path), "proj_hidden": 8, "proj_dim": 8})
    net = NetFactory(prof, 4)()
    _assert_landed(net.encoder, state)
    assert net(torch.randn(2, 1, 33, 33)).logits.shape == (2, 4, 33, 33)


def test_missing_and_unexpected_keys_fail_naming_the_file_and_the_keys(u2pl_encoder, u2pl_state, tmp_path):
    missing = {k: v for k, v in u2pl_state.items() if not k.startswith("layer2.1.conv2")}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match=r"missing\.pth.*1 missing key\(s\) \[layer2\.1\.conv2\.weight\], 0 unexpected"):
        load_encoder_weights(u2pl_encoder, tmp_path / "missing.pth", official=True)
    extra = {**u2pl_state, "aux.0.weight": torch.zeros(3)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ConfigError, match=r"extra\.pth.*0 missing key\(s\) \[\], 1 unexpected key\(s\) \[aux\.0\.weight\]"):
        load_encoder_weights(u2pl_encoder, tmp_path / "extra.pth", official=True)


def test_shape_mismatch_names_the_tensors_and_the_stem_the_file_needs(spcl_encoder, u2pl_state, tmp_path):
    torch.save(u2pl_state, tmp_path / "u2pl.pth")
    with pytest.raises(ConfigError, match=r"u2pl\.pth has 7 tensor\(s\) of the wrong shape.*conv1\.6\.weight: file "
                                          r"\(128, 64, 3, 3\) vs network \(64, 64, 3, 3\).*stem_channels: \[64, 64, 128\]"):
        load_encoder_weights(spcl_encoder, tmp_path / "u2pl.pth", official=True)


def test_torchvision_resnet_into_the_official_network_is_refused_with_a_hint(spcl_encoder, tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "tv.pth")
    with pytest.raises(ConfigError, match=r"tv\.pth does not match.*unexpected key\(s\) \[conv1\.weight\].*7x7 stem"):
        load_encoder_weights(spcl_encoder, tmp_path / "tv.pth", official=True)


def test_bad_files_fail_naming_the_file(tmp_path):
    prof = {"arch": "unet", "encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8], "proj_hidden": 8, "proj_dim": 8}
    with pytest.raises(ConfigError, match=r"file .*nowhere\.pth does not exist"):
        NetFactory(NetworkProfile.from_dict({**prof, "encoder_weights": str(tmp_path / "nowhere.pth")}))()
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"text\.pth is not a checkpoint readable with torch\.load\(weights_only=True\)"):
        read_state_dict(tmp_path / "text.pth")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module: refused by weights_only
    with pytest.raises(ConfigError, match=r"module\.pth is not a checkpoint"):
        read_state_dict(tmp_path / "module.pth")
    torch.save({"epoch": 3, "best": 0.9}, tmp_path / "meta.pth")
    with pytest.raises(ConfigError, match=r"meta\.pth holds no state dict of tensors"):
        read_state_dict(tmp_path / "meta.pth")


def test_smp_resnet_loads_torchvision_layout_with_the_rgb_filters_summed(tmp_path):
    import torchvision

    state = torchvision.models.resnet18().state_dict()
    torch.save({"model": state}, tmp_path / "r18.pth")
    prof = NetworkProfile.from_dict({"arch": "unet", "encoder": "resnet18", "encoder_depth": 4,
                                     "decoder_channels": [8, 8, 8, 8], "encoder_weights": str(tmp_path / "r18.pth")})
    net = NetFactory(prof, 4)()
    assert torch.allclose(net.encoder.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(net.encoder.layer3[1].bn2.running_mean, state["layer3.1.bn2.running_mean"])
    assert not hasattr(net.encoder, "layer4")  # dropped by encoder_depth 4; its keys are ignored, not loaded


def test_timm_universal_encoder_gets_the_model_prefix_and_safetensors_load(tmp_path):
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("resnet10t").state_dict()
    save_file(state, str(tmp_path / "resnet10t.safetensors"))
    prof = NetworkProfile.from_dict({"arch": "unet", "encoder": "tu-resnet10t", "encoder_depth": 4,
                                     "decoder_channels": [8, 8, 8, 8],
                                     "encoder_weights": str(tmp_path / "resnet10t.safetensors")})
    net = NetFactory(prof, 4)()
    assert torch.equal(net.encoder.model.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    assert torch.allclose(net.encoder.model.conv1[0].weight, state["conv1.0.weight"].sum(1, keepdim=True))


def test_weight_set_names_are_not_paths_and_rebuilding_a_trained_method_needs_no_file(tmp_path):
    assert not is_weights_path("imagenet") and not is_weights_path(None)
    assert is_weights_path("pretrain/resnet50.pth") and is_weights_path("resnet50.pth")
    config = {"method": "suponly", "variant": "default", "method_config": {}, "train": {"iterations": 2},
              "network": {"arch": "unet", "encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8],
                          "encoder_weights": str(tmp_path / "moved_away.pth")}}
    method = build_method(config, {}, 4)  # evaluation rebuilds then loads the trained state
    assert isinstance(method, nn.Module)
