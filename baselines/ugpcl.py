"""UGPCL: uncertainty-guided pixel contrastive learning with two heterogeneous decoders.

Paper: T. Wang, J. Lu, Z. Lai, J. Wen, H. Kong, "Uncertainty-Guided Pixel Contrastive Learning
for Semi-Supervised Medical Image Segmentation", IJCAI 2022.
Official code: https://github.com/taovv/UGPCL (`codes/trainers/ugpcl_trainer.py`,
`codes/losses/pixel_contras_loss.py`, `codes/models/unet_tf.py`,
`configs/comparison_acdc_224_136/ugpcl_unet_r50.yaml`), read at commit 5980405.

Augmentation. The official ACDC config turns the dataset's random rotation off
(`RandomGenerator(p_flip=0.0, p_rot=0.0)  # Remove random rotation`) and keeps a horizontal flip
(p 0.5) and ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8 (`codes/dataloaders/_transforms.py`); the
only rotation is the trainer's rot90(k) + [-20, 20] degrees below. The harness's common
augmentation is that flip and jitter plus a [-20, 20] degree rotation, so UGPCL turns the common
rotation off for its runs (`augment_overrides`: `rotate_deg` 0): angles then stay within 20
degrees of a multiple of 90 and images are resampled once, as in the official pipeline.
`common_rotation: true` keeps the common rotation on top (about a quarter of the images then
turn by more than 20 degrees, up to 40, and are resampled twice).

Algorithm per iteration (`codes/trainers/ugpcl_trainer.py`, `codes/losses/pixel_contras_loss.py`;
no teacher):
1. Every image (labelled and unlabelled) is turned by rot90(k), k ~ U{0..3}, then by a random
   angle in [-20, 20] degrees (nearest); labels turn with their images; k is the label of a
   rotation-prediction head on the deepest encoder feature (CE, weight 0.1).
2. One encoder, two decoders: the CNN decoder (the harness network's own) and a structurally
   different second decoder (below). Supervised loss on the labelled images: for each of
   0.5 Dice (class weights 0,1,...,1, i.e. background excluded) and 0.5 CE, the loss on the CNN
   decoder + 0.4 x the loss on the second decoder.
3. Consistency: MSE between the two decoders' softmaxes on the unlabelled images, weight
   0.01 sigmoid_rampup(t // 100, 100).
4. From official iteration 1000 on (`step > 1000`), pixel contrast: the mean of the two
   softmaxes gives pseudo-labels; pixels whose entropy (nats) exceeds
   (0.75 + 0.25 sigmoid_rampup(it, max_iters)) ln 2 are ignored; labelled images use their
   labels. An embedding head on encoder stage -3 (1/8 resolution; conv-BN-ReLU-conv to 256,
   L2-normalised) gives anchors: per (image, class) with more than `max_views` pixels,
   min(1024 // #pairs, max_views) = 1 pixel, an "easy" one (CNN prediction = label) when there
   is one. Contrast set: the per-class segment queue (500 class-mean embeddings per class,
   random initial rows), whose class-0 rows are replaced by zero vectors labelled 0; SupCon
   loss with tau 0.07, weight 0.1. Then the queue takes, FIFO, one normalised class-mean
   embedding per (image, foreground class).
5. The CNN decoder is evaluated.

Deviations:
- Second decoder: the official one is a Swin-Unet-style decoder (Swin blocks, window 7, depths
  2-2-2-2, heads 3-6-12-24, PatchExpand) hard-wired to 224 px input and ResNet-50 stage sizes,
  whose position embeddings are untrained random tensors. Under the common backbone we build
  `WindowAttentionDecoder`: a transformer-style decoder on the same encoder stages (1/4..1/32)
  with 1x1 patch embeddings, window self-attention blocks (window 7, 2 per stage, constant
  width 96, 3 heads), bilinear up-sampling with concatenate-and-project skips and a per-pixel
  LayerNorm + 1x1 classifier. It keeps what UGPCL needs from the Swin decoder -- a decoder of a
  different inductive bias (attention vs. convolution) whose disagreement with the CNN decoder
  measures uncertainty -- at any input size and for any smp encoder. No shifted windows and no
  absolute position embeddings.
- The harness backbone replaces smp UNet-ResNet50 (3-channel ImageNet input); the official
  setting is recorded in `NATIVE_SCHEDULE`.
- Rotations fill the corners with each image's minimum (the official fill is 0 on [0, 1]
  images, i.e. black); labels are filled with background.
- The unused pixel queue of the official trainer is not kept. A step with no anchor at all
  gives a zero contrast loss (the official code raises).
- The official SupCon code removes the "diagonal" positive (anchor row r, contrast column r)
  left over from self-contrast; this is reproduced.
- Schedules (consistency ramp, contrast start) are in official iterations, mapped to this run's
  budget unless `schedule: native` (baselines/_schedule.py); the threshold ramp already runs
  over the run's own length in the official code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines._schedule import NativeSchedule, check_schedule, native_time
from methods.random_streams import GeneratorStateMixin, seeded_generator, step_generator
from methods.api import Batch, Method, PseudoLabelView, StepOutput, register_method
from methods.losses import sigmoid_rampup
from methods.nets import NetOutput
from methods.tensors import class_argmax, downsample_labels

NATIVE_SCHEDULE = NativeSchedule(
    iterations=10000,
    labelled_batch=8,
    unlabelled_batch=8,
    img_size=224,
    network="smp UNet ResNet-50 (ImageNet, 3-channel input) + Swin-Unet-style second decoder",
    optimiser="SGD, momentum 0.9",
    lr=0.01,
    weight_decay=5e-4,
    lr_schedule="poly 0.9 over 10000 iterations, min lr 1e-4 (README table: 6000 iterations)",
    source="configs/comparison_acdc_224_136/ugpcl_unet_r50.yaml, configs/_trainers/ugpcl.yaml",
)


@dataclass
class UGPCLConfig:
    tf_decoder_weight: float = 0.4
    sup_dice_weight: float = 0.5
    sup_ce_weight: float = 0.5
    cls_weight: float = 0.1
    rotation_degrees: float = 20.0
    common_rotation: bool = False  # official: off (the dataset rotation is removed in the ACDC config)
    consistency: float = 0.01
    consistency_rampup_unit: int = 100  # the ramp advances once per this many official iterations
    consistency_rampup: float = 100.0  # in ramp units: full weight at 10000
    contrast_weight: float = 0.1
    contrast_start: int = 1001  # first (0-based, official) iteration with the contrast: `step > 1000`
    temperature: float = 0.07
    base_temperature: float = 0.07
    max_samples: int = 1024
    max_views: int = 1  # official ACDC setting; 100 is the ContrastiveSeg default
    memory_size: int = 500
    embed_dim: int = 256
    embed_stage: int = -3  # encoder feature index of the embedding head (1/8 resolution)
    tf_dim: int = 96
    tf_heads: int = 3
    tf_window: int = 7
    tf_depth: int = 2
    tf_mlp_ratio: float = 4.0
    native_iters: int = NATIVE_SCHEDULE.iterations
    schedule: str = "scaled"  # "scaled" | "native" (baselines/_schedule.py)

    def validate(self) -> None:
        check_schedule(self.schedule)
        if self.max_views < 1 or self.max_samples < 1:
            raise ValueError("max_views and max_samples must be >= 1")
        if self.memory_size < 1:
            raise ValueError(f"memory_size must be >= 1, got {self.memory_size}")
        if self.tf_dim % self.tf_heads:
            raise ValueError(f"tf_dim ({self.tf_dim}) must be divisible by tf_heads ({self.tf_heads})")
        if self.temperature <= 0 or self.base_temperature <= 0:
            raise ValueError("temperature and base_temperature must be > 0")


# --- the second decoder -------------------------------------------------------------------------


class PixelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a [B,C,H,W] map (per pixel, as on Swin tokens)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class WindowAttentionBlock(nn.Module):
    """Pre-norm transformer block: self-attention inside non-overlapping windows, then an MLP."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        wh, ww = min(self.window, h), min(self.window, w)
        ph, pw = (-h) % wh, (-w) % ww
        t = F.pad(x, (0, pw, 0, ph))
        gh, gw = (h + ph) // wh, (w + pw) // ww
        t = t.view(b, c, gh, wh, gw, ww).permute(0, 2, 4, 3, 5, 1).reshape(b * gh * gw, wh * ww, c)
        y = self.norm1(t)
        t = t + self.attn(y, y, y, need_weights=False)[0]
        t = t + self.mlp(self.norm2(t))
        t = t.view(b, gh, gw, wh, ww, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h + ph, w + pw)
        return t[:, :, :h, :w]


