"""Point-in-time feature aggregation: pure functions from validated frames to one row per example.

An *example* is an influencer at a cutoff. Only posts with ``posted_at`` strictly before the
cutoff are used, so a post at or after the cutoff can never change a feature. Nothing here is
learned from data: what is learned (priors, hashtag niches, topics) lives in
:mod:`features.transformers` and is fitted inside the model pipeline.

Inputs are never modified; every function returns a new frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.engagement import interactions, log_er

TIER_BOUNDS = (10_000, 100_000, 500_000, 1_000_000)
TIERS = ("nano", "micro", "mid", "macro", "mega")
SECONDS_PER_DAY = 86_400.0

PROFILE_FEATURES = ("log_followers", "following_ratio", "log_posts_count", "verified")
HISTORY_FEATURES = (
    "n_history_posts",
    "history_days",
    "cadence_days",
    "days_since_last_post",
    "log_er_median",
    "log_er_mean",
    "log_er_std",
    "log_er_last",
    "log_er_max",
    "er_trend",
    "comments_per_like",
    "shares_per_like",
    "saves_per_like",
    "zero_engagement_share",
    "sponsored_share",
    "sponsored_er_gap",
    "carousel_share",
    "video_share",
    "caption_length_mean",
)
HASHTAG_FEATURES = ("hashtags_per_post", "distinct_hashtags", "top_hashtag_share", "hashtag_entropy")
NUMERIC_FEATURES = PROFILE_FEATURES + HISTORY_FEATURES + HASHTAG_FEATURES
CATEGORICAL_FEATURES = ("tier", "category", "platform")
KEY_COLUMNS = ("influencer", "cutoff")


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Seconds since 1970 for UTC timestamps, whatever their stored resolution (s, ms, us, ns)."""
    naive = pd.to_datetime(values, utc=True).dt.tz_convert(None)
    return naive.astype("datetime64[ns]").to_numpy().astype("int64") / 1e9


def tier_of(followers: pd.Series | np.ndarray) -> np.ndarray:
    """Audience tier: nano < 10k <= micro < 100k <= mid < 500k <= macro < 1M <= mega."""
    idx = np.searchsorted(np.asarray(TIER_BOUNDS, dtype="float64"), np.asarray(followers, dtype="float64"), side="right")
    return np.asarray(TIERS, dtype=object)[idx]


def examples_at(profiles: pd.DataFrame, as_of: pd.Timestamp | pd.Series | None = None) -> pd.DataFrame:
    """One example per profile, at one cutoff for all, or one per influencer (a Series by influencer).

    With ``as_of`` None, the profiles' own ``as_of`` column is used where present, else now.
    """
    now = pd.Timestamp.now(tz="UTC")
    examples = pd.DataFrame({"influencer": profiles["influencer"].to_numpy()})
    if isinstance(as_of, pd.Series):
        cutoff = examples["influencer"].map(as_of)
    elif as_of is not None:
        cutoff = pd.Series(pd.Timestamp(as_of), index=examples.index)
    elif "as_of" in profiles:
        cutoff = pd.Series(profiles["as_of"].to_numpy(), index=examples.index)
    else:
        cutoff = pd.Series(now, index=examples.index)
    cutoff = pd.to_datetime(cutoff, utc=True).fillna(now)
    examples["cutoff"] = cutoff
    return examples


def compute_features(profiles: pd.DataFrame, posts: pd.DataFrame, examples: pd.DataFrame, *, include_hashtag_docs: bool = True) -> pd.DataFrame:
    """Features for each example (row of ``examples``: ``influencer``, ``cutoff``).

    Returns one row per example, in the same order, starting with ``influencer`` and ``cutoff``.
    Examples whose influencer has no posts before the cutoff get ``n_history_posts = 0`` and
    missing history features (LightGBM handles missing values natively).
    """
    examples = examples.reset_index(drop=True)
    n_examples = len(examples)
    profile_by_key = profiles.drop_duplicates("influencer").set_index("influencer")
    followers = examples["influencer"].map(profile_by_key["followers"]).to_numpy(dtype="float64")

    out = pd.DataFrame({"influencer": examples["influencer"].to_numpy(), "cutoff": examples["cutoff"].to_numpy()})
    out = out.astype({"cutoff": "datetime64[ns, UTC]"}) if n_examples else out
    out = pd.concat([out, profile_features(profile_by_key, examples["influencer"], followers)], axis=1)

    history = history_posts(posts, examples, followers)
    out = pd.concat([out, history_features(history, examples, n_examples)], axis=1)
    out = pd.concat([out, hashtag_features(history, n_examples, include_docs=include_hashtag_docs)], axis=1)
    return out


