"""What the analysis assumes about a metric column, in one place, for every entry point.

`python -m analysis.run` (a whole run) and `python -m analysis.report` (any table) both go
through these rules before any mean, rank or test (docs/analysis.md, "Metric rules"):

* Direction. Known metric names keep their direction: the overlaps dice, dsc, jaccard and iou
  are higher-is-better; the distances hd, hd95, hd99, hausdorff, hausdorff95, 95hd, asd, assd,
  msd and masd, each bare or with a unit suffix _mm, _px or _vox, are lower-is-better. Any other
  name needs --higher-is-better or --lower-is-better; without one it is an error. A flag that
  contradicts a known name is an error too.
* Fraction or percent. Overlaps are fractions in [0, 1] (the results schema); a table in percent
  says so (`--percent`), and then its values must lie in [0, 100]. Both are checked. The
  statistics report overlaps in percentage points either way, so a ROPE of 1 is one Dice point.
* Undefined values. A NaN or an infinity that means "worst" (+inf for a lower-is-better metric,
  -inf for a higher-is-better one) is a failure on that case: it is replaced by the worst value
  the case can have, before anything is averaged, ranked or tested:
    1. an overlap (Dice, Jaccard): 0, its lower bound;
    2. otherwise the row's `<metric>_worst` column when the table has one (e.g. the image
       diagonal in mm, the value the evaluator gives an empty prediction); it must bound every
       value of its row;
    3. otherwise the worst finite value any method scored on that case (same block, case and
       class; any method, variant and seed): a failure ties the worst attempt and is never
       scored better than any method that has a value there;
    4. a case where no method has a finite value (e.g. HD95 of a class absent from the reference
       in paper-compatible evaluation) stays undefined for every method: it drops out of every
       method's mean and every paired test alike, so it favours no method.
  An infinity pointing the other way (-inf distance, +inf or any inf Dice) is malformed input and
  an error. Every replacement is listed in the report's input checks.
* ROPE. The Bayesian signed-rank test needs a region of practical equivalence in the metric's
  reported unit. Defaults (`default_rope`): 1 percentage point for the overlaps; 1 mm for a
  Hausdorff distance in mm and 1 pixel (voxel) for one in pixels (voxels) -- about one pixel of cine
  MRI, whose in-plane spacing is 1-2 mm, and no contour can be placed more finely than a pixel.
  Any other metric (ASD, a bare `hd95` whose unit is unknown, a declared metric) has no default:
  without --rope the Friedman/Finner statistics are produced and the Bayesian test is skipped, with
  a sentence saying how to add it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.collect import CollectError
from analysis.stats import StatsInputError

OVERLAP_METRICS = ("dice", "dsc", "jaccard", "iou")
DISTANCE_BASES = ("hd", "hd95", "hd99", "hausdorff", "hausdorff95", "95hd", "asd", "assd", "msd", "masd")
DISTANCE_UNITS = {"": "", "_mm": "mm", "_px": "px", "_vox": "voxels"}
DISTANCE_METRICS = tuple(base + suffix for base in DISTANCE_BASES for suffix in DISTANCE_UNITS)
DEFAULT_OVERLAP_ROPE = 1.0  # one Dice (Jaccard) point: values are reported in percent
HAUSDORFF_BASES = ("hd", "hd95", "hd99", "hausdorff", "hausdorff95", "95hd")
DEFAULT_DISTANCE_ROPE = {"_mm": 1.0, "_px": 1.0, "_vox": 1.0}  # about one pixel (see the module docstring)
ROPE_DEFAULTS_TEXT = ("±1 point for dice, dsc, jaccard, iou; ±1 mm for hd, hd95, hd99, hausdorff, hausdorff95, "
                      "95hd with the suffix _mm; ±1 pixel (voxel) with _px (_vox)")
WORST_SUFFIX = "_worst"
LEFT_OUT = "undefined for every method on the case: left out of every mean and test"
REPLACEMENT_COLUMNS = ["metric", "method", "variant", "seed", "case_id", "class_name", "block", "value",
                       "replaced_by", "rule"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric column and everything the statistics assume about it."""

    name: str
    higher_is_better: bool
    kind: str  # "overlap", "distance" or "declared" (an unknown name with a stated direction)
    percent: bool = False  # an overlap stored in percent rather than as a fraction
    rope: float | None = None  # half-width of the region of practical equivalence, reported unit; None: no Bayesian test

    @property
    def scale(self) -> float:
        """Factor from the table's values to the reported ones (fractions -> percent)."""
        return 100.0 if self.kind == "overlap" and not self.percent else 1.0

    @property
    def unit(self) -> str:
        if self.kind == "overlap":
            return "percentage points"
        if self.kind == "distance":
            for suffix, unit in DISTANCE_UNITS.items():
                if suffix and self.name.lower().endswith(suffix):
                    return unit
            return "distance units"
        return f"units of {self.name}"

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def worst_column(self) -> str:
        return self.name + WORST_SUFFIX


