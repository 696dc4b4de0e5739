"""Subclass division operators, the subclass memory bank, and the anchor sampler."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.draw import disk
from skimage.segmentation import find_boundaries

from spcl.boundaries import canny_boundaries, subclass_boundaries, thick_boundaries
from spcl.memory import SubclassMemoryBank, subclass_centroids
from spcl.sampling import (
    entropy_keep_fraction,
    hard_mask,
    confident_pseudo_labels,
    low_entropy_pseudo_labels,
    sample_per_group,
)


# ---- boundaries -------------------------------------------------------------------------------------
def random_label_maps(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = rng.integers(0, 4, size=(3, 17, 23))  # salt-and-pepper: many tiny regions
    blobs = np.zeros((3, 17, 23), np.int64)
    for b in range(3):
        for c in (1, 2, 3):
            rr, cc = disk(rng.uniform(0, 17, 2), rng.uniform(2, 8), shape=(17, 23))
            blobs[b, rr, cc] = c
    return np.concatenate([maps, blobs])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thick_equals_skimage_find_boundaries(seed):
    labels = random_label_maps(seed)
    expected = np.stack([find_boundaries(m, mode="thick") for m in labels])
    assert np.array_equal(thick_boundaries(torch.from_numpy(labels)).numpy(), expected)


def inner_rings(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class pixels with a 4-neighbour / an 8-neighbour outside the class (image border excluded)."""
    m = torch.from_numpy(mask)[None, None].float()
    out4 = torch.zeros_like(m, dtype=torch.bool)
    pad = F.pad(1 - m, (1, 1, 1, 1), mode="replicate")[0, 0]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out4 |= pad[dy:dy + mask.shape[0], dx:dx + mask.shape[1]] > 0
    out8 = F.max_pool2d(F.pad(1 - m, (1, 1, 1, 1), mode="replicate"), 3, 1) > 0
    return mask & out4[0, 0].numpy(), mask & out8[0, 0].numpy()


@pytest.mark.parametrize("radius", [2.5, 5.2, 9.7, 14.1])
def test_canny_gives_a_closed_one_pixel_contour_on_a_disc(radius):
    mask = np.zeros((40, 40), bool)
    rr, cc = disk((19.3, 20.6), radius, shape=mask.shape)
    mask[rr, cc] = True
    edge = canny_boundaries(torch.from_numpy(mask.astype(np.int64))[None], 2)[0].numpy()
    b_disc = edge & mask  # B_c of the disc class
    ring4, ring8 = inner_rings(mask)
    assert b_disc.any()
    assert not (ring4 & ~b_disc).any(), "closed: every disc pixel next to the outside is a boundary pixel"
    assert not (b_disc & ~ring8).any(), "one pixel thick: every boundary pixel touches the outside"
    inner = mask & ~b_disc
    assert inner.sum() == mask.sum() - b_disc.sum() and not (inner & ring4).any()


def test_canny_drops_isolated_weak_structures_that_thick_keeps():
    labels = torch.zeros(1, 20, 20, dtype=torch.long)
    labels[0, 5, 5] = 1  # an isolated pixel (edge strength 0.06 < 0.1)
    labels[0, 12:18, 12:18] = 1  # a 6x6 square (strength ~0.4: strong)
    canny = canny_boundaries(labels, 2)[0]
    thick = thick_boundaries(labels)[0]
    assert thick[5, 5] and not canny[5, 5]
    square = labels[0] == 1
    square[5, 5] = False
    assert torch.equal(canny & square, thick & square)


def test_one_class_batch_has_no_boundary_and_unknown_operator_is_an_error():
    labels = torch.full((2, 8, 8), 3)
    for op in ("canny", "thick"):
        assert not subclass_boundaries(labels, 4, op).any()
    with pytest.raises(ValueError, match="boundary operator must be one of"):
        subclass_boundaries(labels, 4, "sobel")


