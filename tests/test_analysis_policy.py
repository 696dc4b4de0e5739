"""analysis.policy: metric direction, fraction/percent, and the undefined-value rule."""

import numpy as np
import pandas as pd
import pytest

from analysis.collect import CollectError, normalise
from analysis.policy import LEFT_OUT, check_unit, fill_undefined, known_direction, resolve_metric
from analysis.stats import StatsInputError


def test_known_names_keep_their_direction_and_distances_are_lower_is_better():
    for name in ("dice", "Dice", "dsc", "jaccard", "iou"):
        assert known_direction(name) is True, name
    # distances under their other common spellings too (HD95 as hausdorff95 or 95hd, ASD as msd)
    for name in ("hausdorff95", "95hd", "msd", "hd95", "hd95_mm", "hd95_px", "asd_mm", "assd", "HD_vox", "masd"):
        assert known_direction(name) is False, name
    assert known_direction("score") is None and known_direction("hd95x") is None


def test_unknown_metric_needs_a_direction_and_a_flag_cannot_flip_a_known_one():
    with pytest.raises(StatsInputError, match="metric 'score' is not a known metric name, so its direction is "
                                              "unknown: say which way is better with --higher-is-better or "
                                              "--lower-is-better"):
        resolve_metric("score")
    spec = resolve_metric("score", higher_is_better=False, rope=0.5)
    assert (spec.higher_is_better, spec.kind, spec.rope, spec.scale) == (False, "declared", 0.5, 1.0)
    with pytest.raises(StatsInputError, match="metric 'hausdorff95' is a distance \\(lower is better\\); "
                                              "--higher-is-better contradicts it"):
        resolve_metric("hausdorff95", higher_is_better=True, rope=1)
    assert resolve_metric("dice", higher_is_better=True).higher_is_better is True


def test_rope_and_percent_rules():
    dice = resolve_metric("dice")
    assert (dice.rope, dice.scale, dice.unit) == (1.0, 100.0, "percentage points")  # 1 Dice point, fractions x 100
    assert resolve_metric("dice", percent=True).scale == 1.0
    # documented defaults: a Hausdorff distance in mm or pixels gets 1 (about one pixel); others none
    assert (resolve_metric("hd95_mm").rope, resolve_metric("hd95_px").rope, resolve_metric("HD_vox").rope) == (1, 1, 1)
    assert resolve_metric("hd95").rope is None and resolve_metric("asd_mm").rope is None  # unknown unit; not a HD
    assert resolve_metric("jaccard").rope == 1.0 and resolve_metric("score", higher_is_better=True).rope is None
    assert resolve_metric("hd95_mm", rope=2).unit == "mm"
    with pytest.raises(StatsInputError, match="--percent applies to the overlap metrics"):
        resolve_metric("hd95", percent=True, rope=1)
    with pytest.raises(StatsInputError, match="--rope must be a finite number >= 0"):
        resolve_metric("dice", rope=-1)


def _table(values, metric="dice", methods=("a", "b"), **extra):
    rows = []
    for i, v in enumerate(values):
        rows.append({"dataset": "acdc", "ratio": "5", "method": methods[i % len(methods)],
                     "case_id": f"c{i // len(methods)}", metric: v, **{k: w[i] for k, w in extra.items()}})
    return normalise(pd.DataFrame(rows), (metric,), "t.csv", blocks=("dataset", "ratio"))


def test_one_fraction_percent_rule():
    fractions, percents = _table([0.8, 0.9]), _table([80.0, 90.0])
    check_unit(fractions, resolve_metric("dice"))
    check_unit(percents, resolve_metric("dice", percent=True))
    with pytest.raises(CollectError, match=r"column 'dice' must be a fraction in \[0, 1\] \(the results schema\), "
                                           r"found 80 \(method 'a', case 'c0', in t.csv\); pass --percent"):
        check_unit(percents, resolve_metric("dice"))
    with pytest.raises(CollectError, match="declared in percent .* but every value is at most 1 .*drop --percent"):
        check_unit(fractions, resolve_metric("dice", percent=True))
    with pytest.raises(CollectError, match=r"declared in percent \(--percent\) and must lie in \[0, 100\], found 101"):
        check_unit(_table([80.0, 101.0]), resolve_metric("dice", percent=True))


