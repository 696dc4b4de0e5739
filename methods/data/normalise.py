"""Per-volume intensity normalisation applied once, at `prepare`, to every cached case.

Cardiac cine MRI has no physical intensity unit: scanners, coils and sequences change the scale,
and a few very bright voxels (fat, flow artefacts, the coil near-field) dominate the maximum.

- `clip_minmax` (the harness default): clip each 3D frame at its 0.5th and 99.5th intensity
  percentiles, then scale it min-max to [0, 1]. The clipping makes the scale robust to those few
  outliers, so blood and myocardium land at similar values across patients.
- `minmax`: plain per-volume min-max to [0, 1], exactly what SSL4MIS does in
  `acdc_data_processing.py` (`(image - min) / (max - min)` over the whole frame), for runs that
  want the published preprocessing.

A constant volume (max == min) maps to all zeros instead of dividing by zero.
"""

from __future__ import annotations

import numpy as np

CLIP_PERCENTILES = (0.5, 99.5)

NORMALISATIONS = {
    "clip_minmax": f"per-volume clip at percentiles {CLIP_PERCENTILES[0]}/{CLIP_PERCENTILES[1]}, then min-max to [0, 1]",
    "minmax": "per-volume min-max to [0, 1] (SSL4MIS)",
}
DEFAULT_NORMALISATION = "clip_minmax"


def normalise_volume(image: np.ndarray, method: str = DEFAULT_NORMALISATION) -> np.ndarray:
    """Return `image` (any shape) as float32 in [0, 1] using the named per-volume method."""
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation {method!r} is unknown; choose one of {sorted(NORMALISATIONS)}")
    volume = np.asarray(image, dtype=np.float64)
    if not np.all(np.isfinite(volume)):
        raise ValueError("image holds NaN or infinite values; cannot normalise it")
    if method == "clip_minmax":
        low, high = np.percentile(volume, CLIP_PERCENTILES)
        volume = np.clip(volume, low, high)
    low, high = volume.min(), volume.max()
    if high <= low:
        return np.zeros(volume.shape, dtype=np.float32)
    return ((volume - low) / (high - low)).astype(np.float32)
