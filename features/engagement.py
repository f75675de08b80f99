"""The one definition of engagement rate used everywhere in engage (features, labels, reports).

Engagement rate (ER) of a post = interactions / followers, where
interactions = likes + comments, plus shares and saves where the table has them
(a missing cell in those optional columns counts as 0).

The model works on ``log_er = log((interactions + 1) / followers)``. The +1 (one pseudo
interaction) keeps zero-engagement posts finite without a hand-picked floor, and matters only
where interactions are tiny: for a post with 100 interactions it moves log ER by 0.01.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ER_DEFINITION = (
    "engagement_rate = (likes + comments + shares + saves) / followers per post; shares and saves "
    "count where present (missing = 0); followers is the profile's follower count. "
    "Modelled as log_er = ln((interactions + 1) / followers)."
)
INTERACTION_COLUMNS = ("likes", "comments", "shares", "saves")


def interactions(posts: pd.DataFrame) -> pd.Series:
    """Likes + comments, plus shares and saves where the table carries them."""
    total = np.zeros(len(posts))
    for col in INTERACTION_COLUMNS:
        if col in posts:
            values = posts[col]
            if values.dtype.kind in "iub":  # numpy integers cannot be missing: no NaN pass
                total += values.to_numpy()
            else:
                total += np.nan_to_num(values.to_numpy(dtype="float64", na_value=np.nan), nan=0.0)
    return pd.Series(total, index=posts.index)


def engagement_rate(
    interaction_count: pd.Series | np.ndarray, followers: pd.Series | np.ndarray
) -> np.ndarray:
    """Plain engagement rate (a fraction: 0.03 means 3 %)."""
    return np.asarray(interaction_count, dtype="float64") / np.asarray(followers, dtype="float64")


def log_er(
    interaction_count: pd.Series | np.ndarray, followers: pd.Series | np.ndarray
) -> np.ndarray:
    """The modelled transform: ln((interactions + 1) / followers)."""
    return np.log(
        (np.asarray(interaction_count, dtype="float64") + 1.0)
        / np.asarray(followers, dtype="float64")
    )


def er_from_log(log_value: pd.Series | np.ndarray, followers: pd.Series | np.ndarray) -> np.ndarray:
    """Invert :func:`log_er` back to an engagement rate (never below zero)."""
    followers = np.asarray(followers, dtype="float64")
    return np.maximum(np.exp(np.asarray(log_value, dtype="float64")) - 1.0 / followers, 0.0)
