"""Loaders: the slice grid, data facts, seeded infinite streams, evaluation cases."""

import json

import pytest
import torch

from methods.api import ConfigError
from methods.data.cache import CachedDataset
from methods.data.loaders import (
    SliceStream,
    TrainingData,
    iter_eval_cases,
    open_cache,
    resize_images,
    resize_labels,
    resize_to_native,
)
from methods.data.splits import load_split


def _slices_of(cache_dir, patients):
    index = json.loads((cache_dir / "dataset.json").read_text())
    return sum(c["shape"][0] for c in index["cases"] if c["patient_id"] in patients)


@pytest.fixture(scope="module")
def data(tiny_cache, tiny_split):
    cache = CachedDataset(tiny_cache)
    return cache, load_split(tiny_split, cache)


def test_training_data_shapes_and_facts(data, tiny_cache):
    cache, split = data
    td = TrainingData(cache, split, 32, labelled_batch=3, unlabelled_batch=2, seed=0)
    b = td.next_batch()
    assert b.x_l.shape == (3, 1, 32, 32) and b.x_l.dtype == torch.float32
    assert b.y_l.shape == (3, 32, 32) and b.y_l.dtype == torch.int64
    assert b.x_u.shape == (2, 1, 32, 32)
    assert set(torch.unique(td.labelled.labels).tolist()) <= {0, 1, 2, 3}
    assert td.unlabelled.labels.shape[0] == 0  # unlabelled patients' labels are never kept
    assert td.info == {
        "labelled_slices": _slices_of(tiny_cache, split["train_labelled"]),
        "unlabelled_slices": _slices_of(tiny_cache, split["train_unlabelled"]),
        "labelled_batch": 3, "unlabelled_batch": 2, "img_size": 32,
    }


def test_supervised_only_data_never_loads_unlabelled_slices(data):
    cache, split = data
    td = TrainingData(cache, split, 32, 2, 4, seed=0, use_unlabelled=False)
    assert len(td.unlabelled) == 0 and td.info["unlabelled_batch"] == 0
    assert td.next_batch().x_u.shape == (0, 1, 32, 32)


def test_streams_are_seeded_and_resumable(data):
    cache, split = data
    a = TrainingData(cache, split, 32, 2, 2, seed=3)
    b = TrainingData(cache, split, 32, 2, 2, seed=3)
    c = TrainingData(cache, split, 32, 2, 2, seed=4)
    first = [a.next_batch() for _ in range(5)]
    assert all(torch.equal(x.x_l, y.x_l) and torch.equal(x.x_u, y.x_u) for x, y in zip(first, (b.next_batch() for _ in range(5))))
    assert not all(torch.equal(x.x_l, c.next_batch().x_l) for x in first)
    state = a.state_dict()
    ahead = [a.next_batch() for _ in range(7)]
    b.load_state_dict(state)
    assert all(torch.equal(x.x_l, y.x_l) and torch.equal(x.y_l, y.y_l) and torch.equal(x.x_u, y.x_u)
               for x, y in zip(ahead, (b.next_batch() for _ in range(7))))


def test_a_stream_visits_every_slice_once_per_pass_and_fills_across_passes():
    s = SliceStream(size=5, batch_size=3, seed=0, salt=1)
    drawn = torch.cat([s.next_indices() for _ in range(5)])  # 15 indices = 3 passes
    for p in range(3):
        assert sorted(drawn[5 * p : 5 * p + 5].tolist()) == [0, 1, 2, 3, 4]
    assert s.state_dict() == {"epoch": 3, "pos": 0}
    small = SliceStream(size=2, batch_size=5, seed=0, salt=1)
    assert small.next_indices().shape == (5,)


def test_resizing_keeps_values_and_label_set():
    img = torch.full((2, 20, 30), 0.25)
    assert torch.allclose(resize_images(img, 16), torch.full((2, 1, 16, 16), 0.25), atol=1e-6)
    lab = torch.zeros(1, 20, 30, dtype=torch.uint8)
    lab[:, 5:15, 10:20] = 2
    lab[:, 8:12, 13:17] = 3
    small = resize_labels(lab, 16)
    assert small.dtype == torch.uint8 and set(torch.unique(small).tolist()) == {0, 2, 3}
    assert resize_to_native(torch.randn(2, 4, 16, 16), (20, 30)).shape == (2, 4, 20, 30)


def test_eval_cases_are_whole_3d_cases_of_the_role(tiny_cache, tiny_split):
    split = json.loads(tiny_split.read_text())
    cases = list(iter_eval_cases(tiny_cache, tiny_split, "test"))
    assert sorted({c.patient_id for c in cases}) == sorted(split["test"])
    assert len(cases) == 2 * len(split["test"])  # ED and ES
    assert all(c.image.ndim == 3 and c.image.shape == c.label.shape and len(c.spacing) == 3 for c in cases)
    with pytest.raises(ConfigError, match="unknown split role"):
        list(iter_eval_cases(tiny_cache, tiny_split, "validation"))


def test_a_cache_of_another_dataset_is_refused(tiny_cache):
    with pytest.raises(ConfigError, match="dataset.json.*data.dataset = 'acdc'"):
        open_cache(tiny_cache, expected_dataset="acdc")
