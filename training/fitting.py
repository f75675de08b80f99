"""The two pieces every fit shares: a fresh model from the configuration, and the
influencer holdout that splits rows by creator (no one on both sides).

:mod:`training.evaluation` and :mod:`training.tuning` both build on them; neither imports the
other's callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from features.pipeline import EngagementModel
from training.config import TrainConfig


def influencer_holdout(
    influencers: pd.Series, share: float, seed: int, platforms: pd.Series | None = None
) -> np.ndarray:
    """Boolean mask: True for rows of a random ``share`` of influencers (all their rows).

    ``platforms`` (aligned with ``influencers``): draw the share within each platform, each
    platform with a generator seeded afresh, so that a platform's creators are held out as they
    are when it is trained alone. A model trained on several platforms then differs from one
    trained on a platform alone by the other platforms' data, not by which creators were drawn.
    """
    if platforms is None or platforms.nunique() < 2:
        return _holdout_of(influencers, share, seed)
    mask = np.zeros(len(influencers), dtype=bool)
    platform = platforms.astype(str).to_numpy()
    for name in sorted(set(platform)):
        rows = platform == name
        mask[rows] = _holdout_of(influencers[rows], share, seed)
    return mask


def _holdout_of(influencers: pd.Series, share: float, seed: int) -> np.ndarray:
    unique = np.asarray(pd.unique(influencers), dtype=object)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(unique, size=max(1, int(round(len(unique) * share))), replace=False)
    return influencers.isin(chosen).to_numpy()


def creator_folds(
    base: pd.DataFrame, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) of a grouped K-fold by influencer, within each platform.

    Fold k holds the k-th fold of every platform, each platform's folds drawn as they are when
    it is evaluated alone (:class:`~sklearn.model_selection.GroupKFold`, same seed): out-of-fold
    predictions of a model trained on several platforms and of one trained on a platform alone
    are then of models fitted on the same creators of that platform.
    """
    groups = base["influencer"].to_numpy()
    platform = base["platform"].astype(str).to_numpy() if "platform" in base else None
    names = sorted(set(platform)) if platform is not None else []
    if len(names) < 2:
        folds = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return list(folds.split(np.zeros(len(base)), groups=groups))
    test_of = np.empty(len(base), dtype="int64")
    for name in names:
        rows = np.flatnonzero(platform == name)
        folds = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, test) in enumerate(folds.split(np.zeros(len(rows)), groups=groups[rows])):
            test_of[rows[test]] = k
    every = np.arange(len(base))
    return [(every[test_of != k], every[test_of == k]) for k in range(n_folds)]


def new_model(config: TrainConfig, params: dict[str, Any] | None = None) -> EngagementModel:
    return EngagementModel(
        params or config.lgbm_params,
        config.interval_level,
        config.seed,
        config.prior_strength,
        config.n_topics,
    )
