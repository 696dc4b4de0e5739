"""UGPCL: the uncertainty threshold schedule, certainty pseudo-labels, anchor sampling, the queue
contrast and the FIFO queue update on hand-made tensors, the rotation views, a tiny run."""

import math

import pytest
import torch

from _tiny_run import TINY_NET, assert_logged_and_finite, train_tiny
from baselines.ugpcl import (
    UGPCL,
    WindowAttentionDecoder,
    certainty_pseudo_labels,
    enqueue_segments,
    queue_contrast_loss,
    rotate_views,
    sample_anchors,
    uncertainty_threshold,
    weighted_dice_loss,
)
from methods.api import build_config
from methods.augment import AugmentConfig, random_affines, with_overrides
from methods.nets import NetFactory, NetworkProfile

LN2 = math.log(2)


def test_uncertainty_threshold_rises_from_0_52_to_ln2():
    assert uncertainty_threshold(0, 6000) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * LN2)
    assert uncertainty_threshold(0, 6000) == pytest.approx(0.5210, abs=1e-4)
    assert uncertainty_threshold(3000, 6000) == pytest.approx((0.75 + 0.25 * math.exp(-1.25)) * LN2)
    assert uncertainty_threshold(6000, 6000) == pytest.approx(LN2)
    assert uncertainty_threshold(9000, 6000) == pytest.approx(LN2)


def test_uncertain_pixels_are_ignored():
    # pixel 0: decoders agree (confident); pixel 1: they disagree (mean 0.5/0.5, entropy ln 2)
    a = torch.tensor([[0.98, 0.02], [1.0, 0.0]]).t().reshape(1, 2, 1, 2)
    b = torch.tensor([[0.98, 0.02], [0.0, 1.0]]).t().reshape(1, 2, 1, 2)
    assert certainty_pseudo_labels(a, b, uncertainty_threshold(0, 100)).tolist() == [[[0, -1]]]
    assert certainty_pseudo_labels(a, b, 0.7).tolist() == [[[0, 0]]]  # ln 2 < 0.7: kept


def test_queue_update_is_fifo_per_class_in_batch_order():
    c, m = 3, 2
    queue = torch.full((c, m, 2), 7.0)
    ptr = torch.tensor([0, 0, 1])
    embed = torch.tensor([  # [B=2, D=2, 2, 2]
        [[[1.0, 3.0], [0.0, 5.0]], [[0.0, 0.0], [2.0, 5.0]]],
        [[[9.0, 0.0], [3.0, 0.0]], [[9.0, 4.0], [0.0, 1.0]]],
    ])
    labels = torch.tensor([[[1, 1], [2, -1]], [[0, 1], [2, 2]]])
    enqueue_segments(queue, ptr, embed, labels)
    # class 1: image 0 mean of (1,0),(3,0) = (2,0) -> slot 0; image 1 pixel (0,4) -> slot 1
    assert queue[1].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    # class 2: image 0 pixel (0,2) -> slot 1; image 1 mean of (3,0),(0,1) -> slot 0 (wrapped)
    assert queue[2, 1].tolist() == [0.0, 1.0]
    assert queue[2, 0].tolist() == pytest.approx([1.5 / math.hypot(1.5, 0.5), 0.5 / math.hypot(1.5, 0.5)])
    assert queue[0].tolist() == [[7.0, 7.0], [7.0, 7.0]]  # class 0 is never enqueued
    assert ptr.tolist() == [0, 0, 1]  # class 1: 0 + 2 mod 2; class 2: 1 + 2 mod 2


