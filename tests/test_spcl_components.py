"""Subclass division operators, the subclass memory bank, and the anchor sampler."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.draw import disk
from skimage.segmentation import find_boundaries

from methods.boundary import thick_boundary
from spcl.boundaries import canny_boundaries, mask2edge_boundaries, subclass_boundaries
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
    assert np.array_equal(thick_boundary(torch.from_numpy(labels)).numpy(), expected)


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
    thick = thick_boundary(labels)[0]
    assert thick[5, 5] and not canny[5, 5]
    square = labels[0] == 1
    square[5, 5] = False
    assert torch.equal(canny & square, thick & square)


def test_one_class_batch_has_no_boundary_and_unknown_operator_is_an_error():
    labels = torch.full((2, 8, 8), 3)
    for op in ("canny", "thick", "mask2edge"):
        assert not subclass_boundaries(labels, 4, op).any()
    with pytest.raises(ValueError, match="boundary operator must be one of"):
        subclass_boundaries(labels, 4, "sobel")


def test_mask2edge_is_opencvs_one_pixel_edge_on_the_lower_index_side():
    # a vertical step, class 0 in columns 0-3, class 1 in columns 4-7: Sobel gives columns 3 and 4
    # the same magnitude; OpenCV's suppression keeps column 3 (the left pixel), for both class masks
    step = torch.zeros(1, 6, 8, dtype=torch.long)
    step[0, :, 4:] = 1
    edge = subclass_boundaries(step, 2, "mask2edge")
    assert edge.dtype == torch.bool and edge.nonzero()[:, 2].unique().tolist() == [3] and edge.sum() == 6
    assert not (edge & (step == 1)).any()  # B_1 is empty along this edge, B_0 is column 3
    flipped = 1 - step  # the same crack with the classes swapped: still column 3, now B_1
    assert torch.equal(subclass_boundaries(flipped, 2, "mask2edge"), edge)
    rows = step.transpose(1, 2).contiguous()  # a horizontal step: row 3
    assert mask2edge_boundaries(rows, 2)[0].nonzero()[:, 0].unique().tolist() == [3]
    # an isolated pixel: its 8 neighbours, not itself (thick: itself + 4 neighbours; canny: nothing)
    dot = torch.zeros(1, 7, 7, dtype=torch.long)
    dot[0, 3, 3] = 1
    ring = torch.zeros(7, 7, dtype=torch.bool)
    ring[2:5, 2:5] = True
    ring[3, 3] = False
    assert torch.equal(mask2edge_boundaries(dot, 2)[0], ring)
    assert thick_boundary(dot).sum() == 5 and not canny_boundaries(dot, 2).any()


def test_mask2edge_misses_a_two_by_two_island_that_thick_outlines():
    # Sobel on a 2x2 block of 255: each block pixel has gx = gy = 3 * 255 (|g|_1 = 1530) and ties
    # with its diagonal partner across the block, which OpenCV's diagonal suppression (strict >)
    # removes; every outside pixel is weaker than the block pixel it faces. No edge survives.
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[0, 2:10, 2:10] = 1
    labels[0, 5:7, 5:7] = 2  # the island, inside class 1
    edge = mask2edge_boundaries(labels, 3)[0]
    assert not edge[4:8, 4:8].any()
    assert thick_boundary(labels)[0, 4:8, 4:8].sum() == 4 + 8  # thick: the island and its 8 4-neighbours
    # the outer square keeps its edge, on the left / upper side of each crack: row 1 and column 1
    # outside the square (class 0), row 9 and column 9 inside it (class 1); corners cut diagonally
    assert edge[1, 3:9].all() and edge[3:9, 1].all() and edge[9, 2:10].all() and edge[2:9, 9].all()
    assert torch.equal(edge, mask2edge_boundaries((labels > 0).long(), 2)[0])  # as if the island were class 1


# ---- memory bank ------------------------------------------------------------------------------------
def test_bank_is_fifo_with_fixed_size_in_the_official_batch_order():
    # official: memory = cat((batch entries in image order, memory))[:size], a list newest first in
    # which image 0 is the newest of its batch. `ordered` lists oldest first, i.e. that list reversed.
    bank = SubclassMemoryBank(num_classes=1, size=3, dim=1)  # subclasses 0 (inner), 1 (boundary)
    value = lambda *v: torch.tensor(v, dtype=torch.float32).view(-1, 1, 1).expand(-1, 2, 1)  # noqa: E731
    bank.push(value(1, 2), torch.tensor([[True, True], [True, False]]))
    assert bank.ordered(0).flatten().tolist() == [2, 1]  # official list [1, 2]
    assert bank.ordered(1).flatten().tolist() == [1]
    assert bank.count.tolist() == [2, 1] and not bank.is_full()
    bank.push(value(3, 4), torch.tensor([[True, True], [True, True]]))
    # cat([3, 4], [1, 2])[:3] = [3, 4, 1]: the window cuts the older batch, whose last image (2) leaves
    assert bank.ordered(0).flatten().tolist() == [1, 4, 3]
    assert bank.ordered(1).flatten().tolist() == [1, 4, 3]  # cat([3, 4], [1]) = [3, 4, 1]
    assert bank.is_full()
    bank.push(value(5, 6, 7, 8, 9), torch.tensor([[True, False]] * 5))  # more than `size` at once
    assert bank.ordered(0).flatten().tolist() == [7, 6, 5]  # cat([5, ..., 9], [3, 4, 1])[:3] = [5, 6, 7]
    assert bank.ordered(1).flatten().tolist() == [1, 4, 3]
    assert bank.valid().all() and bank.features().shape == (2, 3, 1)
    assert bank.is_full(torch.tensor([True, False])) and bank.entries.shape == (2 * 3 + 1, 1)


def test_bank_holds_the_official_lists_entries_after_random_pushes():
    gen = torch.Generator().manual_seed(0)
    bank = SubclassMemoryBank(num_classes=2, size=5, dim=1)
    official = [[] for _ in range(4)]  # per subclass, newest first
    counter = 0
    for _ in range(12):
        b = int(torch.randint(1, 8, (1,), generator=gen))
        present = torch.rand(b, 4, generator=gen) < 0.6
        values = torch.arange(counter, counter + b * 4, dtype=torch.float32).view(b, 4, 1)
        counter += b * 4
        bank.push(values, present)
        for g in range(4):
            new = [values[i, g, 0].item() for i in range(b) if present[i, g]]
            official[g] = (new + official[g])[:5]
    for g in range(4):
        assert bank.ordered(g).flatten().tolist() == official[g][::-1]


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
