"""ABD: patch bookkeeping of ABD-I / ABD-R on a numbered 4x4 grid, the strong view, a tiny run."""

import math

import pytest
import torch

from _tiny_run import assert_logged_and_finite, train_tiny
from baselines._views import abd_strong_view, cutout_boxes
from baselines.abd import ABD, abd_i, abd_r, from_patches, patch_means, to_patches


def numbered(offset: int, size: int = 8, grid: int = 4) -> torch.Tensor:
    """[1, S, S]: every pixel of patch k (row-major on the grid) holds offset + k."""
    p = size // grid
    k = torch.arange(grid * grid).view(grid, grid) + offset
    return k.repeat_interleave(p, 0).repeat_interleave(p, 1)[None]


def patch_values(t: torch.Tensor, grid: int = 4) -> list[int]:
    """The value of each patch of a numbered [1, S, S] map (asserting patches are uniform)."""
    patches = to_patches(t, grid)[0]
    assert torch.all(patches == patches[:, :1, :1]), "a patch is not uniform"
    return patches[:, 0, 0].tolist()


def conf_with(high: int, low: int, size: int = 8, grid: int = 4, others: float = 0.5) -> torch.Tensor:
    vals = torch.full((grid * grid,), others)
    vals[high], vals[low] = 1.0, 0.0
    return from_patches(vals.view(1, grid * grid, 1, 1).expand(1, grid * grid, size // grid, size // grid),
                        torch.zeros(1, size, size), grid)


def test_patch_grid_is_row_major_and_round_trips_with_a_border():
    x = torch.arange(81.0).view(1, 1, 9, 9)  # 9 = 4 patches of 2 + 1 leftover row/column
    patches = to_patches(x, 4)
    assert patches.shape == (1, 16, 1, 2, 2)
    assert patches[0, 1, 0].tolist() == [[2.0, 3.0], [11.0, 12.0]]  # patch (row 0, col 1)
    assert patches[0, 4, 0].tolist() == [[18.0, 19.0], [27.0, 28.0]]  # patch (row 1, col 0)
    assert torch.equal(from_patches(patches, x, 4), x)
    assert patch_means(numbered(0).float(), 4)[0].tolist() == [float(k) for k in range(16)]


def test_abd_i_swaps_most_and_least_confident_patches_and_labels_follow():
    x_w, x_s = numbered(0)[:, None].float(), numbered(100)[:, None].float()
    y_w, y_s = numbered(0), numbered(100)
    conf_w = conf_with(high=5, low=10)  # e = 5, f = 10
    conf_s = conf_with(high=3, low=12)  # g = 3, h = 12
    images, labels = abd_i(x_w, x_s, y_w, y_s, conf_w, conf_s, torch.tensor([True]), 4)
    weak, strong = patch_values(images[0, 0].long()[None]), patch_values(images[1, 0].long()[None])
    expected_weak = list(range(16))
    expected_weak[5] = 112  # weak's most confident <- strong's least confident
    expected_strong = [100 + k for k in range(16)]
    expected_strong[3] = 10  # strong's most confident <- weak's least confident
    assert weak == expected_weak and strong == expected_strong
    assert patch_values(labels[0:1]) == expected_weak and patch_values(labels[1:2]) == expected_strong

    images, labels = abd_i(x_w, x_s, y_w, y_s, conf_w, conf_s, torch.tensor([False]), 4)
    assert torch.equal(images, torch.cat([x_w, x_s])) and torch.equal(labels, torch.cat([y_w, y_s]))


def test_abd_i_second_write_reads_the_already_displaced_weak_image():
    """Uniform weak confidence: e = f = patch 0, so strong[g] receives what weak[0] just got."""
    x_w, x_s = numbered(0)[:, None].float(), numbered(100)[:, None].float()
    flat = torch.full((1, 8, 8), 0.5)
    images, labels = abd_i(x_w, x_s, numbered(0), numbered(100), flat, conf_with(high=3, low=12),
                           torch.tensor([True]), 4)
    assert patch_values(images[0, 0].long()[None])[0] == 112
    assert patch_values(images[1, 0].long()[None])[3] == 112
    assert patch_values(labels[1:2])[3] == 112


def test_abd_r_picks_the_kl_closest_confident_patch():
    x_w, x_s = numbered(0)[:, None].float(), numbered(100)[:, None].float()
    top = {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.6}
    cw = torch.full((16,), 0.5)
    cw[10] = 0.1  # b = 10
    for k, v in top.items():
        cw[k] = v  # weak top-4: 0, 1, 2, 3
    cs = torch.full((16,), 0.5)
    cs[12] = 0.1  # d = 12
    for k in (4, 5, 6, 7):
        cs[k] = 0.9 - 0.05 * (k - 4)  # strong top-4: 4, 5, 6, 7

    def as_map(v):
        return from_patches(v.view(1, 16, 1, 1).expand(1, 16, 2, 2), torch.zeros(1, 8, 8), 4)

    lw, ls = torch.zeros(16, 2), torch.zeros(16, 2)
    ls[12] = torch.tensor([2.0, 0.0])  # strong patch d ...
    lw[2] = torch.tensor([2.0, 0.0])  # ... matches weak candidate 2 exactly (KL 0): a_ori = 2
    lw[10] = torch.tensor([0.0, 3.0])  # weak patch b ...
    ls[6] = torch.tensor([0.0, 3.0])  # ... matches strong candidate 6: c_ori = 6

    def logits(table):
        return from_patches(table.view(1, 16, 2, 1, 1).expand(1, 16, 2, 2, 2), torch.zeros(1, 2, 8, 8), 4)

    assert patch_means(logits(lw), 4)[0, 10].tolist() == [0.0, 3.0]
    out = abd_r(x_w, x_s, as_map(cw), as_map(cs), logits(lw), logits(ls), grid=4, top_num=4)
    weak, strong = patch_values(out[0, 0].long()[None]), patch_values(out[1, 0].long()[None])
    expected_weak = list(range(16))
    expected_weak[10] = 106  # weak's least confident <- strong candidate closest to it
    expected_strong = [100 + k for k in range(16)]
    expected_strong[12] = 2  # strong's least confident <- weak candidate closest to it
    assert weak == expected_weak and strong == expected_strong


def test_strong_view_cutout_relabels_its_box_as_background():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 32, 32) * 4 - 1
    y = torch.randint(1, 4, (6, 32, 32))
    x_s, y_s = abd_strong_view(x, y, g, cutout_p=1.0)
    box = y_s == 0  # labels were all foreground, so the background is exactly the box
    assert box.any(dim=(1, 2)).all()
    assert torch.equal(y_s[~box], y[~box])
    for i in range(6):  # each box is one rectangle of 2% to 40% of the image
        rows, cols = box[i].any(1).nonzero(), box[i].any(0).nonzero()
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert area == box[i].sum() and 0.01 * 32 * 32 <= area <= 0.4 * 32 * 32
    assert x_s.shape == x.shape and torch.isfinite(x_s).all()


