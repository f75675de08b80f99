"""The run's warnings (training/checks.py): losing to a baseline, coverage off band."""

from __future__ import annotations

import re

from tests.training_fixtures import training_metrics
from training.checks import MIN_CHECKED, quality_warnings, review
from training.train import comparison_table

# ---------------------------------------------------------------------------
# warnings and empty subsets


def test_losing_to_a_baseline_and_coverage_off_band_are_flagged():
    warnings = quality_warnings(training_metrics())
    expected = [
        "grouped CV, all examples (n=500): model Spearman 0.700 loses to persistence (0.720)",
        "grouped CV, all examples: interval coverage "
        "0.700 in tier mega (n=200) is outside 0.77-0.83",
        "grouped CV, with history (n=300): model MAE 0.400 loses to ridge (0.390)",
        "time holdout: interval coverage 0.860 in tier micro (n=150) is outside 0.77-0.83",
        "forward protocol: interval coverage 0.740 in tier micro (n=30) is outside 0.77-0.83",
    ]
    assert warnings == expected
    # Not flagged: the model's wins, micro's 0.80, nano's 3 examples, the 5-example subset.
    assert not any("nano" in w or "latest cold start" in w for w in warnings)


def test_empty_subsets_are_dropped_and_the_table_prints_no_nan():
    metrics = review(training_metrics())
    assert "cold_start" not in metrics["subsets"] and metrics["dropped_subsets"] == ["cold_start"]
    table = comparison_table(metrics, "engagement v3 @champion")
    assert table.splitlines()[0] == "engagement v3 @champion"
    assert not re.search(r"\bnan\b", table)
    assert "latest cold start" not in table  # 5 examples: below MIN_CHECKED, left to --metrics-out
    assert (
        f"{len(metrics['warnings'])} warning(s):" in table
        and "WARNING  grouped CV, with history (n=300): model MAE" in table
    )
    assert "no examples (left out): cold_start" in table
    assert MIN_CHECKED == 20


def test_the_table_gives_coverage_with_its_interval_and_by_history_spread():
    metrics = review(training_metrics())
    metrics["time_holdout"]["model"]["coverage_80_90ci"] = [0.785, 0.815]
    metrics["time_holdout"]["model"]["coverage_by_spread"] = {
        "steady": {"coverage_80": 0.884, "interval_width_80": 2.1, "spread_up_to": 0.3, "n": 900},
        "middle": {"coverage_80": 0.857, "interval_width_80": 2.4, "spread_up_to": 0.6, "n": 900},
        "erratic": {"coverage_80": 0.795, "interval_width_80": 2.9, "spread_up_to": 3.0, "n": 5},
    }
    table = comparison_table(metrics)
    expected = (
        "interval coverage (time holdout): 0.800 (90 % interval over creators 0.785 .. 0.815); "
        "by history spread steady 0.884 (n=900), middle 0.857 (n=900)"
    )
    assert expected + "\n" in table + "\n"  # erratic's 5 rows are below MIN_CHECKED
    assert "interval coverage (grouped CV):" not in table  # metrics from before: no line