def known_direction(metric: str) -> bool | None:
    """True (higher is better) or False for a known metric name, None for an unknown one."""
    name = metric.lower()
    if name in OVERLAP_METRICS:
        return True
    if name in DISTANCE_METRICS:
        return False
    return None


def _flag(higher: bool) -> str:
    return "--higher-is-better" if higher else "--lower-is-better"


def resolve_metric(metric: str, higher_is_better: bool | None = None, percent: bool = False,
                   rope: float | None = None) -> MetricSpec:
    """The MetricSpec of a metric column, or an error that says which option is missing."""
    known = known_direction(metric)
    if known is None:
        if higher_is_better is None:
            raise StatsInputError(
                f"metric {metric!r} is not a known metric name, so its direction is unknown: say which way is "
                f"better with --higher-is-better or --lower-is-better (known names: overlaps "
                f"{', '.join(OVERLAP_METRICS)}; distances {', '.join(DISTANCE_BASES)}, bare or with "
                f"{', '.join(s for s in DISTANCE_UNITS if s)})"
            )
        kind, higher = "declared", bool(higher_is_better)
    else:
        if higher_is_better is not None and bool(higher_is_better) != known:
            what = "an overlap (higher is better)" if known else "a distance (lower is better)"
            raise StatsInputError(f"metric {metric!r} is {what}; {_flag(bool(higher_is_better))} contradicts it")
        kind = "overlap" if known else "distance"
        higher = known
    if percent and kind != "overlap":
        raise StatsInputError(
            f"--percent applies to the overlap metrics ({', '.join(OVERLAP_METRICS)}); {metric!r} is not one"
        )
    if rope is None:
        rope = default_rope(metric)
        if rope is None:
            return MetricSpec(metric, higher, kind, bool(percent), None)
    if not np.isfinite(rope) or rope < 0:
        raise StatsInputError(f"--rope must be a finite number >= 0, got {rope!r}")
    return MetricSpec(metric, higher, kind, bool(percent), float(rope))


def default_rope(metric: str) -> float | None:
    """The documented default ROPE of a known metric in its reported unit, or None (no default:
    the Bayesian test is skipped unless --rope is given). See ROPE_DEFAULTS_TEXT."""
    name = metric.lower()
    if name in OVERLAP_METRICS:
        return DEFAULT_OVERLAP_ROPE
    for suffix, rope in DEFAULT_DISTANCE_ROPE.items():
        if name.endswith(suffix) and name[: -len(suffix)] in HAUSDORFF_BASES:
            return rope
    return None


# --------------------------------------------------------------------------- fraction or percent
def _where(row: pd.Series) -> str:
    parts = [f"method {row['method']!r}"]
    if "case_id" in row.index:
        parts.append(f"case {row['case_id']!r}")
    if "source_file" in row.index and isinstance(row["source_file"], str):
        parts.append(f"in {row['source_file']}")
    return ", ".join(parts)


def check_unit(df: pd.DataFrame, spec: MetricSpec, fix: str = "pass --percent if the table is in percent") -> None:
    """Overlaps: fractions in [0, 1], or percent in [0, 100] when the spec says so. NaN passes
    (see fill_undefined); an infinite overlap is out of range."""
    if spec.kind != "overlap" or df.empty:
        return
    values = df[spec.name].to_numpy(dtype=float)
    upper = 100.0 if spec.percent else 1.0
    bad = ~np.isnan(values) & ((values < 0) | (values > upper))
    if bad.any():
        row = df[bad].iloc[0]
        if spec.percent:
            raise CollectError(f"column {spec.name!r} is declared in percent (--percent) and must lie in [0, 100], "
                               f"found {float(row[spec.name]):g} ({_where(row)})")
        raise CollectError(f"column {spec.name!r} must be a fraction in [0, 1] (the results schema), found "
                           f"{float(row[spec.name]):g} ({_where(row)}); {fix}, or divide it by 100")
    finite = values[np.isfinite(values)]
    if spec.percent and finite.size and finite.max() <= 1.0:
        raise CollectError(f"column {spec.name!r} is declared in percent (--percent) but every value is at most 1 "
                           f"(largest {finite.max():g}): these look like fractions; drop --percent")