def test_undefined_overlap_is_zero_and_distance_is_the_worst_value_on_the_case():
    dice, replaced = fill_undefined(_table([0.8, np.nan, 0.7, 0.6]), resolve_metric("dice"))
    assert dice["dice"].tolist() == [0.8, 0.0, 0.7, 0.6]
    assert replaced[["method", "case_id", "value", "replaced_by", "rule"]].values.tolist() == [
        ["b", "c0", "nan", 0.0, "0, the lower bound of an overlap"]]
    # three methods on two cases; c on case c0 is NaN, b on case c1 is +inf
    hd = _table([4.0, 9.0, np.nan, 2.0, np.inf, 3.0], metric="hd95", methods=("a", "b", "c"))
    filled, replaced = fill_undefined(hd, resolve_metric("hd95", rope=1))
    assert filled["hd95"].tolist() == [4.0, 9.0, 9.0, 2.0, 3.0, 3.0]  # the worst finite value of that case
    assert replaced["value"].tolist() == ["nan", "inf"]
    assert set(replaced["rule"]) == {"the worst value any method scored on the case"}


def test_worst_column_bounds_and_fills_undefined_distances():
    hd = _table([4.0, np.inf, 2.0, 3.0], metric="hd95", hd95_worst=[300.0, 300.0, 250.0, 250.0])
    filled, replaced = fill_undefined(hd, resolve_metric("hd95", rope=1))
    assert filled["hd95"].tolist() == [4.0, 300.0, 2.0, 3.0]
    assert replaced["rule"].tolist() == ["the row's 'hd95_worst'"]
    with pytest.raises(CollectError, match="'hd95_worst' must bound every value of its row, but hd95 = 400 is worse"):
        fill_undefined(_table([400.0, np.nan], metric="hd95", hd95_worst=[300.0, 300.0]), resolve_metric("hd95", rope=1))


def test_undefined_for_every_method_on_a_case_is_left_out_for_all():
    both = _table([np.inf, np.nan, 2.0, 3.0], metric="hd95")  # case c0: a is +inf, b NaN; case c1 finite
    filled, replaced = fill_undefined(both, resolve_metric("hd95", rope=1))
    assert np.isnan(filled["hd95"].iloc[:2]).all() and filled["hd95"].iloc[2:].tolist() == [2.0, 3.0]
    assert replaced["rule"].tolist() == [LEFT_OUT, LEFT_OUT] and replaced["value"].tolist() == ["inf", "nan"]
    # means skip the case for both methods alike: neither gains
    assert filled.groupby("method")["hd95"].mean().to_dict() == {"a": 2.0, "b": 3.0}


def test_wrong_infinity_is_refused():
    with pytest.raises(CollectError, match="column 'hd95' holds -inf .*a lower-is-better metric cannot be -inf"):
        fill_undefined(_table([-np.inf, 2.0], metric="hd95"), resolve_metric("hd95", rope=1))
    with pytest.raises(CollectError, match="column 'score' holds inf .*a higher-is-better metric cannot be \\+inf"):
        fill_undefined(_table([np.inf, 2.0], metric="score"), resolve_metric("score", True, rope=1))
    with pytest.raises(CollectError, match="column 'dice' holds inf .*an overlap is finite"):
        fill_undefined(_table([np.inf, 0.2]), resolve_metric("dice"))
    with pytest.raises(CollectError, match="must be a fraction in \\[0, 1\\].*found inf"):
        check_unit(_table([np.inf, 0.2]), resolve_metric("dice"))


def test_statistics_refuse_a_table_that_skipped_the_rule():
    from analysis.comparison import compare_methods

    rows = [{"dataset": d, "ratio": "5", "method": m, "case_id": f"c{i}", "hd95": 1.0 + i + (m == "b")}
            for d in ("acdc", "scd") for m in ("a", "b") for i in range(3)]
    rows[0]["hd95"] = np.nan  # a on acdc c0, while b has a value there
    table = normalise(pd.DataFrame(rows), ("hd95",), "t.csv", blocks=("dataset", "ratio"))
    spec = resolve_metric("hd95", rope=1)
    with pytest.raises(StatsInputError, match="holds NaN or inf where other methods have values: apply "
                                              "analysis.policy.fill_undefined first"):
        compare_methods(table, spec, "a", bayes_samples=100)
    filled, _ = fill_undefined(table, spec)
    result = compare_methods(filled, spec, "a", bayes_samples=100, n_boot=50)
    assert result.matrix.loc[("acdc", "5"), "a"] == pytest.approx((2.0 + 2.0 + 3.0) / 3)  # NaN -> b's 2.0
