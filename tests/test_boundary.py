"""The thick class boundary (methods/boundary.py) on hand-checkable maps and against
scikit-image's find_boundaries(mode="thick"), for label maps and for masks of any leading shape."""

import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries

from methods.boundary import thick_boundary


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


def test_hand_checked_maps_as_labels_and_as_masks():
    for labels, expected in hand_maps():
        got = thick_boundary(torch.from_numpy(labels)).numpy()
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got, find_boundaries(labels, connectivity=1, mode="thick"))
    dot, dot_b = hand_maps()[0]
    np.testing.assert_array_equal(thick_boundary(torch.from_numpy(dot == 1)).numpy(), dot_b)  # a bool mask


@pytest.mark.parametrize("seed", [0, 1])
def test_random_maps_equal_skimage_per_slice_and_per_class_mask(seed):
    labels = np.random.default_rng(seed).integers(0, 4, (3, 9, 7))
    labels[0] = 2  # a constant slice has no boundary, even at the image border
    ours = thick_boundary(torch.from_numpy(labels)).numpy()
    for s in range(labels.shape[0]):
        np.testing.assert_array_equal(ours[s], find_boundaries(labels[s], connectivity=1, mode="thick"))
    assert not ours[0].any()
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels), 4).permute(0, 3, 1, 2).bool()  # [B, C, H, W]
    per_class = thick_boundary(onehot).numpy()
    for s in range(labels.shape[0]):
        for c in range(4):
            np.testing.assert_array_equal(per_class[s, c], find_boundaries(labels[s] == c, connectivity=1, mode="thick"))
