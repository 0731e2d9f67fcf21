"""The Wilson 95 % interval on every accuracy-type metric, and the small-sample warning below 30 examples."""
import math

import pytest

from nursery_core.evaluation.metrics import (SMALL_SAMPLE, Z95, aggregate, small_sample_warning,
                                             wilson_interval)
from nursery_core.formatting import score


@pytest.mark.parametrize("k, n, expected", [
    (5, 10, (0.2366, 0.7634)),   # textbook values
    (0, 10, (0.0, 0.2775)),
    (10, 10, (0.7225, 1.0)),
    (1, 1, (0.2065, 1.0)),
    (81, 263, (0.2553, 0.3662)),
])
def test_known_values(k, n, expected):
    assert wilson_interval(k, n) == expected


@pytest.mark.parametrize("k, n", [(0, 3), (1, 3), (7, 29), (29, 30), (412, 1000)])
def test_bounds_solve_wilsons_quadratic_and_mirror(k, n):
    low, high = wilson_interval(k, n)
    p = k / n
    # Wilson's bounds are the p where |p̂ - p| = z·sqrt(p(1-p)/n), except where clipped at 0 or 1
    for bound in (low, high):
        if 0 < bound < 1:
            assert math.isclose(n * (p - bound) ** 2, Z95 ** 2 * bound * (1 - bound), rel_tol=2e-3, abs_tol=2e-3)
    assert low <= p <= high
    mlow, mhigh = wilson_interval(n - k, n)
    assert math.isclose(low, 1 - mhigh, abs_tol=1e-4) and math.isclose(high, 1 - mlow, abs_tol=1e-4)


def test_narrows_with_more_examples_and_handles_nothing():
    widths = [wilson_interval(n // 2, n)[1] - wilson_interval(n // 2, n)[0] for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2]
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def _detail(ok: bool, should_call=True) -> dict:
    return {"ast_ok": ok, "format_ok": True, "name_ok": ok, "exact_ok": ok, "count_ok": ok, "should_call": should_call,
            "did_call": True, "arg_tp": 1 if ok else 0, "arg_fp": 0 if ok else 1, "arg_fn": 0 if ok else 1,
            "calls_total": 1, "calls_schema_valid": 1, "params_total": 1, "hallucinated_tools": [],
            "hallucinated_params": [], "category": "call"}


def test_every_accuracy_metric_has_an_interval_and_the_warning_starts_below_30():
    m = aggregate([_detail(True)] * 20 + [_detail(False)] * 9)  # 29 examples
    assert m["num_examples"] == 29 and m["small_sample"] and "under 30" in m["warning"]
    assert m["ci95"]["ast_accuracy"] == list(wilson_interval(20, 29))
    for k in ("ast_accuracy", "format_validity", "call_precision", "call_recall", "name_accuracy",
              "arg_exact_match", "arg_precision", "arg_recall", "schema_validity", "count_match",
              "hallucinated_tool_rate", "hallucinated_param_rate"):
        low, high = m["ci95"][k]
        assert low <= m[k] <= high, k
    assert "no_call_precision" not in m["ci95"]  # 0 of 0: no interval, like its value (None)
    m30 = aggregate([_detail(True)] * 30)
    assert m30["small_sample"] is False and m30["warning"] is None and SMALL_SAMPLE == 30
    assert small_sample_warning(1).startswith("only 1 example ")


def test_score_text():
    assert score(0.5, [0.2366, 0.7634], 10, small_sample_warning(10)) == "50.0% [23.7–76.3%] n=10 ⚠ small sample"
    assert score(None) == "–" and score(0.9, None, 100) == "90.0% n=100"
