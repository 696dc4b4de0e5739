"""BASS: the four regions on a drawn square (and against the official scipy/skimage recipe), the
loss terms on tiny vectors, the sampling quota, the LRD head, a tiny run."""

import math

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from skimage.segmentation import find_boundaries

from _tiny_run import TINY_NET, assert_logged_and_finite, train_tiny
from baselines._contrast import IGNORE, per_group_fraction, query_infonce
from baselines.bass import LowResDenoisingNet, bass_regions, crc_terms, lrd_loss, query_logits
from methods.api import list_methods
from methods.nets import NetFactory, NetworkProfile


def square(size: int = 13, lo: int = 3, hi: int = 10) -> torch.Tensor:
    labels = torch.zeros(1, size, size, dtype=torch.long)
    labels[0, lo:hi, lo:hi] = 1
    return labels


def test_four_regions_of_a_square():
    # 7x7 square in 13x13, radius 2 (offsets closer than 2 = the 3x3 block). The thick edge is
    # the square's outer layer (24) plus its 4-neighbours outside (28).
    r = bass_regions(square(), [1], radius=2.0)
    inner = torch.zeros(13, 13, dtype=torch.bool)
    inner[4:9, 4:9] = True
    inner[5:8, 5:8] = False  # the layer just inside the edge: 5x5 - 3x3 = 16
    assert torch.equal(r.inner[0, 0], inner)
    assert r.easy_fg.sum() == 49 - 16  # the square minus its inner band (edge pixels inside stay)
    # outside: the 11x11 box minus its 4 corners minus the square is within 1 of the edge (68);
    # minus the outer edge (28) leaves the outer band: rows/cols 1 and 11 (4 x 9) + 4 diagonals
    assert r.outer.sum() == 40 and r.outer[0, 0, 1, 2:11].all() and r.outer[0, 0, 2, 2]
    assert r.easy_bg.sum() == 169 - 49 - 68
    assert r.fg.sum() == 49 and r.bg.sum() == 120


def _official_regions(fg: np.ndarray, radius: float):
    """The official recipe: skimage thick boundary, `distance_transform_edt(~edge) < radius`."""
    edge = find_boundaries(fg, mode="thick", connectivity=1)
    near = distance_transform_edt(~edge) < radius
    band = near & ~edge
    return band & fg, band & ~fg, fg & ~band, ~(fg | near)


def test_regions_match_the_official_recipe_on_random_blobs():
    gen = torch.Generator().manual_seed(0)
    labels = (torch.rand(3, 24, 24, generator=gen) > 0.5).long()
    labels = torch.nn.functional.avg_pool2d(labels[:, None].float(), 5, 1, 2)[:, 0].gt(0.5).long()  # blobs
    for radius in (2.0, 3.0, 4.0):
        r = bass_regions(labels, [1], radius)
        for b in range(labels.shape[0]):
            fg = labels[b].numpy() == 1
            for ours, theirs in zip((r.inner, r.outer, r.easy_fg, r.easy_bg), _official_regions(fg, radius)):
                assert np.array_equal(ours[b, 0].numpy(), theirs), f"radius {radius}, image {b}"


def test_ignored_pixels_are_in_no_region():
    labels = square()
    labels[0, 0, 0] = IGNORE
    labels[0, 6, 6] = IGNORE
    r = bass_regions(labels, [1], 2.0)
    for region in r:
        assert not region[0, 0, 0, 0] and not region[0, 0, 6, 6]


def test_query_infonce_on_tiny_vectors():
    # one query; logits (2, 1) for two positive keys, (0) for one negative
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    pos = torch.tensor([[True, True, False]])
    loss = query_infonce(logits, pos, logits, ~pos)
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert torch.allclose(loss, torch.tensor([expected]))
    # no positive key: 0; no negative key: 0 (-log 1)
    assert query_infonce(logits, torch.zeros_like(pos), logits, ~pos).item() == 0.0
    assert query_infonce(logits, pos, logits, torch.zeros_like(pos)).abs().item() < 1e-6


