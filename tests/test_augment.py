"""Common augmentation: geometry of the affine warp, label safety, seeding."""

import math

import torch

import pytest

from methods.api import ConfigError
from methods.augment import (
    AugmentConfig,
    CommonAugment,
    flip_only,
    grey_jitter,
    random_affines,
    random_jitter,
    warp,
    with_overrides,
)


def _labels(b=3, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (b, h, w), generator=g)


def _theta(rows):
    return torch.tensor(rows, dtype=torch.float32).expand(2, 2, 3).clone()


def test_identity_affine_returns_the_input():
    y = _labels(2)
    x = torch.randn(2, 1, 16, 16)
    x_out, y_out = warp(x, y, _theta([[1, 0, 0], [0, 1, 0]]))
    assert torch.equal(y_out, y)
    assert torch.allclose(x_out, x, atol=1e-5)


def test_zero_degree_rotation_without_flips_or_jitter_is_the_identity():
    x, y = torch.randn(4, 1, 12, 12), _labels(4, 12, 12)
    aug = CommonAugment(AugmentConfig(rotate_deg=0.0, hflip=0.0, vflip=0.0, jitter=0.0), torch.Generator().manual_seed(1))
    x_out, y_out = aug(x, y)
    assert torch.equal(x_out, x) and torch.equal(y_out, y)


def test_a_flip_is_a_mirror_and_flipping_twice_is_the_identity():
    x, y = torch.randn(2, 1, 10, 14), _labels(2, 10, 14)
    aug = CommonAugment(AugmentConfig(rotate_deg=0.0, hflip=1.0, vflip=1.0, jitter=0.0), torch.Generator().manual_seed(3))
    x1, y1 = aug(x, y)
    assert torch.equal(y1, torch.flip(y, dims=(-2, -1)))
    assert torch.allclose(x1, torch.flip(x, dims=(-2, -1)), atol=1e-5)
    x2, y2 = aug(x1, y1)
    assert torch.equal(y2, y) and torch.allclose(x2, x, atol=1e-5)


def test_without_rotation_flips_are_exact_index_reversals_equal_to_the_warp():
    x, y = torch.randn(8, 1, 10, 14), _labels(8, 10, 14)
    cfg = AugmentConfig(rotate_deg=0.0, hflip=0.5, vflip=0.5, jitter=0.0)
    theta = random_affines(8, 10, 14, cfg, torch.Generator().manual_seed(4))
    x_f, y_f = CommonAugment(cfg, torch.Generator().manual_seed(4))(x, y)  # same draws as `theta`
    for i in range(8):
        dims = [d for d, flipped in ((-1, theta[i, 0, 0] < 0), (-2, theta[i, 1, 1] < 0)) if flipped]
        assert torch.equal(x_f[i], x[i].flip(dims) if dims else x[i])  # bit-exact: no resampling
        assert torch.equal(y_f[i], y[i].flip(dims) if dims else y[i])
    assert {tuple(t) for t in theta[:, [0, 1], [0, 1]].tolist()} == {(1, 1), (-1, 1), (1, -1), (-1, -1)}  # all four cases
    x_w, y_w = warp(x, y, theta)  # the resampling path computes the same transform (to rounding)
    assert torch.equal(y_w, y_f) and torch.allclose(x_w, x_f, atol=1e-5)
    assert torch.equal(flip_only(x, None, theta)[0], x_f)


def test_a_methods_overrides_replace_fields_and_unknown_keys_are_errors():
    cfg = AugmentConfig(rotate_deg=15.0, hflip=0.25)
    out = with_overrides(cfg, {"rotate_deg": 0}, "method 'ugpcl'")
    assert (out.rotate_deg, out.hflip, out.jitter) == (0.0, 0.25, 0.8) and cfg.rotate_deg == 15.0
    assert with_overrides(cfg, {}) is cfg
    with pytest.raises(ConfigError, match="method 'x': augment_overrides has unknown key.*rotation"):
        with_overrides(cfg, {"rotation": 0.0}, "method 'x'")
    with pytest.raises(ConfigError, match="hflip must be a probability"):
        with_overrides(cfg, {"hflip": 2.0}, "method 'x'")


def test_image_and_label_rotate_together_like_rot90():
    """A 90-degree affine maps pixel centres onto pixel centres: both outputs equal rot90."""
    y = _labels(2, 8, 8)
    x = torch.randn(2, 1, 8, 8)
    x_out, y_out = warp(x, y, _theta([[0, -1, 0], [1, 0, 0]]))
    k = 1 if torch.equal(y_out, torch.rot90(y, 1, (-2, -1))) else -1
    assert torch.equal(y_out, torch.rot90(y, k, (-2, -1)))
    assert torch.allclose(x_out, torch.rot90(x, k, (-2, -1)), atol=1e-5)


