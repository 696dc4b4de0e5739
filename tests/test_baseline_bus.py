"""BUS: eroded anchors and the dilated ring on drawn shapes, the loss on tiny vectors, the
official feature layout (`code_quirks`) on a tiny tensor, the window crop, a tiny run."""

import math

import torch

from _tiny_run import TINY_NET, assert_logged_and_finite, train_tiny
from baselines._contrast import IGNORE
from baselines.bus import BUS, crop, embedding_rows, erosion_ring_sets, random_window, window_index
from methods.api import build_config, list_methods, resolve_variant
from methods.nets import NetFactory, NetworkProfile


def square_labels(size: int = 9, lo: int = 2, hi: int = 7, cls: int = 1) -> torch.Tensor:
    labels = torch.zeros(1, size, size, dtype=torch.long)
    labels[0, lo:hi, lo:hi] = cls
    return labels


def test_eroded_core_and_ring_of_a_square():
    anchors, ring = erosion_ring_sets(square_labels(), [1], kernel_size=3)
    expected_core = torch.zeros(9, 9, dtype=torch.bool)
    expected_core[3:6, 3:6] = True  # the 5x5 square loses its outer layer
    expected_ring = torch.zeros(9, 9, dtype=torch.bool)
    expected_ring[1:8, 1:8] = True
    expected_ring[2:7, 2:7] = False  # 7x7 dilation minus the square: 24 pixels
    assert torch.equal(anchors[0, 0], expected_core)
    assert torch.equal(ring[0, 0], expected_ring) and ring.sum() == 24


def test_ring_holds_other_classes_but_no_ignored_pixel():
    labels = square_labels()
    labels[0, 1, 4] = 2  # another class in the ring stays a negative
    labels[0, 7, 4] = IGNORE  # an unreliable pixel is not a negative
    _, ring = erosion_ring_sets(labels, [1], kernel_size=3)
    assert ring[0, 0, 1, 4] and not ring[0, 0, 7, 4] and ring.sum() == 23


def test_image_border_does_not_erode():
    labels = torch.zeros(1, 6, 6, dtype=torch.long)
    labels[0, :, :3] = 1  # columns 0-2, touching the top, bottom and left borders
    anchors, ring = erosion_ring_sets(labels, [1], kernel_size=3)
    assert anchors[0, 0].nonzero()[:, 1].unique().tolist() == [0, 1]  # only column 2 eroded
    assert anchors.sum() == 12
    assert ring[0, 0].nonzero()[:, 1].unique().tolist() == [3] and ring.sum() == 6


def test_sets_are_resized_to_the_feature_map():
    labels = square_labels(size=16, lo=4, hi=12)  # 8x8 square, eroded to 6x6 at full size
    anchors, ring = erosion_ring_sets(labels, [1, 2], kernel_size=3, size=(8, 8))
    assert anchors.shape == (1, 2, 8, 8) and anchors[0, 1].sum() == 0  # class 2 absent
    # nearest x0.5 samples the even rows/columns: eroded 5..10 -> 3..5, square 4..11 -> 2..5,
    # dilated 3..12 -> 2..6; the ring is row 6 and column 6 of the 2..6 block (as the official
    # code, which also builds the ring after resizing)
    assert anchors[0, 0].sum() == 9 and anchors[0, 0, 3:6, 3:6].all()
    assert ring[0, 0].sum() == 9 and ring[0, 0, 6, 2:7].all() and ring[0, 0, 2:7, 6].all()


def _tiny_bus(**overrides) -> BUS:
    cfg = build_config(BUS.Config, {"warmup_iters": 0, **overrides})
    return BUS(cfg=cfg, net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), 4), num_classes=4, max_iters=10)