def profile_features(profile_by_key: pd.DataFrame, influencers: pd.Series, followers: np.ndarray) -> pd.DataFrame:
    """Follower-count family from the profile alone."""

    def column(name: str, default: object = np.nan) -> np.ndarray:
        if name in profile_by_key:
            return influencers.map(profile_by_key[name]).to_numpy()
        return np.full(len(influencers), default, dtype=object)

    following = pd.to_numeric(pd.Series(column("following")), errors="coerce").to_numpy(dtype="float64")
    posts_count = pd.to_numeric(pd.Series(column("posts_count")), errors="coerce").to_numpy(dtype="float64")
    verified = pd.Series(column("verified", False)).fillna(False).astype(bool).to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame(
            {
                "log_followers": np.log(followers),
                "following_ratio": following / followers,
                "log_posts_count": np.log1p(posts_count),
                "verified": verified,
                "tier": tier_of(followers),
                "category": pd.Series(column("category", "other")).fillna("other").to_numpy(dtype=object),
                "platform": pd.Series(column("platform", "instagram")).fillna("instagram").to_numpy(dtype=object),
            }
        )
    return frame


def history_posts(posts: pd.DataFrame, examples: pd.DataFrame, followers: np.ndarray) -> pd.DataFrame:
    """Posts strictly before each example's cutoff, tagged with the example number, sorted by time."""
    cols = list(posts.columns)
    keys = pd.DataFrame({"influencer": examples["influencer"].to_numpy(), "example": np.arange(len(examples)), "cutoff": examples["cutoff"].to_numpy()})
    if keys["influencer"].is_unique:
        # Common case (one cutoff per influencer): a hash lookup is much cheaper than a merge.
        position = pd.Index(keys["influencer"]).get_indexer(posts["influencer"])
        keep = position >= 0
        hist = posts.loc[keep, cols].copy()
        hist["example"] = position[keep]
    else:
        hist = posts[cols].merge(keys[["influencer", "example"]], on="influencer", how="inner")
    cutoff = epoch_seconds(keys["cutoff"])[hist["example"].to_numpy()]
    hist = hist[epoch_seconds(hist["posted_at"]) < cutoff]
    hist["followers"] = followers[hist["example"].to_numpy()]
    hist["interactions"] = interactions(hist)
    hist["log_er"] = log_er(hist["interactions"], hist["followers"])
    # post_id breaks ties between posts at the same instant: otherwise the input's row order would
    # decide log_er_last, the trend halves and the hashtag doc.
    order = ["example", "posted_at", "post_id"] if "post_id" in hist else ["example", "posted_at"]
    return hist.sort_values(order, kind="stable").reset_index(drop=True)


