"""Point-in-time feature aggregation: pure functions from validated frames to one row per example.

An *example* is an influencer at a cutoff. Only posts with ``posted_at`` strictly before the
cutoff are used, so a post at or after the cutoff can never change a feature. Nothing here is
learned from data: what is learned (priors, hashtag niches, topics) lives in
:mod:`features.transformers` and is fitted inside the model pipeline.

Inputs are never modified; every function returns a new frame.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.engagement import interactions, log_er
from features.engine import (
    Segments,
    arrow_tags,
    count_pairs,
    epoch_nanoseconds,
    join_per_example,
    positions_in,
    strictly_before,
    take_rows,
    take_text,
    text_array,
    time_order,
    whole_example_chunks,
)

TIER_BOUNDS = (10_000, 100_000, 500_000, 1_000_000)
TIERS = ("nano", "micro", "mid", "macro", "mega")
SECONDS_PER_DAY = 86_400.0
# Posts younger than this when their counts were read are still collecting engagement: they are
# left out of histories (see history_cutoffs) and of training labels.
MIN_POST_AGE = pd.Timedelta(days=3)
# A forecast is of the planned post's counts as read this long after it goes up (see examples_at).
FORECAST_POST_AGE = pd.Timedelta(days=14)
VIDEO_MEDIA = ("video", "reel", "short")
# Posts per chunk in the hashtag features: bounds the memory their per-tag arrays take.
HASHTAG_CHUNK_POSTS = 1 << 18
PROFILE_FEATURES = (
    "log_followers",
    "following_ratio",
    "log_posts_count",
    "verified",
    "follower_count_age_days",
)
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
    "log_er_recent_median",
    "log_er_ewm",
    "log_er_mad",
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
    "log_views_per_follower",
    "log_interactions_per_view",
)
HASHTAG_FEATURES = (
    "hashtags_per_post",
    "distinct_hashtags",
    "top_hashtag_share",
    "hashtag_entropy",
)
# The planned post itself: its format and sponsorship are known before it goes up (its counts
# never are). Training reads them off each target post; scoring takes them from the planner
# (``post_type``, ``sponsored`` on the examples) or assumes the creator's usual post. They are
# model inputs, so the forecast is for the post being planned (see the README, "The planned
# post", for what they changed on the shared data).
PLANNED_POST_FEATURES = ("planned_video", "planned_carousel", "planned_sponsored")
NUMERIC_FEATURES = PROFILE_FEATURES + HISTORY_FEATURES + HASHTAG_FEATURES + PLANNED_POST_FEATURES
CATEGORICAL_FEATURES = ("tier", "category", "platform")
KEY_COLUMNS = ("influencer", "cutoff")
# Post columns the history features read. Text (hashtags, captions) is not carried along:
# the history keeps each post's row in the posts table (``source_row``) instead.
HISTORY_INPUT_COLUMNS = (
    "posted_at",
    "likes",
    "comments",
    "shares",
    "saves",
    "views",
    "is_sponsored",
)
# Posts in the recent level (median of the latest posts) and the half-life, in posts, of the
# exponentially weighted level: engagement drifts, so recent posts say more about the next one.
RECENT_POSTS = 12
EWM_HALFLIFE_POSTS = 5.0


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Seconds since 1970 (float) for UTC timestamps."""
    return epoch_nanoseconds(values) / 1e9


def tier_of(followers: pd.Series | np.ndarray) -> np.ndarray:
    """Audience tier: nano < 10k <= micro < 100k <= mid < 500k <= macro < 1M <= mega."""
    idx = np.searchsorted(
        np.asarray(TIER_BOUNDS, dtype="float64"),
        np.asarray(followers, dtype="float64"),
        side="right",
    )
    return np.asarray(TIERS, dtype=object)[idx]


