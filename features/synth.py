"""Synthetic profiles and posts whose distributions are fitted on a real (validated) data set.

**For speed and scale tests only, never for quality claims.** The generator reproduces marginal
distributions and a few simple dependencies (engagement rate by tier and niche, an influencer
random effect, hashtag reuse), not the joint structure a model learns from. A model trained or
evaluated on these tables says nothing about real influencers.

Two steps: :func:`fit_synth_params` summarises real tables into a :class:`SynthParams`, and
:func:`generate` draws any number of influencers from it, vectorised with numpy and pyarrow
(its time and memory at 10M posts: README, Benchmarks). The same parameters
and seed give identical tables. Identifiers are pseudonymous (``syn_000001``, ``synp_00000001``)
and hashtags are made-up tokens (``fashion17``), so nothing from the real data is copied out.

What is fitted, and how it is drawn:

* niche (category) shares; log followers by empirical quantiles per niche;
* following ratio and profile post count by empirical quantiles per tier;
* posts per influencer by its empirical distribution (zeros included: profiles without posts),
  optionally scaled to a chosen mean for longer histories;
* log ER per post = tier x niche mean (shrunk to the tier mean) + a within-cell slope on log
  followers + influencer random effect + per-post noise, with the between/within variance split
  per tier, and small shifts for sponsored and carousel posts;
* comments per like as a per-post lognormal ratio per tier;
* posting times: each influencer's last post from the empirical distribution, earlier posts by
  lognormal gaps (influencer cadence effect + per-gap noise);
* hashtags: per-niche Zipf-like vocabulary (size and exponent fitted), each influencer's mean
  tags per post by empirical quantiles, a personal vocabulary reused with the fitted reuse share.

Unfitted assumptions are named constants below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.aggregate import TIERS, tier_of
from features.engagement import interactions, log_er
from features.outputs import atomic_output

QUANTILE_LEVELS = np.linspace(0.0, 1.0, 201)
# Groups with fewer observations than this borrow the pooled distribution.
MIN_GROUP_SIZE = 30
# Pseudo-count pulling a tier x niche mean towards its tier mean (cells can be tiny).
SHRINK_POSTS = 50.0
# Personal hashtag vocabulary size = this x the influencer's mean tags per post, plus one.
# Not fitted: the real data has too few posts per influencer to identify it.
PERSONAL_VOCAB_FACTOR = 2.0
# Zipf exponent is fitted on tags used at least this often (the tail of singletons is noise).
ZIPF_MIN_COUNT = 3
ZIPF_EXPONENT_RANGE = (0.4, 2.0)
# Instagram launched on this day; synthetic histories are compressed to start after it.
EARLIEST_POST = pd.Timestamp("2010-10-06", tz="UTC")
MIN_GAP_SECONDS = 60.0
# Resolution of the hashtag sampler's guide table
# (bins per niche) and the posts per generation chunk.
GUIDE_BINS = 1 << 18
CHUNK_POSTS = 1 << 20


@dataclass(frozen=True)
class SynthParams:
    """Everything :func:`generate` needs, fitted by
    :func:`fit_synth_params` (arrays are per group)."""

    categories: tuple[str, ...]
    category_probs: np.ndarray  # (n_categories,)
    log_followers_q: np.ndarray  # (n_categories, n_levels) quantiles of ln(followers)
    log_following_ratio_q: (
        np.ndarray
    )  # (n_tiers, n_levels) quantiles of ln((following + 1) / followers)
    log1p_posts_count_q: np.ndarray  # (n_tiers, n_levels) quantiles of ln(1 + posts_count)
    posts_pmf: np.ndarray  # P(n posts = k), k = 0..len-1
    er_cell_mean: np.ndarray  # (n_tiers, n_categories) mean log ER, shrunk to the tier mean
    er_cell_log_followers: (
        np.ndarray
    )  # (n_tiers, n_categories) mean ln(followers) of the cell's posts
    er_slope: float  # within-cell slope of log ER on ln(followers)
    er_between_sd: np.ndarray  # (n_tiers,) influencer random effect
    er_within_sd: np.ndarray  # (n_tiers,) per-post noise
    sponsored_effect: float
    carousel_effect: float
    comment_ratio_mean: np.ndarray  # (n_tiers,) mean ln(comments / likes)
    comment_ratio_sd: np.ndarray  # (n_tiers,)
    sponsored_prob: np.ndarray  # (n_categories,)
    media_types: tuple[str, ...]
    media_probs: np.ndarray  # (n_categories, n_media_types)
    last_post_q: np.ndarray  # quantiles of each influencer's last post time (epoch seconds)
    log_gap_mean: float
    log_gap_between_sd: float
    log_gap_within_sd: float
    hashtag_rate_q: np.ndarray  # quantiles of an influencer's mean hashtags per post
    max_hashtags: int
    vocab_sizes: np.ndarray  # (n_categories,)
    zipf_exponents: np.ndarray  # (n_categories,)
    hashtag_reuse: float  # share of a post's tags drawn from the influencer's own vocabulary


# --------------------------------------------------------------------------- fitting


def _quantiles(values: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    if len(values) < MIN_GROUP_SIZE and fallback is not None:
        return fallback
    if len(values) == 0:
        return np.zeros(len(QUANTILE_LEVELS))
    return np.quantile(values, QUANTILE_LEVELS)


def _grouped_quantiles(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    pooled = _quantiles(values)
    return np.vstack([_quantiles(values[groups == g], pooled) for g in range(n_groups)])


def _between_within(resid: np.ndarray, unit: np.ndarray) -> tuple[float, float]:
    """Standard deviations of a unit random effect and of the noise around it (method of moments).

    The within variance is pooled over units with at least two observations; the between
    variance is the rest of the total, floored at 5 % of it.
    """
    total_var = float(np.var(resid, ddof=1)) if len(resid) > 1 else 0.25
    g = pd.Series(resid).groupby(unit, sort=False)
    n = g.transform("size").to_numpy()
    multi = n >= 2
    if not multi.any():
        return float(np.sqrt(total_var / 2)), float(np.sqrt(total_var / 2))
    dev = resid - g.transform("mean").to_numpy()
    dof = multi.sum() - pd.unique(unit[multi]).size
    within_var = float((dev[multi] ** 2).sum() / dof)
    between_var = max(total_var - within_var, 0.05 * total_var)
    return float(np.sqrt(between_var)), float(np.sqrt(within_var))


def _zipf_exponent(counts: np.ndarray) -> float:
    """Slope of ln(frequency) on ln(rank) over the tags used at least ZIPF_MIN_COUNT times."""
    freq = np.sort(counts)[::-1].astype("float64")
    freq = freq[freq >= ZIPF_MIN_COUNT]
    if len(freq) < 10:
        return 1.0
    rank = np.arange(1, len(freq) + 1, dtype="float64")
    slope = np.polyfit(np.log(rank), np.log(freq), 1)[0]
    return float(np.clip(-slope, *ZIPF_EXPONENT_RANGE))


def _numeric_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64")


def fit_synth_params(profiles: pd.DataFrame, posts: pd.DataFrame) -> SynthParams:
    """Fit the generator's distributions on validated
    tables (see :func:`features.contract.validate`).

    Parameters
    ----------
    profiles, posts
        Clean tables as returned by validation; neither is modified.

    Returns
    -------
    SynthParams
        Quantile tables and moments; small groups fall back to pooled values.
    """
    categories = tuple(sorted(profiles["category"].astype(str).unique()))
    cat_index = {c: i for i, c in enumerate(categories)}
    n_cat, n_tier = len(categories), len(TIERS)
    tier_index = {t: i for i, t in enumerate(TIERS)}

    followers = profiles["followers"].to_numpy(dtype="float64")
    prof_cat = profiles["category"].astype(str).map(cat_index).to_numpy()
    prof_tier = pd.Series(tier_of(followers)).map(tier_index).to_numpy()
    category_probs = np.bincount(prof_cat, minlength=n_cat) / len(prof_cat)
    log_followers_q = _grouped_quantiles(np.log(followers), prof_cat, n_cat)
    following = _numeric_column(profiles, "following")
    log_following_ratio_q = _grouped_quantiles(
        np.log((following + 1.0) / followers), prof_tier, n_tier
    )
    posts_count = _numeric_column(profiles, "posts_count")
    log1p_posts_count_q = _grouped_quantiles(np.log1p(posts_count), prof_tier, n_tier)

    # Posts per influencer, zero for profiles without posts.
    per_inf = posts.groupby("influencer", sort=False).size()
    n_posts = profiles["influencer"].map(per_inf).fillna(0).astype("int64").to_numpy()
    posts_pmf = np.bincount(n_posts) / len(n_posts)

    # Post-level frame joined to its profile.
    by_key = profiles.drop_duplicates("influencer").set_index("influencer")
    f = posts["influencer"].map(by_key["followers"]).to_numpy(dtype="float64")
    p_cat = posts["influencer"].map(by_key["category"]).astype(str).map(cat_index).to_numpy()
    p_tier = pd.Series(tier_of(f)).map(tier_index).to_numpy()
    ler = log_er(interactions(posts), f)
    logf = np.log(f)
    cell = p_tier * n_cat + p_cat
    n_cells = n_tier * n_cat
    cell_n = np.bincount(cell, minlength=n_cells).astype("float64")
    cell_sum = np.bincount(cell, weights=ler, minlength=n_cells)
    cell_logf = np.bincount(cell, weights=logf, minlength=n_cells)
    tier_n = np.bincount(p_tier, minlength=n_tier).astype("float64")
    overall = float(ler.mean()) if len(ler) else np.log(0.02)
    tier_mean = np.where(
        tier_n > 0,
        np.bincount(p_tier, weights=ler, minlength=n_tier) / np.maximum(tier_n, 1),
        overall,
    )
    tier_logf = np.bincount(p_tier, weights=logf, minlength=n_tier) / np.maximum(tier_n, 1)
    prior = np.repeat(tier_mean, n_cat)
    er_cell_mean = ((cell_sum + SHRINK_POSTS * prior) / (cell_n + SHRINK_POSTS)).reshape(
        n_tier, n_cat
    )
    logf_prior = np.repeat(tier_logf, n_cat)
    er_cell_logf = ((cell_logf + SHRINK_POSTS * logf_prior) / (cell_n + SHRINK_POSTS)).reshape(
        n_tier, n_cat
    )

    x = logf - er_cell_logf.ravel()[cell]
    y = ler - er_cell_mean.ravel()[cell]
    er_slope = float((x * (y - y.mean())).sum() / max((x * x).sum(), 1e-12)) if len(x) > 2 else 0.0
    resid = y - er_slope * x
    sponsored = posts["is_sponsored"].to_numpy(dtype=bool)
    carousel = (posts["media_type"].astype(str) == "carousel").to_numpy()

    def _shift(mask: np.ndarray) -> float:
        if mask.sum() < MIN_GROUP_SIZE or (~mask).sum() < MIN_GROUP_SIZE:
            return 0.0
        return float(resid[mask].mean() - resid[~mask].mean())

    sponsored_effect = _shift(sponsored)
    carousel_effect = _shift(carousel)
    resid = resid - sponsored_effect * sponsored - carousel_effect * carousel
    resid = resid - resid.mean() if len(resid) else resid
    unit = posts["influencer"].to_numpy()
    er_between_sd, er_within_sd = np.empty(n_tier), np.empty(n_tier)
    pooled_bw = _between_within(resid, unit)
    for t in range(n_tier):
        m = p_tier == t
        er_between_sd[t], er_within_sd[t] = (
            _between_within(resid[m], unit[m]) if m.sum() >= MIN_GROUP_SIZE else pooled_bw
        )

    # Comments per like, on posts with enough likes that the ratio is not dominated by rounding.
    likes = posts["likes"].to_numpy(dtype="float64")
    ratio = np.log((posts["comments"].to_numpy(dtype="float64") + 0.5) / np.maximum(likes, 1.0))
    enough = likes >= 20
    pooled_ratio = (
        (float(ratio[enough].mean()), float(ratio[enough].std()))
        if enough.sum() > 2
        else (np.log(0.02), 1.0)
    )
    comment_ratio_mean, comment_ratio_sd = np.empty(n_tier), np.empty(n_tier)
    for t in range(n_tier):
        m = enough & (p_tier == t)
        comment_ratio_mean[t], comment_ratio_sd[t] = (
            (ratio[m].mean(), ratio[m].std()) if m.sum() >= MIN_GROUP_SIZE else pooled_ratio
        )

    pooled_sponsored = float(sponsored.mean()) if len(sponsored) else 0.0
    post_cat_n = np.bincount(p_cat, minlength=n_cat)
    sponsored_prob = np.where(
        post_cat_n >= MIN_GROUP_SIZE,
        np.bincount(p_cat, weights=sponsored, minlength=n_cat) / np.maximum(post_cat_n, 1),
        pooled_sponsored,
    )
    media = posts["media_type"].astype(str).to_numpy()
    media_types = tuple(sorted(set(media))) or ("image",)
    m_index = pd.Series(media).map({m: i for i, m in enumerate(media_types)}).to_numpy()
    media_counts = np.zeros((n_cat, len(media_types)))
    np.add.at(media_counts, (p_cat, m_index), 1.0)
    pooled_media = media_counts.sum(axis=0) / max(media_counts.sum(), 1.0)
    small = media_counts.sum(axis=1) < MIN_GROUP_SIZE
    media_probs = np.where(
        small[:, None],
        pooled_media,
        media_counts / np.maximum(media_counts.sum(axis=1, keepdims=True), 1.0),
    )

    # Posting times: last post per influencer, and gaps between consecutive posts.
    post_time = (
        posts["posted_at"]
        .astype("datetime64[ns, UTC]")
        .dt.tz_convert(None)
        .to_numpy()
        .astype("int64")
        / 1e9
    )
    timing = pd.DataFrame({"u": unit, "t": post_time}).sort_values(["u", "t"], kind="stable")
    last_post_q = _quantiles(timing.groupby("u")["t"].max().to_numpy())
    gap = timing.groupby("u")["t"].diff()
    has_gap = gap.notna().to_numpy()
    log_gap = np.log(np.maximum(gap.to_numpy()[has_gap], MIN_GAP_SECONDS))
    if len(log_gap) >= MIN_GROUP_SIZE:
        log_gap_mean = float(log_gap.mean())
        log_gap_between_sd, log_gap_within_sd = _between_within(
            log_gap - log_gap_mean, timing["u"].to_numpy()[has_gap]
        )
    else:
        log_gap_mean, log_gap_between_sd, log_gap_within_sd = float(np.log(7 * 86_400.0)), 1.0, 1.0

    # Hashtags.
    tag_lists = posts["hashtags"].astype(str).str.split("|")
    n_tags = tag_lists.map(lambda tags: sum(1 for t in tags if t)).to_numpy()
    hashtag_rate_q = _quantiles(pd.Series(n_tags).groupby(unit).mean().to_numpy())
    max_hashtags = int(n_tags.max()) if len(n_tags) else 30
    tokens = pd.DataFrame(
        {"u": unit, "c": p_cat, "t": post_time, "tag": tag_lists.to_numpy()}
    ).explode("tag")
    tokens = tokens[tokens["tag"].notna() & (tokens["tag"] != "")]
    vocab_sizes = np.empty(n_cat, dtype="int64")
    zipf_exponents = np.empty(n_cat)
    for c in range(n_cat):
        counts = tokens.loc[tokens["c"] == c, "tag"].value_counts().to_numpy()
        vocab_sizes[c] = max(len(counts), 100)
        zipf_exponents[c] = _zipf_exponent(counts)
    # Reuse: a tag in a later post that the same influencer already used in an earlier post.
    first_t = tokens.groupby(["u", "tag"])["t"].transform("min")
    first_post_t = tokens.groupby("u")["t"].transform("min")
    later = tokens["t"] > first_post_t
    hashtag_reuse = float((tokens["t"] > first_t)[later].mean()) if later.any() else 0.3

    return SynthParams(
        categories=categories,
        category_probs=category_probs,
        log_followers_q=log_followers_q,
        log_following_ratio_q=log_following_ratio_q,
        log1p_posts_count_q=log1p_posts_count_q,
        posts_pmf=posts_pmf,
        er_cell_mean=er_cell_mean,
        er_cell_log_followers=er_cell_logf,
        er_slope=er_slope,
        er_between_sd=er_between_sd,
        er_within_sd=er_within_sd,
        sponsored_effect=sponsored_effect,
        carousel_effect=carousel_effect,
        comment_ratio_mean=comment_ratio_mean,
        comment_ratio_sd=comment_ratio_sd,
        sponsored_prob=sponsored_prob,
        media_types=media_types,
        media_probs=media_probs,
        last_post_q=last_post_q,
        log_gap_mean=log_gap_mean,
        log_gap_between_sd=log_gap_between_sd,
        log_gap_within_sd=log_gap_within_sd,
        hashtag_rate_q=hashtag_rate_q,
        max_hashtags=max_hashtags,
        vocab_sizes=vocab_sizes,
        zipf_exponents=zipf_exponents,
        hashtag_reuse=hashtag_reuse,
    )


# --------------------------------------------------------------------------- generating


def _draw_quantiles(
    rng: np.random.Generator, table: np.ndarray, group: np.ndarray | None, size: int
) -> np.ndarray:
    """Inverse-CDF draws, interpolating linearly between the stored quantiles (row ``group``)."""
    q = table if table.ndim == 2 else table[None, :]
    g = np.zeros(size, dtype="int64") if group is None else group
    pos = rng.random(size) * (q.shape[1] - 1)
    lo = np.minimum(pos.astype("int64"), q.shape[1] - 2)
    frac = pos - lo
    return q[g, lo] * (1.0 - frac) + q[g, lo + 1] * frac


def _draw_categorical(
    rng: np.random.Generator, probs: np.ndarray, group: np.ndarray | None, size: int
) -> np.ndarray:
    """Draws from a categorical distribution, one probability row per group."""
    p = probs if probs.ndim == 2 else probs[None, :]
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    g = np.zeros(size, dtype="int64") if group is None else group
    # Offsetting each row by its group number turns many small searches into one sorted search.
    flat = (cdf + np.arange(len(cdf))[:, None]).ravel()
    idx = np.searchsorted(flat, g + rng.random(size), side="right")
    return np.minimum(idx - g * p.shape[1], p.shape[1] - 1)


def _zipf_tables(params: SynthParams) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated per-niche Zipf CDFs (niche c's block spans (c, c + 1]) and a guide table.

    ``guide[k]`` is the first entry above ``k / GUIDE_BINS``: a draw starts there and steps
    forward, which is exact and much faster than a binary search over the whole vocabulary.
    """
    parts = []
    for c, (size, s) in enumerate(zip(params.vocab_sizes, params.zipf_exponents, strict=True)):
        w = np.arange(1, size + 1, dtype="float64") ** -s
        cdf = np.cumsum(w) / w.sum()
        cdf[-1] = 1.0  # exactly, so the next niche's block starts right after c + 1
        parts.append(cdf + c)
    flat = np.concatenate(parts)
    grid = np.arange(len(params.vocab_sizes) * GUIDE_BINS) / GUIDE_BINS
    return flat, np.searchsorted(flat, grid, side="right")


