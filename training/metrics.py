"""Evaluation metrics, computed the same way for the model and every baseline.

* ``mae_log_er``: mean absolute error of log ER (see :mod:`features.engagement`);
* ``spearman``: rank correlation of predicted and actual log ER;
* ``ndcg_at_10``: mean NDCG@10 over shortlists, random groups of 20 examples within a niche,
  with relevance the actual ER's percentile rank (0..1) in the evaluated set, so a few viral
  posts do not dominate;
* ``coverage_80`` and ``interval_width_80``: share of actual log ER inside the 80 % interval
  and the median interval width (in log ER), overall and per tier;
* ``coverage_by_spread``: the same for creators with steady, middling and erratic histories
  (:func:`coverage_by_spread`), and ``coverage_80_90ci``, a 90 % interval of the coverage that
  resamples creators (:func:`creator_coverage_interval`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import ndcg_score

from features.pipeline import spread_thirds

SHORTLIST_SIZE = 20


def ndcg_at_10(
    actual: np.ndarray, predicted: np.ndarray, niche: np.ndarray, seed: int = 0
) -> float:
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


def point_metrics(
    actual: np.ndarray, predicted: np.ndarray, niche: np.ndarray, seed: int = 0
) -> dict[str, float]:
    actual = np.asarray(actual, dtype="float64")
    predicted = np.asarray(predicted, dtype="float64")
    if len(actual) == 0:
        return {
            "mae_log_er": float("nan"),
            "spearman": float("nan"),
            "ndcg_at_10": float("nan"),
            "n": 0,
        }
    rho = (
        spearmanr(actual, predicted).statistic
        if len(actual) > 2 and np.ptp(predicted) > 0
        else float("nan")
    )
    return {
        "mae_log_er": float(np.mean(np.abs(actual - predicted))),
        "spearman": float(rho),
        "ndcg_at_10": ndcg_at_10(actual, predicted, np.asarray(niche), seed),
        "n": int(len(actual)),
    }


def interval_metrics(
    actual: np.ndarray, low: np.ndarray, high: np.ndarray, tier: np.ndarray
) -> dict[str, Any]:
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
        per_tier[str(value)] = {
            "coverage_80": float(inside[m].mean()),
            "interval_width_80": float(np.median(width[m])),
            "n": int(m.sum()),
        }
    out["by_tier"] = per_tier
    return out


SPREAD_THIRDS = ("steady", "middle", "erratic")
COVERAGE_BOOTSTRAP_SAMPLES = 1000


def coverage_by_spread(
    actual: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    spread: np.ndarray,
    n_history: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Coverage and median width of the interval in each third of the rows with at least
    :data:`features.pipeline.SPREAD_MIN_POSTS` history posts, ranked by their history's spread
    (``log_er_mad``, :func:`features.pipeline.spread_thirds`): steady, middle and erratic
    creators, with each third's upper bound of spread.

    A conformal group (platform x tier x history band) holds creators of every spread, so its
    interval can cover 80 % of the group and still be too wide for steady creators and too
    narrow for erratic ones; this is where that shows. Empty when no row has enough history."""
    actual, low, high = (np.asarray(a, dtype="float64") for a in (actual, low, high))
    third, cuts = spread_thirds(n_history, spread)
    inside = (actual >= low) & (actual <= high)
    out = {}
    for k, name in enumerate(SPREAD_THIRDS):
        rows = third == k
        if rows.any():
            out[name] = {
                "coverage_80": float(inside[rows].mean()),
                "interval_width_80": float(np.median(high[rows] - low[rows])),
                "spread_up_to": float(cuts[k]),
                "n": int(rows.sum()),
            }
    return out


def creator_coverage_interval(
    inside: np.ndarray, creator: np.ndarray, seed: int, samples: int = COVERAGE_BOOTSTRAP_SAMPLES
) -> list[float]:
    """90 % interval of the coverage (share of rows inside), resampling creators: a creator's
    posts miss together, so resampling rows would make the interval too narrow."""
    codes, creators = pd.factorize(np.asarray(creator))
    if len(creators) == 0:
        return [float("nan"), float("nan")]
    hits = np.bincount(codes, weights=np.asarray(inside, dtype="float64"), minlength=len(creators))
    rows = np.bincount(codes, minlength=len(creators)).astype("float64")
    draw = np.random.default_rng(seed).integers(0, len(creators), size=(samples, len(creators)))
    share = hits[draw].sum(axis=1) / rows[draw].sum(axis=1)
    return [float(np.quantile(share, 0.05)), float(np.quantile(share, 0.95))]


def all_metrics(
    actual: np.ndarray,
    predicted: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    niche: np.ndarray,
    tier: np.ndarray,
    seed: int = 0,
) -> dict[str, Any]:
    return {
        **point_metrics(actual, predicted, niche, seed),
        **interval_metrics(actual, low, high, tier),
    }


# Campaign targets at which p_reach is checked: these quantiles of the evaluated posts'
# engagement counts, so every data set is checked at KPIs that are hard for some creators and
# easy for others (a fixed count would be trivial for mega accounts and out of reach for nano).
REACH_TARGET_QUANTILES = (0.25, 0.5, 0.75, 0.9)
REACH_BINS = np.linspace(0.0, 1.0, 11)


def reach_targets(engagements: np.ndarray) -> np.ndarray:
    """The engagement counts p_reach is checked at (see :data:`REACH_TARGET_QUANTILES`)."""
    return np.unique(np.round(np.quantile(engagements, REACH_TARGET_QUANTILES)))


def reach_calibration(
    probability: np.ndarray, reached: np.ndarray, tier: np.ndarray
) -> dict[str, Any]:
    """How well P(engagements >= target) is calibrated: of (candidate, target) pairs given
    p_reach about 0.7, about 70 % should reach the target.

    Returns the reliability table (pairs binned by p_reach in tenths: mean p_reach, share that
    reached, n), the expected calibration error (mean |share - p| over the bins, weighted by
    pairs), the Brier score, and the calibration error per tier.
    """
    probability, reached = np.asarray(probability, dtype="float64"), np.asarray(reached, dtype=bool)

    def table(p: np.ndarray, hit: np.ndarray) -> tuple[list[dict[str, float]], float]:
        bins = np.clip(np.digitize(p, REACH_BINS[1:-1]), 0, len(REACH_BINS) - 2)
        rows, error = [], 0.0
        for b in np.unique(bins):
            m = bins == b
            mean_p, share = float(p[m].mean()), float(hit[m].mean())
            rows.append({"p_reach": mean_p, "reached": share, "n": int(m.sum())})
            error += m.sum() * abs(share - mean_p)
        return rows, error / max(len(p), 1)

    rows, ece = table(probability, reached)
    tiers = {}
    for value in pd.unique(tier):
        m = tier == value
        tiers[str(value)] = {
            "calibration_error": table(probability[m], reached[m])[1],
            "n": int(m.sum()),
        }
    return {
        "bins": rows,
        "calibration_error": ece,
        "brier": float(np.mean((probability - reached) ** 2)) if len(probability) else float("nan"),
        "by_tier": tiers,
        "n_pairs": int(len(probability)),
    }