def test_loss_on_tiny_vectors():
    bus = _tiny_bus()
    # 1 image, 1 class, 2x2 map: pixels 0, 1 anchors with embedding e_x; pixels 2, 3 ring with e_y.
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    anchors = torch.tensor([[[[True, True], [False, False]]]])
    ring = ~anchors
    loss = bus.boundary_contrast(emb, anchors, ring)
    # cosine 1 with the prototype e_x, 0 with the two ring pixels, tau 1: -log(e / (e + 2))
    assert torch.allclose(loss, torch.tensor(math.log((math.e + 2) / math.e)))
    assert bus.boundary_contrast(emb, anchors, torch.zeros_like(ring)) == 0  # no ring: no term


def test_official_layout_rows_are_runs_of_one_channel():
    # emb[b, d, y, x] = 100 b + 10 d + (2 y + x): 2 images, D = 2 channels, a 2x2 map (S = 4 pixels)
    b, d, s = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(4), indexing="ij")
    emb = (100 * b + 10 * d + s).float().reshape(2, 2, 2, 2)
    true_rows = embedding_rows(emb, official_layout=False)
    assert true_rows[:4].tolist() == [[0, 10], [1, 11], [2, 12], [3, 13]]  # pixel s: (channel 0, channel 1)
    official = embedding_rows(emb, official_layout=True)
    # reshape(-1, D) of the (b, d, y, x) order: pixel s of image b holds elements 2s, 2s + 1 of image b
    assert official.tolist() == [[0, 1], [2, 3], [10, 11], [12, 13], [100, 101], [102, 103], [110, 111], [112, 113]]


def test_code_quirks_switch_feeds_the_official_rows_to_the_loss():
    assert BUS.Config().code_quirks is False
    quirky = _tiny_bus(code_quirks=True)
    assert resolve_variant(BUS, "code_quirks", {}).code_quirks is True
    # 1 image, D = 2, a 2x2 map; anchors: pixels 0 and 1, ring: pixels 2 and 3.
    # true layout: pixel vectors (1, 0), (1, 0), (0, 1), (0, 1): prototype (1, 0), cosines 1 | 0, 0
    # official layout: rows (1, 1), (0, 0), (0, 0), (1, 1): the prototype is (1/2, 1/2); anchor 0
    # has cosine 1 with it, 0 with ring row 2 (a zero vector) and 1 with ring row 3; anchor 1 is a
    # zero vector, cosine 0 with everything
    emb = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]])[None]  # [1, 2, 2, 2]
    anchors = torch.tensor([[[[True, True], [False, False]]]])
    ring = ~anchors
    plain = _tiny_bus().boundary_contrast(embedding_rows(emb, False), anchors, ring)
    assert torch.allclose(plain, torch.tensor(math.log((math.e + 2) / math.e)))
    official = quirky.boundary_contrast(embedding_rows(emb, True), anchors, ring)
    expected = (math.log((2 * math.e + 1) / math.e) + math.log(3.0)) / 2
    assert torch.allclose(official, torch.tensor(expected))


def test_window_crop_keeps_the_windows_pixels_in_order():
    gen = torch.Generator().manual_seed(0)
    ys, xs = window_index(6, 6, 0.5, gen, "cpu")
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert torch.equal(crop(x, ys, xs)[0, 0], x[0, 0, ys[0]:ys[0] + 3, xs[0]:xs[0] + 3])


def test_random_window_is_one_square_of_the_requested_side():
    gen = torch.Generator().manual_seed(0)
    window = random_window(8, 8, 0.5, gen, "cpu")
    rows, cols = window.nonzero().unbind(1)
    assert window.sum() == 16 and rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3


def test_bus_trains_with_an_active_contrastive_term(tiny_cache, tiny_split, tmp_path):
    assert "bus" in list_methods()
    rows = train_tiny("bus", {"warmup_iters": 0}, tiny_cache, tiny_split, tmp_path, iterations=2)
    assert_logged_and_finite(rows, ["loss", "sup", "unsup", "contrast"], 2)
    assert all(float(r["contrast"]) > 0.0 for r in rows)
    rows = train_tiny("bus", {"warmup_iters": 0, "code_quirks": True, "window_fraction": 0.75}, tiny_cache, tiny_split,
                      tmp_path / "quirks", iterations=2)
    assert_logged_and_finite(rows, ["loss", "contrast"], 2)
