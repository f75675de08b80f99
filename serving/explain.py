"""Reasons in words: the largest per-row contributions to predicted log ER, as short phrases.

Contributions come from :meth:`features.pipeline.EngagementModel.contributions` (LightGBM's
``pred_contrib``, exact TreeSHAP): for each row they add up, with the bias, to the predicted log
ER, so ``+0.42`` means the feature moved this prediction up by 0.42 in log ER (about x1.5)
compared with the average candidate.

A contribution says how a feature *value* moved the estimate, not that more of it is better, so
only features whose effect has one clear direction get a directional phrase ("own past
engagement above peers"); the others say "raises" or "lowers the estimate". A history feature
that is missing because the candidate has no posts before the cutoff is named as such ("no
post history"), since "below peers" would claim something that was never observed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.aggregate import NUMERIC_FEATURES, PLANNED_POST_FEATURES, PROFILE_FEATURES
from features.transformers import RELATIVE_LEVELS

N_REASONS = 3

# Directional phrases (raises, lowers) where the direction has one reading.
DIRECTIONAL: dict[str, tuple[str, str]] = {
    "log_followers": ("smaller audience than typical", "larger audience than typical"),
    "log_er_median": ("own past engagement above peers", "own past engagement below peers"),
    "shrunk_log_er": ("own past engagement above peers", "own past engagement below peers"),
    "log_er_mean": ("own average engagement above peers", "own average engagement below peers"),
    "log_er_last": ("last post engaged well", "last post engaged poorly"),
    "log_er_max": ("best past post engaged strongly", "even the best past post engaged weakly"),
    "er_trend": ("engagement trending up", "engagement trending down"),
    "log_er_recent_median": (
        "recent posts engaged above peers",
        "recent posts engaged below peers",
    ),
    "log_er_ewm": ("recent engagement above peers", "recent engagement below peers"),
    "log_views_per_follower": ("many views per follower", "few views per follower"),
    "log_interactions_per_view": ("viewers interact often", "viewers rarely interact"),
    "prior_log_er": ("tier and niche engage above average", "tier and niche engage below average"),
    "hashtag_er": (
        "uses hashtags of high-engagement accounts",
        "uses hashtags of low-engagement accounts",
    ),
    "zero_engagement_share": (
        "few posts without any engagement",
        "many posts without any engagement",
    ),
}

# Neutral labels: "<label> raises / lowers the estimate" (and "<label> unknown" when missing).
LABELS: dict[str, str] = {
    "log_followers": "follower count",
    "log_er_median": "own past engagement",
    "shrunk_log_er": "own past engagement",
    "log_er_mean": "own average engagement",
    "log_er_last": "last post's engagement",
    "log_er_max": "best past post's engagement",
    "er_trend": "engagement trend",
    "prior_log_er": "tier and niche average",
    "hashtag_er": "hashtags' engagement record",
    "days_since_last_post": "time since the last post",
    "zero_engagement_share": "share of posts without engagement",
    "following_ratio": "following-to-followers ratio",
    "log_posts_count": "how many posts the account has published",
    "follower_count_age_days": "how long after the post its counts are read",
    "hashtag_topics": "choice of hashtag themes",
    "verified": "verified status",
    "n_history_posts": "length of post history",
    "history_days": "time span of post history",
    "cadence_days": "posting frequency",
    "log_er_std": "post-to-post variability",
    "log_er_mad": "post-to-post variability",
    "log_er_recent_median": "recent posts' engagement",
    "log_er_ewm": "recent engagement",
    "log_views_per_follower": "views per follower",
    "log_interactions_per_view": "interactions per view",
    "comments_per_like": "comments-to-likes ratio",
    "shares_per_like": "shares-to-likes ratio",
    "saves_per_like": "saves-to-likes ratio",
    "sponsored_share": "share of sponsored posts",
    "planned_video": "the planned post's format (video or not)",
    "planned_carousel": "the planned post's format (carousel or not)",
    "planned_sponsored": "the planned post being sponsored or not",
    "sponsored_er_gap": "sponsored vs organic engagement gap",
    "carousel_share": "share of carousel posts",
    "video_share": "share of video posts",
    "caption_length_mean": "caption length",
    "hashtags_per_post": "hashtags per post",
    "distinct_hashtags": "hashtag variety",
    "top_hashtag_share": "reliance on one hashtag",
    "hashtag_entropy": "spread of hashtags",
    "niche_consistency": "how consistently hashtags stay in the niche",
    "niche_purity": "how single-niche the hashtags are",
    "people_per_post": "people per photo",
    "person_share": "share of photos with people",
    "outdoor_share": "share of outdoor photos",
    "text_image_share": "share of images with text",
    "closeup_share": "share of close-up photos",
    "undescribed_share": "share of posts without an image description",
    # Levels relative to the starting point (features.transformers.RELATIVE_LEVELS).
    "log_er_median_vs_shrunk": "own median post vs the creator's peer-adjusted level",
    "log_er_mean_vs_shrunk": "own average vs the creator's usual level",
    "log_er_recent_median_vs_shrunk": "recent posts vs the creator's usual level",
    "log_er_ewm_vs_shrunk": "recent engagement vs the creator's usual level",
    "log_er_last_vs_shrunk": "last post vs the creator's usual level",
    "log_er_max_vs_shrunk": "best past post vs the creator's usual level",
    "prior_log_er_vs_shrunk": "peers' level vs the creator's own",
}

# Categorical features: the row's value goes into the phrase.
CATEGORICAL: dict[str, tuple[str, str]] = {
    "tier": ("{} tier engages above average", "{} tier engages below average"),
    "category": ("{} niche engages above average", "{} niche engages below average"),
    "platform": ("{} platform raises the estimate", "{} platform lowers the estimate"),
}

# Features that exist only when there is post history: every aggregate but the profile's own
# and the planned post's, and the learned ones built from history (hashtag topics are matched
# by prefix).
HISTORY_DEPENDENT = (
    frozenset(NUMERIC_FEATURES) - frozenset(PROFILE_FEATURES) - frozenset(PLANNED_POST_FEATURES)
) | {
    "shrunk_log_er",
    *(f"{name}_vs_shrunk" for name in RELATIVE_LEVELS),
    "hashtag_er",
    "niche_consistency",
    "niche_purity",
    "hashtag_topics",
}


def phrase_pair(name: str) -> tuple[str, str]:
    """(raises, lowers) phrases for a feature; a readable generic fallback for unknown names."""
    if name in DIRECTIONAL:
        return DIRECTIONAL[name]
    if name in CATEGORICAL:
        return CATEGORICAL[name]
    label = LABELS.get(name, name.replace("_", " "))
    return f"{label} raises the estimate", f"{label} lowers the estimate"


def _is_history_dependent(name: str) -> bool:
    return name in HISTORY_DEPENDENT


def reasons(contributions: pd.DataFrame, base: pd.DataFrame, n: int = N_REASONS) -> np.ndarray:
    """One string per row: the ``n`` largest contributions by
    size, e.g. ``own past engagement above peers (+0.42)``.

    For a candidate without post history, the contributions of all history-dependent features
    (missing for it) are summed into one reason, ``no post history``, so it is named once.

    Parameters
    ----------
    contributions
        :meth:`~features.pipeline.EngagementModel.contributions` output (features + ``bias``).
    base
        The feature rows the contributions were computed on, same order (for missing values
        and the categorical values named in phrases).
    """
    values = contributions.drop(columns="bias", errors="ignore")
    # The latent hashtag topics mean nothing one by one to a planner: one reason, their sum.
    topics = [c for c in values.columns if str(c).startswith("topic_")]
    if topics:
        values = values.drop(columns=topics).assign(hashtag_topics=values[topics].sum(axis=1))
    names = list(values.columns)
    matrix = values.to_numpy(dtype="float64")
    n_rows = len(matrix)
    if n_rows == 0 or not names:
        return np.array([""] * n_rows, dtype=object)
    no_history = (
        (base["n_history_posts"].to_numpy(dtype="float64") <= 0)
        if "n_history_posts" in base
        else np.zeros(n_rows, dtype=bool)
    )
    dependent = np.array([_is_history_dependent(name) for name in names])
    # Last column: the summed contribution of what is missing for lack of history.
    pooled = np.where(no_history, matrix[:, dependent].sum(axis=1), 0.0)
    matrix = np.where(no_history[:, None] & dependent[None, :], 0.0, matrix)
    matrix = np.column_stack([matrix, pooled])
    # A base feature missing for another reason (e.g. cadence with one post) is named as unknown.
    missing = np.zeros_like(matrix, dtype=bool)
    checked = [j for j, name in enumerate(names) if name in base and name not in CATEGORICAL]
    if checked:  # one isna over the block, not one pandas call per column
        missing[:, checked] = base[[names[j] for j in checked]].isna().to_numpy(dtype=bool)
    pairs = [phrase_pair(name) for name in names] + [("no post history", "no post history")]
    up = np.array([p[0] for p in pairs], dtype=object)
    down = np.array([p[1] for p in pairs], dtype=object)
    missing_phrase = np.array(
        [f"{LABELS.get(name, name.replace('_', ' '))} unknown" for name in names]
        + ["no post history"],
        dtype=object,
    )
    categorical_values = {
        name: base[name].astype(str).to_numpy()
        for name in CATEGORICAL
        if name in names and name in base
    }

    k = min(n, matrix.shape[1])
    top = np.argsort(-np.abs(matrix), axis=1, kind="stable")[:, :k]
    rows = np.arange(n_rows)
    joined: np.ndarray | None = None
    for slot in range(k):
        j = top[:, slot]
        v = matrix[rows, j]
        # A zero contribution is no reason (rows with fewer than n non-zero contributions).
        keep = v != 0
        text = np.where(v >= 0, up[j], down[j]).astype(object)
        text = np.where(missing[rows, j], missing_phrase[j], text)
        for name, cat_values in categorical_values.items():
            hit = (j == names.index(name)) & keep
            if hit.any():
                text[hit] = [
                    template.format(value)
                    for template, value in zip(text[hit], cat_values[hit], strict=True)
                ]
        amounts = np.char.mod("%+.2f", v).astype(object)
        part = np.where(keep, text + " (" + amounts + ")", "").astype(object)
        if joined is None:
            joined = part
        else:
            joined = np.where(keep, joined + "; " + part, joined).astype(object)
    return joined if joined is not None else np.array([""] * n_rows, dtype=object)