def test_four_terms_and_their_temperatures():
    sim_fg = torch.tensor([[1.0, 0.5, 0.0, -1.0]])
    sim_bg = torch.tensor([[-1.0, 0.25, -0.5, 1.0]])
    keys = {"easy_fg": torch.tensor([[True, False, False, False]]), "inner": torch.tensor([[False, True, False, False]]),
            "outer": torch.tensor([[False, False, True, False]]), "easy_bg": torch.tensor([[False, False, False, True]])}
    t = crc_terms(sim_fg, sim_bg, keys, tau_easy=0.5, tau_hard=1.0, quirks=False)
    assert torch.allclose(t["fg_easy"], torch.tensor([math.log(1 + math.exp(-4.0))]))  # (1 - (-1)) / 0.5
    assert torch.allclose(t["fg_hard"], torch.tensor([math.log(1 + math.exp(-0.5))]))  # (0.5 - 0) / 1
    assert torch.allclose(t["bg_easy"], torch.tensor([math.log(1 + math.exp(-4.0))]))  # (1 - (-1)) / 0.5
    assert torch.allclose(t["bg_hard"], torch.tensor([math.log(1 + math.exp(0.75))]))  # (-0.5 - 0.25) / 1
    # the code's quirk: the positive's denominator term has no temperature
    q = crc_terms(sim_fg, sim_bg, keys, tau_easy=0.5, tau_hard=1.0, quirks=True)
    assert torch.allclose(q["fg_easy"], torch.tensor([-(2.0 - math.log(math.exp(1.0) + math.exp(-2.0)))]))


def test_query_cosines_plain_and_centred():
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]]).T.reshape(1, 2, 1, 3)
    q = torch.tensor([[1.0, 0.0]])
    assert torch.allclose(query_logits(q, emb, centred=False).flatten(), torch.tensor([1.0, 0.0, -1.0]))
    # centred: cos(q, k - q); k = (0, 2) gives k - q = (-1, 2): -1 / sqrt(5); k = (-1, 0): -1
    centred = query_logits(q, emb, centred=True).flatten()
    assert torch.allclose(centred[1:], torch.tensor([-1 / math.sqrt(5.0), -1.0]))


def test_sampling_quota_is_ceil_fraction_with_a_cap():
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[0, :10] = True
    mask[1, 5:8] = True
    mask[2, :] = True
    kept = per_group_fraction(mask, 0.7, cap=10, generator=torch.Generator().manual_seed(0))
    assert kept.sum(1).tolist() == [7, 3, 10]  # ceil(7.0), ceil(2.1), min(ceil(14), 10)
    assert not (kept & ~mask).any()


def test_lrd_head_starts_as_the_plain_network_and_downweights_boundaries():
    torch.manual_seed(0)
    net = NetFactory(NetworkProfile.from_dict(TINY_NET), 4)().eval()
    wrapped = LowResDenoisingNet(net, 4, stride=4).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        plain, fused = net(x), wrapped(x)
    assert torch.allclose(plain.logits, fused.logits, atol=1e-6)
    assert wrapped.coarse_logits.shape == (2, 4, 8, 8)

    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :, 2:] = 1  # boundary (thick) = columns 1 and 2
    logits = torch.zeros(1, 2, 4, 4)
    logits[:, 0] = 3.0  # predicts class 0 everywhere: CE 0-ish on class 0, softplus(3) on class 1
    ce1, ce0 = math.log(1 + math.exp(3.0)), math.log(1 + math.exp(-3.0))
    expected = (4 * ce0 + 4 * 0.5 * ce0 + 4 * 0.5 * ce1 + 4 * ce1) / (4 + 2 + 2 + 4)
    assert torch.allclose(lrd_loss(logits, labels, 2, boundary_weight=0.5), torch.tensor(expected))


def test_bass_trains_with_an_active_contrastive_term(tiny_cache, tiny_split, tmp_path):
    assert "bass" in list_methods()
    rows = train_tiny("bass", {"warmup_iters": 0, "lrd": True}, tiny_cache, tiny_split, tmp_path, iterations=2)
    assert_logged_and_finite(rows, ["loss", "sup", "unsup", "contrast", "lrd"], 2)
    assert all(float(r["contrast"]) > 0.0 and float(r["contrast_classes"]) >= 1 for r in rows)
