"""Evaluation metrics, computed the same way for the model and every baseline.

* ``mae_log_er``: mean absolute error of log ER (see :mod:`features.engagement`);
* ``spearman``: rank correlation of predicted and actual log ER;
* ``ndcg_at_10``: mean NDCG@10 over shortlists, random groups of 20 examples within a niche,
  with relevance the actual ER's percentile rank (0..1) in the evaluated set, so a few viral
  posts do not dominate;
* ``coverage_80`` and ``interval_width_80``: share of actual log ER inside the 80 % interval
  and the median interval width (in log ER), overall and per tier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import ndcg_score

SHORTLIST_SIZE = 20


def ndcg_at_10(actual: np.ndarray, predicted: np.ndarray, niche: np.ndarray, seed: int = 0) -> float:
    if len(actual) < 2:
        return float("nan")
    relevance = rankdata(actual) / len(actual)
    rng = np.random.default_rng(seed)
    scores = []
    for value in np.unique(niche):
        idx = np.flatnonzero(niche == value)
        rng.shuffle(idx)
        for start in range(0, len(idx) - SHORTLIST_SIZE + 1, SHORTLIST_SIZE):
            group = idx[start : start + SHORTLIST_SIZE]
            scores.append(ndcg_score(relevance[group][None, :], predicted[group][None, :], k=10))
    return float(np.mean(scores)) if scores else float("nan")


def point_metrics(actual: np.ndarray, predicted: np.ndarray, niche: np.ndarray, seed: int = 0) -> dict[str, float]:
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    if len(actual) == 0:
        return {"mae_log_er": float("nan"), "spearman": float("nan"), "ndcg_at_10": float("nan"), "n": 0}
    rho = spearmanr(actual, predicted).statistic if len(actual) > 2 and np.ptp(predicted) > 0 else float("nan")
    return {
        "mae_log_er": float(np.mean(np.abs(actual - predicted))),
        "spearman": float(rho),
        "ndcg_at_10": ndcg_at_10(actual, predicted, np.asarray(niche), seed),
        "n": int(len(actual)),
    }


def interval_metrics(actual: np.ndarray, low: np.ndarray, high: np.ndarray, tier: np.ndarray) -> dict[str, Any]:
    actual = np.asarray(actual, dtype="float64")
    inside = (actual >= low) & (actual <= high)
    width = np.asarray(high) - np.asarray(low)
    out: dict[str, Any] = {
        "coverage_80": float(inside.mean()) if len(actual) else float("nan"),
        "interval_width_80": float(np.median(width)) if len(actual) else float("nan"),
    }
    per_tier = {}
    for value in pd.unique(np.asarray(tier)):
        m = np.asarray(tier) == value
        per_tier[str(value)] = {"coverage_80": float(inside[m].mean()), "interval_width_80": float(np.median(width[m])), "n": int(m.sum())}
    out["by_tier"] = per_tier
    return out


def all_metrics(actual: np.ndarray, predicted: np.ndarray, low: np.ndarray, high: np.ndarray, niche: np.ndarray, tier: np.ndarray, seed: int = 0) -> dict[str, Any]:
    return {**point_metrics(actual, predicted, niche, seed), **interval_metrics(actual, low, high, tier)}
