"""The one thick boundary (methods/boundary.py) on hand-checkable maps, against the copies it
replaced and scikit-image's find_boundaries(mode="thick")."""

import numpy as np
import torch
from skimage.segmentation import find_boundaries

from baselines._contrast import thick_boundary as bass_copy
from methods.boundary import thick_boundary
from methods.evaluate import thick_boundary as evaluate_copy
from spcl.boundaries import thick_boundaries as spcl_copy


def hand_maps():
    """(label map [H, W], boundary by hand)."""
    dot = np.zeros((5, 5), np.int64)
    dot[2, 2] = 1  # a pixel and its 4 neighbours
    dot_b = np.zeros((5, 5), bool)
    dot_b[2, 2] = dot_b[1, 2] = dot_b[3, 2] = dot_b[2, 1] = dot_b[2, 3] = True
    line = np.zeros((4, 6), np.int64)
    line[:, 2] = 3  # a one-pixel line: itself and both flanks, along the whole height
    line_b = np.zeros((4, 6), bool)
    line_b[:, 1:4] = True
    halves = np.zeros((3, 4), np.int64)
    halves[:, 2:] = 2  # two halves: the two columns at the crack, the border is no boundary
    halves_b = np.zeros((3, 4), bool)
    halves_b[:, 1:3] = True
    corner = np.zeros((4, 4), np.int64)
    corner[:2, :2] = 1
    corner[2:, 2:] = 2  # opposite quadrants: every pixel but the four image corners touches another value
    corner_b = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]], bool)
    flat = np.full((3, 3), 2, np.int64)  # constant: nothing, not even at the border
    return [(dot, dot_b), (line, line_b), (halves, halves_b), (corner, corner_b), (flat, np.zeros((3, 3), bool))]


def test_hand_checked_maps():
    for labels, expected in hand_maps():
        got = thick_boundary(torch.from_numpy(labels)).numpy()
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got, find_boundaries(labels, connectivity=1, mode="thick"))


def test_equals_every_copy_it_replaces():
    for labels, _ in hand_maps():
        batch = torch.from_numpy(labels)[None]
        ours = thick_boundary(batch)
        assert torch.equal(ours, spcl_copy(batch))
        assert torch.equal(ours, evaluate_copy(batch))
        for value in np.unique(labels):  # the binary form BASS used, per class mask
            mask = batch == int(value)
            assert torch.equal(thick_boundary(mask), bass_copy(mask))
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 4, (3, 9, 7)))
    assert torch.equal(thick_boundary(labels), spcl_copy(labels))
    assert torch.equal(thick_boundary(labels), evaluate_copy(labels))
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).bool()
    assert torch.equal(thick_boundary(onehot), bass_copy(onehot))  # [B, C, H, W], as BASS calls it