class WindowAttentionDecoder(nn.Module):
    """Transformer-style decoder over encoder stages 2.. (1/4 to 1/32), see the module docstring."""

    def __init__(self, encoder_channels: list[int], num_classes: int, dim: int, heads: int, window: int,
                 depth: int, mlp_ratio: float):
        super().__init__()
        chans = list(encoder_channels)[2:]
        if not chans:
            raise ValueError("the second decoder needs an encoder with at least 2 stages")
        self.embeds = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in chans)
        self.fuse = nn.ModuleList(nn.Conv2d(2 * dim, dim, 1) for _ in chans[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(*(WindowAttentionBlock(dim, heads, window, mlp_ratio) for _ in range(depth))) for _ in chans
        )
        self.norm = PixelLayerNorm(dim)
        self.head = nn.Conv2d(dim, num_classes, 1)

    def forward(self, features: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        feats = features[2:]
        x = self.stages[-1](self.embeds[-1](feats[-1]))
        for i in range(len(feats) - 2, -1, -1):
            skip = self.embeds[i](feats[i])
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.stages[i](self.fuse[i](torch.cat([x, skip], dim=1)))
        # the 1x1 classifier commutes with bilinear up-sampling: classify at 1/4, then up-sample
        return F.interpolate(self.head(self.norm(x)), size=out_size, mode="bilinear", align_corners=False)


# --- the network --------------------------------------------------------------------------------


class EmbeddingHead(nn.Module):
    """Official `EmbeddingHead('convmlp')`: conv1x1-BN-ReLU-conv1x1, then L2 normalisation."""

    def __init__(self, in_ch: int, dim: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(in_ch, in_ch, 1), nn.BatchNorm2d(in_ch), nn.ReLU(), nn.Conv2d(in_ch, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.embed(x), p=2, dim=1)


@dataclass
class UGPCLOutput:
    seg: Tensor  # CNN decoder logits [B,C,H,W]
    seg_tf: Tensor  # second decoder logits [B,C,H,W]
    rotation: Tensor  # rotation logits [B,4]
    embed: Tensor  # L2-normalised embeddings [B,D,h,w]


class UGPCLNet(nn.Module):
    """The harness network's encoder and CNN decoder plus UGPCL's second decoder and heads.

    `forward` is the evaluated path (CNN decoder; projection = the contrastive embedding);
    `forward_train` runs every head on one encoder pass."""

    def __init__(self, base: nn.Module, num_classes: int, cfg: UGPCLConfig):
        super().__init__()
        self.encoder = base.encoder
        self.decoder = base.decoder
        self.segmentation_head = base.segmentation_head
        chans = list(self.encoder.out_channels)
        self.embed_stage = cfg.embed_stage
        self.tf_decoder = WindowAttentionDecoder(chans, num_classes, cfg.tf_dim, cfg.tf_heads, cfg.tf_window,
                                                 cfg.tf_depth, cfg.tf_mlp_ratio)
        self.rotation_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], 4))
        self.embed_head = EmbeddingHead(chans[cfg.embed_stage], cfg.embed_dim)

    def _cnn(self, feats: list[Tensor], size) -> tuple[Tensor, Tensor]:
        try:
            dec = self.decoder(feats)
        except TypeError:  # smp < 0.5 decoders take *features
            dec = self.decoder(*feats)
        logits = self.segmentation_head(dec)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits, dec

    def forward(self, x: Tensor) -> NetOutput:
        feats = self.encoder(x)
        logits, dec = self._cnn(feats, x.shape[-2:])
        return NetOutput(logits, dec, self.embed_head(feats[self.embed_stage]))

    def forward_train(self, x: Tensor) -> UGPCLOutput:
        feats = self.encoder(x)
        seg, _ = self._cnn(feats, x.shape[-2:])
        seg_tf = self.tf_decoder(feats, x.shape[-2:])
        return UGPCLOutput(seg, seg_tf, self.rotation_head(feats[-1]), self.embed_head(feats[self.embed_stage]))


