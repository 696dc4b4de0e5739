"""BASS: the edge operators on one-pixel structures, the four regions on a drawn square (and
against the official recipe), the loss terms on tiny vectors, the default weight and the
`official` variant by hand, the sampling quota, the LRD head, a tiny run."""

import math

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from skimage.segmentation import find_boundaries

from _tiny_run import TINY_NET, assert_logged_and_finite, train_tiny
from baselines._contrast import IGNORE, gradient_edge, mask_edge, per_group_fraction, query_infonce
from methods.boundary import thick_boundary
from baselines.bass import BASS, LowResDenoisingNet, bass_regions, crc_terms, lrd_loss, query_logits
from methods.api import ConfigError, list_methods, resolve_variant
from methods.nets import NetFactory, NetworkProfile


def square(size: int = 13, lo: int = 3, hi: int = 10) -> torch.Tensor:
    labels = torch.zeros(1, size, size, dtype=torch.long)
    labels[0, lo:hi, lo:hi] = 1
    return labels


def test_seg2edge_differs_from_thick_only_on_one_pixel_structures():
    line = torch.zeros(5, 7, dtype=torch.bool)
    line[:, 3] = True  # a one-pixel-wide vertical line
    # np.gradient along a row: (m[x+1] - m[x-1]) / 2 is 0 on the line itself, +-1/2 on its flanks
    assert gradient_edge(line).nonzero()[:, 1].unique().tolist() == [2, 4]
    assert thick_boundary(line).nonzero()[:, 1].unique().tolist() == [2, 3, 4]
    band = torch.zeros(5, 7, dtype=torch.bool)
    band[:, 3:5] = True  # two pixels wide: both operators give columns 2-5
    assert torch.equal(gradient_edge(band), thick_boundary(band))
    assert gradient_edge(band).nonzero()[:, 1].unique().tolist() == [2, 3, 4, 5]
    border = torch.zeros(5, 7, dtype=torch.bool)
    border[:, 0] = True  # at the border np.gradient is one-sided: m[1] - m[0]
    assert gradient_edge(border).nonzero()[:, 1].unique().tolist() == [0, 1]
    dot = torch.zeros(5, 5, dtype=torch.bool)
    dot[2, 2] = True  # a single pixel: its 4 neighbours, not itself
    assert gradient_edge(dot).sum() == 4 and not gradient_edge(dot)[2, 2] and thick_boundary(dot).sum() == 5


def test_seg2edge_is_the_nonzero_numpy_gradient():
    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(6, 9, 11, generator=gen) > 0.6
    for m in masks:
        gy, gx = np.gradient(m.numpy().astype(np.float32))
        assert np.array_equal(gradient_edge(m).numpy(), np.sqrt(gy**2 + gx**2) != 0)
    with np.testing.assert_raises(ValueError):
        mask_edge(masks, "canny")


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


def _official_regions(fg: np.ndarray, radius: float, edge_operator: str = "seg2edge"):
    """The official recipe: vlkit's seg2edge (np.gradient != 0), `distance_transform_edt(~edge) <
    radius`; or skimage's thick boundary for `edge_operator="thick"`."""
    if edge_operator == "seg2edge":
        gy, gx = np.gradient(fg.astype(np.float32))
        edge = np.sqrt(gy**2 + gx**2) != 0
    else:
        edge = find_boundaries(fg, mode="thick", connectivity=1)
    near = distance_transform_edt(~edge) < radius
    band = near & ~edge
    return band & fg, band & ~fg, fg & ~band, ~(fg | near)


def test_regions_match_the_official_recipe_on_random_blobs():
    gen = torch.Generator().manual_seed(0)
    labels = (torch.rand(3, 24, 24, generator=gen) > 0.5).long()
    labels = torch.nn.functional.avg_pool2d(labels[:, None].float(), 5, 1, 2)[:, 0].gt(0.5).long()  # blobs
    labels[0, 2:10, 20] = 1 - labels[0, 2:10, 20]  # a one-pixel line, where the two edges differ
    for edge_operator in ("seg2edge", "thick"):
        for radius in (2.0, 3.0, 4.0):
            r = bass_regions(labels, [1], radius, edge_operator)
            for b in range(labels.shape[0]):
                fg = labels[b].numpy() == 1
                for ours, theirs in zip((r.inner, r.outer, r.easy_fg, r.easy_bg),
                                        _official_regions(fg, radius, edge_operator)):
                    assert np.array_equal(ours[b, 0].numpy(), theirs), f"{edge_operator}, radius {radius}, image {b}"
    assert not torch.equal(bass_regions(labels, [1], 2.0, "seg2edge").inner, bass_regions(labels, [1], 2.0, "thick").inner)


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


def _bass(variant: str = "default", **overrides) -> BASS:
    cfg = resolve_variant(BASS, variant, {"warmup_iters": 0, **overrides})
    return BASS(cfg=cfg, net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4), num_classes=2, max_iters=10)


def test_default_weight_is_the_papers_and_official_is_two_hard_terms_at_a_quarter():
    # a 6x6 square (class 1) in 12x12; foreground embeddings (1, 0), background (0, 1), so every
    # cosine with the fg / bg query is 1 or 0. Sets at radius 2 (seg2edge = thick on a square):
    # inner band 12, easy fg 36 - 12 = 24, outer band 60 - 24 = 36, easy bg 144 - 60 - 36 = 48.
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[0, 3:9, 3:9] = 1
    emb = torch.stack([(labels == 1).float(), (labels == 0).float()], 1)  # [1, 2, 12, 12]
    te, th = 0.3, 0.7

    def term(n_neg: int, tau: float) -> float:  # -log(e^{1/tau} / (e^{1/tau} + n e^0)), every positive alike
        return math.log(1 + n_neg * math.exp(-1 / tau))

    paper = _bass(sample_fraction=1.0)
    assert paper.cfg.contrast_weight == 1.0 and paper.cfg.terms == "all" and not paper.cfg.code_quirks
    assert paper.cfg.edge == "seg2edge" and paper.contrast_weight(it=5) == 1.0
    loss, _ = paper.crc_loss(emb, labels)
    expected = term(48, te) + term(36, th) + term(24, te) + term(12, th)  # fg easy, fg hard, bg easy, bg hard
    assert torch.allclose(loss, torch.tensor(expected), rtol=1e-5)

    official = _bass("official", sample_fraction=1.0)
    assert (official.cfg.contrast_weight, official.cfg.terms, official.cfg.code_quirks) == (0.25, "hard", True)
    assert official.contrast_weight(it=5) == 0.25
    hard_only, _ = _bass("official", sample_fraction=1.0, code_quirks=False).crc_loss(emb, labels)
    assert torch.allclose(hard_only, torch.tensor(term(36, th) + term(12, th)), rtol=1e-5)  # the sum, not the mean
    with np.testing.assert_raises(ConfigError):
        _bass(edge="canny")


def test_weight_ramp_goes_from_a_quarter_to_the_full_weight():
    bass = _bass(weight_ramp_iters=8)
    assert [bass.contrast_weight(it) for it in (0, 4, 8, 20)] == [0.25, 0.625, 1.0, 1.0]


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
