"""Metrics: agreement with medpy on anisotropic 3D masks, hand-computable values, empty policies."""

import math

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary

from methods.evaluation.metrics import METRIC_NAMES, binary_metrics, case_metrics, surface_distances, volume_diagonal

SPACING = (10.0, 1.25, 1.5)  # (z, y, x) mm: cine-MRI-like anisotropy
SHAPE = (12, 48, 40)


def ellipsoid(centre, radius_mm, shape=SHAPE, spacing=SPACING):
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    return d2 <= radius_mm**2


def box(z, y, x, shape=SHAPE):
    m = np.zeros(shape, bool)
    m[z[0] : z[1], y[0] : y[1], x[0] : x[1]] = True
    return m


def _pairs():
    rng = np.random.default_rng(0)
    sphere = ellipsoid((6, 24, 20), 22.0)
    noisy = ellipsoid((5, 26, 18), 20.0) | (rng.random(SHAPE) < 0.002)
    cube = box((2, 9), (10, 30), (8, 28))
    at_edge = box((0, 12), (0, 20), (25, 40))  # touches the volume border on several faces
    return {
        "sphere_vs_shifted_sphere": (sphere, ellipsoid((5, 27, 19), 19.0)),
        "sphere_vs_noisy": (sphere, noisy),
        "noisy_vs_sphere": (noisy, sphere),  # ASD is directed: order matters
        "cube_vs_shifted_cube": (cube, np.roll(cube, (1, -2, 3), axis=(0, 1, 2))),
        "cube_vs_sphere": (cube, sphere),
        "mask_touching_volume_border": (at_edge, box((0, 10), (0, 23), (22, 40))),
        "single_voxel_vs_cube": (box((4, 5), (12, 13), (9, 10)), cube),
    }


@pytest.mark.parametrize("name", list(_pairs()))
def test_agrees_with_medpy(name):
    pred, ref = _pairs()[name]
    m = binary_metrics(pred, ref, SPACING)
    expected = {
        "dice": medpy_binary.dc(pred, ref),
        "jaccard": medpy_binary.jc(pred, ref),
        "hd95_mm": medpy_binary.hd95(pred, ref, voxelspacing=SPACING, connectivity=1),
        "hd95_px": medpy_binary.hd95(pred, ref, connectivity=1),
        "asd_mm": medpy_binary.asd(pred, ref, voxelspacing=SPACING, connectivity=1),
    }
    for key in METRIC_NAMES:
        assert getattr(m, key) == pytest.approx(expected[key], abs=1e-6), key


def test_cube_shifted_one_slice_along_z():
    """4 slices deep, shifted by one slice of 10 mm: every distance is 0 or one slice step."""
    cube = box((2, 6), (4, 12), (4, 12), shape=(8, 16, 16))
    shifted = np.roll(cube, 1, axis=0)
    m = binary_metrics(cube, shifted, (10.0, 1.0, 1.0))
    assert m.dice == pytest.approx(2 * 3 / (4 + 4))
    assert m.jaccard == pytest.approx(3 / 5)
    assert m.hd95_mm == pytest.approx(10.0)
    assert m.hd95_px == pytest.approx(1.0)  # the same error, counted in voxel steps


def test_cube_shifted_one_column_along_x_uses_x_spacing():
    cube = box((2, 6), (4, 12), (4, 12), shape=(8, 16, 16))
    m = binary_metrics(cube, np.roll(cube, 1, axis=2), (10.0, 1.25, 1.5))
    assert m.hd95_mm == pytest.approx(1.5)
    assert m.hd95_px == pytest.approx(1.0)


def test_identical_masks_are_perfect():
    cube = box((2, 6), (4, 12), (4, 12))
    m = binary_metrics(cube, cube, SPACING)
    assert (m.dice, m.jaccard, m.hd95_mm, m.hd95_px, m.asd_mm) == (1.0, 1.0, 0.0, 0.0, 0.0)


def test_surface_distances_are_cropped_without_changing_values():
    pred, ref = _pairs()["cube_vs_sphere"]
    d_pr, d_rp = surface_distances(pred, ref, SPACING)
    assert d_pr.mean() == pytest.approx(medpy_binary.asd(pred, ref, voxelspacing=SPACING))
    assert d_rp.mean() == pytest.approx(medpy_binary.asd(ref, pred, voxelspacing=SPACING))
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(np.zeros(SHAPE, bool), ref, SPACING)


def test_volume_diagonal_by_hand():
    assert volume_diagonal((4, 10, 12), (10.0, 1.0, 2.0)) == pytest.approx(math.sqrt(30**2 + 9**2 + 22**2))
    assert volume_diagonal((4, 10, 12), (1, 1, 1)) == pytest.approx(math.sqrt(3**2 + 9**2 + 11**2))


