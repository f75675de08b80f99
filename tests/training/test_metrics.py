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