# --------------------------------------------------------------------------- undefined values
def fill_undefined(df: pd.DataFrame, spec: MetricSpec, blocks=("dataset", "ratio")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace NaN and worst-direction infinities of `spec.name` by the case's worst value.

    Returns the table with the values replaced and one row per replacement (REPLACEMENT_COLUMNS).
    See the module docstring for the rule; every refusal names the row and the fix.
    """
    col, higher = spec.name, spec.higher_is_better
    values = df[col].to_numpy(dtype=float)
    wrong_inf = np.isposinf(values) if higher else np.isneginf(values)
    if spec.kind == "overlap":
        wrong_inf = np.isinf(values)
    if wrong_inf.any():
        row = df[wrong_inf].iloc[0]
        why = ("an overlap is finite" if spec.kind == "overlap" else
               f"a {spec.direction.replace(' ', '-')} metric cannot be {'+' if higher else '-'}inf")
        raise CollectError(f"column {col!r} holds {float(row[col]):g} ({_where(row)}): {why}; fix the table")
    undefined = ~np.isfinite(values)
    if not undefined.any():
        return df, pd.DataFrame(columns=REPLACEMENT_COLUMNS)
    case_key = [c for c in blocks] + ["case_id", "class_name"]
    if spec.kind == "overlap":
        worst = np.zeros(len(df))
        rule = "0, the lower bound of an overlap"
    elif spec.worst_column in df.columns:
        worst = pd.to_numeric(df[spec.worst_column], errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(values) & np.isfinite(worst)
        beyond = finite & ((values < worst) if higher else (values > worst))
        if beyond.any():
            row = df[beyond].iloc[0]
            raise CollectError(f"column {spec.worst_column!r} must bound every value of its row, but {col} = "
                               f"{float(row[col]):g} is worse than {spec.worst_column} = {float(row[spec.worst_column]):g} "
                               f"({_where(row)})")
        lacking = undefined & ~np.isfinite(worst)
        if lacking.any():
            row = df[lacking].iloc[0]
            raise CollectError(f"column {col!r} is undefined ({float(row[col]):g}) and {spec.worst_column!r} gives no "
                               f"finite worst value for it ({_where(row)}); fill {spec.worst_column!r} on that row")
        rule = f"the row's {spec.worst_column!r}"
    else:
        finite_values = df[col].where(np.isfinite(values))
        groups = finite_values.groupby([df[k] for k in case_key], sort=False)
        worst = (groups.transform("min") if higher else groups.transform("max")).to_numpy(dtype=float)
        rule = np.where(np.isfinite(worst), "the worst value any method scored on the case", LEFT_OUT)
    out = df.copy()
    out.loc[undefined, col] = worst[undefined]  # NaN where no method has a value: left out for all
    changed = df[undefined]
    block_text = [" ".join(str(v) for v in vals) for vals in changed[list(blocks)].itertuples(index=False, name=None)]
    replacements = pd.DataFrame({
        "metric": col,
        "method": changed["method"].to_numpy(),
        "variant": changed["variant"].to_numpy() if "variant" in changed else "default",
        "seed": changed["seed"].to_numpy() if "seed" in changed else 0,
        "case_id": changed["case_id"].to_numpy(),
        "class_name": changed["class_name"].to_numpy(),
        "block": block_text,
        "value": [f"{v:g}" for v in values[undefined]],
        "replaced_by": worst[undefined],
        "rule": rule if isinstance(rule, str) else rule[undefined],
    }, columns=REPLACEMENT_COLUMNS)
    return out, replacements.reset_index(drop=True)


def prepare_metrics(df: pd.DataFrame, specs, blocks=("dataset", "ratio"),
                    fix: str = "pass --percent if the table is in percent") -> tuple[pd.DataFrame, pd.DataFrame]:
    """check_unit then fill_undefined for each metric; returns the table and all replacements."""
    frames = []
    for spec in specs:
        check_unit(df, spec, fix)
        df, replaced = fill_undefined(df, spec, blocks)
        if not replaced.empty:
            frames.append(replaced)
    replacements = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REPLACEMENT_COLUMNS)
    return df, replacements