def test_empty_policy_both_empty_is_perfect():
    empty = np.zeros((4, 10, 12), bool)
    m = binary_metrics(empty, empty, (10.0, 1.0, 2.0))
    assert (m.dice, m.jaccard, m.hd95_mm, m.hd95_px, m.asd_mm) == (1.0, 1.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("which", ["prediction", "reference"])
def test_empty_policy_one_empty_is_the_volume_diagonal(which):
    shape, spacing = (4, 10, 12), (10.0, 1.0, 2.0)
    empty, present = np.zeros(shape, bool), box((1, 3), (2, 5), (2, 6), shape=shape)
    pred, ref = (empty, present) if which == "prediction" else (present, empty)
    m = binary_metrics(pred, ref, spacing)
    diag_mm, diag_px = math.sqrt(30**2 + 9**2 + 22**2), math.sqrt(3**2 + 9**2 + 11**2)
    assert (m.dice, m.jaccard) == (0.0, 0.0)
    assert m.hd95_mm == pytest.approx(diag_mm) and m.asd_mm == pytest.approx(diag_mm)
    assert m.hd95_px == pytest.approx(diag_px)


def test_missing_structure_never_beats_the_worst_non_empty_prediction():
    shape, spacing = (4, 10, 12), (10.0, 1.0, 2.0)
    corner_a, corner_b = np.zeros(shape, bool), np.zeros(shape, bool)
    corner_a[0, 0, 0] = corner_b[-1, -1, -1] = True
    farthest = binary_metrics(corner_a, corner_b, spacing)
    missed = binary_metrics(np.zeros(shape, bool), corner_b, spacing)
    assert farthest.hd95_mm == pytest.approx(missed.hd95_mm)
    assert farthest.hd95_px == pytest.approx(missed.hd95_px)


def test_paper_mode_replaces_an_empty_prediction_by_all_ones():
    ref = ellipsoid((6, 24, 20), 15.0)
    all_ones = np.ones(SHAPE, bool)
    m = binary_metrics(np.zeros(SHAPE, bool), ref, SPACING, paper_compatible=True)
    assert (m.dice, m.jaccard) == (0.0, 0.0)
    assert m.hd95_px == pytest.approx(medpy_binary.hd95(all_ones, ref))
    assert m.hd95_mm == pytest.approx(medpy_binary.hd95(all_ones, ref, voxelspacing=SPACING))
    assert m.asd_mm == pytest.approx(medpy_binary.asd(all_ones, ref, voxelspacing=SPACING))
    assert m.hd95_mm != pytest.approx(volume_diagonal(SHAPE, SPACING))  # differs from the default policy


def test_paper_mode_empty_reference_is_undefined():
    empty = np.zeros(SHAPE, bool)
    both = binary_metrics(empty, empty, SPACING, paper_compatible=True)
    assert all(math.isnan(getattr(both, k)) for k in METRIC_NAMES)
    hallucinated = binary_metrics(box((1, 3), (2, 5), (2, 6)), empty, SPACING, paper_compatible=True)
    assert (hallucinated.dice, hallucinated.jaccard) == (0.0, 0.0)
    assert all(math.isnan(v) for v in (hallucinated.hd95_mm, hallucinated.hd95_px, hallucinated.asd_mm))


def test_paper_mode_equals_default_when_nothing_is_empty():
    pred, ref = _pairs()["sphere_vs_noisy"]
    assert binary_metrics(pred, ref, SPACING, paper_compatible=True) == binary_metrics(pred, ref, SPACING)


def test_case_metrics_one_row_per_foreground_class_in_order():
    label = np.zeros((6, 20, 20), np.uint8)
    label[1:5, 2:10, 2:10] = 1
    label[1:5, 12:18, 12:18] = 3
    pred = label.copy()
    pred[pred == 3] = 0  # class 3 missed, class 2 absent in both
    rows = case_metrics(pred, label, (10.0, 1.0, 1.0), ("RV", "MYO", "LV"))
    assert [r["class_name"] for r in rows] == ["RV", "MYO", "LV"]
    assert rows[0]["dice"] == 1.0 and rows[0]["hd95_mm"] == 0.0
    assert rows[1]["dice"] == 1.0 and rows[1]["hd95_px"] == 0.0
    assert rows[2]["dice"] == 0.0 and rows[2]["hd95_mm"] == pytest.approx(volume_diagonal((6, 20, 20), (10, 1, 1)))


def test_bad_input_is_rejected_with_a_clear_message():
    a = np.zeros((4, 8, 8), bool)
    with pytest.raises(ValueError, match="shape"):
        binary_metrics(a, np.zeros((4, 8, 9), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        binary_metrics(a, a, (1, 1))
    with pytest.raises(ValueError, match="spacing"):
        binary_metrics(a, a, (1, 0, 1))
