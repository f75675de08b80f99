"""Small hand-made training inputs shared by the training and engage test modules.

The toy set (four profiles, six posts), creators with their own engagement levels (the forward
evaluation's shape), and metrics in the shape training writes, with known winners and losers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import ValidatedData, validate
from training.examples import ExampleSet, post_examples

TOY_NOW = pd.Timestamp("2020-06-01", tz="UTC")


def toy_posts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "influencer": ["a", "a", "a", "b", "c", "c"],
            "post_id": ["a1", "a2", "a3", "b1", "c1", "c2"],
            "posted_at": [
                "2020-01-01",
                "2020-01-05",
                "2020-01-09",
                "2020-01-02",
                "2020-01-03",
                "2020-01-04",
            ],
            "likes": ["100", "200", "300", "50", "10", "0"],
            "comments": ["10", "20", "30", "5", "1", "0"],
            "hashtags": ["x|y", "y", "z", "w", "v", ""],
            "caption": ["one", "two", "three", "four", "five", "six"],
        }
    )


def toy_profiles() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "influencer": ["a", "b", "c", "d"],
            "followers": ["1000", "20000", "300", "5000"],
            "category": ["food", "travel", "pet", "food"],
        }
    )


def toy_examples(posts: pd.DataFrame) -> ExampleSet:
    data = validate(toy_profiles(), posts, now=TOY_NOW)
    return post_examples(data.profiles, data.posts)


SERIES_NOW = pd.Timestamp("2021-01-01", tz="UTC")


def creators_with_levels(n_creators: int = 30, seed: int = 0) -> ValidatedData:
    """Creators with 3 to 14 posts each; each has its own level of engagement."""
    rng = np.random.default_rng(seed)
    profiles, posts = [], []
    for i in range(n_creators):
        name = f"c{i:02d}"
        followers = int(rng.integers(2_000, 2_000_000))
        level = rng.normal(np.log(0.03), 1.0)
        profiles.append(
            {"influencer": name, "followers": followers, "category": ["food", "pet"][i % 2]}
        )
        for j in range(int(rng.integers(3, 15))):
            rate = np.exp(level + rng.normal(0, 0.3))
            posts.append(
                {
                    "influencer": name,
                    "post_id": f"{name}-{j}",
                    "posted_at": pd.Timestamp("2020-01-01", tz="UTC")
                    + pd.Timedelta(days=7 * j + i),
                    "likes": int(rate * followers),
                    "comments": int(rate * followers / 20),
                }
            )
    return validate(pd.DataFrame(profiles), pd.DataFrame(posts), now=SERIES_NOW)


def metrics_block(mae: float, rho: float, n: int = 100, **extra: object) -> dict[str, object]:
    return {
        "mae_log_er": mae,
        "spearman": rho,
        "ndcg_at_10": 0.5,
        "coverage_80": 0.8,
        "interval_width_80": 1.0,
        "n": n,
        **extra,
    }


def training_metrics() -> dict[str, object]:
    """Metrics in the shape training writes, with known winners and losers."""
    nan = float("nan")
    return {
        "model": metrics_block(
            0.50,
            0.70,
            500,
            by_tier={
                "micro": {"coverage_80": 0.80, "interval_width_80": 1.0, "n": 300},
                "mega": {"coverage_80": 0.70, "interval_width_80": 1.0, "n": 200},
                "nano": {"coverage_80": 0.5, "interval_width_80": 1.0, "n": 3},
            },
        ),
        "baselines": {
            "persistence": metrics_block(0.55, 0.72, 500),
            "ridge": metrics_block(0.52, 0.60, 500),
        },
        "subsets": {
            "with_history": {
                "model": metrics_block(0.40, 0.75, 300),
                "ridge": metrics_block(0.39, 0.70, 300),
            },
            # An empty subset: every figure NaN, n 0 (TikTok's campaign runs have no cold starts).
            "cold_start": {
                "model": {**metrics_block(nan, nan, 0), "by_tier": {}},
                "ridge": {**metrics_block(nan, nan, 0), "by_tier": {}},
            },
            "latest_cold_start": {
                "model": metrics_block(0.9, 0.1, 5),
                "ridge": metrics_block(0.1, 0.9, 5),
            },  # too few to judge
        },
        "time_holdout": {
            "model": metrics_block(
                0.6, 0.6, 200, by_tier={"micro": {"coverage_80": 0.86, "n": 150}}
            ),
            "baselines": {"persistence": metrics_block(0.7, 0.5, 200)},
            "holdout_from": "2019-01-01",
        },
        "forward": {
            "n_creators": 40,
            "model": {
                "mae_log_er": 0.47,
                "spearman": 0.88,
                "coverage_80_posts": 0.75,
                "coverage_80_mature_posts": 0.79,
                "coverage_80_mature_posts_90ci": [0.74, 0.84],
                # Young posts in the other key: the check reads the mature posts' coverage.
                "by_tier": {
                    "micro": {"coverage_80_posts": 0.80, "coverage_80_mature_posts": 0.74, "n": 30}
                },
            },
            "persistence": {"mae_log_er": 0.56, "spearman": 0.87},
            "mae_gain": 0.09,
            "mae_gain_90ci": [0.05, 0.12],
        },
        "n_examples": 500,
    }


def tracking_store(result) -> tuple[str, Path]:
    folder = result.model_dir.parent.parent
    return f"sqlite:///{folder / 'mlflow.db'}", folder
