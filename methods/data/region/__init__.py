"""The region stage: which part of each short-axis slice the network sees, at what pixel size, and
the exact way back to the native grid (`Region`, picked by `data.region`).

- `base`: the `Region` contract, `RegionSpec` (what a run config's `data` section says) and the two
  label-free modes, `whole` and `crop` (their geometry is in its docstring);
- `label_centred`: the official SPCL input, a crop centred on each slice's label.

`make_region` picks one. This package imports both modules and neither imports this `__init__`
(`label_centred` builds on `base`), so the dependency runs one way.
"""

from __future__ import annotations

from typing import Sequence

from methods.data.region.base import (
    CENTRES,
    OFFICIAL_CROP_PX,
    OFFICIAL_ROW_SHIFT,
    REGION_MODES,
    SPLIT_KEY,
    TEST_CENTRES,
    CropRegion,
    Region,
    RegionSpec,
    WholeSlice,
    heart_offset_mm,
    labelled_heart_centre,
    prediction_centre,
    resize_images,
    resize_labels,
    resize_to_native,
)
from methods.data.region.label_centred import LabelCentredRegion
from methods.errors import ConfigError

__all__ = [
    "CENTRES", "OFFICIAL_CROP_PX", "OFFICIAL_ROW_SHIFT", "REGION_MODES", "SPLIT_KEY", "TEST_CENTRES",
    "CropRegion", "LabelCentredRegion", "Region", "RegionSpec", "WholeSlice", "heart_offset_mm",
    "labelled_heart_centre", "make_region", "prediction_centre", "region_from_data_config", "resize_images",
    "resize_labels", "resize_to_native",
]


def region_from_data_config(data: dict | object, split: dict | None = None, split_path: str = "split",
                            class_names: Sequence[str] = ()) -> "Region":
    """The Region of a run's `data` section (a DataConfig or its dict), its split and the cache's
    foreground class names."""
    get = data.get if isinstance(data, dict) else (lambda k, d=None: getattr(data, k, d))
    spec = RegionSpec(
        mode=str(get("region", "whole") or "whole"),
        img_size=int(get("img_size", 256)),
        spacing_mm=float(get("spacing_mm", 0.0) or 0.0),
        fov_mm=float(get("fov_mm", 0.0) or 0.0),
        centre=str(get("centre", "image") or "image"),
        crop_px=int(get("crop_px", OFFICIAL_CROP_PX) or OFFICIAL_CROP_PX),
        test_centre=str(get("test_centre", "label") or "label"),
    )
    return make_region(spec, split, split_path, class_names)


def make_region(spec: RegionSpec, split: dict | None = None, split_path: str = "split",
                class_names: Sequence[str] = ()) -> "Region":
    """The Region of `spec`; `class_names` (the cache's foreground names) tell `label_centred`
    which structure to centre on."""
    spec.validate()
    if spec.mode == "whole":
        return WholeSlice(spec)
    if spec.mode == "label_centred":
        return LabelCentredRegion(spec, class_names)
    offset = (0.0, 0.0)
    if spec.centre in ("labelled_mean", "two_pass"):
        record = (split or {}).get(SPLIT_KEY)
        if not record or "offset_mm" not in record:
            raise ConfigError(
                f"split {split_path} has no heart-centre statistics ('{SPLIT_KEY}'), which data.centre "
                f"{spec.centre!r} needs; make the split again with `python -m methods.data split` "
                "(it stores them from the labelled training patients)"
            )
        offset = (float(record["offset_mm"][0]), float(record["offset_mm"][1]))
    return CropRegion(spec, offset)