def test_anchor_is_one_easy_pixel_per_class_with_enough_pixels():
    embed = torch.arange(8.0).view(1, 2, 2, 2)  # pixel n has embedding (n, n + 4)
    labels = torch.tensor([[[1, 1], [1, 0]]])  # class 1: 3 pixels; class 0: 1 pixel (not > 1)
    preds = torch.tensor([[[1, 0], [1, 0]]])  # pixels 0 and 2 easy for class 1, pixel 1 hard
    picks = set()
    for seed in range(12):
        anchors, cls, valid, row = sample_anchors(embed, labels, preds, 2, 1024, 1, torch.Generator().manual_seed(seed))
        assert valid.tolist() == [False, True] and cls.tolist() == [0, 1] and row[1].item() == 0
        picks.add(tuple(anchors[1].tolist()))
    assert picks == {(0.0, 4.0), (2.0, 6.0)}  # only easy pixels, both reachable


def test_queue_contrast_loss_by_hand():
    queue = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])  # C=2, M=2
    anchors = torch.tensor([[1.0, 0.0]])
    # keys: (1,0) and (0,1) of class 1, then two zero rows of class 0; tau = 0.5
    # logits - max = [0, -2, -2, -2]; anchor row 0 drops positive column 0, keeping column 1:
    # -(-2 - log(e^-2 + 2 e^-2)) = log 3
    loss = queue_contrast_loss(anchors, torch.tensor([1]), torch.tensor([True]), torch.tensor([0]), queue, 0.5, 0.5)
    assert loss.item() == pytest.approx(math.log(3) / (1 + 1e-5), rel=1e-6)
    loss = queue_contrast_loss(anchors, torch.tensor([1]), torch.tensor([True]), torch.tensor([5]), queue, 0.5, 0.5)
    expected = -0.5 * ((0 - math.log(1 + 2 * math.exp(-2))) + (-2 - math.log(math.exp(-2) + 2 * math.exp(-2))))
    assert loss.item() == pytest.approx(expected / (1 + 1e-5 / 2), rel=1e-5)


def test_dice_ignores_background_with_the_official_class_weights():
    target = torch.tensor([[[0, 1]]])
    probs = torch.tensor([[[[0.5, 0.0]], [[0.5, 1.0]]]])  # class 1 perfect on pixel 1
    w = torch.tensor([0.0, 1.0])
    d1 = 1 - (2 * 1.0 + 1e-5) / (1.25 + 1 + 1e-5)
    assert weighted_dice_loss(probs, target, w).item() == pytest.approx(d1 / 2, rel=1e-5)


def test_rotation_views_turn_labels_with_images():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 1, 1, 1)
    y = torch.arange(16).view(1, 4, 4).repeat(2, 1, 1)
    xr, yr = rotate_views(x, y, torch.tensor([1, 3]), torch.zeros(2))
    assert torch.equal(xr[0, 0], torch.rot90(x[0, 0], 1)) and torch.equal(xr[1, 0], torch.rot90(x[1, 0], 3))
    assert torch.equal(yr.float(), xr[:, 0])
    xr, yr = rotate_views(x + 5, y + 1, torch.tensor([0, 0]), torch.tensor([45.0, 45.0]))
    assert xr.min() == 5.0 and (yr == 0).any()  # corners: the image minimum and background


def _composed_angles(common_rotation: bool, n: int = 4000) -> torch.Tensor:
    """|total rotation| modulo the rot90 part, in degrees: the engine's common affine (with UGPCL's
    augment override applied) followed by UGPCL's own angle, for n images."""
    m = UGPCL(cfg=build_config(UGPCL.Config, {"common_rotation": common_rotation}),
              net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4), num_classes=4, max_iters=10)
    aug = with_overrides(AugmentConfig(), m.augment_overrides(), "ugpcl")  # the run's default: +-20 degrees
    theta = random_affines(n, 32, 32, aug, torch.Generator().manual_seed(0))
    common = torch.rad2deg(torch.asin(theta[:, 1, 0] * torch.sign(theta[:, 0, 0])))  # (sin fx) fx, cos > 0
    k, own = m.draw_rotations(n, torch.Generator().manual_seed(1), "cpu")
    assert set(k.tolist()) == {0, 1, 2, 3} and own.abs().max() <= 20.0
    return (common + own).abs()


