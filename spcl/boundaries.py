"""Subclass division (paper Sec. 2.1): per class c a boundary mask B_c and an inner mask I_c = y_c - B_c.

Both operators run on the device on a whole batch of label maps [B, H, W] (all classes at once, no
CPU round-trip) and return one boolean map `boundary` [B, H, W]; because the classes partition the
pixels, B_c = boundary & (y == c) and I_c = ~boundary & (y == c) for every class, background included.

`thick` (the official `train_spcl.py`, commit 23c6a8a; row #1 of spcl/method.py's table): skimage
`find_boundaries(y, mode='thick')` with its default 4-neighbourhood: a pixel is a boundary pixel
iff one of its 4 neighbours inside the image has another label (the image border is not a
boundary, as skimage's reflecting morphology). Intersected with class c this is the one-pixel inner
ring of every region of c (methods/boundary.py, shared with BASS and the evaluation's feature tags).

`canny` (the paper: {B_c} = Canny(y)): Canny applied to each class's binary mask y_c separately, so
that B_c lies inside y_c (the paper's I_c = y_c - B_c needs B_c to be a subset of y_c) and the
result does not depend on the label numbering, as Canny on the integer label map would. Steps:
  1. Gaussian smoothing s_c = G_sigma * y_c (sigma 1, replicate padding);
  2. edge strength: the derivative of s_c across each crack between a pixel of c and a 4-neighbour
     outside c, s_c(p) - s_c(q), assigned to the class-side pixel p (maximum over its cracks);
  3. hysteresis: strength >= high seeds edges, strength >= low extends them through 8-connected
     chains (`hysteresis_iters` propagation steps on the device, no host synchronisation).
Step 2 is a documented simplification of Sobel + non-maximum suppression. For a blurred binary step
the gradient ridge that NMS looks for lies on the crack itself, between two pixels, so pixel-centred
Sobel + NMS has to pick a side: with skimage's `canny` on a binary disc about a third of the contour
lands outside the class, and intersecting with y_c then leaves gaps; our own pixel NMS restricted to
the class closed discs but, in all 200 random rings 1-2.5 px wide (the myocardium at feature
resolution), dropped one side. The crack form keeps closed one-pixel contours: every kept pixel
touches the outside of its class and, where all cracks are strong, B_c equals the inner ring of y_c.
What Canny adds over `thick` on label maps is the pruning of weak edges: with sigma 1 and the
default thresholds (0.1, 0.2 in mask units per pixel; a straight step scores 0.40) an isolated pixel
(0.06) or an isolated one-pixel-wide line (0.16) gets no boundary, while a line touching a strong
contour does; on rings 1.5-4 px wide (250 random ones) `canny` and `thick` agree exactly.

`mask2edge` (the authors' own Canny, SPCL repository commit 23c6a8a, `dgcl/bcl/util.py::mask2edge`;
the helper is never called by `train_spcl.py`, which uses `thick`): per image, for every class c in
0..num_classes-1, OpenCV's `cv2.Canny(mask_c, 0, 255)` of the class mask (255 in c, 0 elsewhere),
the results OR-ed over classes. OpenCV's Canny takes no smoothing, a 3x3 Sobel, the L1 magnitude
|gx| + |gy|, non-maximum suppression along the gradient direction and hysteresis (here low 0, high
255). On a binary step both pixels of the crack have the same magnitude and OpenCV's suppression
keeps the one with the lower row/column index, so the edge is one pixel wide and lies on the
left/upper side of the crack whichever class is there: B_c = boundary & (y == c) is then empty along
edges where c is on the right/lower side, and an isolated pixel's edge is its 8 neighbours, not the
pixel itself. Every class mask gives the same crack, so the union over classes does not thicken it.
It runs on the host (one device-to-host copy per call) and needs OpenCV (`opencv-python-headless`,
the `opencv` extra of the package).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from methods.boundary import thick_boundary

BOUNDARY_OPERATORS = ("canny", "thick", "mask2edge")


def gaussian_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[n, n] matrix M with (M @ v) = v blurred by a Gaussian (radius ceil(3 sigma)), replicate padding.

    Blurring as a matrix product keeps the smoothing one small matmul per axis on any device (a
    single-channel conv2d is slow on the CPU)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    weights = torch.exp(-(taps**2) / (2.0 * sigma**2))
    weights = weights / weights.sum()
    rows = torch.arange(n, device=device)[:, None].expand(n, taps.numel())
    cols = (rows + taps.long()[None, :]).clamp(0, n - 1)
    matrix = torch.zeros(n, n, dtype=dtype, device=device)
    return matrix.index_put_((rows, cols), weights[None, :].expand(n, -1).contiguous(), accumulate=True)


def gaussian_smooth(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [..., H, W] maps with replicate padding."""
    h, w = maps.shape[-2:]
    along_w = gaussian_matrix(w, sigma, maps.dtype, maps.device)
    along_h = gaussian_matrix(h, sigma, maps.dtype, maps.device)
    return along_h @ (maps @ along_w.T)


