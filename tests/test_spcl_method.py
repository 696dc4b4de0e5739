"""The SPCL method: presets and variants, option errors, bad batches, figure hooks, tiny training runs."""

import csv
import math

import numpy as np
import pytest
import torch

from methods.api import ConfigError, get_method, resolve_variant
from methods.nets import NetFactory, NetworkProfile
from spcl.boundaries import subclass_boundaries
from spcl.method import SPCL, SPCL_VARIANTS, SPCLOfficial, SubclassView, feature_resolution_logits

# timm's 0.4 M-parameter test ResNet: a run's checkpoint stays small (resnet18 writes ~90 MB per run)
TINY_NET = {"arch": "unet", "encoder": "tu-test_resnet", "decoder_channels": [16, 8, 8, 8, 8], "proj_hidden": 8, "proj_dim": 8}
TABLE_VARIANTS = ["sup_unsup", "icl_only", "bcl_only", "relation_neg", "relation_pos", "bcl_infonce"]


def tiny_method(cls=SPCL, variant="default", **overrides) -> SPCL:
    cfg = resolve_variant(cls, variant, {"warmup_iters": 0, "bank_size": 2, "anchors_per_subclass": 8, **overrides})
    return cls(cfg=cfg, net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4), num_classes=4, max_iters=100)


