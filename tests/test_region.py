"""The region stage (methods/data/region/): crop geometry and its exact inverse, anisotropic
spacing, label-free centres (image, labelled training mean, two-pass), bad settings."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from methods.api import ConfigError
from methods.data.region import (
    CropRegion,
    RegionSpec,
    heart_offset_mm,
    labelled_heart_centre,
    make_region,
    region_from_data_config,
)
from methods.data.types import Case
from methods.evaluation.evaluate import evaluate_method
from methods.evaluation.inference import predict_case_with_centre
from methods.nets import NetOutput
from methods.runconfig import parse_run_config


def crop(img_size, spacing_mm, centre="image", offset=(0.0, 0.0)):
    spec = RegionSpec("crop", img_size, spacing_mm, img_size * spacing_mm, centre)
    spec.validate()
    return CropRegion(spec, offset)


def one_hot_logits(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float()


def test_crop_at_native_spacing_is_an_exact_copy_and_its_inverse_restores_the_label():
    rng = np.random.default_rng(0)
    image = rng.random((2, 10, 12)).astype(np.float32)
    label = rng.integers(0, 4, (2, 10, 12)).astype(np.uint8)
    spacing = (5.0, 1.5, 1.5)
    region = crop(4, 1.5)  # a 6 mm square at the native 1.5 mm pixels
    centre = (4.5, 5.5)  # network rows 0..3 = native rows 3..6, columns 4..7
    x = region.images(image, spacing, centre)
    assert x.shape == (2, 1, 4, 4) and x.dtype == torch.float32
    np.testing.assert_allclose(x[:, 0].numpy(), image[:, 3:7, 4:8], rtol=0, atol=1e-6)
    y = region.labels(label, spacing, centre)
    np.testing.assert_array_equal(y.numpy(), label[:, 3:7, 4:8])
    back = region.to_native(one_hot_logits(y, 4), (10, 12), spacing, centre).numpy()
    np.testing.assert_array_equal(back[:, 3:7, 4:8], label[:, 3:7, 4:8])  # inside: exact
    outside = np.ones((10, 12), bool)
    outside[3:7, 4:8] = False
    assert (back[:, outside] == 0).all()  # outside the field of view: background


def test_crop_and_inverse_are_exact_at_an_integer_zoom():
    # native 2 mm pixels, network 1 mm: each native pixel becomes a 2 x 2 block and comes back whole
    label = np.zeros((1, 8, 8), np.uint8)
    label[0, 2:5, 3:6] = 2
    label[0, 5, 5] = 1
    spacing = (8.0, 2.0, 2.0)
    region = crop(16, 1.0)
    centre = (3.75, 3.75)  # network pixel i samples native 3.75 + (i - 7.5) / 2 = (i / 2) - 0.25 + ...
    y = region.labels(label, spacing, centre)
    assert y.shape == (1, 16, 16)
    back = region.to_native(one_hot_logits(y, 3), (8, 8), spacing, centre).numpy()
    np.testing.assert_array_equal(back, label)


def test_anisotropic_spacing_is_honoured_per_axis():
    # native pixels 1 mm (rows) x 2 mm (columns); a 4 mm x 6 mm rectangle
    label = np.zeros((1, 20, 10), np.uint8)
    label[0, 8:12, 4:7] = 1  # rows 8..11 (4 mm), columns 4..6 (3 x 2 mm = 6 mm)
    image = np.tile(np.arange(10, dtype=np.float32)[None, None, :] / 10, (1, 20, 1))  # ramp in x
    spacing = (10.0, 1.0, 2.0)
    region = crop(8, 1.0)  # 8 mm at 1 mm per pixel, both axes
    centre = (9.5, 5.0)
    y = region.labels(label, spacing, centre)[0].numpy()
    rows, cols = np.nonzero(y)
    assert rows.max() - rows.min() + 1 == 4  # 4 mm at 1 mm/px
    assert cols.max() - cols.min() + 1 == 6  # 6 mm at 1 mm/px (3 native columns)
    x = region.images(image, spacing, centre)[0, 0].numpy()
    # column j samples native x = 5 + (j - 3.5) / 2; the ramp is linear, so bilinear is exact
    expected = (5 + (np.arange(8) - 3.5) / 2) / 10
    np.testing.assert_allclose(x[4], expected, atol=1e-6)
    # back to the native grid: the rectangle again, exactly
    back = region.to_native(one_hot_logits(torch.from_numpy(y[None]), 2), (20, 10), spacing, centre).numpy()
    np.testing.assert_array_equal(back, label)


def test_shrinking_prefilters_and_the_field_of_view_is_fixed_in_mm():
    # a one-pixel stripe pattern at 1 mm; at 2 mm per pixel it averages to grey, not to aliasing
    image = np.zeros((1, 40, 40), np.float32)
    image[0, :, ::2] = 1.0
    region = crop(10, 2.0)  # 20 mm
    x = region.images(image, (1.0, 1.0, 1.0))[0, 0].numpy()
    assert x.shape == (10, 10)
    assert abs(x.mean() - 0.5) < 0.05 and x.std() < 0.1
    # the same 20 mm at another acquisition grid gives the same network grid
    assert region.images(np.zeros((1, 64, 30), np.float32), (1.0, 0.7, 1.3)).shape == (1, 1, 10, 10)


def test_heart_offset_and_the_labelled_mean_centre():
    label = np.zeros((2, 11, 21), np.uint8)
    label[:, 2, 4] = 1  # centroid (2, 4); slice centre (5, 10)
    assert heart_offset_mm(label, (5.0, 1.5, 2.0)) == pytest.approx((-4.5, -12.0))
    assert heart_offset_mm(np.zeros_like(label), (5.0, 1.0, 1.0)) is None
    region = make_region(RegionSpec("crop", 8, 2.0, 16.0, "labelled_mean"), {"heart_centre": {"offset_mm": [-4.5, -12.0]}})
    # a case with 1.5 x 2 mm pixels: centre = slice centre + offset / spacing
    assert region.base_centre((11, 21), (5.0, 1.5, 2.0)) == pytest.approx((2.0, 4.0))
    # a case with other pixels: the same physical offset
    assert region.base_centre((30, 30), (5.0, 1.0, 1.0)) == pytest.approx((14.5 - 4.5, 14.5 - 12.0))


def test_split_stores_the_labelled_patients_heart_centre(tiny_cache, tiny_split):
    from methods.data.cache import CachedDataset

    split = json.loads(open(tiny_split).read())
    cache = CachedDataset(tiny_cache)
    record = split["heart_centre"]
    offsets = [heart_offset_mm(cache.load(c).label, cache.load(c).spacing) for c in cache.cases_of(split["train_labelled"])]
    assert record["offset_mm"] == pytest.approx(np.mean(offsets, axis=0).tolist(), abs=1e-4)
    assert record["cases"] == cache.cases_of(split["train_labelled"])
    assert labelled_heart_centre(cache, split["train_labelled"])["offset_mm"] == record["offset_mm"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"region": "crop", "spacing_mm": 0.0, "fov_mm": 100.0, "img_size": 40}, "data.spacing_mm"),
        ({"region": "crop", "spacing_mm": 2.5, "fov_mm": -100.0, "img_size": 40}, "data.fov_mm"),
        ({"region": "crop", "spacing_mm": 2.5, "fov_mm": 100.0, "img_size": 48}, "data.img_size is 48"),
        ({"region": "crop", "spacing_mm": 2.5, "fov_mm": 100.0, "img_size": 40, "centre": "label"}, "data.centre"),
        ({"region": "roi"}, "data.region"),
    ],
)
def test_bad_region_settings_are_config_errors_naming_the_setting(data, message):
    raw = {"method": "suponly", "out_dir": "x", "data": {"cache": "c", "split": "s", "dataset": "acdc", **data}}
    with pytest.raises(ConfigError, match=message):
        parse_run_config(raw)


def test_labelled_mean_without_statistics_is_refused():
    with pytest.raises(ConfigError, match="no heart-centre statistics"):
        region_from_data_config({"region": "crop", "img_size": 8, "spacing_mm": 2.0, "fov_mm": 16.0,
                                 "centre": "labelled_mean"}, {"train_labelled": ["p1"]}, "splits/r5.json")


def test_labelled_heart_centre_needs_foreground(tiny_cache, tmp_path):
    from methods.data.cache import CachedDataset

    class NoForeground:
        root = tmp_path

        def cases_of(self, patients):
            return ["a"]

        def load(self, case_id):
            case = CachedDataset(tiny_cache).load(CachedDataset(tiny_cache).case_ids[0])
            return Case(case.case_id, case.patient_id, case.phase, case.image, np.zeros_like(case.label), case.spacing)

    with pytest.raises(ConfigError, match="no foreground"):
        labelled_heart_centre(NoForeground(), ["p"])


def test_a_case_without_a_valid_spacing_is_refused():
    region = crop(8, 2.0)
    with pytest.raises(ConfigError, match="spacing"):
        region.check_spacing((10.0, float("nan"), 1.0), "cache/cases/p1_ED.npz")
    with pytest.raises(ConfigError, match="p1_ED.npz"):
        region.check_spacing((10.0, 0.0, 1.0), "cache/cases/p1_ED.npz")
    region.check_spacing((10.0, 1.0, 1.0), "fine")


class BrightNet(nn.Module):
    """Class 1 where the image is above 0.5 (logits [0.5 - x, x - 0.5])."""

    def forward(self, x):
        return NetOutput(torch.cat([0.5 - x, x - 0.5], 1), x, x)


def blob_case(label_value: int = 1) -> Case:
    image = np.zeros((2, 60, 60), np.float32)
    image[:, 40:50, 8:18] = 1.0  # a bright square far from the slice centre
    label = (image > 0.5).astype(np.uint8) * label_value
    return Case("b_ED", "b", "ED", image, label, (8.0, 1.0, 1.0))


def test_two_pass_recentres_on_the_first_prediction():
    # 30 mm around the slice centre (29.5, 29.5) sees only the square's corner region ...
    region = make_region(RegionSpec("crop", 30, 1.0, 30.0, "two_pass"), {"heart_centre": {"offset_mm": [0.0, 0.0]}})
    pred, centre = predict_case_with_centre(BrightNet(), blob_case(), region)
    # ... the part it sees (rows 40..44, columns 15..17) moves the centre towards the square, and the
    # second pass contains all of it
    assert centre[0] > 40 and centre[1] < 18
    np.testing.assert_array_equal(pred, blob_case().label)
    # a single pass at the image centre misses most of it
    one = make_region(RegionSpec("crop", 30, 1.0, 30.0, "image"))
    assert predict_case_with_centre(BrightNet(), blob_case(), one)[0].sum() < blob_case().label.sum() / 2


@pytest.mark.parametrize("centre", ["image", "labelled_mean", "two_pass"])
def test_the_prediction_does_not_depend_on_the_test_label(centre, tmp_path):
    region = make_region(RegionSpec("crop", 30, 1.0, 30.0, centre), {"heart_centre": {"offset_mm": [6.0, -9.0]}})
    run_cfg = {"method": "x", "seed": 0, "data": {"dataset": "d", "ratio": 5, "img_size": 30}}

    class Wrapper(nn.Module):
        num_classes = 2
        evaluated_network = "student"

        def __init__(self):
            super().__init__()
            self.net = BrightNet()

        def predictor(self):
            return self.net

    results = []
    for k, value in enumerate((1, 0)):  # the true label, then no label at all (all background)
        df = evaluate_method(Wrapper(), run_cfg, [blob_case(value)], ["LV"], labelled_cases=1, region=region,
                             predictions_dir=tmp_path / str(k), prediction_cases=1)
        with np.load(tmp_path / str(k) / "b_ED.npz") as f:
            results.append((f["pred"].copy(), df["region_centre"].iloc[0], df["region"].iloc[0]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1:] == results[1][1:]
    assert results[0][2].startswith("crop 30 mm at 1 mm/px")