# --- pieces of the step -------------------------------------------------------------------------


def rotate_views(x: Tensor, y: Tensor, k: Tensor, degrees: Tensor) -> tuple[Tensor, Tensor]:
    """rot90(k) then a rotation by `degrees` (nearest), per image. x [B,1,S,S], y [B,S,S] long.
    Corners are filled with each image's minimum and with label 0."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"UGPCL's rot90 views need square images, got {tuple(x.shape[-2:])}")
    rows = torch.arange(x.shape[0], device=x.device)
    x = torch.stack([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])[k, rows]
    y = torch.stack([torch.rot90(y, r, dims=(1, 2)) for r in range(4)])[k, rows]
    rad = degrees.to(x.dtype) * (math.pi / 180.0)
    cos, sin, zero = torch.cos(rad), torch.sin(rad), torch.zeros_like(rad)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # [B,2,3]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    x = F.grid_sample(x - lo, grid, mode="nearest", padding_mode="zeros", align_corners=False) + lo
    y = F.grid_sample(y[:, None].to(x.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x, y[:, 0].round().long()


def weighted_dice_loss(probs: Tensor, target: Tensor, class_weight: Tensor, smooth: float = 1e-5) -> Tensor:
    """Official `DiceLoss_`: sum_c w_c (1 - Dice_c) / C, Dice over the whole batch per class."""
    c = probs.shape[1]
    onehot = F.one_hot(target, c).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum((0, 2, 3))
    denom = (probs * probs).sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = (2 * inter + smooth) / (denom + smooth)
    return ((1 - dice) * class_weight).sum() / c


def uncertainty_threshold(it: int, max_iters: int) -> float:
    """(0.75 + 0.25 sigmoid_rampup(it, max_iters)) ln 2: from ~0.521 to ln 2 = 0.693 nats."""
    return (0.75 + 0.25 * sigmoid_rampup(it, max_iters)) * math.log(2)


def certainty_pseudo_labels(prob_a: Tensor, prob_b: Tensor, threshold: float) -> Tensor:
    """Argmax of the decoders' mean softmax; -1 where its entropy (nats) exceeds `threshold`."""
    mean = 0.5 * (prob_a + prob_b)
    entropy = -(mean * torch.log(mean + 1e-6)).sum(1)
    pseudo = class_argmax(mean)
    return torch.where(entropy > threshold, torch.full_like(pseudo, -1), pseudo)