def test_cutout_boxes_fit_inside_the_image():
    mask, found = cutout_boxes(200, 16, 24, torch.Generator().manual_seed(0), "cpu")
    assert found.all() and mask.any(dim=(1, 2)).all()
    assert mask.flatten(1).sum(1).max() <= 0.4 * 16 * 24


def test_abd_trains_on_the_tiny_cache_with_every_loss_finite(tiny_cache, tiny_split, tmp_path):
    rows = train_tiny("abd", {}, tiny_cache, tiny_split, tmp_path / "run")
    keys = ["loss", "sup1", "sup2", "abd_i1", "abd_i2", "cps1", "cps2", "abd_r1", "abd_r2", "cross_weight"]
    assert_logged_and_finite(rows, keys, 2)
    assert all(float(r["abd_i1"]) > 0 and float(r["abd_r1"]) > 0 for r in rows)


def test_abd_schedules_map_official_iterations_to_the_budget():
    cfg = ABD.Config()
    m = ABD.__new__(ABD)  # the schedule needs only cfg and max_iters
    m.cfg, m.max_iters = cfg, 6000
    assert m.official_time(3000) == 15000 and m.abd_i_active(4000) and not m.abd_i_active(4001)
    assert m.cross_weight(6000) == pytest.approx(0.1)
    assert m.cross_weight(3000) == pytest.approx(0.1 * math.exp(-5 * (1 - 100 / 200) ** 2))
    m.cfg = ABD.Config(schedule="native")
    assert m.official_time(3000) == 3000 and m.abd_i_active(6000)


@pytest.mark.parametrize("name", ["ugpcl", "admt", "abd"])
def test_listed_and_native_schedule_is_a_valid_run_config(name, tiny_cache, tiny_split):
    from methods.__main__ import format_methods
    from methods.api import get_method, resolve_variant
    from methods.runconfig import parse_run_config

    assert any(line.startswith(name + " ") for line in format_methods().splitlines())
    cls = get_method(name)
    over = cls.NATIVE_SCHEDULE.run_overrides()
    cfg = parse_run_config({"method": name, "out_dir": "unused", **over,
                            "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom",
                                     **over["data"]}})
    assert cfg.train.iterations == cls.NATIVE_SCHEDULE.iterations
    assert resolve_variant(cls, cfg.variant).schedule == "native"
