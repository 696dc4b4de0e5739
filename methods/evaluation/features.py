"""A class-balanced sample of a method's projection features over whole cases (`features.npz`).

The features are L2-normalised `method.embed` maps of the evaluated slices at feature resolution,
with `class_index` (the training-grid label, nearest-downsampled as the methods do in training;
0 = background) and `boundary` (4-neighbourhood "thick" boundary of that label map). The sample is
uniform without replacement within each class, drawn with seeded random priorities (one key per
pixel in slice order), so the same seed picks the same pixels for every method whose feature maps
have the same size, and t-SNE plots (Fig. 7) of different methods show the same pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from methods.api import Method
from methods.boundary import thick_boundary
from methods.data.loaders import as_region
from methods.data.region import Region
from methods.data.types import Case
from methods.errors import ConfigError
from methods.evaluation.inference import DEFAULT_BATCH_SIZE, evaluating, slice_batches
from methods.precision import FP32, Numerics
from methods.tensors import downsample_labels

DEFAULT_FEATURES_PER_CLASS = 500


class BalancedFeatureSampler:
    """Keeps a uniform sample (without replacement) of up to `per_class` pixels of each class.

    Every pixel offered gets a random priority from a seeded CPU generator (device-independent);
    each class keeps its `per_class` smallest priorities. After any number of `add` calls the kept
    set is a uniform sample of all pixels of that class seen so far, held in O(per_class) memory.
    """

    def __init__(self, num_classes: int, per_class: int, seed: int = 0):
        if per_class < 1:
            raise ConfigError(f"features_per_class must be >= 1, got {per_class}")
        self.num_classes, self.per_class = int(num_classes), int(per_class)
        self._gen = torch.Generator().manual_seed(int(seed))
        self._kept: list[tuple[Tensor, Tensor, Tensor] | None] = [None] * self.num_classes

    def add(self, features: Tensor, labels: Tensor, boundary: Tensor) -> None:
        """features [B, D, h, w] (normalised), labels [B, h, w] int, boundary [B, h, w] bool."""
        d = features.shape[1]
        feats = features.permute(0, 2, 3, 1).reshape(-1, d)
        labels, boundary = labels.reshape(-1), boundary.reshape(-1)
        keys = torch.rand(labels.numel(), generator=self._gen).to(features.device)
        for c in range(self.num_classes):
            sel = labels == c
            cand = (keys[sel], feats[sel], boundary[sel])
            if self._kept[c] is not None:
                cand = tuple(torch.cat([old, new]) for old, new in zip(self._kept[c], cand))
            if cand[0].numel() > self.per_class:
                top = cand[0].topk(self.per_class, largest=False).indices
                cand = tuple(t[top] for t in cand)
            self._kept[c] = cand

    def result(self) -> dict[str, np.ndarray]:
        """`features` float32 [N, D], `class_index` int64 [N], `boundary` bool [N] (class order)."""
        feats, classes, bounds = [], [], []
        for c, kept in enumerate(self._kept):
            if kept is None or kept[0].numel() == 0:
                continue
            order = kept[0].argsort()
            feats.append(kept[1][order].float().cpu())
            bounds.append(kept[2][order].cpu())
            classes.append(torch.full((order.numel(),), c, dtype=torch.int64))
        if not feats:
            raise ValueError("no pixels were sampled: the evaluated cases have no slices")
        return {
            "features": torch.cat(feats).numpy().astype(np.float32),
            "class_index": torch.cat(classes).numpy(),
            "boundary": torch.cat(bounds).numpy().astype(bool),
        }


def sample_case_features(
    method: Method,
    case: Case,
    region: Region | int,
    sampler: BalancedFeatureSampler,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_SIZE,
    numerics: Numerics = FP32,
    centre=None,
) -> None:
    """Offer every pixel of the case's projection maps (`method.embed`) to `sampler`; the label
    only names each pixel's class for the figure (the crop is placed at `centre`, label-free)."""
    region = as_region(region)
    x = region.images(case.image, case.spacing, centre)
    y = region.labels(case.label, case.spacing, centre)
    with evaluating(method):
        for sl in slice_batches(x.shape[0], batch_size):
            with numerics.autocast(device):
                emb = method.embed(numerics.format_input(x[sl].to(device, non_blocking=True)))
            emb = F.normalize(emb.float(), dim=1)
            labels = downsample_labels(y[sl].long().to(device), tuple(emb.shape[-2:]))
            sampler.add(emb, labels, thick_boundary(labels))