# ---- memory bank ------------------------------------------------------------------------------------
def test_bank_is_fifo_with_fixed_size():
    bank = SubclassMemoryBank(num_classes=1, size=3, dim=1)  # subclasses 0 (inner), 1 (boundary)
    value = lambda *v: torch.tensor(v, dtype=torch.float32).view(-1, 1, 1).expand(-1, 2, 1)  # noqa: E731
    bank.push(value(1, 2), torch.tensor([[True, True], [True, False]]))
    assert bank.ordered(0).flatten().tolist() == [1, 2]
    assert bank.ordered(1).flatten().tolist() == [1]
    assert bank.count.tolist() == [2, 1] and not bank.is_full()
    bank.push(value(3, 4), torch.tensor([[True, True], [True, True]]))
    assert bank.ordered(0).flatten().tolist() == [2, 3, 4]  # 1, the oldest, left
    assert bank.ordered(1).flatten().tolist() == [1, 3, 4]
    assert bank.is_full()
    bank.push(value(5, 6, 7, 8, 9), torch.tensor([[True, False]] * 5))  # more than `size` at once
    assert bank.ordered(0).flatten().tolist() == [7, 8, 9]
    assert bank.ordered(1).flatten().tolist() == [1, 3, 4]
    assert bank.valid().all() and bank.features().shape == (2, 3, 1)
    assert bank.is_full(torch.tensor([True, False])) and bank.entries.shape == (2 * 3 + 1, 1)


def test_bank_gate_only_counts_the_selected_subclasses():
    bank = SubclassMemoryBank(num_classes=2, size=1, dim=2)
    present = torch.tensor([[False, False, True, True]])
    bank.push(torch.ones(1, 4, 2), present)
    assert not bank.is_full()
    assert bank.is_full(torch.tensor([False, False, True, True]))  # background excluded


def test_centroids_are_normalised_means_of_raw_features():
    features = torch.tensor([[[[3.0, 1.0], [0.0, 5.0]], [[0.0, 1.0], [4.0, 5.0]]]])  # [1, D=2, 2, 2]
    subclass = torch.tensor([[[0, 0], [-1, 3]]])  # pixel (1, 0) unreliable
    centroids, present = subclass_centroids(features, subclass, 4)
    assert present.tolist() == [[True, False, False, True]]
    mean = torch.tensor([2.0, 0.5])  # mean of (3, 0) and (1, 1)
    assert torch.allclose(centroids[0, 0], mean / mean.norm())
    assert torch.allclose(centroids[0, 3], torch.tensor([1.0, 1.0]) / 2**0.5)


# ---- sampling ---------------------------------------------------------------------------------------
def test_threshold_logic_of_hard_and_reliable_pixels():
    conf = torch.tensor([0.5, 0.75, 0.76])
    assert hard_mask(conf, 0.75).tolist() == [True, True, False]  # paper: <=
    assert hard_mask(conf, 0.75, strict=True).tolist() == [True, False, False]  # official: <
    prob = torch.tensor([[0.95, 0.9, 0.2], [0.05, 0.1, 0.8]]).view(1, 2, 1, 3)
    assert confident_pseudo_labels(prob.max(1).values, 0.95).tolist() == [[[True, False, False]]]  # >=
    # entropy: the most certain pixel (0.95/0.05) has the lowest entropy; keep fraction 0.5 keeps it
    assert low_entropy_pseudo_labels(prob, 0.5).tolist() == [[[True, False, False]]]
    assert low_entropy_pseudo_labels(prob, 0.9).tolist() == [[[True, True, False]]]


def test_entropy_keep_fraction_follows_the_official_schedule():
    assert entropy_keep_fraction(0.0) == pytest.approx(0.2)
    assert entropy_keep_fraction(0.5) == pytest.approx(0.6)
    assert entropy_keep_fraction(0.875) == pytest.approx(0.9)
    assert entropy_keep_fraction(1.0) == pytest.approx(0.9)


def test_sampler_takes_min_k_n_distinct_members_per_group():
    group = torch.tensor([-1, 0, 0, 1, 2, 0, -1, 2, 2, 2, 0, 0])
    index, valid = sample_per_group(group, 4, 3, torch.Generator().manual_seed(1))
    assert valid.sum(1).tolist() == [3, 1, 3, 0]  # groups of size 5, 1, 4, 0
    for g in range(4):
        chosen = index[g][valid[g]]
        assert (group[chosen] == g).all() and len(set(chosen.tolist())) == len(chosen)


def test_sampler_is_uniform_over_a_group():
    group = torch.tensor([0] * 6 + [1] * 2)
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(8)
    for _ in range(600):
        index, valid = sample_per_group(group, 2, 2, gen)
        counts[index[0][valid[0]]] += 1
    assert counts[6:].sum() == 0
    assert torch.allclose(counts[:6] / 600, torch.full((6,), 2 / 6), atol=0.07)  # each chosen w.p. k/n
