"""What a run's metrics say that a reader must not miss: empty subsets, and quality warnings.

Both ``engage train`` and ``engage evaluate`` pass their metrics through :func:`review`: empty
subsets (no examples: every figure NaN) are dropped, and a ``warnings`` list names every place
where the model loses to a baseline or its interval misses its nominal coverage in a tier, and
every platform of the data the model was not trained on (``unseen_platforms``) or whose
creators engage far more or less than its training creators (``level_vs_training_peers``,
``engage evaluate``). The console
table prints the warnings and ``--metrics-out`` / MLflow keep them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.pipeline import platform_names
from training.forward import COVERAGE_KEY_FORWARD

# A tier's interval coverage outside nominal +- this is flagged (0.77-0.83 for the 80 % interval).
COVERAGE_TOLERANCE = 0.03
# Fewer examples (or forward creators) than this in a block or a tier: its figures are noise, not
# checked. The console table leaves out subsets this small too.
MIN_CHECKED = 20


def _n(block: dict[str, Any]) -> int:
    value = block.get("n", block.get("n_creators", 0))
    return int(value) if isinstance(value, int | float) and value == value else 0


def drop_empty_subsets(metrics: dict[str, Any]) -> list[str]:
    """Remove subsets without examples from ``metrics`` (in place, also under ``time_holdout``);
    returns their names."""
    dropped = []
    for prefix, holder in (("", metrics), ("time_holdout ", metrics.get("time_holdout") or {})):
        subsets = holder.get("subsets")
        if not isinstance(subsets, dict):
            continue
        for name in list(subsets):
            rows = subsets[name]
            if not rows or _n(next(iter(rows.values()))) == 0:
                del subsets[name]
                dropped.append(prefix + name)
    return dropped


def evaluation_blocks(
    metrics: dict[str, Any],
) -> list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]]:
    """(title, model metrics, baselines' metrics) for every evaluation in ``metrics``."""
    blocks = []
    if "model" in metrics:
        blocks.append(("grouped CV, all examples", metrics["model"], metrics.get("baselines", {})))
    for subset, rows in (metrics.get("subsets") or {}).items():
        if "model" in rows:
            blocks.append(
                (
                    f"grouped CV, {subset.replace('_', ' ')}",
                    rows["model"],
                    {k: v for k, v in rows.items() if k != "model"},
                )
            )
    holdout = metrics.get("time_holdout")
    if isinstance(holdout, dict) and "model" in holdout:
        blocks.append(("time holdout", holdout["model"], holdout.get("baselines", {})))
    forward = metrics.get("forward")
    if isinstance(forward, dict) and "model" in forward:
        blocks.append(
            (
                "forward protocol",
                {**forward["model"], "n": forward.get("n_creators", 0)},
                {"persistence": {**forward["persistence"], "n": forward.get("n_creators", 0)}},
            )
        )
    return blocks


def unseen_platforms(model: Any, base: pd.DataFrame) -> dict[str, int]:
    """Examples per platform of ``base`` that ``model`` was not trained on (``engage evaluate``
    on another platform's data): their forecasts are the creators' own level alone, and their
    interval is calibrated on other platforms."""
    platform = platform_names(base)
    # The model's own test on one row per platform, not a booster matrix of every example.
    first = pd.Series(np.arange(len(base))).groupby(platform, sort=True).first()
    unseen = model.unseen_platform(model.booster_matrix(base.iloc[first.to_numpy()]))
    counts = pd.Series(platform).value_counts()
    return {str(name): int(counts[name]) for name in first.index[unseen]}


# A platform's evaluated creators whose level differs from their training peers' by more than
# this factor (either way) get a warning.
LEVEL_SHIFT_WARNING = 2.0


def level_vs_training_peers(model: Any, base: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per platform of ``base`` the model was trained on: how its creators' historical level
    compares with their peers' (same platform, tier and niche) in the model's training data, as
    a factor on the engagement rate (``ratio``), and the creators it is over.

    The peers' level (``prior_log_er``) is the post-weighted mean log ER of the training rows
    with history, each creator counted once, so the same mean over the training data itself
    is about 0 (a ratio of 0.99 on shared TikTok's training creators) and a ratio far from 1
    says these creators are another population. The model's starting point and trees pull
    forecasts towards the training creators' level: on shared TikTok, creators made 10x less
    engaged forecast forward lost 0.07 of the model's 0.11 MAE gain over persistence (README,
    "How it is evaluated")."""
    with_history = (base["n_history_posts"] > 0).to_numpy()
    if not with_history.any():
        return {}
    rows = base[with_history]
    unseen = set(unseen_platforms(model, rows))
    prior = model.peer_level(rows)
    own = rows["log_er_mean"].to_numpy(dtype="float64", na_value=np.nan)
    per_creator = 1.0 / rows.groupby("influencer")["influencer"].transform("size").to_numpy()
    weight = rows["n_history_posts"].to_numpy(dtype="float64") * per_creator
    platform = platform_names(rows)
    out = {}
    for name in sorted(set(platform) - unseen):
        mask = (platform == name) & np.isfinite(own)
        if not mask.any():
            continue
        shift = float(np.average(own[mask] - prior[mask], weights=weight[mask]))
        creators = int(rows["influencer"][mask].nunique())
        out[str(name)] = {"ratio": float(np.exp(shift)), "creators": creators}
    return out


def quality_warnings(metrics: dict[str, Any], level: float = 0.8) -> list[str]:
    """Every evaluation where the model loses to a baseline (higher MAE or lower Spearman),
    every tier whose interval coverage is outside ``level`` +- :data:`COVERAGE_TOLERANCE`, every
    platform in ``unseen_platforms``, and every platform of ``level_vs_training_peers`` whose
    ratio is beyond :data:`LEVEL_SHIFT_WARNING` either way."""
    out = [
        f"platform {name} ({n} examples) was not in the model's training: its creators are "
        "forecast from their own level without the model's corrections, and the interval is "
        "calibrated on other platforms"
        for name, n in (metrics.get("unseen_platforms") or {}).items()
    ]
    for name, shift in (metrics.get("level_vs_training_peers") or {}).items():
        ratio = shift["ratio"]
        if not 1.0 / LEVEL_SHIFT_WARNING <= ratio <= LEVEL_SHIFT_WARNING:
            out.append(
                f"platform {name}: these {shift['creators']} creators engage {ratio:.2g}x as "
                "much as their peers (same tier and niche) in the model's training data; the "
                "model pulls forecasts towards the training creators' level, so retrain with "
                "creators like these"
            )
    low, high = level - COVERAGE_TOLERANCE, level + COVERAGE_TOLERANCE
    for title, model, baselines in evaluation_blocks(metrics):
        n = _n(model)
        if n < MIN_CHECKED:
            continue
        for name, base in baselines.items():
            for key, worse, label in (
                ("mae_log_er", lambda m, b: m > b, "MAE"),
                ("spearman", lambda m, b: m < b, "Spearman"),
            ):
                m, b = model.get(key), base.get(key)
                if (
                    isinstance(m, float)
                    and isinstance(b, float)
                    and m == m
                    and b == b
                    and worse(m, b)
                ):
                    out.append(f"{title} (n={n}): model {label} {m:.3f} loses to {name} ({b:.3f})")
        coverage_key = COVERAGE_KEY_FORWARD if title == "forward protocol" else "coverage_80"
        for tier, values in (model.get("by_tier") or {}).items():
            cov, tier_n = values.get(coverage_key), _n(values)
            if (
                tier_n >= MIN_CHECKED
                and isinstance(cov, float)
                and cov == cov
                and not low <= cov <= high
            ):
                out.append(
                    f"{title}: interval coverage {cov:.3f} in tier "
                    f"{tier} (n={tier_n}) is outside {low:.2f}-{high:.2f}"
                )
    return out


def review(metrics: dict[str, Any], level: float = 0.8) -> dict[str, Any]:
    """Drop empty subsets and add ``warnings`` (and
    ``dropped_subsets`` if any) to ``metrics``, in place."""
    dropped = drop_empty_subsets(metrics)
    if dropped:
        metrics["dropped_subsets"] = dropped
    metrics["warnings"] = quality_warnings(metrics, level)
    return metrics
