"""Shared test configuration (CPU only, few threads, deterministic) and the shared data fixtures.

Data fixtures, session-scoped and built once (a few seconds):
- `tiny_phantom_root`: an ACDC-format phantom tree of 8 patients (`phantom.TINY_OPTIONS`: 48-64 px,
  4-6 slices, coarse 3.0-3.6 mm pixels so the whole heart still fits);
- `tiny_cache`: its prepared cache folder (Path), read through the ACDC reader like real data;
- `tiny_split`: a split JSON path with 2 labelled, 3 unlabelled, 1 validation and 2 test patients.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

TINY_PHANTOM_PATIENTS = 8
TINY_PHANTOM_SEED = 7
TINY_SPLIT = {"labelled": 2, "n_val": 1, "n_test": 2, "seed": 0}  # leaves 3 unlabelled


@pytest.fixture(scope="session")
def tiny_phantom_root(tmp_path_factory):
    from methods.data.phantom import TINY_OPTIONS, generate_phantom

    root = tmp_path_factory.mktemp("phantom") / "tree"
    return generate_phantom(root, TINY_PHANTOM_PATIENTS, TINY_PHANTOM_SEED, TINY_OPTIONS)


@pytest.fixture(scope="session")
def tiny_cache(tiny_phantom_root, tmp_path_factory):
    from methods.data.phantom import TINY_OPTIONS
    from methods.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("cache") / "phantom"
    return prepare_dataset("phantom", tiny_phantom_root, out, phantom_patients=TINY_PHANTOM_PATIENTS,
                           phantom_seed=TINY_PHANTOM_SEED, phantom_options=TINY_OPTIONS)


@pytest.fixture(scope="session")
def tiny_split(tiny_cache, tmp_path_factory):
    from methods.data.cache import CachedDataset
    from methods.data.splits import make_split, write_split

    split = make_split(CachedDataset(tiny_cache), TINY_SPLIT["labelled"], TINY_SPLIT["seed"],
                       n_val=TINY_SPLIT["n_val"], n_test=TINY_SPLIT["n_test"])
    return write_split(split, tmp_path_factory.mktemp("split") / "split.json")


@pytest.fixture
def registry_restored():
    """For tests that register methods in this process: later tests see the real registry again."""
    from methods import api

    before = dict(api.list_methods())  # discovery first, so the restored registry is complete
    yield
    api._REGISTRY.clear()
    api._REGISTRY.update(before)
