"""BUS: the dilation/erosion boundary contrast (DECON), adapted to multi-class semi-supervised
segmentation on the shared mean-teacher skeleton.

Paper: Choe et al., "Open Set Domain Adaptation for Semantic Segmentation" (BUS), CVPR 2024.
Official repository: https://github.com/KHU-AGI/BUS (README only); the code read is the full
upload of the same project at https://github.com/OmGovind15/BUS, commit b9a67f7
(`mmseg/models/uda/dacs.py`: the DECON masks; `mmseg/models/decode_heads/hrda_head.py::losses`:
the DECON loss; `configs/mic/gtaHR2csHR_mic_hrda_512.py`: DECON=True, kernel_size=3, crop_size=32).

What BUS's contrast does in open-set DA: on the mixed target image, the binary mask of the
"unknown" class is eroded and dilated (cv2, 3x3 kernel, one iteration) at input resolution and
resized x0.25 (nearest) to the feature map; inside one random window, the eroded-region features
are the anchors, their mean is the single positive prototype, and the dilated ring outside the
class (its neighbours of other classes) gives the negatives; logits are cosine similarities
without temperature, loss = CE(logits, 0).

Adaptation to cardiac semantic segmentation (SPCL describes BUS as contrast "in a local structure,
pulling an anchor closer to its neighbours of the same class and pushing it away from neighbours
of different classes"): every foreground class plays the role of the unknown class.
One semi-supervised iteration as implemented (skeleton as SPCL: 0.5 (CE + Dice), Dice on the
CutMix view against pseudo-labels with confidence >= 0.95, weight 0.3):
1. Labels of [x_l; x_u] at input size: ground truth, and the teacher's pseudo-labels where the
   confidence is >= `conf_threshold` (the rest ignored).
2. Per class c: eroded(c) and dilated(c) with a 3x3 square on the device (max-pooling), resized
   nearest to the feature map; anchors = eroded(c); ring = dilated(c) \\ c minus ignored pixels.
3. Prototype = mean of all anchor embeddings of c over the batch (with gradient, as the
   official code). Per-anchor CE over [prototype, ring embeddings] on cosine / tau (tau = 1).
   Mean over anchors, then over the classes that have both anchors and ring pixels.
4. L = L_skeleton + 0.1 L_BUS.

Deviations and choices (all deliberate):
- Weight 0.1 (SPCL's lambda_c) so that only the contrastive design differs from SPCL; the
  official weight is 1 with the loss divided by the batch size (2 in the DA config, i.e. 0.5).
  `contrast_weight` exposes it.
- Window: the official random 2p x 2p window (p = 32 on a 256-wide HRDA feature map) cannot be
  drawn on a 64 x 64 map; the default is the whole feature map (`window_fraction` = 1), and
  `window_fraction` < 1 draws one random square window of that fraction of the side per step.
- Pseudo-labels: online teacher pseudo-labels of the mean teacher on the un-mixed unlabelled view
  (the streams SPCL's contrast uses), not DACS's mixed target image; unreliable pixels are
  neither anchors nor ring pixels.
- The open-set parts of BUS (the unknown-class head, "attaching private", object resizing, SAM
  refinement) do not apply and are not implemented.
- Embedding: the decoder features, as the official fused decoder features (`embedding` =
  "projection" uses the projection head that SPCL contrasts).
- Pixel vectors: true per-pixel feature vectors, x[b, :, y, x] (the paper's "features" of a
  pixel). The official code takes `fused_feat[:, :, window].reshape(-1, D)` without a permute
  (`hrda_head.py::losses`), so its row for pixel s = y w + x of image b is
  `feat[b].flatten()[s D : (s + 1) D]` in (channel, y, x) memory order: a run of D consecutive
  positions of one channel (for D = 256 on a 64 x 64 window, 4 rows of channel s // 16), while
  the masks are indexed per pixel. `code_quirks: true` (variant `code_quirks`) reproduces that
  layout for the anchors, the prototype and the ring (`embedding_rows`); the window is then cut
  out first, as the official code reshapes the window.
- Caps: at most `max_anchors` anchors and `max_negatives` ring pixels per class are drawn at
  random (8192 = the most pixels the official window holds over its batch of 2); the prototype
  always uses every anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines._contrast import (
    IGNORE,
    anchor_infonce,
    dilate,
    erode,
    full_precision,
    labelled_unlabelled_outputs,
    pixels,
    random_subset,
    reliable_labels,
)
from methods.api import check_choice, register_method
from methods.meanteacher import MeanTeacher, MeanTeacherConfig, MTContext
from methods.random_streams import DeviceGenerator


@dataclass
class BUSConfig(MeanTeacherConfig):
    contrast_weight: float = 0.1  # SPCL's lambda_c for parity (official: 1, loss / batch size)
    temperature: float = 1.0  # official: cosine logits without temperature
    kernel_size: int = 3  # official: 3x3 erosion and dilation, one iteration
    embedding: str = "features"  # "features" (official: decoder features) | "projection"
    window_fraction: float = 1.0  # 1: whole feature map; < 1: one random square window per step
    include_background: bool = False
    max_anchors: int = 8192
    max_negatives: int = 8192
    code_quirks: bool = False  # True: the official [B, D, h, w] -> [-1, D] reshape without a permute

    def validate(self) -> None:
        super().validate()
        check_choice("embedding", self.embedding, ("features", "projection"))
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd number >= 3, got {self.kernel_size}")
        if not 0.0 < self.window_fraction <= 1.0:
            raise ValueError(f"window_fraction must be in (0, 1], got {self.window_fraction}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.max_anchors < 1 or self.max_negatives < 1:
            raise ValueError("max_anchors and max_negatives must be >= 1")


def _resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask.float(), size=size, mode="nearest") > 0.5


def erosion_ring_sets(
    labels: Tensor, classes: list[int], kernel_size: int = 3, size: tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """BUS's sets for each class in `classes`, from labels [B, H, W] (IGNORE = unknown).

    Erosion and dilation run at the labels' resolution; the class, eroded, dilated and valid masks
    are then resized (nearest) to `size` and ring = dilated & ~class & valid there, as the official
    code builds `common` after resizing. Returns (anchors, ring), bool [B, K, h, w].
    """
    cls = torch.tensor(classes, device=labels.device)[None, :, None, None]
    in_class = labels[:, None] == cls
    valid = (labels != IGNORE)[:, None]
    eroded, dilated = erode(in_class, kernel_size), dilate(in_class, kernel_size)
    if size is not None:
        in_class, eroded, dilated, valid = (_resize_mask(m, size) for m in (in_class, eroded, dilated, valid))
    return eroded, dilated & ~in_class & valid


def window_index(h: int, w: int, fraction: float, generator: torch.Generator, device) -> tuple[Tensor, Tensor]:
    """Row and column indices ([side] each, on the device, no host synchronisation) of one random
    square window whose side is `fraction` of min(h, w)."""
    side = max(1, round(fraction * min(h, w)))
    y0 = torch.randint(0, h - side + 1, (), generator=generator, device=device)
    x0 = torch.randint(0, w - side + 1, (), generator=generator, device=device)
    steps = torch.arange(side, device=device)
    return y0 + steps, x0 + steps


def random_window(h: int, w: int, fraction: float, generator: torch.Generator, device) -> Tensor:
    """A [h, w] bool mask of one random square window whose side is `fraction` of min(h, w)."""
    ys, xs = window_index(h, w, fraction, generator, device)
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    mask[ys[:, None], xs[None, :]] = True
    return mask


def crop(x: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """x[..., ys, :][..., xs] for index tensors ys, xs ([..., H, W] -> [..., len(ys), len(xs)])."""
    return x[..., ys[:, None], xs[None, :]]


def embedding_rows(emb: Tensor, official_layout: bool) -> Tensor:
    """[B, D, h, w] -> [B h w, D], row b h w + y w + x for pixel (b, y, x).

    `official_layout` False: the pixel's feature vector emb[b, :, y, x]. True: BUS's
    `reshape(-1, D)` without a permute: row r holds elements r D ... r D + D - 1 of emb in its
    (b, d, y, x) order, i.e. for pixel s = y w + x of image b, emb[b].flatten()[s D : (s + 1) D]
    (runs of one channel; a row never mixes images because each image holds D h w elements)."""
    d = emb.shape[1]
    if official_layout:
        return emb.contiguous().reshape(-1, d)
    return pixels(emb)


@register_method("bus")
class BUS(MeanTeacher):
    """BUS's erosion/dilation boundary contrast (CVPR'24), multi-class, on SPCL's skeleton."""

    Config = BUSConfig
    display_name = "BUS"
    description = "BUS (CVPR'24), multi-class: eroded-region anchors to their prototype vs the dilated other-class ring, x0.1"
    variants = {"code_quirks": {"code_quirks": True}}  # the official feature layout (runs of one channel)

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        self._sampler = DeviceGenerator()
        self.contrast_classes = list(range(0 if cfg.include_background else 1, self.num_classes))

    @property
    def embeds_projection(self) -> bool:  # type: ignore[override]
        """t-SNE shows the space the contrast acts on (decoder features by default)."""
        return self.cfg.embedding == "projection"

    def get_extra_state(self):
        return {**super().get_extra_state(), "sampler": self._sampler.state()}

    def set_extra_state(self, state):
        super().set_extra_state(state)
        self._sampler.load((state or {}).get("sampler"))

    def extra_loss(self, ctx: MTContext) -> tuple[Tensor, dict[str, Tensor]]:
        feats, proj = labelled_unlabelled_outputs(ctx)
        emb = feats if self.cfg.embedding == "features" else proj
        with torch.no_grad():
            labels = reliable_labels(ctx, self.cfg.conf_threshold)
            anchors, ring = erosion_ring_sets(labels, self.contrast_classes, self.cfg.kernel_size, tuple(emb.shape[-2:]))
        if self.cfg.window_fraction < 1.0:  # one random window, cut out (the official code reshapes the window)
            ys, xs = window_index(*emb.shape[-2:], self.cfg.window_fraction, self._sampler.on(emb.device), emb.device)
            emb, anchors, ring = crop(emb, ys, xs), crop(anchors, ys, xs), crop(ring, ys, xs)
        loss = self.boundary_contrast(embedding_rows(emb, self.cfg.code_quirks), anchors, ring)
        return self.cfg.contrast_weight * loss, {"contrast": loss.detach()}

    def boundary_contrast(self, emb: Tensor, anchors: Tensor, ring: Tensor) -> Tensor:
        """emb [N, D] pixels; anchors, ring bool [B, K, h, w] (N = B h w). Mean over classes."""
        k = anchors.shape[1]
        anchors = anchors.permute(1, 0, 2, 3).reshape(k, -1)
        ring = ring.permute(1, 0, 2, 3).reshape(k, -1)
        # the step's one host synchronisation: the set sizes decide the shapes below
        counts = torch.stack([anchors.sum(1), ring.sum(1)]).tolist()
        gen = self._sampler.on(emb.device)
        losses = []
        with full_precision(emb.device):
            emb = emb.float()
            prototypes = (anchors.float() @ emb) / anchors.sum(1, keepdim=True).clamp(min=1)
            for i in range(k):
                n_anchor, n_ring = counts[0][i], counts[1][i]
                if n_anchor == 0 or n_ring == 0:
                    continue
                a_idx = random_subset(anchors[i], min(n_anchor, self.cfg.max_anchors), gen)
                r_idx = random_subset(ring[i], min(n_ring, self.cfg.max_negatives), gen)
                losses.append(anchor_infonce(emb[a_idx], prototypes[i], emb[r_idx], self.cfg.temperature).mean())
        if not losses:
            return emb.new_zeros(())
        return torch.stack(losses).mean()
