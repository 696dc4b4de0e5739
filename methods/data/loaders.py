"""Training and evaluation data from a prepared cache and a split file.

Training works on 2D short-axis slices. Every slice of the split's patients (both frames, all
z-positions) is loaded into memory once, resized as a whole to `img_size` x `img_size`
(image bilinear with antialiasing, label nearest-exact) and kept as one tensor. The whole slice is
resized, without cropping, as SSL4MIS does: a non-square slice (ACDC: e.g. 216 x 256) is stretched
to the square grid, and `resize_to_native` undoes exactly that for evaluation. Nothing in the
training pipeline needs the LV position, so no ROI crop is made (the official SPCL code crops
160 x 160 around the LV; see docs/methods.md).

Two infinite streams give the batches: labelled (image, label) and unlabelled (image only; the
labels of unlabelled patients are never read). Each stream draws a fresh permutation per pass from
(seed, stream, pass number), so its whole state is two integers and resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from methods.api import Batch, ConfigError
from methods.data.splits import load_split
from methods.data.types import Case

SPLIT_ROLES = ("train_labelled", "train_unlabelled", "val", "test")
_STREAM_SALT = {"labelled": 0x1AB, "unlabelled": 0x2CD}


# --- cache and split ---------------------------------------------------------------------------
def open_cache(cache_dir: str | Path, expected_dataset: str | None = None):
    """Open a prepared cache; with `expected_dataset`, refuse a cache of another dataset."""
    from methods.data.cache import CachedDataset

    cache = CachedDataset(cache_dir)
    if expected_dataset is not None and cache.name != expected_dataset:
        raise ConfigError(
            f"cache {cache_dir} holds dataset {cache.name!r} (its dataset.json), "
            f"but the run config says data.dataset = {expected_dataset!r}"
        )
    return cache


def read_split(path: str | Path, cache=None) -> dict:
    """Read and validate a split file (`methods.data.splits.load_split`); with `cache`, also its
    dataset name and patient ids."""
    return load_split(path, cache)


def cases_of_role(cache, split: dict, role: str, split_path: str | Path = "split") -> list[str]:
    """Case ids (both frames) of the patients a split gives `role`; the split must be of this cache."""
    if role not in SPLIT_ROLES:
        raise ConfigError(f"unknown split role {role!r}; roles: {list(SPLIT_ROLES)}")
    if split.get("dataset") != cache.name:
        raise ConfigError(f"split {split_path} is for dataset {split.get('dataset')!r}, the cache {cache.root} holds {cache.name!r}")
    unknown = sorted(set(split[role]) - set(cache.patients()))
    if unknown:
        raise ConfigError(f"split {split_path}: {role} patients {unknown[:5]} are not in the cache {cache.root}")
    return list(cache.cases_of(split[role]))


# --- the slice grid -----------------------------------------------------------------------------
def resize_images(images: Tensor, img_size: int) -> Tensor:
    """[N, H, W] float -> [N, 1, S, S] float32, bilinear (antialiased when shrinking)."""
    x = images.float()[:, None]
    if tuple(x.shape[-2:]) == (img_size, img_size):
        return x.contiguous()
    return F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True)


def resize_labels(labels: Tensor, img_size: int) -> Tensor:
    """[N, H, W] integer -> [N, S, S] uint8, nearest-exact (pixel-centre aligned, like scipy order 0)."""
    y = labels[:, None].float()
    if tuple(y.shape[-2:]) != (img_size, img_size):
        y = F.interpolate(y, size=(img_size, img_size), mode="nearest-exact")
    return y[:, 0].round().to(torch.uint8)


def resize_to_native(logits: Tensor, native_hw: tuple[int, int]) -> Tensor:
    """Undo the training grid for evaluation: [N, C, S, S] -> [N, C, H, W], bilinear."""
    if tuple(logits.shape[-2:]) == tuple(native_hw):
        return logits
    return F.interpolate(logits, size=tuple(native_hw), mode="bilinear", align_corners=False)


@dataclass
class SliceSet:
    """All 2D slices of some cases on the training grid, in memory (CPU)."""

    images: Tensor  # [N, 1, S, S] float32
    labels: Tensor  # [N, S, S] uint8 ([0, S, S] for unlabelled slices: never read)
    case_ids: list[str]  # one entry per slice

    def __len__(self) -> int:
        return self.images.shape[0]


def load_slices(cache, case_ids: list[str], img_size: int, with_labels: bool = True) -> SliceSet:
    """Load and resize every slice of `case_ids` (each case resized in one vectorised call);
    `with_labels=False` (unlabelled patients) keeps an empty label tensor."""
    images, labels, owners = [torch.zeros(0, 1, img_size, img_size)], [torch.zeros(0, img_size, img_size, dtype=torch.uint8)], []
    for cid in case_ids:
        case: Case = cache.load(cid)
        images.append(resize_images(torch.from_numpy(case.image), img_size))
        if with_labels:
            labels.append(resize_labels(torch.from_numpy(case.label), img_size))
        owners.extend([cid] * case.image.shape[0])
    return SliceSet(torch.cat(images), torch.cat(labels), owners)


# --- infinite seeded streams --------------------------------------------------------------------
class SliceStream:
    """Endless batches of slice indices: one permutation per pass, drawn from (seed, salt, pass).

    A batch that crosses the end of a pass is completed from the next pass, so every batch has
    `batch_size` slices even when the set is smaller than a batch (then slices repeat).
    """

    def __init__(self, size: int, batch_size: int, seed: int, salt: int):
        if size <= 0:
            raise ValueError("a stream needs at least one slice")
        self.size, self.batch_size, self.seed, self.salt = size, batch_size, seed, salt
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.salt * 7919 + epoch) % (2**63))
        return torch.randperm(self.size, generator=g)

    def next_indices(self) -> Tensor:
        out = []
        need = self.batch_size
        while need:
            take = min(need, self.size - self.pos)
            out.append(self._perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
            if self.pos == self.size:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation(self.epoch)


class TrainingData:
    """The training side of a run: labelled and unlabelled slices and their two streams.

    `next_batch()` gives a `Batch` on the CPU (before augmentation); with `use_unlabelled=False`
    the unlabelled slices are not even loaded and `x_u` is an empty [0, 1, S, S] tensor.
    """

    def __init__(
        self,
        cache,
        split: dict,
        img_size: int,
        labelled_batch: int,
        unlabelled_batch: int,
        seed: int,
        use_unlabelled: bool = True,
        split_path: str | Path = "split",
    ):
        if img_size <= 0 or labelled_batch <= 0 or unlabelled_batch < 0:
            raise ConfigError("data: img_size and labelled_batch must be positive, unlabelled_batch >= 0")
        self.cache = cache
        self.img_size = img_size
        self.labelled = load_slices(cache, cases_of_role(cache, split, "train_labelled", split_path), img_size)
        if len(self.labelled) == 0:
            raise ConfigError(f"split {split_path}: train_labelled has no slices")
        self.use_unlabelled = bool(use_unlabelled and unlabelled_batch > 0)
        if self.use_unlabelled:
            unlabelled_cases = cases_of_role(cache, split, "train_unlabelled", split_path)
            self.unlabelled = load_slices(cache, unlabelled_cases, img_size, with_labels=False)
            if len(self.unlabelled) == 0:
                raise ConfigError(f"split {split_path}: train_unlabelled has no slices, but the method uses unlabelled data")
        else:
            self.unlabelled = load_slices(cache, [], img_size)
        self.labelled_batch, self.unlabelled_batch = labelled_batch, unlabelled_batch
        self.l_stream = SliceStream(len(self.labelled), labelled_batch, seed, _STREAM_SALT["labelled"])
        self.u_stream = (
            SliceStream(len(self.unlabelled), unlabelled_batch, seed, _STREAM_SALT["unlabelled"]) if self.use_unlabelled else None
        )

    @property
    def info(self) -> dict[str, int]:
        """Data facts for `Method(data_info=...)`."""
        return {
            "labelled_slices": len(self.labelled),
            "unlabelled_slices": len(self.unlabelled),
            "labelled_batch": self.labelled_batch,
            "unlabelled_batch": self.unlabelled_batch if self.use_unlabelled else 0,
            "img_size": self.img_size,
        }

    def next_batch(self) -> Batch:
        li = self.l_stream.next_indices()
        x_l, y_l = self.labelled.images[li], self.labelled.labels[li].long()
        if self.u_stream is not None:
            x_u = self.unlabelled.images[self.u_stream.next_indices()]
        else:
            x_u = self.labelled.images.new_zeros(0, 1, self.img_size, self.img_size)
        return Batch(x_l, y_l, x_u)

    def state_dict(self) -> dict:
        return {"labelled": self.l_stream.state_dict(), "unlabelled": self.u_stream.state_dict() if self.u_stream else None}

    def load_state_dict(self, state: dict) -> None:
        self.l_stream.load_state_dict(state["labelled"])
        if self.u_stream is not None:
            if state.get("unlabelled") is None:
                raise ConfigError("checkpoint has no unlabelled-stream state, but this run uses unlabelled data")
            self.u_stream.load_state_dict(state["unlabelled"])


# --- evaluation ---------------------------------------------------------------------------------
def iter_eval_cases(cache_dir: str | Path, split_path: str | Path, role: str = "test") -> Iterator[Case]:
    """Whole 3D cases (native grid, with spacing) of the patients of one split role, in case order."""
    cache = open_cache(cache_dir)
    split = read_split(split_path, cache)
    for cid in cases_of_role(cache, split, role, split_path):
        yield cache.load(cid)


def case_to_network_input(case: Case, img_size: int) -> Tensor:
    """A case's slices on the training grid: [Z, 1, S, S] float32 (what the network saw in training)."""
    return resize_images(torch.from_numpy(np.ascontiguousarray(case.image)), img_size)