def test_rotated_labels_stay_in_the_label_set_and_corners_are_zero_filled():
    y = torch.full((8, 32, 32), 3, dtype=torch.long)
    y[:, :16] = 2
    x = torch.ones(8, 1, 32, 32)
    aug = CommonAugment(AugmentConfig(rotate_deg=20.0, hflip=0.5), torch.Generator().manual_seed(0))
    x_out, y_out = aug(x, y)
    assert set(torch.unique(y_out).tolist()) <= {0, 2, 3}
    assert y_out.dtype == torch.long and x_out.shape == x.shape
    # at least one image is rotated by > 2 degrees, so some corner is outside the source: zero fill
    assert (y_out[:, 0, 0] == 0).any() and (x_out[:, 0, 0, 0] == 0).any()


def test_angles_stay_within_the_range_and_flips_follow_their_probability():
    cfg = AugmentConfig(rotate_deg=20.0, hflip=0.5, vflip=0.0)
    theta = random_affines(2000, 64, 64, cfg, torch.Generator().manual_seed(0)).double()
    sign_x = torch.sign(theta[:, 0, 0])  # cos > 0 for |angle| <= 20 deg, so the sign is the flip
    angles = torch.rad2deg(torch.asin(theta[:, 1, 0] * sign_x))
    assert angles.abs().max() <= 20.0 + 1e-4 and angles.abs().max() > 19.0
    assert 900 < int((sign_x < 0).sum()) < 1100  # hflip 0.5 of 2000 draws
    assert bool((theta[:, 1, 1] > 0).all())  # vflip 0: never flipped vertically
    assert math.isclose(float(theta[:, 0, 2].abs().max()), 0.0)


def test_the_same_generator_state_gives_the_same_augmentation():
    x, y = torch.randn(4, 1, 16, 16), _labels(4)
    a = CommonAugment(AugmentConfig(), torch.Generator().manual_seed(5))
    b = CommonAugment(AugmentConfig(), torch.Generator().manual_seed(5))
    (xa, ya), (xb, yb) = a(x, y), b(x, y)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    xc, _ = a(x, y)  # the generator advanced: a different draw
    assert not torch.equal(xc, xa)


def test_an_empty_batch_passes_through():
    x = torch.zeros(0, 1, 8, 8)
    aug = CommonAugment(AugmentConfig(), torch.Generator().manual_seed(0))
    assert aug(x)[0].shape == (0, 1, 8, 8)


def test_grey_jitter_by_hand_in_both_orders():
    x = torch.tensor([0.2, 0.6]).view(1, 1, 1, 2)
    fb, fc = torch.full((1, 1, 1, 1), 2.0), torch.full((1, 1, 1, 1), 0.5)
    # brightness first: [0.4, 1.2 -> 1.0]; contrast 0.5 towards their mean 0.7: [0.55, 0.85]
    out = grey_jitter(x, fb, fc, torch.ones(1, 1, 1, 1, dtype=torch.bool))
    assert torch.allclose(out.flatten(), torch.tensor([0.55, 0.85]))
    # contrast first: towards 0.4 -> [0.3, 0.5]; then x2: [0.6, 1.0]
    out = grey_jitter(x, fb, fc, torch.zeros(1, 1, 1, 1, dtype=torch.bool))
    assert torch.allclose(out.flatten(), torch.tensor([0.6, 1.0]))


def test_jitter_follows_its_probability_and_range():
    cfg = AugmentConfig(jitter=0.8, brightness=0.4, contrast=0.4)
    fb, fc, _ = random_jitter(20000, cfg, torch.Generator().manual_seed(0), "cpu")
    applied = fb.flatten() != 1.0
    assert applied.float().mean().item() == pytest.approx(0.8, abs=0.015)
    assert torch.equal(applied, fc.flatten() != 1.0)  # one decision for both factors
    assert fb.min() >= 0.6 and fb.max() <= 1.4 and fc.min() >= 0.6 and fc.max() <= 1.4


def test_jitter_changes_images_only_and_off_draws_nothing():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (3, 8, 8), generator=torch.Generator().manual_seed(2))
    only_jitter = AugmentConfig(rotate_deg=0.0, hflip=0.0, jitter=1.0)
    x_out, y_out = CommonAugment(only_jitter, torch.Generator().manual_seed(0))(x, y)
    assert torch.equal(y_out, y) and not torch.allclose(x_out, x)
    # jitter = 0 draws nothing: exactly the geometric augmentation, whatever the strengths
    cfg = AugmentConfig(jitter=0.0, brightness=0.9, contrast=0.1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = CommonAugment(cfg, g1)(x, y)
    b = warp(x, y, random_affines(3, 8, 8, cfg, g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(g1.get_state(), g2.get_state())