def test_ugpcl_turns_the_common_rotation_off_so_angles_stay_within_20_degrees():
    m = UGPCL(cfg=build_config(UGPCL.Config, {}), net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4),
              num_classes=4, max_iters=10)
    assert m.augment_overrides() == {"rotate_deg": 0.0}
    aug = with_overrides(AugmentConfig(), m.augment_overrides(), "ugpcl")
    assert (aug.rotate_deg, aug.hflip, aug.jitter) == (0.0, 0.5, 0.8)  # the official flip and jitter stay
    angles = _composed_angles(common_rotation=False)
    assert angles.max() <= 20.0 and angles.max() > 19.9  # official: rot90 k + U(-20, 20), nothing else
    # stacked (`common_rotation: true`): a + b with a, b ~ U(-20, 20) exceeds 20 in absolute
    # value with probability 2 * (1/2 * 1/2 * 1/2) = 1/4, up to 40
    stacked = _composed_angles(common_rotation=True)
    assert abs((stacked > 20.0).float().mean().item() - 0.25) < 0.03 and 35.0 < stacked.max() <= 40.0


def test_the_engine_applies_ugpcls_augment_override(tiny_cache, tiny_split, tmp_path):
    from methods.runconfig import parse_run_config
    from methods.training.engine import Trainer

    def trainer(method_config):
        return Trainer(parse_run_config({
            "method": "ugpcl", "method_config": method_config, "seed": 0, "out_dir": str(tmp_path),
            "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom", "ratio": 5,
                     "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 2},
            "network": TINY_NET, "augment": {"rotate_deg": 15.0},
            "train": {"iterations": 2, "device": "cpu", "amp": "off", "progress": False}}))

    official = trainer({"tf_dim": 24, "tf_depth": 1})
    assert official.augment.cfg.rotate_deg == 0.0 and official.meta["augment"]["rotate_deg"] == 0.0
    assert official.config_dict["augment"]["rotate_deg"] == 15.0  # the run config itself is unchanged
    stacked = trainer({"tf_dim": 24, "tf_depth": 1, "common_rotation": True})
    assert stacked.augment.cfg.rotate_deg == 15.0


def test_second_decoder_is_attention_based_and_full_resolution():
    net = NetFactory(NetworkProfile.from_dict(TINY_NET), 4)()
    dec = WindowAttentionDecoder(list(net.encoder.out_channels), 4, dim=12, heads=3, window=7, depth=1, mlp_ratio=2)
    out = dec(net.encoder(torch.randn(2, 1, 40, 40)), (40, 40))
    assert out.shape == (2, 4, 40, 40)
    assert any(isinstance(mod, torch.nn.MultiheadAttention) for mod in dec.modules())


def test_schedules_in_official_iterations():
    m = UGPCL(cfg=build_config(UGPCL.Config, {}), net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4),
              num_classes=4, max_iters=6000)
    assert not m.contrast_active(600) and m.contrast_active(601)  # 601 * 10000 / 6000 >= 1001
    assert m.consistency_weight(6000) == pytest.approx(0.01)
    assert m.consistency_weight(3000) == pytest.approx(0.01 * math.exp(-5 * 0.25))
    m.cfg = build_config(UGPCL.Config, {"schedule": "native"})
    assert not m.contrast_active(1000) and m.contrast_active(1001)
    assert m.eval().predictor()(torch.randn(1, 1, 32, 32)).projection.shape == (1, 256, 4, 4)


def test_ugpcl_trains_on_the_tiny_cache_with_every_loss_finite(tiny_cache, tiny_split, tmp_path):
    rows = train_tiny("ugpcl", {"contrast_start": 0, "tf_dim": 24, "tf_depth": 1, "memory_size": 8},
                      tiny_cache, tiny_split, tmp_path / "run")
    keys = ["loss", "sup", "consistency", "consistency_weight", "rotation", "contrast", "uncertain_ratio"]
    assert_logged_and_finite(rows, keys, 2)
    assert all(float(r["contrast"]) > 0 for r in rows)