def disc_labels(size=20, batch=2):
    """Background, then rings of classes 1 and 2 (3-4 px wide) around a class-3 disc: every class
    has inner and boundary pixels under both operators."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = torch.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) * 20 / size
    return ((r < 9.5).long() + (r < 6).long() + (r < 3).long()).expand(batch, size, size).clone()


def disc_view(method: SPCL, labels=None, hard=True, proj_dim=8) -> SubclassView:
    if labels is None:
        labels = disc_labels()
    projection = torch.randn(labels.shape[0], proj_dim, *labels.shape[1:], requires_grad=True)
    boundary = subclass_boundaries(labels, 4, method.cfg.boundary)
    ones = torch.ones_like(labels, dtype=torch.bool)
    return SubclassView(projection, labels, boundary, ones, ones if hard else ~ones)


def fill_bank(method: SPCL, view: SubclassView, times: int = 2) -> None:
    for _ in range(times):
        method._pending_bank = (view.projection.detach(), method.bank_subclass_map(view))
        method.after_update(None, 0)


# ---- presets, variants, options ----------------------------------------------------------------------
def test_presets_follow_paper_and_official_code():
    paper, official = SPCL.Config(), SPCLOfficial.Config()
    assert (paper.boundary, paper.reliability, paper.bcl_form, paper.bcl_tau, paper.icl_scale) == ("canny", "confidence", "paper", 1.0, 1.0)
    assert (official.boundary, official.reliability, official.bcl_form, official.bcl_tau) == ("thick", "entropy", "official", 0.07)
    assert official.icl_scale == pytest.approx(0.5 / 0.07) and official.class_balanced and official.strict_hard_threshold
    for cfg in (paper, official):
        assert (cfg.gamma_s, cfg.gamma_t, cfg.tau, cfg.lambda_c, cfg.alpha_max, cfg.unsup_weight) == (0.75, 0.95, 0.5, 0.1, 0.1, 0.3)
        assert (cfg.anchors_per_subclass, cfg.bank_size, cfg.bank_full_gate, cfg.relation) == (256, 400, True, "unconcerned")
    assert get_method("spcl") is SPCL and get_method("spcl_official") is SPCLOfficial
    assert set(TABLE_VARIANTS) == set(SPCL_VARIANTS) and SPCLOfficial.variants is SPCL_VARIANTS
    assert SPCL.embeds_projection and SPCLOfficial.embeds_projection


def test_sweep_points_are_plain_gamma_overrides():
    cfg = resolve_variant(SPCL, "sweep_gs0.65_gt0.9", {"gamma_s": 0.65, "gamma_t": 0.9}, base="default")
    assert (cfg.gamma_s, cfg.gamma_t, cfg.boundary) == (0.65, 0.9, "canny")


@pytest.mark.parametrize(
    "key, value, message",
    [("boundary", "sobel", "boundary must be one of"), ("relation", "both", "relation must be one of"),
     ("reliability", "dice", "reliability must be one of"), ("bcl_form", "triplet", "bcl_form must be one of"),
     ("gamma_s", 1.5, "gamma_s must be in"), ("tau", 0.01, "tau must be >= 0.03"), ("bank_size", 0, "bank_size must be >= 1"),
     ("canny_low", 0.5, "canny_low <= canny_high"), ("alpha_rampup_iters", 0, "alpha_rampup_iters"),
     ("gamma_t", "high", "gamma_t must be a number"), ("anchors", 5, "unknown key"),
     ("poly_horizon", "epochs", "poly_horizon must be one of")],
)
def test_wrong_options_are_clear_errors(key, value, message):
    with pytest.raises(ConfigError, match=message):
        resolve_variant(SPCL, "default", {key: value})


def test_alpha_ramp_is_the_official_sigmoid_schedule():
    method = tiny_method()
    method.max_iters = 6000
    assert method.alpha(0) == pytest.approx(0.1 * math.exp(-5.0))
    assert method.alpha(3050) == pytest.approx(0.1 * math.exp(-5.0 * (1 - 30 / 60) ** 2))  # i_iter // 100 = 30
    assert method.alpha(6000) == pytest.approx(0.1)


# ---- bad batches give a well-defined zero ---------------------------------------------------------------
def test_empty_banks_give_zero_and_a_graph():
    method = tiny_method(bank_full_gate=False)
    view = disc_view(method)
    loss, logs = method.contrastive_loss(view, 0)
    loss.backward()
    assert loss.item() == 0.0 and logs["icl"].item() == 0.0 and logs["bcl"].item() == 0.0
    assert torch.isfinite(view.projection.grad).all()


def test_bank_gate_holds_the_loss_at_zero_until_every_queue_is_full():
    method = tiny_method()
    view = disc_view(method)
    fill_bank(method, view, times=1)  # two images: each queue of 2 is full ...
    assert method.bank.is_full()
    assert method.contrastive_loss(view, 0)[0].item() > 0
    absent = view.labels.clone()
    absent[absent == 2] = 1  # ... but a bank without class 2 never opens the gate
    gated = tiny_method()
    fill_bank(gated, disc_view(gated, absent), times=3)
    loss, logs = gated.contrastive_loss(disc_view(gated), 0)
    assert loss.item() == 0.0 and logs["icl"].item() == 0.0


def test_absent_class_no_boundary_no_hard_anchor_give_finite_zero_or_partial_losses():
    method = tiny_method(bank_full_gate=False)
    fill_bank(method, disc_view(method))
    uniform = torch.full((2, 20, 20), 3)  # one class only: no boundary pixels, classes 0-2 absent
    view = disc_view(method, uniform)
    loss, logs = method.contrastive_loss(view, 0)
    loss.backward()
    assert logs["bcl"].item() == 0.0 and logs["anchors_boundary"].item() == 0.0
    assert logs["anchors_inner"].item() == 8.0 and logs["icl"].item() > 0  # class 3 inner anchors only
    assert torch.isfinite(view.projection.grad).all()
    easy = disc_view(method, hard=False)  # the student is confident everywhere: no anchors
    loss, logs = method.contrastive_loss(easy, 0)
    loss.backward()
    assert loss.item() == 0.0 and logs["anchors_inner"].item() == 0.0
    assert torch.equal(easy.projection.grad, torch.zeros_like(easy.projection))


def test_background_can_be_excluded():
    method = tiny_method(include_background=False)
    view = disc_view(method)
    fill_bank(method, view)
    assert method.bank.count.tolist()[:2] == [0, 0] and method.bank.is_full(method.active_subclasses)
    _, logs = method.contrastive_loss(view, 0)
    assert logs["anchors_inner"].item() == 3 * 8 and logs["icl"].item() > 0


def test_poly_horizon_run_and_official():
    from methods.runconfig import TrainConfig
    from methods.training.engine import build_optimizer

    train_cfg = TrainConfig(iterations=6000)
    for slices, horizon in ((68, 6052), (136, 6120), (100, 6100)):  # (6000 // L + 1) L
        method = tiny_method(poly_horizon="official")
        method.data_info = {"labelled_slices": slices}
        assert method.lr_horizon(6000) == horizon
    method = tiny_method(poly_horizon="official")
    method.data_info = {"labelled_slices": 68}
    optimizer, scheduler = build_optimizer(method, train_cfg)  # the engine takes the hook's schedule
    lam = scheduler.lr_lambdas[0]
    assert lam(0) == 1.0 and lam(6000) == pytest.approx((52 / 6052) ** 0.9)  # 0.0138: lr 1.4e-4 at the end
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["weight_decay"] == 1e-4
    default = tiny_method()
    assert default.cfg.poly_horizon == "run" and SPCLOfficial.Config().poly_horizon == "run"
    _, scheduler = build_optimizer(default, train_cfg)
    assert scheduler.lr_lambdas[0](3000) == pytest.approx(0.5**0.9) and scheduler.lr_lambdas[0](6000) == 0.0
    with pytest.raises(ValueError, match="labelled slices"):
        tiny_method(poly_horizon="official").lr_horizon(6000)


# ---- read-out at feature resolution ------------------------------------------------------------------------
class RampHead(torch.nn.Module):
    """smp's DeepLabV3+ head on a known map: a 1x1 conv (weight 1) then x4 bilinear upsampling with
    align_corners=True (smp's SegmentationHead)."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        self.segmentation_head = torch.nn.Sequential(conv, torch.nn.Upsample(scale_factor=4, mode="bilinear", align_corners=True))


def test_feature_resolution_read_out_has_no_align_corners_shift():
    net = RampHead()
    features = torch.arange(64.0).expand(1, 1, 64, 64).clone()  # feature pixel (i, j) holds j
    logits = net.segmentation_head(features)  # [1, 1, 256, 256], as SegNet returns them
    ours = feature_resolution_logits(net, logits, features)
    assert torch.equal(ours, features)  # pixel j reads j: no shift
    nearest = torch.nn.functional.interpolate(logits, size=(64, 64), mode="nearest")  # from the upsampled logits
    # nearest picks input pixel 4j, which align_corners=True maps back to 4j * 63 / 255 = 0.988 j
    assert torch.allclose(nearest[0, 0, 0], torch.arange(64.0) * 4 * 63 / 255, atol=1e-4)
    assert (features - nearest).abs().max().item() == pytest.approx(63 * 3 / 255, abs=1e-4)  # 0.741 px at j = 63
    same = torch.randn(2, 4, 16, 16)
    assert feature_resolution_logits(None, same, torch.randn(2, 8, 16, 16)) is same  # U-Net: already there


def test_spcl_reads_teacher_and_student_at_feature_resolution_on_deeplabv3plus():
    torch.manual_seed(0)
    profile = {"arch": "deeplabv3plus", "encoder": "resnet18", "proj_hidden": 8, "proj_dim": 8}
    cfg = resolve_variant(SPCLOfficial, "default", {"warmup_iters": 0, "bank_size": 2, "anchors_per_subclass": 8})
    method = SPCLOfficial(cfg=cfg, net_factory=NetFactory(NetworkProfile.from_dict(profile), 4), num_classes=4, max_iters=10)
    method.train()
    x = torch.randn(4, 1, 64, 64)
    batch = type("B", (), {"x_l": x[:2], "y_l": torch.randint(0, 4, (2, 64, 64)), "x_u": x[2:]})()
    ctx = method.build_context(batch, 0)
    assert ctx.s_l.logits.shape[-1] == 64 and ctx.s_l.features.shape[-1] == 16
    t_small = feature_resolution_logits(method.teacher, ctx.t_u.logits, ctx.t_u.features)
    # it is the map smp upsamples into the logits: x4 bilinear with align_corners=True gives them back
    up = torch.nn.functional.interpolate(t_small, scale_factor=4, mode="bilinear", align_corners=True)
    assert torch.allclose(up, ctx.t_u.logits, atol=1e-4)
    view = method.subclass_view(ctx)
    assert torch.equal(view.labels[2:], t_small.softmax(1).argmax(1))
    s_small = feature_resolution_logits(method.student, ctx.s_l.logits, ctx.s_l.features)
    assert torch.equal(view.hard[:2], s_small.softmax(1).max(1).values < cfg.gamma_s)
    assert torch.equal(view.labels[:2], torch.nn.functional.interpolate(batch.y_l[:, None].float(), size=(16, 16),
                                                                          mode="nearest")[:, 0].long())


# ---- figure hooks and state ------------------------------------------------------------------------------
def test_similarity_samples_and_tagged_projections():
    method = tiny_method()
    assert method.similarity_samples() is None
    view = disc_view(method)
    fill_bank(method, view)
    method.contrastive_loss(view, 0)
    samples = method.similarity_samples()
    assert set(samples) == {"positive", "negative"} and samples["positive"].ndim == 1
    assert samples["positive"].size > 0 and samples["negative"].size > 0
    assert np.all(np.abs(samples["negative"]) <= 1.0 + 1e-5)
    labels = disc_labels(size=32)
    tags = method.tagged_projections(torch.randn(2, 1, 32, 32), labels, boundary="thick")
    assert tags["features"].shape == (2 * 32 * 32, 8)  # the tiny U-Net's projection is at full resolution
    assert torch.allclose(tags["features"].norm(dim=1), torch.ones(2048), atol=1e-5)
    assert torch.equal(tags["boundary"], subclass_boundaries(labels, 4, "thick").flatten())
    assert torch.equal(tags["class_index"], labels.flatten())
    authors = method.tagged_projections(torch.randn(2, 1, 32, 32), labels, boundary="mask2edge")
    assert torch.equal(authors["boundary"], subclass_boundaries(labels, 4, "mask2edge").flatten())
    assert resolve_variant(SPCLOfficial, "default", {"boundary": "mask2edge"}).boundary == "mask2edge"


def test_sampling_generator_state_round_trips():
    torch.manual_seed(0)
    a = tiny_method()
    view = disc_view(a)
    fill_bank(a, view)
    a.contrastive_loss(view, 0)
    b = tiny_method()
    b.load_state_dict(a.state_dict())
    anchors_a, _ = a.sample_anchors(view, a.generator(torch.device("cpu")))
    anchors_b, _ = b.sample_anchors(view, b.generator(torch.device("cpu")))
    assert torch.equal(anchors_a, anchors_b) and b.reservoir.written == a.reservoir.written


# ---- tiny training runs with the engine --------------------------------------------------------------------
def train(method, variant, cache, split, out_dir, iterations=5):
    from methods.runconfig import parse_run_config
    from methods.training.engine import train as run

    cfg = parse_run_config({
        "method": method, "variant": variant, "seed": 0, "out_dir": str(out_dir),
        "method_config": {"warmup_iters": 0, "bank_size": 2, "anchors_per_subclass": 16, "gamma_t": 0.5},
        "data": {"cache": str(cache), "split": str(split), "dataset": "phantom", "ratio": 5,
                 "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": TINY_NET,
        "train": {"iterations": iterations, "device": "cpu", "amp": "off", "progress": False,
                  "log_every": 1, "checkpoint_every": 1000},
    })
    run_dir = run(cfg)
    with open(run_dir / "log.csv", newline="") as f:
        return run_dir, list(csv.DictReader(f))


@pytest.mark.parametrize("method, variant", [("spcl", "default"), ("spcl_official", "default")]
                         + [("spcl", v) for v in TABLE_VARIANTS])
def test_every_preset_and_variant_trains_with_nonzero_contrast_once_banks_fill(method, variant, tiny_cache, tiny_split, tmp_path):
    run_dir, rows = train(method, variant, tiny_cache, tiny_split, tmp_path)
    assert len(rows) == 5 and all(math.isfinite(float(r["loss"])) for r in rows)
    if variant == "sup_unsup":
        assert "icl" not in rows[0] and not (run_dir / "similarities.npz").exists()
        return
    full = [r for r in rows if float(r["bank_fill"]) == 1.0]
    assert full, "the banks of 2 entries per subclass fill within 5 iterations"
    assert float(rows[0]["icl"]) == 0.0 and float(rows[0]["bcl"]) == 0.0  # banks empty at the first step
    last = full[-1]
    assert (float(last["icl"]) > 0) == (variant != "bcl_only")
    assert (float(last["bcl"]) > 0) == (variant != "icl_only")
    assert (run_dir / "similarities.npz").exists() == (variant != "bcl_only")
