"""Ranking and calibration metrics (training/metrics.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pipeline import ConformalInterval
from training.metrics import ndcg_at_10, point_metrics

# --------------------------------------------------------------------------- metrics and intervals


def test_metrics_on_a_perfect_and_a_reversed_ranking():
    rng = np.random.default_rng(0)
    actual = rng.normal(size=200)
    niche = np.repeat(["a", "b"], 100)
    perfect = point_metrics(actual, actual, niche)
    assert perfect["mae_log_er"] == 0 and perfect["spearman"] == pytest.approx(1.0)
    assert perfect["ndcg_at_10"] == pytest.approx(1.0)
    assert ndcg_at_10(actual, -actual, niche) < 0.8


def test_p_reach_is_calibrated_on_fresh_rows_of_each_group():
    # Of rows given p_reach about p, about p reach the target; per group, with different spreads.
    from training.metrics import reach_calibration

    rng = np.random.default_rng(4)
    groups = pd.Series(np.repeat(["nano/short", "mega/long"], 5000))
    scale = np.where(groups == "nano/short", 2.0, 0.5)
    interval = ConformalInterval(0.8).fit(rng.normal(size=10000) * scale, groups)
    codes, names = pd.factorize(groups)
    predicted = rng.normal(size=10000)
    actual = predicted + rng.normal(size=10000) * scale
    threshold = predicted + rng.uniform(-2, 2, size=10000)
    p = interval.prob_at_least_by_code(predicted, codes, list(names), threshold)
    report = reach_calibration(p, actual >= threshold, groups.str.split("/").str[0].to_numpy())
    assert report["calibration_error"] < 0.03
    assert all(v["calibration_error"] < 0.05 for v in report["by_tier"].values())


# --------------------------------------------------------------------------- coverage by spread


def test_coverage_by_spread_shows_an_interval_too_narrow_for_erratic_creators():
    # One interval for all: it covers steady creators' posts and misses erratic ones'. Cold
    # starts and 2-post histories are not ranked (their spread says nothing).
    from training.metrics import coverage_by_spread

    rng = np.random.default_rng(0)
    spread = np.repeat([0.1, 0.5, 2.0, np.nan, 0.3], 300)
    n_history = np.repeat([10, 10, 10, 0, 2], 300)
    noise = np.where(np.isnan(spread), 1.0, spread)
    actual = rng.normal(scale=noise)
    low, high = np.full(len(actual), -0.7), np.full(len(actual), 0.7)
    thirds = coverage_by_spread(actual, low, high, spread, n_history)
    assert list(thirds) == ["steady", "middle", "erratic"]
    assert [v["n"] for v in thirds.values()] == [300, 300, 300]
    assert thirds["steady"]["coverage_80"] == 1.0
    assert 0.8 < thirds["middle"]["coverage_80"] < 0.9  # P(|N(0, 0.5)| < 0.7) = 0.84
    assert thirds["erratic"]["coverage_80"] < 0.35  # P(|N(0, 2)| < 0.7) = 0.27
    assert thirds["erratic"]["spread_up_to"] == 2.0
    assert coverage_by_spread(actual, low, high, spread, np.zeros(len(actual))) == {}


def test_the_coverage_interval_resamples_creators_not_posts():
    # 40 creators whose 50 posts are all inside or all outside: the coverage is as uncertain as
    # 40 draws, not 2,000.
    from training.metrics import creator_coverage_interval

    creator = np.repeat(np.arange(40), 50)
    inside = np.repeat(np.arange(40) % 5 != 0, 50)  # 32 of 40 creators: 0.8
    lo, hi = creator_coverage_interval(inside, creator, seed=0)
    assert lo < 0.8 < hi
    assert hi - lo > 0.15  # rows resampled would give about 0.03
    assert creator_coverage_interval(np.ones(10, bool), np.zeros(10), seed=0) == [1.0, 1.0]