def history_features(hist: pd.DataFrame, examples: pd.DataFrame, n_examples: int) -> pd.DataFrame:
    """Posting cadence and interaction-ratio families from the history posts."""
    out = pd.DataFrame(index=pd.RangeIndex(n_examples))
    g = hist.groupby("example", sort=True)
    n = g.size()
    out["n_history_posts"] = n.reindex(out.index, fill_value=0).astype("float64")
    hist = hist.assign(t=epoch_seconds(hist["posted_at"]))
    gt = hist.groupby("example", sort=True)["t"]
    first, last = gt.min(), gt.max()
    cutoff_s = epoch_seconds(examples["cutoff"])
    history_days = ((last - first) / SECONDS_PER_DAY).reindex(out.index)
    out["history_days"] = history_days
    out["cadence_days"] = (history_days / (out["n_history_posts"] - 1)).where(out["n_history_posts"] >= 2)
    out["days_since_last_post"] = (cutoff_s - last.reindex(out.index).to_numpy()) / SECONDS_PER_DAY

    ler = hist.groupby("example", sort=True)["log_er"]
    out["log_er_median"] = ler.median().reindex(out.index)
    out["log_er_mean"] = ler.mean().reindex(out.index)
    out["log_er_std"] = ler.std(ddof=1).reindex(out.index)
    out["log_er_last"] = ler.last().reindex(out.index)
    out["log_er_max"] = ler.max().reindex(out.index)

    # Trend: mean log ER of the later half of the history minus the earlier half (posts are sorted).
    rank = g.cumcount().to_numpy()
    size = n.reindex(hist["example"]).to_numpy() if len(hist) else np.array([])
    later = rank >= size / 2.0
    recent = hist["log_er"].where(later).groupby(hist["example"]).mean()
    older = hist["log_er"].where(~later).groupby(hist["example"]).mean()
    out["er_trend"] = (recent - older).reindex(out.index)

    sums = hist.groupby("example", sort=True)[[c for c in ("likes", "comments", "shares", "saves") if c in hist]].sum(min_count=1)
    likes = sums["likes"].reindex(out.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["comments_per_like"] = sums["comments"].reindex(out.index) / likes.clip(lower=1.0)
        for col in ("shares", "saves"):
            out[f"{col}_per_like"] = sums[col].reindex(out.index) / likes.clip(lower=1.0) if col in sums else np.nan
    out["zero_engagement_share"] = (hist["interactions"] == 0).groupby(hist["example"]).mean().reindex(out.index)
    sponsored = hist["is_sponsored"].astype(bool)
    out["sponsored_share"] = sponsored.groupby(hist["example"]).mean().reindex(out.index)
    gap = hist["log_er"].where(sponsored).groupby(hist["example"]).mean() - hist["log_er"].where(~sponsored).groupby(hist["example"]).mean()
    out["sponsored_er_gap"] = gap.reindex(out.index)
    media = hist["media_type"].astype(str)
    out["carousel_share"] = (media == "carousel").groupby(hist["example"]).mean().reindex(out.index)
    out["video_share"] = media.isin(["video", "reel", "short"]).groupby(hist["example"]).mean().reindex(out.index)
    if "caption" in hist:
        out["caption_length_mean"] = hist["caption"].astype(str).str.len().groupby(hist["example"]).mean().reindex(out.index)
    else:
        out["caption_length_mean"] = np.nan
    return out.reset_index(drop=True)


def hashtag_features(hist: pd.DataFrame, n_examples: int, *, include_docs: bool = True) -> pd.DataFrame:
    """Niche-focus family: how many hashtags, how concentrated, and the bag of tags used.

    ``hashtag_doc`` (space-joined tags, repeats kept) feeds the learned niche and topic
    transformers; it is text, not a model input by itself.
    """
    out = pd.DataFrame(index=pd.RangeIndex(n_examples))
    tags_per_post = pa.array(hist["hashtags"].astype(str).to_numpy(), type=pa.string()) if len(hist) else pa.array([], type=pa.string())
    lists = pc.split_pattern(tags_per_post, "|")
    flat = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy()
    nonempty = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    tags = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=object)[nonempty]
    tag_example = hist["example"].to_numpy()[parent[nonempty]]

    n_posts = hist.groupby("example").size().reindex(out.index)
    n_tags = pd.Series(tag_example).value_counts().reindex(out.index).fillna(0.0)
    out["hashtags_per_post"] = (n_tags / n_posts).where(n_posts > 0)
    if len(tags):
        codes, _ = pd.factorize(tags)
        pair = pd.DataFrame({"example": tag_example, "tag": codes})
        counts = pair.groupby(["example", "tag"], sort=False).size()
        per_example = counts.groupby(level=0)
        total = per_example.sum()
        share = counts / total.reindex(counts.index.get_level_values(0)).to_numpy()
        entropy = (-(share * np.log(share))).groupby(level=0).sum()
        distinct = per_example.size()
        out["distinct_hashtags"] = distinct.reindex(out.index).fillna(0.0).where(n_posts > 0)
        out["top_hashtag_share"] = (per_example.max() / total).reindex(out.index)
        # Normalised entropy in [0, 1]: 0 = one tag over and over, 1 = every tag equally often.
        norm = np.log(distinct.where(distinct > 1))
        # Clipped: for an even spread, sum(-p log p) / log k can round to 1 + 2e-16.
        out["hashtag_entropy"] = (entropy / norm).fillna(0.0).clip(upper=1.0).reindex(out.index)
    else:
        for col in ("distinct_hashtags", "top_hashtag_share", "hashtag_entropy"):
            out[col] = np.nan
        out["distinct_hashtags"] = out["distinct_hashtags"].where(n_posts.isna(), 0.0)
    if include_docs:
        docs = pd.Series(tags, dtype=object).groupby(tag_example).agg(" ".join) if len(tags) else pd.Series(dtype=object)
        out["hashtag_doc"] = docs.reindex(out.index).fillna("").to_numpy(dtype=object)
    return out.reset_index(drop=True)


def feature_table(profiles: pd.DataFrame, posts: pd.DataFrame, as_of: pd.Timestamp | pd.Series | None = None) -> pd.DataFrame:
    """One row per profile as of ``as_of`` (see :func:`examples_at`), ``influencer`` first."""
    return compute_features(profiles, posts, examples_at(profiles, as_of))
