"""The official SPCL input (`data.region: label_centred`, methods/data/region/label_centred.py): the
centre rule, the window with edge replication, per-slice min-max, the order-0 zoom and its exact
inverse, the test-time variants, the official evaluation grid, and bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from methods.api import ConfigError
from methods.data.region import RegionSpec, make_region
from methods.data.region.label_centred import LabelCentredRegion, fill_missing, slice_centres
from methods.data.types import Case
from methods.evaluation.evaluate import evaluate_method
from methods.evaluation.inference import official_grid_prediction, predict_case_with_centre
from methods.nets import NetOutput

NAMES = ("RV", "MYO", "LV")


def mk(case_id, image, label, spacing):
    return Case(case_id, case_id.split("_")[0], "ED", image, label, spacing)


def region(img_size, crop_px, test_centre="label"):
    return make_region(RegionSpec("label_centred", img_size, crop_px=crop_px, test_centre=test_centre), class_names=NAMES)


def one_hot_logits(labels, num_classes=4):
    return torch.nn.functional.one_hot(torch.as_tensor(labels).long(), num_classes).permute(0, 3, 1, 2).float()


def test_centre_rule_is_lv_then_myo_then_rv_moved_down_10_rows_truncated_means():
    label = np.zeros((4, 40, 40), np.uint8)
    label[0, 10:13, 20:22] = 3  # LV rows 10..12 (mean 11), cols 20..21 (mean 20.5 -> 20)
    label[0, 30:32, 5:7] = 2  # MYO elsewhere on the same slice: LV wins
    label[1, 5:8, 5:8] = 2  # MYO only: (6, 6)
    label[2, 2:4, 30:33] = 1  # RV only: rows mean 2.5 -> 2, + 10 = 12; cols 31
    found = slice_centres(label, NAMES)
    assert found.tolist() == [[11, 20], [6, 6], [12, 31], [-1, -1]]
    # an empty slice takes the nearest slice's centre
    assert fill_missing(found, "case").tolist()[3] == [12, 31]


def test_window_is_the_official_crop_with_edge_replication_and_per_slice_minmax():
    rng = np.random.default_rng(0)
    image = rng.random((1, 30, 30)).astype(np.float32) * 5 + 2
    label = np.zeros((1, 30, 30), np.uint8)
    label[0, 20, 3] = 3  # centre (20, 3): rows 20-8-2 .. 20+8-2 (crop 16, shift round(24*16/160)=2), cols -5..10
    reg = region(16, 16)
    assert reg.row_shift == 2
    centres = reg.training_centre(mk("c_ED", image, label, (5.0, 1.0, 1.0)))
    x = reg.images(image, (5.0, 1.0, 1.0), centres)[0, 0].numpy()
    rows = np.clip(np.arange(10, 26), 0, 29)
    cols = np.clip(np.arange(-5, 11), 0, 29)
    window = image[0][np.ix_(rows, cols)]
    expected = (window - window.min()) / (window.max() - window.min())
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    assert (x[:, :5] == x[:, [5]]).all()  # the first column repeated on the left (edge replication)


def test_zoom_is_order_0_and_to_native_inverts_it_exactly_inside_the_window():
    rng = np.random.default_rng(1)
    label = np.zeros((3, 40, 36), np.uint8)
    label[:, 12:24, 10:22] = rng.integers(0, 4, (3, 12, 12))
    label[:, 15:18, 14:17] = 3
    image = label.astype(np.float32)
    reg = region(31, 16)  # (31 - 1) / (16 - 1) = 2: native window pixel a lands on grid pixel 2a
    centres = reg.training_centre(mk("c_ED", image, label, (5.0, 1.0, 1.0)))
    y = reg.labels(label, (5.0, 1.0, 1.0), centres)
    assert y.shape == (3, 31, 31)
    back = reg.to_native(one_hot_logits(y), (40, 36), (5.0, 1.0, 1.0), centres).numpy()
    for z, c in enumerate(centres):
        r0, c0 = c[0] - 8 - reg.row_shift, c[1] - 8
        inside = np.zeros((40, 36), bool)
        inside[max(r0, 0):r0 + 16, max(c0, 0):c0 + 16] = True
        np.testing.assert_array_equal(back[z][inside], label[z][inside])
        assert (back[z][~inside] == 0).all()


class LabelFromIntensity(nn.Module):
    """A stand-in network that reads the label off the image (image = label / 3 before min-max)."""

    def forward(self, x):
        labels = torch.round(x[:, 0] * 3).clamp(0, 3).long()
        logits = one_hot_logits(labels) * 10
        return NetOutput(logits, logits, logits)


def synthetic_case(case_id="p1_ED"):
    label = np.zeros((2, 48, 44), np.uint8)
    label[:, 16:30, 12:26] = 2
    label[:, 19:27, 15:23] = 3
    label[:, 18:28, 26:32] = 1
    return mk(case_id, label.astype(np.float32) / 3, label, (8.0, 1.25, 1.25))


def test_official_grid_scores_the_window_at_224_px_with_its_pixel_size():
    reg = region(32, 32)
    case = synthetic_case()
    pred, centre = predict_case_with_centre(LabelFromIntensity(), case, reg)
    np.testing.assert_array_equal(pred, case.label)  # every foreground pixel lies inside the window
    g_pred, g_label, g_spacing = official_grid_prediction(LabelFromIntensity(), case, reg, centre, size=64)
    assert g_pred.shape == g_label.shape == (2, 64, 64)
    assert g_spacing == pytest.approx((8.0, 32 * 1.25 / 64, 32 * 1.25 / 64))
    for k in (1, 2, 3):
        p, r = g_pred == k, g_label == k
        assert 2 * (p & r).sum() / (p.sum() + r.sum()) > 0.9


def test_evaluation_flags_the_test_label_and_reports_the_official_grid(tmp_path):
    class Wrapped(nn.Module):
        num_classes, evaluated_network, embeds_projection = 4, "student", False

        def __init__(self):
            super().__init__()
            self.net = LabelFromIntensity()

        def predictor(self):
            return self.net

    run_cfg = {"method": "x", "variant": "default", "seed": 0, "data": {"dataset": "phantom", "ratio": 5, "img_size": 32}}
    kw = dict(labelled_cases=1, region=region(32, 32), grid="official", grid_size=64)
    df = evaluate_method(Wrapped(), run_cfg, [synthetic_case()], NAMES, **kw)
    assert df["uses_test_label"].all() and (df["evaluation"] == "official 64 px grid").all()
    assert df["region"].str.contains("the test label places the test crop").all()
    assert (df["dice"] > 0.9).all()
    native = evaluate_method(Wrapped(), run_cfg, [synthetic_case()], NAMES, labelled_cases=1,
                             region=region(32, 32, test_centre="predicted"))
    assert not native["uses_test_label"].any() and (native["evaluation"] == "native").all()
    assert (native["dice"] == 1.0).all()  # the first pass finds the heart, the second crops around it


def test_predicted_test_centre_needs_no_label():
    reg = region(32, 32, test_centre="predicted")
    case = synthetic_case()
    unlabelled = mk(case.case_id, case.image, np.zeros_like(case.label), case.spacing)  # unannotated
    pred, centre = predict_case_with_centre(LabelFromIntensity(), unlabelled, reg)
    np.testing.assert_array_equal(pred, case.label)
    assert np.asarray(centre).shape == (2, 2)


def test_bad_input_names_the_case_or_setting():
    empty = mk("p9_ED", np.zeros((2, 20, 20), np.float32), np.zeros((2, 20, 20), np.uint8), (5.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="p9_ED.*nothing to centre on"):
        region(16, 16).training_centre(empty)
    with pytest.raises(ConfigError, match="p9_ED.*nothing to centre on"):
        region(16, 16).evaluation_centre(empty)  # a test case without annotation
    with pytest.raises(ConfigError, match="data.test_centre"):
        make_region(RegionSpec("label_centred", 16, crop_px=16, test_centre="gt"))
    with pytest.raises(ConfigError, match="data.crop_px"):
        make_region(RegionSpec("label_centred", 16, crop_px=4))
    assert isinstance(region(16, 16), LabelCentredRegion)