def _draw_tags(
    rng: np.random.Generator, flat: np.ndarray, guide: np.ndarray, category: np.ndarray
) -> np.ndarray:
    """Global tag ids drawn from each token's niche vocabulary (inverse CDF via the guide table)."""
    x = category + rng.random(len(category))
    # One bin lower than floor(x * bins), so rounding can never start the walk past the answer.
    idx = guide[np.maximum((x * GUIDE_BINS).astype("int64") - 1, 0)]
    active = np.flatnonzero(flat[idx] <= x)
    while active.size:
        idx[active] += 1
        active = active[flat[idx[active]] <= x[active]]
    return idx


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(
        pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width=width, padding="0"
    )
    return pc.binary_join_element_wise(prefix, text, "")


def _frame(columns: dict[str, object]) -> pd.DataFrame:
    """A DataFrame from arrow/numpy columns; strings stay arrow-backed (no Python objects)."""
    return pa.table(columns).to_pandas()


def generate(
    params: SynthParams,
    *,
    n_influencers: int,
    seed: int = 0,
    posts_per_influencer: float | None = None,
    shuffle: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw synthetic profiles and posts that follow the data contract.

    Parameters
    ----------
    params
        Fitted by :func:`fit_synth_params`.
    n_influencers
        Number of profiles; some have no posts, as in the real data.
    seed
        Same params and seed give identical tables.
    posts_per_influencer
        None draws post counts from the fitted distribution; a number scales that distribution
        (shape kept, zeros included) to this mean over all influencers, for long histories.
    shuffle
        Shuffle post rows, as in a real export; False keeps them by influencer and time.

    Returns
    -------
    profiles, posts
        ``profiles``: influencer, followers, following, posts_count, category, platform.
        ``posts``: influencer, post_id, posted_at, likes, comments, media_type, is_sponsored,
        hashtags ('|'-separated).
    """
    if n_influencers < 1:
        raise ValueError(f"n_influencers must be at least 1, got {n_influencers}")
    if posts_per_influencer is not None and posts_per_influencer <= 0:
        raise ValueError(f"posts_per_influencer must be positive, got {posts_per_influencer}")
    rng = np.random.default_rng(seed)
    n = int(n_influencers)
    tier_index = {t: i for i, t in enumerate(TIERS)}

    # ---- profiles
    cat = _draw_categorical(rng, params.category_probs, None, n)
    log_f = _draw_quantiles(rng, params.log_followers_q, cat, n)
    followers = np.maximum(np.rint(np.exp(log_f)), 1.0).astype("int64")
    tier = pd.Series(tier_of(followers)).map(tier_index).to_numpy()
    log_ratio = _draw_quantiles(rng, params.log_following_ratio_q, tier, n)
    following = np.maximum(np.rint(np.exp(log_ratio) * followers - 1.0), 0.0).astype("int64")
    pmf = params.posts_pmf / params.posts_pmf.sum()
    base_posts = _draw_categorical(rng, pmf, None, n)
    if posts_per_influencer is None:
        n_posts = base_posts
    else:
        mean_base = float((np.arange(len(pmf)) * pmf).sum()) or 1.0
        n_posts = rng.poisson(base_posts * (posts_per_influencer / mean_base))
    posts_count = np.maximum(
        np.rint(np.expm1(_draw_quantiles(rng, params.log1p_posts_count_q, tier, n))).astype(
            "int64"
        ),
        n_posts,
    )
    er_effect = rng.standard_normal(n) * params.er_between_sd[tier]
    gap_effect = rng.standard_normal(n) * params.log_gap_between_sd
    tag_rate = np.maximum(_draw_quantiles(rng, params.hashtag_rate_q, None, n), 0.0)
    last_post = _draw_quantiles(rng, params.last_post_q, None, n)

    width = max(6, len(str(n)))
    influencer_ids = _ids("syn_", np.arange(1, n + 1), width)
    profiles = _frame(
        {
            "influencer": influencer_ids,
            "followers": followers,
            "following": following,
            "posts_count": posts_count,
            "category": pa.array(
                np.asarray(params.categories, dtype=object)[cat], type=pa.string()
            ),
            "platform": pa.array(np.full(n, "instagram", dtype=object), type=pa.string()),
        }
    )

    # ---- posts, first in generation order (by influencer, oldest first)
    total = int(n_posts.sum())
    owner = np.repeat(np.arange(n), n_posts)
    starts = np.cumsum(n_posts) - n_posts
    # Gaps run backwards from the last post: the newest post has gap 0 to itself.
    log_gap = (
        params.log_gap_mean
        + gap_effect[owner]
        + rng.standard_normal(total) * params.log_gap_within_sd
    )
    gap = np.maximum(np.exp(log_gap), MIN_GAP_SECONDS)
    gap[starts[n_posts > 0] + n_posts[n_posts > 0] - 1] = 0.0
    # Seconds before the last post = sum of the gaps of all
    # later posts (reverse cumulative sum per influencer).
    csum = np.append(np.cumsum(gap[::-1])[::-1], 0.0)
    before_last = csum[:-1] - csum[starts + n_posts][owner]
    # Compress histories that would start before Instagram existed.
    span = np.zeros(n)
    has = n_posts > 0
    span[has] = before_last[starts[has]]
    room = np.maximum(last_post - EARLIEST_POST.timestamp(), 0.0)
    squeeze = np.where(span > room, room / np.maximum(span, 1.0), 1.0)
    posted = last_post[owner] - before_last * squeeze[owner]

    post_cat = cat[owner]
    post_tier = tier[owner]
    media = _draw_categorical(rng, params.media_probs, post_cat, total)
    is_carousel = (
        media == params.media_types.index("carousel")
        if "carousel" in params.media_types
        else np.zeros(total, dtype=bool)
    )
    sponsored = rng.random(total) < params.sponsored_prob[post_cat]
    cell_mean = params.er_cell_mean[post_tier, post_cat]
    cell_logf = params.er_cell_log_followers[post_tier, post_cat]
    post_ler = (
        cell_mean
        + params.er_slope * (log_f[owner] - cell_logf)
        + er_effect[owner]
        + rng.standard_normal(total) * params.er_within_sd[post_tier]
        + params.sponsored_effect * sponsored
        + params.carousel_effect * is_carousel
    )
    del cell_mean, cell_logf, is_carousel, log_gap, gap, csum, before_last
    n_inter = np.maximum(np.rint(np.exp(post_ler) * followers[owner] - 1.0), 0.0)
    ratio = np.exp(
        params.comment_ratio_mean[post_tier]
        + rng.standard_normal(total) * params.comment_ratio_sd[post_tier]
    )
    comments = rng.binomial(n_inter.astype("int64"), ratio / (1.0 + ratio))
    likes = n_inter.astype("int64") - comments
    n_tags = np.minimum(rng.poisson(tag_rate[owner]), params.max_hashtags)

    order = rng.permutation(total) if shuffle else np.arange(total)
    owner, posted, media, sponsored, likes, comments, n_tags = (
        a[order] for a in (owner, posted, media, sponsored, likes, comments, n_tags)
    )
    post_number = order + 1  # post ids follow generation order, so shuffling does not renumber

    hashtags = _hashtag_strings(rng, params, cat, tag_rate, owner, n_tags)
    posted_us = np.rint(posted).astype("int64") * 1_000_000
    posts = _frame(
        {
            "influencer": influencer_ids.take(pa.array(owner)),
            "post_id": _ids("synp_", post_number, max(8, len(str(total)))),
            "posted_at": pa.array(posted_us, type=pa.timestamp("us", tz="UTC")),
            "likes": likes,
            "comments": comments,
            "media_type": pa.DictionaryArray.from_arrays(
                media.astype("int32"), pa.array(params.media_types)
            ).cast(pa.string()),
            "is_sponsored": sponsored,
            "hashtags": hashtags,
        }
    )
    return profiles, posts


def _hashtag_strings(
    rng: np.random.Generator,
    params: SynthParams,
    cat: np.ndarray,
    tag_rate: np.ndarray,
    owner: np.ndarray,
    n_tags: np.ndarray,
) -> pa.ChunkedArray:
    """'|'-joined hashtags per post: personal vocabulary
    reused with the fitted share, else niche-wide.

    Posts are processed in chunks so the per-token arrays stay small (posts carry several tags
    each).
    """
    flat, guide = _zipf_tables(params)
    names = pa.array(
        [
            f"{c}{r}"
            for c, size in zip(params.categories, params.vocab_sizes, strict=True)
            for r in range(1, size + 1)
        ],
        type=pa.string(),
    )
    # Personal vocabularies, stored flat with offsets (CSR).
    vocab_n = 1 + np.ceil(PERSONAL_VOCAB_FACTOR * tag_rate).astype("int64")
    vocab_start = np.cumsum(vocab_n) - vocab_n
    personal = _draw_tags(rng, flat, guide, np.repeat(cat, vocab_n))

    chunks = []
    for lo in range(0, max(len(owner), 1), CHUNK_POSTS):
        counts = n_tags[lo : lo + CHUNK_POSTS]
        token_owner = np.repeat(owner[lo : lo + CHUNK_POSTS], counts)
        ids = np.empty(len(token_owner), dtype="int64")
        reuse = rng.random(len(token_owner)) < params.hashtag_reuse
        own = token_owner[reuse]
        ids[reuse] = personal[
            vocab_start[own] + (rng.random(len(own)) * vocab_n[own]).astype("int64")
        ]
        ids[~reuse] = _draw_tags(rng, flat, guide, cat[token_owner[~reuse]])
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype("int32")
        lists = pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(ids)))
        chunks.append(pc.binary_join(lists, "|"))
    return pa.chunked_array(chunks, type=pa.string())


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    """Arrow table of ``frame``; time zone-aware columns converted by hand.

    pyarrow's own conversion reads ``Series.values`` on them, which pandas 3.1 deprecates.
    """
    columns = {}
    for name, col in frame.items():
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            naive = pa.array(col.dt.tz_convert(None).to_numpy())
            columns[str(name)] = naive.cast(pa.timestamp(naive.type.unit, tz=str(col.dt.tz)))
        else:
            columns[str(name)] = pa.Array.from_pandas(col)
    return pa.table(columns)


def write_synthetic(
    profiles: pd.DataFrame, posts: pd.DataFrame, out_dir: str | Path, file_format: str = "parquet"
) -> list[Path]:
    """Write ``profiles`` and ``posts`` into ``out_dir``
    as Parquet or plain CSV; returns the paths."""
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', got '{file_format}'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (("profiles", profiles), ("posts", posts)):
        path = out / f"{name}.{file_format}"
        with atomic_output(path) as temp:
            if file_format == "parquet":
                pq.write_table(_arrow_table(frame), temp)
            else:
                frame.to_csv(temp, index=False)
        paths.append(path)
    return paths
