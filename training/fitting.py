"""The two pieces every fit shares: a fresh model from the configuration, and the
influencer holdout that splits rows by creator (no one on both sides).

:mod:`training.evaluation` and :mod:`training.tuning` both build on them; neither imports the
other's callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.pipeline import EngagementModel
from training.config import TrainConfig


def influencer_holdout(influencers: pd.Series, share: float, seed: int) -> np.ndarray:
    """Boolean mask: True for rows of a random ``share`` of influencers (all their rows)."""
    unique = np.asarray(pd.unique(influencers), dtype=object)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(unique, size=max(1, int(round(len(unique) * share))), replace=False)
    return influencers.isin(chosen).to_numpy()


def new_model(config: TrainConfig, params: dict[str, Any] | None = None) -> EngagementModel:
    return EngagementModel(
        params or config.lgbm_params,
        config.interval_level,
        config.seed,
        config.prior_strength,
        config.n_topics,
    )