def dilate8(mask: Tensor) -> Tensor:
    """3 x 3 binary dilation of [..., H, W] bool maps (shifted ORs; max_pool2d is slow on the CPU)."""
    out = mask.clone()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    rows = out.clone()
    out[..., :, 1:] |= rows[..., :, :-1]
    out[..., :, :-1] |= rows[..., :, 1:]
    return out


def crack_edge_strength(masks: Tensor, smoothed: Tensor) -> Tensor:
    """Per class-side pixel, the largest smoothed-mask drop across a crack to a pixel outside the class.

    masks: [B, C, H, W] bool one-hot; smoothed: the blurred masks. Returns [B, C, H, W] (0 where the
    pixel is not on the class side of any crack).
    """
    strength = torch.zeros_like(smoothed)
    for dim in (2, 3):  # vertical and horizontal neighbour pairs (p, q) = (i, i + 1)
        n = masks.shape[dim]
        m_p, m_q = masks.narrow(dim, 0, n - 1), masks.narrow(dim, 1, n - 1)
        drop = smoothed.narrow(dim, 0, n - 1) - smoothed.narrow(dim, 1, n - 1)  # s(p) - s(q)
        crack = m_p != m_q
        zero = drop.new_zeros(())
        s_p = strength.narrow(dim, 0, n - 1)
        s_q = strength.narrow(dim, 1, n - 1)
        s_p.copy_(torch.maximum(s_p, torch.where(crack & m_p, drop, zero)))
        s_q.copy_(torch.maximum(s_q, torch.where(crack & m_q, -drop, zero)))
    return strength


def hysteresis(strength: Tensor, low: float, high: float, iters: int) -> Tensor:
    """Canny's hysteresis on [B, C, H, W]: seeds >= high, grown through >= low (8-connected)."""
    weak = strength >= low
    edges = strength >= high
    for _ in range(iters):
        edges = weak & dilate8(edges)
    return edges


def canny_boundaries(
    labels: Tensor,
    num_classes: int,
    sigma: float = 1.0,
    low: float = 0.1,
    high: float = 0.2,
    hysteresis_iters: int = 16,
) -> Tensor:
    """Per-class Canny contours of a label batch [B, H, W] -> boundary map [B, H, W] (see module doc)."""
    if labels.dim() != 3:
        raise ValueError(f"labels must be [B, H, W], got shape {tuple(labels.shape)}")
    masks = F.one_hot(labels.long().clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).bool()
    smoothed = gaussian_smooth(masks.float(), sigma)
    edges = hysteresis(crack_edge_strength(masks, smoothed), low, high, hysteresis_iters)
    return (edges & masks).any(1)


def import_cv2():
    """OpenCV, or an ImportError that says how to install it (the `mask2edge` operator needs it)."""
    try:
        import cv2
    except ImportError as exc:
        raise ImportError("boundary operator 'mask2edge' needs OpenCV: pip install opencv-python-headless "
                          "(or the package's 'opencv' extra)") from exc
    return cv2


def mask2edge_boundaries(labels: Tensor, num_classes: int) -> Tensor:
    """The SPCL authors' `mask2edge` of a label batch [B, H, W] -> boundary map [B, H, W] bool on the
    labels' device: per image, OR over classes c < num_classes of `cv2.Canny(255 * (y == c), 0, 255)`
    (see the module docstring for what OpenCV's Canny does on a binary mask)."""
    if labels.dim() != 3:
        raise ValueError(f"labels must be [B, H, W], got shape {tuple(labels.shape)}")
    cv2 = import_cv2()
    maps = labels.detach().to("cpu", torch.uint8).numpy()  # the official helper: mask.to(torch.uint8)
    edges = np.zeros(maps.shape, dtype=bool)
    for i, label_map in enumerate(maps):
        for c in range(num_classes):
            class_mask = np.where(label_map == c, 255, 0).astype(np.uint8)
            edges[i] |= cv2.Canny(class_mask, 0, 255) == 255
    return torch.from_numpy(edges).to(labels.device)


def subclass_boundaries(labels: Tensor, num_classes: int, operator: str, **canny_options) -> Tensor:
    """The boundary map [B, H, W] of `operator` ("canny" | "thick" | "mask2edge"); B_c = map & (labels == c).
    `canny_options` (sigma, low, high, hysteresis_iters) apply to "canny" only."""
    if operator == "thick":
        return thick_boundary(labels)
    if operator == "canny":
        return canny_boundaries(labels, num_classes, **canny_options)
    if operator == "mask2edge":
        return mask2edge_boundaries(labels, num_classes)
    raise ValueError(f"boundary operator must be one of {list(BOUNDARY_OPERATORS)}, got {operator!r}")
