"""Training and evaluation data from a prepared cache and a split file.

Training works on 2D short-axis slices. Every slice of the split's patients (both frames, all
z-positions) is loaded into memory once, brought onto the network grid by the run's region stage
(`methods.data.region`: the whole slice resized to `img_size`, as SSL4MIS does, or a field of view
in mm around a label-free centre, resampled to a fixed pixel size) and kept as one tensor. The
region stage's `to_native` undoes exactly that for evaluation. No label is needed to place the
region (the official SPCL code crops 160 x 160 around the ground-truth LV; see docs/methods.md).

Two infinite streams give the batches: labelled (image, label) and unlabelled (image only; the
labels of unlabelled patients are never read). Each stream draws a fresh permutation per pass from
(seed, stream, pass number), so its whole state is two integers and resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from methods.api import Batch, ConfigError
# the whole-slice resize helpers are re-exported: importable from here as from methods.data.region
from methods.data.region import (Region, RegionSpec, make_region, region_from_data_config, resize_images,  # noqa: F401
                                 resize_labels, resize_to_native)
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


# --- a run's inputs -------------------------------------------------------------------------------
@dataclass
class RunInputs:
    """What every reader of a run opens first: the prepared cache, the split whose patients it
    reads (validated against the cache), the split the run trained with, and the run's region."""

    cache: Any  # methods.data.cache.CachedDataset
    split: dict
    split_path: str
    training_split: dict
    region: Region


def open_run_inputs(data, cache_dir: str | Path | None = None, split_path: str | Path | None = None,
                    check_dataset: bool = True) -> RunInputs:
    """Open the cache and split of a run's `data` section (a DataConfig or its dict, as recorded in
    run.yaml and final.pt) and build its region stage: the one rule that training, evaluation, the
    pseudo-label diagnostic and the step-time benchmark share, so that each of them feeds the
    network the window training fed it.

    `cache_dir` and `split_path` default to the run's own (`data.cache`, `data.split`); with
    `check_dataset`, a cache of another dataset than `data.dataset` is refused. The region is
    built from the run's training split (the split file the run recorded, while it is still
    readable; else the given one), whose `heart_centre` places a `labelled_mean` crop, and from the
    cache's class names, by which `label_centred` centres on the LV first
    (methods/data/label_centred.py); without them it would centre on all foreground."""
    get = data.get if isinstance(data, dict) else (lambda key, default=None: getattr(data, key, default))
    cache = open_cache(cache_dir or get("cache"), expected_dataset=get("dataset") if check_dataset else None)
    split_path = str(split_path or get("split"))
    split = read_split(split_path, cache)
    recorded = Path(str(get("split") or ""))
    if recorded.is_file() and recorded.resolve() != Path(split_path).resolve():
        training_split, training_path = read_split(recorded), str(recorded)
    else:
        training_split, training_path = split, split_path
    region = region_from_data_config(data, training_split, training_path, cache.class_names)
    return RunInputs(cache, split, split_path, training_split, region)


# --- the slice grid (methods.data.region) -----------------------------------------------------------
def as_region(region_or_size: Region | int) -> Region:
    """A Region, or an int meaning the whole slice resized to that size (the `whole` mode)."""
    if isinstance(region_or_size, Region):
        return region_or_size
    return make_region(RegionSpec(mode="whole", img_size=int(region_or_size)))


@dataclass
class SliceSet:
    """All 2D slices of some cases on the training grid, in memory (CPU)."""

    images: Tensor  # [N, 1, S, S] float32
    labels: Tensor  # [N, S, S] uint8 ([0, S, S] for unlabelled slices: never read)
    case_ids: list[str]  # one entry per slice

    def __len__(self) -> int:
        return self.images.shape[0]


def load_slices(cache, case_ids: list[str], region: Region | int, with_labels: bool = True) -> SliceSet:
    """Load every slice of `case_ids` onto the network grid of `region` (one vectorised call per
    case; an int is the whole slice at that size); `with_labels=False` (unlabelled patients)
    keeps an empty label tensor, and the labels of those cases are not read."""
    region = as_region(region)
    size = region.img_size
    images, labels, owners = [torch.zeros(0, 1, size, size)], [torch.zeros(0, size, size, dtype=torch.uint8)], []
    for cid in case_ids:
        case: Case = cache.load(cid)
        region.check_spacing(case.spacing, case.source or cid)
        centre = region.training_centre(case)
        images.append(region.images(case.image, case.spacing, centre))
        if with_labels:
            labels.append(region.labels(case.label, case.spacing, centre))
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
    `region` is a `methods.data.region.Region` (or an int: the whole slice at that size).

    With `diagnostic_labels=True` the labels the cache holds for the unlabelled patients are loaded
    too, and `next_batch_with_diagnostics()` returns them beside the batch (never inside it), for
    the engine's pseudo-label coverage and precision logs; the Batch a method sees is the same
    either way, and so is the stream of indices.
    """

    def __init__(
        self,
        cache,
        split: dict,
        region: Region | int,
        labelled_batch: int,
        unlabelled_batch: int,
        seed: int,
        use_unlabelled: bool = True,
        split_path: str | Path = "split",
        diagnostic_labels: bool = False,
    ):
        region = as_region(region)
        if region.img_size <= 0 or labelled_batch <= 0 or unlabelled_batch < 0:
            raise ConfigError("data: img_size and labelled_batch must be positive, unlabelled_batch >= 0")
        self.cache = cache
        self.region = region
        self.img_size = region.img_size
        self.labelled = load_slices(cache, cases_of_role(cache, split, "train_labelled", split_path), region)
        if len(self.labelled) == 0:
            raise ConfigError(f"split {split_path}: train_labelled has no slices")
        self.use_unlabelled = bool(use_unlabelled and unlabelled_batch > 0)
        self.has_diagnostic_labels = False
        if self.use_unlabelled:
            unlabelled_cases = cases_of_role(cache, split, "train_unlabelled", split_path)
            self.unlabelled = load_slices(cache, unlabelled_cases, region, with_labels=diagnostic_labels)
            if len(self.unlabelled) == 0:
                raise ConfigError(f"split {split_path}: train_unlabelled has no slices, but the method uses unlabelled data")
            # a cache without annotations for these patients stores all-background volumes
            self.has_diagnostic_labels = bool(diagnostic_labels and self.unlabelled.labels.any())
        else:
            self.unlabelled = load_slices(cache, [], region)
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
        return self.next_batch_with_diagnostics()[0]

    def next_batch_with_diagnostics(self) -> tuple[Batch, Tensor | None]:
        """(batch, labels of its unlabelled slices [B_u, S, S] uint8 or None): the labels only
        when `diagnostic_labels` was asked for and the cache has them."""
        li = self.l_stream.next_indices()
        x_l, y_l = self.labelled.images[li], self.labelled.labels[li].long()
        y_u = None
        if self.u_stream is not None:
            ui = self.u_stream.next_indices()
            x_u = self.unlabelled.images[ui]
            if self.has_diagnostic_labels:
                y_u = self.unlabelled.labels[ui]
        else:
            x_u = self.labelled.images.new_zeros(0, 1, self.img_size, self.img_size)
        return Batch(x_l, y_l, x_u), y_u

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


def case_to_network_input(case: Case, region: Region | int, centre=None) -> Tensor:
    """A case's slices on the training grid: [Z, 1, S, S] float32 (what the network saw in training)."""
    return as_region(region).images(case.image, case.spacing, centre)
