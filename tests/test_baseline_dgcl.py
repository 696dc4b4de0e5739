"""DGCL: kNN density, density top-k selection, entropy dropping, the FIFO memory, a tiny run."""

import math

import torch

from _tiny_run import TINY_NET, assert_logged_and_finite, train_tiny
from baselines._contrast import anchor_infonce
from baselines.dgcl import DGCL, drop_high_entropy, multiscale_density, select_by_density
from methods.api import ConfigError, build_config, list_methods
from methods.nets import NetFactory, NetworkProfile

MEMORY = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])  # normalised: e_x, e_y, e_x, -e_x


def test_density_is_the_mean_over_k_of_the_top_k_cosines():
    # [1, 0] has cosines (1, 0, 1, -1): top-1 mean 1, top-2 mean 1 -> 1.
    # [0, 3] has cosines (0, 1, 0, 0): top-1 mean 1, top-2 mean 0.5 -> 0.75.
    density = multiscale_density(torch.tensor([[1.0, 0.0], [0.0, 3.0]]), MEMORY, (1, 2))
    assert torch.allclose(density, torch.tensor([1.0, 0.75]))


def test_density_k_larger_than_the_memory_uses_every_entry():
    # k = 8 > 4 entries: the top-8 mean is the mean of all four cosines (1 + 0 + 0 + 0) / 4.
    density = multiscale_density(torch.tensor([[0.0, 1.0]]), MEMORY, (1, 8))
    assert torch.allclose(density, torch.tensor([(1.0 + 0.25) / 2]))


def test_lowest_density_anchors_and_highest_density_positives():
    density = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7])
    low, high = select_by_density(density, n_low=2, n_high=1)
    assert sorted(low.tolist()) == [1, 3] and high.tolist() == [2]


def test_fewer_samples_than_k_selects_all_of_them():
    density = torch.tensor([0.5, 0.1, 0.9])
    low, high = select_by_density(density, n_low=200, n_high=50)
    assert sorted(low.tolist()) == [0, 1, 2] and sorted(high.tolist()) == [0, 1, 2]
    low, high = select_by_density(density[:0], n_low=200, n_high=50)
    assert low.numel() == 0 and high.numel() == 0


def test_entropy_percentile_drop():
    ent = torch.arange(10.0)  # the 80th percentile of 0..9 is 7.2
    assert drop_high_entropy(ent, 20.0).nonzero().flatten().tolist() == [8, 9]
    assert drop_high_entropy(ent, 0.0).nonzero().flatten().tolist() == [9]  # the formula's end point


def test_infonce_with_the_positive_first():
    # cosines 1 with the prototype and 0 with the negative, tau 0.5: -log(e^2 / (e^2 + e^0)).
    loss = anchor_infonce(torch.tensor([[3.0, 0.0]]), torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 5.0]]), 0.5)
    assert torch.allclose(loss, torch.tensor([math.log(1 + math.exp(-2.0))]))
    # without negatives the loss is 0 (the prototype is the only candidate)
    assert torch.allclose(anchor_infonce(torch.ones(2, 2), torch.ones(2), torch.zeros(0, 2), 0.5), torch.zeros(2))


def _tiny_dgcl(**overrides) -> DGCL:
    cfg = build_config(DGCL.Config, {"warmup_iters": 0, **overrides})
    return DGCL(cfg=cfg, net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4), num_classes=4, max_iters=10)


def test_memory_is_a_fifo_with_density_once_filled_enough():
    m = _tiny_dgcl(memory_size=4, memory_update_samples=3, memory_density_min=2, density_k=(1, 2))
    d_feat, d_proj = m.mem_feat.shape[-1], m.mem_proj.shape[-1]
    labels = torch.tensor([1, 1, 1, 0])  # three pixels of class 1, one of background

    def push(values):
        feat = torch.zeros(4, d_feat)
        feat[:3, 0] = torch.tensor(values)
        proj = torch.zeros(4, d_proj)
        proj[:3, 0] = torch.tensor(values)
        m.push_to_memory(feat, proj, labels, counts=[1, 3, 0, 0], mem_counts=m.mem_count.tolist())

    push([1.0, 2.0, 3.0])
    assert m.mem_count.tolist() == [1, 3, 0, 0] and m.mem_ptr.tolist() == [1, 3, 0, 0]
    assert sorted(m.mem_proj[1, :3, 0].tolist()) == [1.0, 2.0, 3.0]
    assert m.mem_density[1].tolist() == [0.0] * 4  # pushed into an empty memory
    push([4.0, 5.0, 6.0])
    assert m.mem_count[1].item() == 4 and m.mem_ptr[1].item() == 2
    values = sorted(m.mem_proj[1, :, 0].tolist())
    assert values[1:] == [4.0, 5.0, 6.0] and values[0] in (1.0, 2.0, 3.0)  # the two oldest dropped
    # the memory held 3 > 2 entries: the new ones get their density against 3 equal directions, 1
    new_slots = [i for i in range(4) if m.mem_proj[1, i, 0].item() >= 4.0]
    assert torch.allclose(m.mem_density[1, new_slots], torch.ones(3))


def test_memory_and_sampler_are_in_the_checkpoint():
    m = _tiny_dgcl(memory_size=16, memory_update_samples=8, memory_density_min=16, density_k=(4, 8, 16))
    state = m.state_dict()
    assert {"mem_feat", "mem_proj", "mem_density", "mem_count", "mem_ptr"} <= set(state)
    assert "sampler" in state["_extra_state"]


def test_invalid_settings_are_rejected():
    for bad in ({"memory_size": 8, "density_k": (4, 8, 16)}, {"memory_update_samples": 20000},
                {"conf_threshold": 0.9}, {"memory_density_min": 4}):
        try:
            build_config(DGCL.Config, bad)
        except ConfigError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_dgcl_trains_with_an_active_contrastive_term(tiny_cache, tiny_split, tmp_path):
    assert "dgcl" in list_methods()
    cfg = {"warmup_iters": 0, "memory_size": 16, "memory_update_samples": 16, "memory_density_min": 16,
           "density_k": [4, 8, 16]}
    rows = train_tiny("dgcl", cfg, tiny_cache, tiny_split, tmp_path, iterations=3)
    assert_logged_and_finite(rows, ["loss", "sup", "unsup", "contrast", "memory_fill"], 3)
    assert float(rows[0]["contrast"]) == 0.0  # the memory is empty before the first update
    assert float(rows[-1]["memory_fill"]) == 1.0
    assert float(rows[-1]["contrast"]) > 0.0