def examples_at(
    profiles: pd.DataFrame,
    as_of: pd.Timestamp | pd.Series | None = None,
    *,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One example per profile, at one cutoff for all,
    or one per influencer (a Series by influencer).

    With ``as_of`` None, the profiles' own ``as_of`` column is used where present, else ``now``
    (default: the clock; the Dask engine passes one ``now`` to every partition). Each example's
    ``observed_at`` is ``now``: posts younger than ``MIN_POST_AGE`` then are no history. Its
    ``followers_read_at`` is ``FORECAST_POST_AGE`` after the cutoff, or ``now`` if later (a
    backtest): the forecast is of the planned post's counts two weeks after it goes up.
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
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
    # The counts were read at the latest now: on fresh data the newest posts are still young
    # (history_cutoffs leaves them out); on old data or in a backtest nothing is left out.
    examples["observed_at"] = now
    # Training targets were read at the scrape, days to years after they went up, and
    # follower_count_age_days tells the trees how long: "read now" would ask for a post hours
    # old, below every target they saw (TikTok's forecasts sat 0.15-0.3 below its settled
    # posts). So the planned post is forecast as read FORECAST_POST_AGE after it goes up, over
    # today's follower count (two weeks of growth, where training counts are up to years stale).
    read_at = cutoff + FORECAST_POST_AGE
    examples["followers_read_at"] = read_at.where(read_at > now, now)
    return examples


def compute_features(
    profiles: pd.DataFrame,
    posts: pd.DataFrame,
    examples: pd.DataFrame,
    *,
    include_hashtag_docs: bool = True,
) -> pd.DataFrame:
    """Features for each example (row of ``examples``: ``influencer``, ``cutoff``).

    Returns one row per example, in the same order, starting with ``influencer`` and ``cutoff``.
    Examples whose influencer has no posts before the cutoff get ``n_history_posts = 0`` and
    missing history features (LightGBM handles missing values natively).
    """
    examples = examples.reset_index(drop=True)
    n_examples = len(examples)
    profiles = (
        profiles if profiles["influencer"].is_unique else profiles.drop_duplicates("influencer")
    )
    # Each example's profile row (-1: none), found once for every profile column.
    profile_row = positions_in(profiles["influencer"], examples["influencer"])
    followers = _take(profiles["followers"], profile_row, np.nan).astype("float64")

    out = pd.DataFrame(
        {"influencer": examples["influencer"].to_numpy(), "cutoff": examples["cutoff"].array}
    )
    out = out.astype({"cutoff": "datetime64[ns, UTC]"}) if n_examples else out
    history = history_posts(posts, history_cutoffs(examples), followers)
    history_table = history_features(history, examples, n_examples)
    # The hashtag family needs only each history post's example and row in ``posts``: the rest of
    # the history (a large frame at millions of posts) goes before the tags are split.
    example, source_row = history["example"].to_numpy(), history["source_row"].to_numpy()
    del history
    hashtag_table = hashtag_features(
        example, source_row, n_examples, posts.get("hashtags"), include_docs=include_hashtag_docs
    )
    return pd.concat(
        [
            out,
            profile_features(profiles, profile_row, followers),
            pd.DataFrame({"follower_count_age_days": follower_count_age_days(examples)}),
            history_table,
            hashtag_table,
            planned_post_features(examples, history_table),
        ],
        axis=1,
    )


def follower_count_age_days(examples: pd.DataFrame) -> np.ndarray:
    """Days from each cutoff to when the counts were read: the examples'
    ``followers_read_at``, else their ``observed_at`` (missing where neither is given).

    Rates divide by the follower count as read, not as it was at the cutoff: a post two years
    before the profile was read is divided by two years' growth. A training target's own
    engagement is read then too, so the same days also say how long it collected engagement.
    Scoring (:func:`examples_at`) asks for a post read ``FORECAST_POST_AGE`` after it goes up,
    over today's follower count.
    """
    read_at = pd.Series(pd.NaT, index=examples.index, dtype="datetime64[ns, UTC]")
    for column in ("observed_at", "followers_read_at"):  # the latter wins where given
        if column in examples:
            given = pd.to_datetime(examples[column], utc=True)
            read_at = given.where(given.notna(), read_at)
    age = read_at - pd.to_datetime(examples["cutoff"], utc=True)
    # A count read before the cutoff (a campaign table newer than the scrape) is as fresh as one
    # read at it; a missing reading time stays missing.
    return np.maximum(age.dt.total_seconds().to_numpy(dtype="float64") / SECONDS_PER_DAY, 0.0)


def planned_post_features(examples: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The planned post's format and sponsorship, 0/1 per example.

    From the examples' ``post_type`` (a media type: video, reel and short count as video) and
    ``sponsored`` columns where given; otherwise the creator's usual post: video or carousel if
    most of its history is, and not sponsored. A creator without history and no stated format
    gets missing values: serving fills them with its platform's usual format in training.
    """
    n = len(examples)
    usual_video = _majority(history["video_share"].to_numpy(dtype="float64"))
    usual_carousel = _majority(history["carousel_share"].to_numpy(dtype="float64"))
    video, carousel = usual_video, usual_carousel
    if "post_type" in examples:
        kind = examples["post_type"].astype("string").str.strip().str.lower()
        given = kind.notna().to_numpy()
        is_video = kind.isin(VIDEO_MEDIA).to_numpy(dtype=bool)
        is_carousel = (kind == "carousel").fillna(False).to_numpy(dtype=bool)
        video = np.where(given, is_video.astype("float64"), usual_video)
        carousel = np.where(given, is_carousel.astype("float64"), usual_carousel)
    sponsored = np.zeros(n)
    if "sponsored" in examples:
        # pandas-stubs' pd.array leaves out a Series as data, which pandas accepts.
        stated = pd.array(examples["sponsored"], dtype="boolean")  # type: ignore[call-overload]
        sponsored = np.where(stated.isna(), 0.0, stated.fillna(False).to_numpy(dtype="float64"))
    return pd.DataFrame(
        {"planned_video": video, "planned_carousel": carousel, "planned_sponsored": sponsored}
    )


def _majority(share: np.ndarray) -> np.ndarray:
    """1 where a share is above one half, 0 below or at it, missing where it is."""
    return np.where(np.isnan(share), np.nan, (share > 0.5).astype("float64"))


def history_cutoffs(examples: pd.DataFrame) -> pd.DataFrame:
    """``examples`` with each cutoff moved to the last moment a post counts as history.

    Counts keep growing for days after a post goes up, so a post younger than
    ``MIN_POST_AGE`` when its counts were read (the examples' ``observed_at``, where given) is
    left out of the history. :func:`examples_at` (scoring) takes the counts as read now, so a
    shortlist scraped today loses its last days' posts; training passes the scrape time, so
    there only the scrape's own newest posts are affected. Without ``observed_at`` nothing is
    left out.
    """
    if not len(examples) or "observed_at" not in examples:
        return examples
    cutoff = pd.to_datetime(examples["cutoff"], utc=True)
    observed = pd.to_datetime(examples["observed_at"], utc=True).fillna(cutoff)
    latest_mature = observed - MIN_POST_AGE
    return examples.assign(cutoff=cutoff.where(cutoff <= latest_mature, latest_mature))


def _take(values: pd.Series, rows: np.ndarray, missing: object) -> np.ndarray:
    """``values`` at positions ``rows`` (object array),
    ``missing`` where a row is -1 or the cell is empty."""
    out = np.full(len(rows), missing, dtype=object)
    found = rows >= 0
    out[found] = values.to_numpy(dtype=object)[rows[found]]
    out[pd.isna(out)] = missing
    return out


def profile_features(
    profiles: pd.DataFrame, profile_row: np.ndarray, followers: np.ndarray
) -> pd.DataFrame:
    """Follower-count family from the profile alone (``profile_row``:
    each example's row in ``profiles``, -1 for none)."""

    def column(name: str, default: object = np.nan) -> np.ndarray:
        if name in profiles:
            return _take(profiles[name], profile_row, default)
        return np.full(len(profile_row), default, dtype=object)

    following = pd.to_numeric(column("following"), errors="coerce").astype("float64")
    posts_count = pd.to_numeric(column("posts_count"), errors="coerce").astype("float64")
    verified = column("verified", False).astype(bool).astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "log_followers": np.log(followers),
                "following_ratio": following / followers,
                "log_posts_count": np.log1p(posts_count),
                "verified": verified,
                "tier": tier_of(followers),
                "category": column("category", "other").astype(object),
                "platform": column("platform", "instagram").astype(object),
            }
        )


def history_posts(
    posts: pd.DataFrame, examples: pd.DataFrame, followers: np.ndarray
) -> pd.DataFrame:
    """Posts strictly before each example's cutoff, tagged with the example number, sorted by time.

    Each row keeps its position in ``posts`` (``source_row``); of the text columns only what the
    features need comes along (``is_carousel``, ``is_video``, ``caption_length``), and the
    hashtag features take the tags from ``posts`` by ``source_row``.
    """
    # Only what the history features read: taking every column (the influencer key, post ids,
    # image descriptions) in time order would cost more than the features themselves.
    cols = [c for c in posts.columns if c in HISTORY_INPUT_COLUMNS]
    # .array, not .to_numpy(): the cutoffs stay datetimes instead of one Timestamp object each,
    # and arrow text stays arrow text.
    keys = pd.DataFrame(
        {
            "influencer": examples["influencer"].array,
            "example": np.arange(len(examples)),
            "cutoff": examples["cutoff"].array,
        }
    )
    one_cutoff_each = bool(keys["influencer"].is_unique)
    if one_cutoff_each and pd.api.types.is_datetime64_any_dtype(posts["posted_at"]):
        # Common case (one cutoff per influencer): a hash lookup is much cheaper than a merge, and
        # the rows are taken once, already in their final order (the slow path copies them 3 times).
        position = positions_in(keys["influencer"], posts["influencer"])
        matched = np.flatnonzero(position >= 0)
        # After validation every post usually has its profile: then nothing needs taking.
        everyone = len(matched) == len(posts)
        posted = posts["posted_at"] if everyone else posts["posted_at"].take(matched)
        cutoff = epoch_nanoseconds(keys["cutoff"])[position if everyone else position[matched]]
        before = strictly_before(posted, cutoff)
        everything_before = bool(before.all())
        selected = matched if everything_before else matched[before]

        def post_id_at(at: np.ndarray) -> pd.Series:
            return posts["post_id"].take(selected[at])

        example = position[selected]
        order = time_order(
            example,
            posted if everything_before else posted[before],
            post_id_at if "post_id" in posts else None,
        )
        rows = selected[order]
        # Sorted by example first, so each example's posts are one run: its number and followers
        # are repeated, not gathered (position[rows]), which would read memory at random.
        counts = np.bincount(example, minlength=len(examples))
        hist = take_rows(
            posts, cols, rows, example=np.repeat(np.arange(len(examples)), counts), source_row=rows
        )
        return _with_ratios(hist, posts, followers, np.repeat(followers, counts))
    if one_cutoff_each:
        # A hash lookup is much cheaper than a merge.
        position = positions_in(keys["influencer"], posts["influencer"])
        keep = position >= 0
        hist = posts.loc[keep, [*cols, *(["post_id"] if "post_id" in posts else [])]].copy()
        hist["example"] = position[keep]
        hist["source_row"] = np.flatnonzero(keep)
    else:
        with_rows = posts[
            [*cols, "influencer", *(["post_id"] if "post_id" in posts else [])]
        ].assign(source_row=np.arange(len(posts)))
        hist = with_rows.merge(keys[["influencer", "example"]], on="influencer", how="inner")
    # Integer comparison: "strictly before the cutoff" must hold to the nanosecond.
    cutoff = epoch_nanoseconds(keys["cutoff"])[hist["example"].to_numpy()]
    hist = _with_ratios(hist[epoch_nanoseconds(hist["posted_at"]) < cutoff], posts, followers)
    # post_id breaks ties between posts at the same instant: otherwise the input's row order would
    # decide log_er_last, the trend halves and the hashtag doc.
    by = ["example", "posted_at", "post_id"] if "post_id" in hist else ["example", "posted_at"]
    if not pd.api.types.is_datetime64_any_dtype(hist["posted_at"]):
        return hist.sort_values(by, kind="stable").reset_index(drop=True)

    def hist_post_id_at(at: np.ndarray) -> pd.Series:
        return hist["post_id"].iloc[at]

    order = time_order(
        hist["example"].to_numpy(),
        hist["posted_at"],
        hist_post_id_at if "post_id" in hist else None,
    )
    return hist.take(order).reset_index(drop=True)


def _with_ratios(
    hist: pd.DataFrame,
    posts: pd.DataFrame,
    followers: np.ndarray,
    row_followers: np.ndarray | None = None,
) -> pd.DataFrame:
    """``hist`` with its example's followers, interactions and log ER, and from the text columns of
    ``posts`` only what the features need: media flags and caption length (taking the text itself
    in time order would cost more). ``row_followers``, if given, is ``followers`` per row of
    ``hist`` already."""
    if row_followers is None:
        row_followers = followers[hist["example"].to_numpy()]
    # Gathered in a dict and added in one step: pandas has a fixed cost per inserted column,
    # which adds up for one candidate scored over REST.
    added: dict[str, np.ndarray] = {"followers": row_followers}
    added["interactions"] = interactions(hist).to_numpy()
    added["log_er"] = log_er(added["interactions"], added["followers"])
    rows = hist["source_row"].to_numpy()
    if "media_type" in posts:
        media = text_array(posts["media_type"])
        carousel = pc.equal(media, "carousel").fill_null(False).to_numpy(zero_copy_only=False)
        video = pc.is_in(media, value_set=pa.array(VIDEO_MEDIA, type=media.type))
        # One code per post (1 carousel, 2 video), so the rows are gathered once, not twice.
        kind = carousel.view(np.int8) + 2 * video.to_numpy(zero_copy_only=False).view(np.int8)
        kind = kind[rows]
        added["is_carousel"] = kind == 1
        added["is_video"] = kind == 2
    else:
        added["is_carousel"] = added["is_video"] = np.zeros(len(hist), dtype=bool)
    if "caption" in posts:
        lengths = pc.utf8_length(text_array(posts["caption"])).to_numpy(zero_copy_only=False)
        added["caption_length"] = lengths[rows]
    # One frame over the same arrays (copy=False): pd.concat would regroup (copy) the blocks.
    columns = {name: hist[name].array for name in hist.columns}
    return pd.DataFrame({**columns, **added}, index=hist.index, copy=False)


def history_features(hist: pd.DataFrame, examples: pd.DataFrame, n_examples: int) -> pd.DataFrame:
    """Posting cadence and interaction-ratio families from the history posts.

    ``hist`` is :func:`history_posts` output: each example's posts in one run, in time order.
    """
    seg = Segments.of_sorted(hist["example"].to_numpy())
    n_posts = seg.size.astype("float64")

    def per_example(per_run: np.ndarray) -> np.ndarray:
        return seg.spread(per_run, n_examples)

    out: dict[str, np.ndarray] = {"n_history_posts": seg.spread(n_posts, n_examples, fill=0.0)}
    t = epoch_seconds(hist["posted_at"])
    first, last = seg.min(t), seg.max(t)
    history_days = (last - first) / SECONDS_PER_DAY
    out["history_days"] = per_example(history_days)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cadence_days"] = per_example(
            np.where(n_posts >= 2, history_days / (n_posts - 1), np.nan)
        )
    out["days_since_last_post"] = (
        epoch_seconds(examples["cutoff"]) - per_example(last)
    ) / SECONDS_PER_DAY

    ler = hist["log_er"].to_numpy(dtype="float64")
    median = seg.median(ler)
    out["log_er_median"] = per_example(median)
    out["log_er_mean"] = per_example(seg.mean(ler))
    out["log_er_std"] = per_example(seg.std(ler))
    out["log_er_last"] = per_example(seg.last(ler))
    out["log_er_max"] = per_example(seg.max(ler))
    # Robust levels: one viral or dead post moves a mean, not these.
    rank, run_size = seg.rank(), seg.size[seg.row_segment]
    from_end = run_size - 1 - rank
    out["log_er_recent_median"] = _median_where(hist, ler, from_end < RECENT_POSTS, n_examples)
    decay = np.power(0.5, from_end / EWM_HALFLIFE_POSTS)
    out["log_er_ewm"] = per_example(seg.sum(decay * ler) / seg.sum(decay))
    out["log_er_mad"] = per_example(seg.median(np.abs(ler - median[seg.row_segment])))
    # Trend: mean log ER of the later half of the history
    # minus the earlier half (posts are in time order).
    later = rank >= run_size / 2.0
    out["er_trend"] = per_example(seg.masked_mean(ler, later) - seg.masked_mean(ler, ~later))

    likes = seg.nansum(hist["likes"].to_numpy(dtype="float64"))
    with np.errstate(divide="ignore", invalid="ignore"):
        for col in ("comments", "shares", "saves"):
            total = (
                seg.nansum(hist[col].to_numpy(dtype="float64"))
                if col in hist
                else np.full(len(seg), np.nan)
            )
            out[f"{col}_per_like"] = per_example(total / np.maximum(likes, 1.0))
    out["zero_engagement_share"] = per_example(seg.mean(hist["interactions"].to_numpy() == 0))
    sponsored = hist["is_sponsored"].to_numpy(dtype=bool)
    out["sponsored_share"] = per_example(seg.mean(sponsored))
    out["sponsored_er_gap"] = per_example(
        seg.masked_mean(ler, sponsored) - seg.masked_mean(ler, ~sponsored)
    )
    out["carousel_share"] = per_example(seg.mean(hist["is_carousel"].to_numpy(dtype=bool)))
    out["video_share"] = per_example(seg.mean(hist["is_video"].to_numpy(dtype=bool)))
    if "caption_length" in hist:
        out["caption_length_mean"] = per_example(
            seg.mean(hist["caption_length"].to_numpy(dtype="float64"))
        )
    else:
        out["caption_length_mean"] = np.full(n_examples, np.nan)
    # Video platforms: reach per follower and interactions per view, where views are known.
    if "views" in hist:
        views = hist["views"].to_numpy(dtype="float64", na_value=np.nan)
        known = np.isfinite(views)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_follower = np.log((views + 1.0) / hist["followers"].to_numpy(dtype="float64"))
            per_view = np.log((hist["interactions"].to_numpy() + 1.0) / (views + 1.0))
        out["log_views_per_follower"] = _median_where(hist, per_follower, known, n_examples)
        out["log_interactions_per_view"] = _median_where(hist, per_view, known, n_examples)
    else:
        out["log_views_per_follower"] = np.full(n_examples, np.nan)
        out["log_interactions_per_view"] = np.full(n_examples, np.nan)
    return pd.DataFrame(out)


def _median_where(
    hist: pd.DataFrame, values: np.ndarray, mask: np.ndarray, n_examples: int
) -> np.ndarray:
    """Per-example median of ``values`` over the history rows where ``mask`` holds (NaN if none)."""
    rows = np.flatnonzero(mask)
    seg = Segments.of_sorted(hist["example"].to_numpy()[rows])
    return seg.spread(seg.median(np.asarray(values, dtype="float64")[rows]), n_examples)


def hashtag_features(
    example: np.ndarray,
    source_row: np.ndarray,
    n_examples: int,
    hashtags: pd.Series | None,
    *,
    include_docs: bool = True,
) -> pd.DataFrame:
    """Niche-focus family: how many hashtags, how concentrated, and the bag of tags used.

    ``example`` and ``source_row`` are the history posts' example numbers and rows in the posts
    table (:func:`history_posts` columns); ``hashtags`` is the posts table's column (normalised
    by the contract); None means no post has hashtags.

    ``hashtag_doc`` (space-joined tags, repeats kept) feeds the learned niche and topic
    transformers; it is text, not a model input by itself, and stays arrow text throughout
    (one Python string per influencer, then a copy into the frame, would multiply its memory).
    """
    n_posts = Segments.of_sorted(example).spread_sizes(n_examples)  # NaN: no posts
    if hashtags is None:
        stats, docs = TagStats.concat([]), _empty_docs(n_examples)
    else:
        stats, docs = _tag_stats(example, source_row, n_examples, hashtags, include_docs)
    with_tags = stats.example
    n_tags = np.zeros(n_examples)
    n_tags[with_tags] = stats.total
    distinct = np.zeros(n_examples)
    distinct[with_tags] = stats.distinct
    top_share = np.full(n_examples, np.nan)
    top_share[with_tags] = stats.top / stats.total
    # Normalised entropy in [0, 1]: 0 = one tag over and over, 1 = every tag equally often.
    # Clipped: for an even spread, sum(-p log p) / log k can round to 1 + 2e-16.
    entropy = np.full(n_examples, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy[with_tags] = np.minimum(
            np.where(stats.distinct > 1, stats.entropy / np.log(stats.distinct), 0.0), 1.0
        )
        out: dict[str, np.ndarray | pd.Series] = {
            "hashtags_per_post": np.where(n_posts > 0, n_tags / n_posts, np.nan),
            "distinct_hashtags": np.where(n_posts > 0, distinct, np.nan),
            "top_hashtag_share": top_share,
            "hashtag_entropy": entropy,
        }
    if include_docs:
        out["hashtag_doc"] = docs.to_pandas()
    return pd.DataFrame(out)


@dataclass
class TagStats:
    """Per example with at least one tag (ascending ``example``): tags (``total``), ``distinct``
    tags, the ``top`` tag's count and the ``entropy`` of the tag shares."""

    example: np.ndarray
    total: np.ndarray
    distinct: np.ndarray
    top: np.ndarray
    entropy: np.ndarray

    @classmethod
    def concat(cls, parts: list[TagStats]) -> TagStats:
        if not parts:
            empty = np.zeros(0, dtype="int64")
            return cls(empty, empty, empty, empty, np.zeros(0))
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def _empty_docs(n: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.nulls(n, pa.large_string()).fill_null("")])


def _tag_stats(
    example: np.ndarray,
    source_row: np.ndarray,
    n_examples: int,
    hashtags: pd.Series,
    include_docs: bool,
) -> tuple[TagStats, pa.ChunkedArray]:
    """:class:`TagStats` of the history posts, and every example's doc in example order (empty
    strings for all without ``include_docs``).

    Tags stay in arrow as integer codes, never one Python string each, and (when ``example`` is
    sorted, as :func:`history_posts` leaves it) examples are taken a chunk at a time, so memory
    stays bounded however many tags the posts carry.
    """
    text = arrow_tags(hashtags)
    parts, doc_chunks, next_doc = [], [], 0  # next_doc: the first example whose doc is not made
    for lo, hi, doc_end in whole_example_chunks(example, n_examples, HASHTAG_CHUNK_POSTS):
        part, docs = _tag_stats_chunk(
            take_text(text, source_row[lo:hi]),
            example[lo:hi],
            (next_doc, doc_end) if include_docs else None,
        )
        if part is not None:
            parts.append(part)
        if docs is not None:
            doc_chunks.append(docs)
        next_doc = doc_end
    if not include_docs:
        return TagStats.concat(parts), _empty_docs(n_examples)
    docs = pa.chunked_array(
        [*doc_chunks, *_empty_docs(n_examples - next_doc).chunks], type=pa.large_string()
    )
    return TagStats.concat(parts), docs


def _tag_stats_chunk(
    text: pa.Array | pa.ChunkedArray, example: np.ndarray, doc_range: tuple[int, int] | None
) -> tuple[TagStats | None, pa.Array | None]:
    """Tag statistics of one chunk of history posts (``text``: their hashtags), and with
    ``doc_range`` (first, end) the docs of examples first .. end - 1, in order (empty for those
    without tags here)."""
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    lists = pc.split_pattern(text, "|")
    flat = pc.list_flatten(lists)
    nonempty = pc.not_equal(flat, "")
    tags = pc.filter(flat, nonempty)
    tag_example = example[pc.filter(pc.list_parent_indices(lists), nonempty).to_numpy()]
    is_sorted = not (tag_example[1:] < tag_example[:-1]).any()
    docs = None
    if doc_range is not None:
        docs = join_per_example(tags, tag_example, doc_range, " ", is_sorted)
    if len(tags) == 0:
        return None, docs
    counts, pair_example = count_pairs(tag_example, tags, is_sorted)
    pair_runs = Segments.of_sorted(pair_example)
    total = pair_runs.sum(counts)
    share = counts / total[pair_runs.row_segment]
    stats = TagStats(
        example=pair_runs.example,
        total=total.astype("int64"),
        distinct=pair_runs.size,
        top=pair_runs.max(counts),
        entropy=pair_runs.sum(-(share * np.log(share))),
    )
    return stats, docs


def feature_table(
    profiles: pd.DataFrame, posts: pd.DataFrame, as_of: pd.Timestamp | pd.Series | None = None
) -> pd.DataFrame:
    """One row per profile as of ``as_of`` (see :func:`examples_at`), ``influencer`` first."""
    return compute_features(profiles, posts, examples_at(profiles, as_of))