def sample_anchors(embed: Tensor, labels: Tensor, preds: Tensor, num_classes: int, max_samples: int,
                   max_views: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Official `_anchor_sampling`, vectorised with fixed shapes (no host sync).

    embed [B,D,h,w]; labels (certainty pseudo-labels, -1 ignored) and preds [B,h,w].
    Pairs (image b, class c) with more than `max_views` labelled pixels each give
    n_view = min(max_samples // #pairs, max_views) anchors: n_view // 2 "hard" (pred != c) and the
    rest "easy" when both kinds suffice, otherwise as many as the scarce kind has and the rest
    from the other. Returns anchors [B*C*V, D], their class [B*C*V], validity [B*C*V] and the
    official row order of each anchor [B*C*V] (view-major, then pair rank).
    """
    b, d = embed.shape[:2]
    c, v = num_classes, max_views
    feats = embed.flatten(2).transpose(1, 2)  # [B,N,D]
    lab, prd = labels.flatten(1), preds.flatten(1)  # [B,N]
    classes = torch.arange(c, device=embed.device).view(1, c, 1)
    of_class = lab.unsqueeze(1) == classes  # [B,C,N]
    hard = of_class & (prd.unsqueeze(1) != classes)
    easy = of_class & (prd.unsqueeze(1) == classes)
    pair_ok = of_class.sum(2) > max_views  # [B,C]
    total = pair_ok.sum()
    n_view = torch.clamp(max_samples // total.clamp(min=1), max=max_views)
    nh, ne = hard.sum(2), easy.sum(2)
    half = n_view / 2
    both = (nh >= half) & (ne >= half)
    only_hard = ~both & (nh >= half)
    hard_keep = torch.where(both, n_view // 2, torch.where(only_hard, n_view - ne, nh))
    keys = torch.rand(of_class.shape, generator=g, device=embed.device)
    k = min(v, keys.shape[-1])
    hard_idx = torch.where(hard, keys, 2.0).topk(k, dim=2, largest=False).indices  # random hard pixels
    easy_idx = torch.where(easy, keys, 2.0).topk(k, dim=2, largest=False).indices
    slot = torch.arange(v, device=embed.device).view(1, 1, v)
    hk = hard_keep.unsqueeze(2)
    from_hard = slot < hk
    idx = torch.where(from_hard, hard_idx.gather(2, slot.clamp(max=k - 1).expand(b, c, v)),
                      easy_idx.gather(2, (slot - hk).clamp(0, k - 1)))  # [B,C,V]
    valid = pair_ok.unsqueeze(2) & (slot < n_view)
    anchors = feats.gather(1, idx.reshape(b, c * v, 1).expand(-1, -1, d)).reshape(b * c * v, d)
    anchor_cls = classes.view(1, c, 1).expand(b, c, v).reshape(-1)
    pair_rank = (pair_ok.flatten().cumsum(0) - 1).view(b, c, 1)
    row = slot * total + pair_rank
    return anchors, anchor_cls, valid.reshape(-1), row.reshape(-1)


def queue_contrast_loss(anchors: Tensor, anchor_cls: Tensor, valid: Tensor, row: Tensor, queue: Tensor,
                        temperature: float, base_temperature: float) -> Tensor:
    """Official `_contrastive` against the segment queue [C,M,D].

    Contrast set: the queue rows of classes 1..C-1 (labels 1..C-1), then M zero vectors labelled
    0 (where the official `_sample_negative` skips class 0). Per anchor:
    -(tau / tau_base) mean over positives of [l_p - log(e^{l_p} + sum_neg e^{l_n})], l = a.k / tau
    (minus the row max). The positive at column == official row index is dropped, as there."""
    c, m, d = queue.shape
    keys = torch.cat([queue[1:].reshape(-1, d), queue.new_zeros(m, d)])
    key_cls = torch.cat([torch.arange(1, c, device=queue.device).repeat_interleave(m),
                         torch.zeros(m, dtype=torch.long, device=queue.device)])
    logits = anchors.float() @ keys.float().t() / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    pos = anchor_cls.view(-1, 1) == key_cls.view(1, -1)
    neg = ~pos
    cols = torch.arange(keys.shape[0], device=queue.device).view(1, -1)
    pos = pos & (cols != row.view(-1, 1))
    exp = logits.exp()
    neg_sum = (exp * neg).sum(1, keepdim=True)
    log_prob = logits - torch.log(exp + neg_sum)
    mean_pos = (pos * log_prob).sum(1) / (pos.sum(1) + 1e-5)
    per_anchor = -(temperature / base_temperature) * mean_pos
    w = valid.to(per_anchor.dtype)
    return (per_anchor * w).sum() / w.sum().clamp(min=1.0)


@torch.no_grad()
def enqueue_segments(queue: Tensor, ptr: Tensor, embed: Tensor, labels: Tensor) -> None:
    """Official `_dequeue_and_enqueue` (segment part), vectorised, in place.

    For image b = 0, 1, ... and each foreground class c present in labels[b] (-1 = ignored), the
    L2-normalised mean embedding of its pixels goes to slot ptr[c] of class c's queue and ptr[c]
    advances by one (mod M): images are written in batch order, as the official loop does."""
    c, m, d = queue.shape
    b = embed.shape[0]
    if b > m:
        raise ValueError(f"UGPCL memory_size ({m}) must be at least the batch size ({b})")
    feats = embed.flatten(2)  # [B,D,N]
    onehot = (labels.flatten(1).unsqueeze(1) == torch.arange(c, device=embed.device).view(1, c, 1)).to(feats.dtype)
    counts = onehot.sum(2)  # [B,C]
    means = F.normalize(torch.einsum("bcn,bdn->bcd", onehot, feats) / counts.clamp(min=1).unsqueeze(2), dim=2)
    present = counts > 0
    present[:, 0] = False  # class 0 is never enqueued
    rank = present.long().cumsum(0) - 1  # order among the images holding class c
    slot = (ptr.view(1, c) + rank) % m  # [B,C]
    writes = present.unsqueeze(2) & (slot.unsqueeze(2) == torch.arange(m, device=embed.device).view(1, 1, m))
    written = writes.any(0)  # [C,M]
    new_rows = torch.einsum("bcm,bcd->cmd", writes.to(means.dtype), means)
    queue.copy_(torch.where(written.unsqueeze(2), new_rows.to(queue.dtype), queue))
    ptr.copy_((ptr + present.sum(0)) % m)


# --- the method -----------------------------------------------------------------------------------


@register_method("ugpcl")
class UGPCL(GeneratorStateMixin, Method):
    """One encoder, a CNN and an attention decoder, uncertainty-masked contrast against a segment queue."""

    Config = UGPCLConfig
    display_name = "UGPCL"
    description = "UGPCL (IJCAI'22): CNN + attention decoders, entropy-masked pixel contrast vs a segment queue, rotation prediction"
    evaluated_network = "cnn_decoder"
    NATIVE_SCHEDULE = NATIVE_SCHEDULE
    variants = {"native": {"schedule": "native"}, "max_views_100": {"max_views": 100}}

    def __init__(self, cfg, net_factory, num_classes, max_iters, data_info=None):
        super().__init__(cfg, net_factory, num_classes, max_iters, data_info)
        self.net = UGPCLNet(net_factory(), self.num_classes, cfg)
        queue = F.normalize(torch.randn(self.num_classes, cfg.memory_size, cfg.embed_dim), p=2, dim=2)
        self.register_buffer("segment_queue", queue)
        self.register_buffer("queue_ptr", torch.zeros(self.num_classes, dtype=torch.long))
        dice_w = torch.ones(self.num_classes)
        dice_w[0] = 0.0  # official class_weight [0, 1, 1, 1]
        self.register_buffer("dice_class_weight", dice_w, persistent=False)
        self._rng = seeded_generator()
        self._pending_enqueue: tuple[Tensor, Tensor] | None = None
        self._pl_view: PseudoLabelView | None = None
        self._certain_u: Tensor | None = None

    def predictor(self) -> nn.Module:
        return self.net

    def warm_start_networks(self) -> dict[str, nn.Module]:
        """The supervised warm start (methods/training/warm_start.py) sets the encoder, CNN decoder and head
        inside `net`; the attention decoder and UGPCL's heads keep their own initialisation."""
        return {"net": self.net}

    def augment_overrides(self) -> dict:
        """The official ACDC config removes the dataset rotation; UGPCL rotates in its own step."""
        return {} if self.cfg.common_rotation else {"rotate_deg": 0.0}

    def draw_rotations(self, n: int, g: torch.Generator, device) -> tuple[Tensor, Tensor]:
        """Per image, rot90 count k [n] in {0..3} and an angle [n] in degrees, U(-rotation_degrees,
        rotation_degrees) (the official `ugpcl_trainer.py` draws both per image)."""
        k = torch.randint(0, 4, (n,), generator=g, device=device)
        angle = (torch.rand(n, generator=g, device=device) * 2 - 1) * self.cfg.rotation_degrees
        return k, angle

    # ---- schedules ----------------------------------------------------------------------------
    def official_time(self, it: int) -> float:
        return native_time(it, self.max_iters, self.cfg.native_iters, self.cfg.schedule)

    def consistency_weight(self, it: int) -> float:
        t = self.official_time(it)
        return self.cfg.consistency * sigmoid_rampup(t // self.cfg.consistency_rampup_unit, self.cfg.consistency_rampup)

    def contrast_active(self, it: int) -> bool:
        return self.cfg.contrast_weight > 0 and self.official_time(it) >= self.cfg.contrast_start

    # ---- the step -----------------------------------------------------------------------------
    def supervised(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        dice = weighted_dice_loss(logits.softmax(1), target, self.dice_class_weight)
        return self.cfg.sup_dice_weight * dice + self.cfg.sup_ce_weight * F.cross_entropy(logits, target)

    def training_step(self, batch: Batch, it: int) -> StepOutput:
        cfg = self.cfg
        n_l = batch.x_l.shape[0]
        dev = batch.x_l.device
        g = step_generator(self._rng, dev)
        x = torch.cat([batch.x_l, batch.x_u])
        y = torch.cat([batch.y_l, batch.y_l.new_zeros((batch.x_u.shape[0], *batch.y_l.shape[1:]))])
        with torch.no_grad():
            k, angle = self.draw_rotations(x.shape[0], g, dev)
            x, y = rotate_views(x, y, k, angle)
        out = self.net.forward_train(x)
        seg, seg_tf = out.seg.float(), out.seg_tf.float()
        y_l = y[:n_l]
        sup = self.supervised(seg[:n_l], y_l) + cfg.tf_decoder_weight * self.supervised(seg_tf[:n_l], y_l)
        rot = F.cross_entropy(out.rotation.float(), k)
        prob, prob_tf = seg.softmax(1), seg_tf.softmax(1)
        cons = ((prob[n_l:] - prob_tf[n_l:]) ** 2).mean() if x.shape[0] > n_l else seg.new_zeros(())
        w_cons = self.consistency_weight(it)
        loss = sup + w_cons * cons + cfg.cls_weight * rot
        logs = {"sup": sup.detach(), "consistency": cons.detach(), "consistency_weight": w_cons,
                "rotation": rot.detach()}
        self._pl_view = None
        if self.contrast_active(it):
            contrast, unc_rate = self.contrast_term(out.embed, prob, prob_tf, y, n_l, it, g)
            self._pl_view = self._rotated_view(batch.x_u, k[n_l:], angle[n_l:])
            loss = loss + cfg.contrast_weight * contrast
            logs.update({"contrast": contrast.detach(), "uncertain_ratio": unc_rate})
        else:
            self._pending_enqueue = None
            logs.update({"contrast": 0.0, "uncertain_ratio": 0.0})
        logs["loss"] = loss.detach()
        return StepOutput(loss, logs)

    def contrast_term(self, embed: Tensor, prob: Tensor, prob_tf: Tensor, y: Tensor, n_l: int, it: int,
                      g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Entropy-masked pseudo-labels -> anchors -> SupCon against the queue; stashes the enqueue."""
        cfg = self.cfg
        with torch.no_grad():
            certain = certainty_pseudo_labels(prob, prob_tf, uncertainty_threshold(it, self.max_iters))
            uncertain_rate = (certain == -1).float().mean()
            self._certain_u = certain[n_l:].clone()  # before the labelled rows are overwritten
            certain[:n_l] = y[:n_l]
            size = embed.shape[-2:]
            labels_lr = downsample_labels(certain, size)
            preds_lr = downsample_labels(class_argmax(prob), size)
        anchors, anchor_cls, valid, row = sample_anchors(embed, labels_lr, preds_lr, self.num_classes,
                                                         cfg.max_samples, cfg.max_views, g)
        loss = queue_contrast_loss(anchors, anchor_cls, valid, row, self.segment_queue, cfg.temperature,
                                   cfg.base_temperature)
        self._pending_enqueue = (embed.detach(), labels_lr)
        return loss, uncertain_rate

    def _rotated_view(self, x_u: Tensor, k: Tensor, angle: Tensor) -> PseudoLabelView:
        """The certainty pseudo-labels of the unlabelled images (they choose the contrast's anchors;
        the segmentation loss on them is the soft consistency). They lie on the rotated grid, so the
        view's warp rotates the diagnostic labels the same way (rotate_views, nearest; corners 0)."""
        certain = self._certain_u
        return PseudoLabelView(certain.clamp(min=0), certain >= 0,
                               warp=lambda y_u: rotate_views(x_u, y_u, k, angle)[1])

    def pseudo_label_view(self) -> PseudoLabelView | None:
        return self._pl_view

    def on_step_end(self, it: int) -> None:
        """FIFO update of the segment queue with this step's (pre-update) embeddings."""
        if self._pending_enqueue is not None:
            enqueue_segments(self.segment_queue, self.queue_ptr, *self._pending_enqueue)
            self._pending_enqueue = None
