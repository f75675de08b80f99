"""Feature pipeline benchmark against a DuckDB reference, on synthetic posts (``make bench``).

For each size (posts; ~20 per influencer) it writes synthetic Parquet files (not timed; see
:mod:`features.synth`, fitted on the embedded data) and times three stages, each in a fresh
Python process so that peak memory (the child's own maximum RSS) is measured separately:

pipeline
    read both Parquet files + ``features.contract.validate``
    + ``features.aggregate.compute_features``
    (hashtag features and docs included), one cutoff for all just after the last post.
features
    the same work as ``pipeline`` without validation: read both Parquet files with
    ``features.contract.read_table`` + ``compute_features`` (all columns, hashtag docs included).
polars
    the same feature table in Polars (all cores, lazy, :func:`polars_features`): read both Parquet
    files with ``polars.read_parquet``, compute every column, fetch into pandas (arrow-backed).
    The check on the smallest size asks every column to agree with ``compute_features`` to 1e-9.
ours
    our numeric aggregates only: read the needed Parquet columns + ``history_posts`` +
    ``history_features`` (no validation, no hashtags). These compute more columns than the
    reference (trend, cadence, last/max, carousel and video shares, sponsored gap).
duckdb
    a reference DuckDB query (all cores, and one thread for context) computing per influencer:
    count, first/last time, median/mean/std of log((likes+comments+1)/followers), sums of likes
    and comments, zero-engagement share, sponsored share; result fetched into pandas.
duckdb_whole
    what the whole pipeline does beyond validation, in DuckDB (all cores): the numeric aggregates
    above plus the hashtag work (lowercase, split, per-tag counts, distinct, top share, entropy,
    and each influencer's tag document in time order). It shows what a compiled engine reaches
    on this machine for the pipeline's target, with no contract checks at all.

Targets from the issue: ours within 1.5x of DuckDB, pipeline >= 1M posts/s, peak < 4 GB at 10M.
Usage: ``python benchmarks/features.py [--sizes 1000000 10000000] [--out-dir build/bench]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would then
# shadow the ``features`` package. Put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from benchmarks.common import json_from_child  # noqa: E402

STAGES = ("pipeline", "features", "polars", "ours", "duckdb", "duckdb_1thread", "duckdb_whole")
SEED = 0


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    Linux's ``ru_maxrss`` carries over the parent's peak into a forked-and-exec'd child, so a
    child started by a big parent would report the parent's peak; ``VmHWM`` belongs to the
    child's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kilobytes elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# --------------------------------------------------------------------------- data


def ensure_data(size: int, out_dir: Path, posts_per_influencer: float, regenerate: bool) -> dict:
    """Synthetic Parquet files for ``size`` posts (reused
    when already written with the same settings)."""
    folder = out_dir / f"posts_{size}"
    meta_path = folder / "meta.json"
    wanted = {"size": size, "posts_per_influencer": posts_per_influencer, "seed": SEED}
    if meta_path.exists() and not regenerate:
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in wanted.items()):
            return meta

    import pandas as pd

    from engage.cli import embedded_posts, embedded_profiles
    from features.contract import load_and_validate
    from features.synth import fit_synth_params, generate, write_synthetic

    reference = load_and_validate(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    started = time.perf_counter()
    n_influencers = max(1, round(size / posts_per_influencer))
    profiles, posts = generate(
        params, n_influencers=n_influencers, seed=SEED, posts_per_influencer=posts_per_influencer
    )
    generated = time.perf_counter() - started
    write_synthetic(profiles, posts, folder)
    # One cutoff for all, just after the last post, so every post counts.
    cutoff = (posts["posted_at"].max() + pd.Timedelta(seconds=1)).isoformat()
    meta = {
        **wanted,
        "n_influencers": len(profiles),
        "n_posts": len(posts),
        "cutoff": cutoff,
        "generate_seconds": round(generated, 2),
        "write_seconds": round(time.perf_counter() - started - generated, 2),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


# ---------------------------------------------------------------------------
# stages (run in a child)


def stage_pipeline(folder: Path, cutoff: str) -> dict:
    import pandas as pd

    from features.aggregate import compute_features, examples_at
    from features.contract import read_table, validate

    t0 = time.perf_counter()
    profiles = read_table(folder / "profiles.parquet")
    posts = read_table(folder / "posts.parquet")
    t1 = time.perf_counter()
    data = validate(profiles, posts, profiles_file="profiles.parquet", posts_file="posts.parquet")
    del profiles, posts
    t2 = time.perf_counter()
    table = compute_features(
        data.profiles, data.posts, examples_at(data.profiles, pd.Timestamp(cutoff))
    )
    t3 = time.perf_counter()
    return {
        "rows_out": len(table),
        "parts": {"read": t1 - t0, "validate": t2 - t1, "features": t3 - t2},
    }


def stage_features(folder: Path, cutoff: str) -> dict:
    import pandas as pd

    from features.aggregate import compute_features, examples_at
    from features.contract import read_table

    t0 = time.perf_counter()
    profiles = read_table(folder / "profiles.parquet")
    posts = read_table(folder / "posts.parquet")
    t1 = time.perf_counter()
    table = compute_features(profiles, posts, examples_at(profiles, pd.Timestamp(cutoff)))
    t2 = time.perf_counter()
    return {"rows_out": len(table), "parts": {"read": t1 - t0, "features": t2 - t1}}


def polars_features(profiles, posts, cutoff, observed_at, *, include_docs: bool = True):
    """``compute_features`` for one cutoff for all, written in Polars (a ``polars.DataFrame``).

    ``profiles`` and ``posts`` are Polars frames (as read, or from validated pandas frames);
    ``cutoff`` and ``observed_at`` as :func:`features.aggregate.examples_at` sets them. The same
    definitions as :mod:`features.aggregate`, one expression each, so the check below can ask for
    every column to agree.
    """
    import polars as pl

    from features.aggregate import (
        EWM_HALFLIFE_POSTS,
        HISTORY_FEATURES,
        MIN_POST_AGE,
        RECENT_POSTS,
        SECONDS_PER_DAY,
        TIER_BOUNDS,
        TIERS,
        VIDEO_MEDIA,
    )

    f64 = pl.Float64
    per_post_aggregates = HISTORY_FEATURES[HISTORY_FEATURES.index("days_since_last_post") + 1 :]
    # history_cutoffs: posts younger than MIN_POST_AGE when the counts were read are no history.
    cut = min(cutoff, observed_at - MIN_POST_AGE).to_pydatetime()
    profiles = profiles.unique("influencer", keep="first", maintain_order=True)
    cols = set(posts.columns)

    def zero_if_missing(name: str) -> pl.Expr:
        return pl.col(name).cast(f64).fill_null(0.0).fill_nan(0.0) if name in cols else pl.lit(0.0)

    interactions = sum(zero_if_missing(c) for c in ("likes", "comments", "shares", "saves"))
    media = pl.col("media_type").fill_null("") if "media_type" in cols else pl.lit("")
    hist = (
        posts.lazy()
        .filter(pl.col("posted_at") < pl.lit(cut))
        .join(
            profiles.lazy()
            .select("influencer", pl.col("followers").cast(f64))
            .with_row_index("example"),
            on="influencer",
        )
        .sort(
            ["example", "posted_at", *(["post_id"] if "post_id" in cols else [])],
            maintain_order=True,
        )
        .with_columns(interactions=interactions)
        .with_columns(
            ler=((pl.col("interactions") + 1.0) / pl.col("followers")).log(),
            t=pl.col("posted_at").dt.epoch("ns").cast(f64) / 1e9,
            rank=pl.int_range(pl.len()).over("example"),
            n=pl.len().over("example"),
            views=pl.col("views").cast(f64) if "views" in cols else pl.lit(None, f64),
        )
        .with_columns(
            from_end=pl.col("n") - 1 - pl.col("rank"),
            later=pl.col("rank") >= pl.col("n") / 2.0,
            sponsored=pl.col("is_sponsored").fill_null(False),
        )
    )
    ler = pl.col("ler")

    def mean_where(mask: pl.Expr) -> pl.Expr:
        return ler.filter(mask).mean()

    def per_like(name: str) -> pl.Expr:
        if name not in cols:
            return pl.lit(None, f64)
        total = pl.when(pl.col(name).is_not_null().any()).then(pl.col(name).cast(f64).sum())
        return total / pl.max_horizontal(pl.col("likes").cast(f64).sum(), 1.0)

    views_known = pl.col("views").is_not_null() & pl.col("views").is_finite()
    days = (pl.col("t").max() - pl.col("t").min()) / SECONDS_PER_DAY
    decay = pl.lit(0.5) ** (pl.col("from_end") / EWM_HALFLIFE_POSTS)
    history = hist.group_by("example").agg(
        n_history_posts=pl.len().cast(f64),
        history_days=days,
        cadence_days=pl.when(pl.len() >= 2).then(days / (pl.len() - 1)),
        last_t=pl.col("t").max(),
        log_er_median=ler.median(),
        log_er_mean=ler.mean(),
        log_er_std=ler.std(ddof=1),
        log_er_last=ler.last(),
        log_er_max=ler.max(),
        log_er_recent_median=ler.filter(pl.col("from_end") < RECENT_POSTS).median(),
        log_er_ewm=(decay * ler).sum() / decay.sum(),
        log_er_mad=(ler - ler.median()).abs().median(),
        er_trend=mean_where(pl.col("later")) - mean_where(~pl.col("later")),
        comments_per_like=per_like("comments"),
        shares_per_like=per_like("shares"),
        saves_per_like=per_like("saves"),
        zero_engagement_share=(pl.col("interactions") == 0).mean(),
        sponsored_share=pl.col("sponsored").mean(),
        sponsored_er_gap=mean_where(pl.col("sponsored")) - mean_where(~pl.col("sponsored")),
        carousel_share=(media == "carousel").mean(),
        video_share=media.is_in(VIDEO_MEDIA).mean(),
        caption_length_mean=(
            # As the pandas code reads text: a missing caption is the text 'nan'.
            pl.col("caption").fill_null("nan").str.len_chars().mean()
            if "caption" in cols
            else pl.lit(None, f64)
        ),
        log_views_per_follower=((pl.col("views") + 1.0) / pl.col("followers"))
        .log()
        .filter(views_known)
        .median(),
        log_interactions_per_view=((pl.col("interactions") + 1.0) / (pl.col("views") + 1.0))
        .log()
        .filter(views_known)
        .median(),
    )
    tags = (
        hist.select("example", "rank", tag=pl.col("hashtags").str.split("|"))
        .explode("tag")
        .filter(pl.col("tag").is_not_null() & (pl.col("tag") != ""))
    )
    counts = tags.group_by("example", "tag").agg(c=pl.len().cast(f64))
    tag_stats = (
        counts.with_columns(share=pl.col("c") / pl.col("c").sum().over("example"))
        .group_by("example")
        .agg(
            n_tags=pl.col("c").sum(),
            distinct=pl.len().cast(f64),
            top=pl.col("c").max(),
            entropy=-(pl.col("share") * pl.col("share").log()).sum(),
        )
    )
    if include_docs:
        # Exploding keeps the posts' (time) order; the group keeps it too.
        docs = tags.group_by("example", maintain_order=True).agg(
            hashtag_doc=pl.col("tag").str.join(" ")
        )
        tag_stats = tag_stats.join(docs, on="example", how="left")
    followers = pl.col("followers").cast(f64)
    n_posts = pl.col("n_history_posts")
    cutoff_seconds = pl.lit(cutoff.to_pydatetime()).dt.epoch("ns").cast(f64) / 1e9
    tier = pl.lit(TIERS[0])
    for bound, name in zip(TIER_BOUNDS, TIERS[1:], strict=True):
        tier = pl.when(followers >= bound).then(pl.lit(name)).otherwise(tier)

    def majority(share: str) -> pl.Expr:
        return (pl.col(share) > 0.5).cast(f64)

    def profile_column(name: str, default=None) -> pl.Expr:
        if name not in profiles.columns:
            return pl.lit(default)
        return pl.col(name) if default is None else pl.col(name).fill_null(default)

    # Normalised to [0, 1] (clipped: an even spread can round to 1 + 2e-16); none without tags.
    entropy = (
        pl.when(pl.col("distinct") > 1)
        .then(pl.col("entropy") / pl.col("distinct").log())
        .when(pl.col("distinct").is_not_null())
        .then(0.0)
        .clip(upper_bound=1.0)
    )
    out = (
        profiles.lazy()
        .with_row_index("example")
        .join(history, on="example", how="left")
        .join(tag_stats, on="example", how="left")
        .sort("example")
        .select(
            "influencer",
            cutoff=pl.lit(cutoff.to_pydatetime()),
            log_followers=followers.log(),
            following_ratio=profile_column("following", None).cast(f64) / followers,
            log_posts_count=profile_column("posts_count", None).cast(f64).log1p(),
            verified=profile_column("verified", False).cast(f64),
            tier=tier,
            category=profile_column("category", "other"),
            platform=profile_column("platform", "instagram"),
            n_history_posts=n_posts.fill_null(0.0),
            **{name: pl.col(name) for name in ("history_days", "cadence_days")},
            days_since_last_post=(cutoff_seconds - pl.col("last_t")) / SECONDS_PER_DAY,
            # The rest of the history features are the aggregates above, under the same names.
            **{name: pl.col(name) for name in per_post_aggregates},
            hashtags_per_post=pl.when(n_posts > 0).then(pl.col("n_tags").fill_null(0.0) / n_posts),
            distinct_hashtags=pl.when(n_posts > 0).then(pl.col("distinct").fill_null(0.0)),
            top_hashtag_share=pl.col("top") / pl.col("n_tags"),
            hashtag_entropy=entropy,
            **({"hashtag_doc": pl.col("hashtag_doc").fill_null("")} if include_docs else {}),
            planned_video=majority("video_share"),
            planned_carousel=majority("carousel_share"),
            planned_sponsored=pl.lit(0.0),
        )
    )
    return out.collect()


def stage_polars(folder: Path, cutoff: str) -> dict:
    import pandas as pd
    import polars as pl

    t0 = time.perf_counter()
    profiles = pl.read_parquet(folder / "profiles.parquet")
    posts = pl.read_parquet(folder / "posts.parquet")
    t1 = time.perf_counter()
    table = polars_features(profiles, posts, pd.Timestamp(cutoff), pd.Timestamp.now(tz="UTC"))
    t2 = time.perf_counter()
    frame = table.to_pandas(use_pyarrow_extension_array=True)
    return {
        "rows_out": len(frame),
        "parts": {"read": t1 - t0, "features": t2 - t1, "to_pandas": time.perf_counter() - t2},
    }


def stage_ours(folder: Path, cutoff: str) -> dict:
    import pandas as pd

    from features.aggregate import examples_at, history_features, history_posts

    t0 = time.perf_counter()
    profiles = pd.read_parquet(folder / "profiles.parquet", columns=["influencer", "followers"])
    posts = pd.read_parquet(
        folder / "posts.parquet",
        columns=["influencer", "posted_at", "likes", "comments", "media_type", "is_sponsored"],
    )
    t1 = time.perf_counter()
    examples = examples_at(profiles, pd.Timestamp(cutoff))
    followers = profiles["followers"].to_numpy(
        dtype="float64"
    )  # one example per profile, same order
    hist = history_posts(posts, examples, followers)
    t2 = time.perf_counter()
    table = history_features(hist, examples, len(examples))
    t3 = time.perf_counter()
    return {
        "rows_out": len(table),
        "parts": {"read": t1 - t0, "history_posts": t2 - t1, "history_features": t3 - t2},
    }


DUCKDB_QUERY = """
WITH p AS (
    SELECT influencer, CAST(followers AS DOUBLE) AS followers FROM read_parquet($profiles)
),
h AS (
    SELECT q.influencer, q.posted_at, q.likes, q.comments, q.is_sponsored,
           ln((q.likes + q.comments + 1) / p.followers) AS log_er
    FROM read_parquet($posts) AS q JOIN p USING (influencer)
    WHERE q.posted_at < CAST($cutoff AS TIMESTAMPTZ)
),
agg AS (
    SELECT influencer,
           count(*) AS n_posts,
           min(posted_at) AS first_post,
           max(posted_at) AS last_post,
           median(log_er) AS log_er_median,
           avg(log_er) AS log_er_mean,
           stddev_samp(log_er) AS log_er_std,
           sum(likes) AS likes,
           sum(comments) AS comments,
           avg(CAST(likes + comments = 0 AS DOUBLE)) AS zero_engagement_share,
           avg(CAST(is_sponsored AS DOUBLE)) AS sponsored_share
    FROM h GROUP BY influencer
)
SELECT p.influencer, coalesce(agg.n_posts, 0) AS n_posts, agg.* EXCLUDE (influencer, n_posts)
FROM p LEFT JOIN agg USING (influencer)
"""


DUCKDB_WHOLE_QUERY = """
WITH p AS (
    SELECT influencer, CAST(followers AS DOUBLE) AS followers FROM read_parquet($profiles)
),
h AS (
    SELECT q.influencer, q.posted_at, q.post_id, q.likes, q.comments, q.is_sponsored,
           lower(q.hashtags) AS hashtags,
           ln((q.likes + q.comments + 1) / p.followers) AS log_er
    FROM read_parquet($posts) AS q JOIN p USING (influencer)
    WHERE q.posted_at < CAST($cutoff AS TIMESTAMPTZ)
),
agg AS (
    SELECT influencer,
           count(*) AS n_posts, min(posted_at) AS first_post, max(posted_at) AS last_post,
           median(log_er) AS log_er_median, avg(log_er) AS log_er_mean,
           stddev_samp(log_er) AS log_er_std,
           max(log_er) AS log_er_max, arg_max(log_er, posted_at) AS log_er_last,
           sum(likes) AS likes, sum(comments) AS comments,
           avg(CAST(likes + comments = 0 AS DOUBLE)) AS zero_engagement_share,
           avg(CAST(is_sponsored AS DOUBLE)) AS sponsored_share,
           string_agg(replace(hashtags, '|', ' '), ' ' ORDER BY posted_at, post_id) AS hashtag_doc
    FROM h GROUP BY influencer
),
tag_counts AS (
    SELECT influencer, tag, count(*) AS c
    FROM (SELECT influencer, unnest(string_split(hashtags, '|')) AS tag FROM h)
    WHERE tag <> '' GROUP BY influencer, tag
),
shares AS (
    SELECT influencer, c, c / sum(c) OVER (PARTITION BY influencer) AS share FROM tag_counts
),
tag_stats AS (
    SELECT influencer, sum(c) AS n_tags, count(*) AS distinct_hashtags, max(c) AS top,
           -sum(share * ln(share)) AS entropy
    FROM shares GROUP BY influencer
)
SELECT p.influencer, coalesce(agg.n_posts, 0) AS n_posts,
       agg.* EXCLUDE (influencer, n_posts), tag_stats.* EXCLUDE (influencer)
FROM p LEFT JOIN agg USING (influencer) LEFT JOIN tag_stats USING (influencer)
"""


def duckdb_aggregates(
    folder: Path, cutoff: str, threads: int | None = None, query: str = DUCKDB_QUERY
):
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    params = {
        "profiles": str(folder / "profiles.parquet"),
        "posts": str(folder / "posts.parquet"),
        "cutoff": cutoff,
    }
    return con.execute(query, params).df()


def stage_duckdb(
    folder: Path, cutoff: str, threads: int | None = None, query: str = DUCKDB_QUERY
) -> dict:
    t0 = time.perf_counter()
    table = duckdb_aggregates(folder, cutoff, threads, query)
    return {"rows_out": len(table), "parts": {"query": time.perf_counter() - t0}}


def run_stage(name: str, folder: Path, cutoff: str) -> dict:
    """Run one stage in this process and return its timings and peak memory."""
    import duckdb  # noqa: F401  (imported up front in every stage so baselines are comparable)
    import pandas  # noqa: F401
    import polars  # noqa: F401

    import features.aggregate  # noqa: F401

    baseline = peak_rss_bytes()
    started = time.perf_counter()
    if name == "pipeline":
        result = stage_pipeline(folder, cutoff)
    elif name == "features":
        result = stage_features(folder, cutoff)
    elif name == "polars":
        result = stage_polars(folder, cutoff)
    elif name == "ours":
        result = stage_ours(folder, cutoff)
    elif name == "duckdb":
        result = stage_duckdb(folder, cutoff)
    elif name == "duckdb_1thread":
        result = stage_duckdb(folder, cutoff, threads=1)
    elif name == "duckdb_whole":
        result = stage_duckdb(folder, cutoff, query=DUCKDB_WHOLE_QUERY)
    else:
        raise ValueError(f"unknown stage '{name}'")
    result["seconds"] = time.perf_counter() - started
    result["peak_rss"] = peak_rss_bytes()
    result["baseline_rss"] = baseline
    return result


def run_stage_in_child(name: str, folder: Path, cutoff: str) -> dict:
    """A fresh interpreter per stage: its peak RSS is that stage's alone."""
    args = ["--stage", name, "--data-dir", str(folder), "--cutoff", cutoff]
    return json_from_child(__file__, args, f"stage {name}")


# --------------------------------------------------------------------------- checking and reporting


def check_reference(folder: Path, cutoff: str) -> str:
    """Our aggregates and DuckDB's agree (so the comparison is like for like); returns a summary."""
    import numpy as np
    import pandas as pd

    from features.aggregate import examples_at, history_features, history_posts

    profiles = pd.read_parquet(folder / "profiles.parquet", columns=["influencer", "followers"])
    posts = pd.read_parquet(folder / "posts.parquet")
    examples = examples_at(profiles, pd.Timestamp(cutoff))
    ours = history_features(
        history_posts(posts, examples, profiles["followers"].to_numpy(dtype="float64")),
        examples,
        len(examples),
    )
    ref = (
        duckdb_aggregates(folder, cutoff)
        .set_index("influencer")
        .reindex(profiles["influencer"])
        .reset_index(drop=True)
    )
    pairs = {
        "n_history_posts": "n_posts",
        "log_er_median": "log_er_median",
        "log_er_mean": "log_er_mean",
        "log_er_std": "log_er_std",
        "zero_engagement_share": "zero_engagement_share",
        "sponsored_share": "sponsored_share",
    }
    for mine, theirs in pairs.items():
        np.testing.assert_allclose(
            ours[mine].to_numpy(dtype="float64"),
            ref[theirs].to_numpy(dtype="float64"),
            rtol=1e-9,
            atol=1e-9,
            err_msg=mine,
        )
    return f"checked {len(pairs)} aggregates on {len(ours)} influencers: identical to 1e-9"


# Posts in the synthetic set on which the Polars table is checked against ours.
POLARS_CHECK_POSTS = 20_000


def check_polars(folder: Path, cutoff: str) -> str:
    """Every column of :func:`polars_features` equals ``compute_features``'s (numbers to 1e-9,
    text exactly) on the data in ``folder``, as the stages read it; returns a summary."""
    import numpy as np
    import pandas as pd
    import polars as pl

    from features.aggregate import compute_features, examples_at
    from features.contract import read_table

    now = pd.Timestamp.now(tz="UTC")
    profiles = read_table(folder / "profiles.parquet")
    posts = read_table(folder / "posts.parquet")
    ours = compute_features(profiles, posts, examples_at(profiles, pd.Timestamp(cutoff), now=now))
    theirs = polars_features(
        pl.from_pandas(profiles), pl.from_pandas(posts), pd.Timestamp(cutoff), now
    ).to_pandas()
    assert list(ours.columns) == list(theirs.columns), (list(ours.columns), list(theirs.columns))
    for col in ours.columns:
        mine, other = ours[col], theirs[col]
        if col == "cutoff":
            assert (pd.to_datetime(mine, utc=True) == pd.to_datetime(other, utc=True)).all()
        elif pd.api.types.is_float_dtype(mine):
            np.testing.assert_allclose(
                mine.to_numpy(dtype="float64"),
                other.to_numpy(dtype="float64", na_value=np.nan),
                rtol=1e-9,
                atol=1e-9,
                err_msg=col,
            )
        else:
            assert (mine.astype(str).to_numpy() == other.astype(str).to_numpy()).all(), col
    return f"polars: all {len(ours.columns)} columns on {len(ours)} influencers equal ours (1e-9)"


def fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def report(meta: dict, results: dict[str, dict]) -> list[str]:
    n = meta["n_posts"]
    lines = [
        f"{n:,} posts, {meta['n_influencers']:,} influencers "
        f"(generated in {meta['generate_seconds']} s, not timed)"
        + (
            f"; load average {meta['load_1min'][0]:.1f}-{meta['load_1min'][1]:.1f} on "
            f"{os.cpu_count()} cores"
            if "load_1min" in meta
            else ""
        )
    ]
    lines.append(
        f"  {'stage':<15}{'seconds':>9}{'posts/s':>13}{'peak RSS':>11}{'(idle)':>10}  parts"
    )
    for name, r in results.items():
        parts = ", ".join(f"{k} {v:.2f}s" for k, v in r["parts"].items())
        lines.append(
            f"  {name:<15}{r['seconds']:>9.2f}{n / r['seconds']:>13,.0f}"
            f"{fmt_bytes(r['peak_rss']):>11}{fmt_bytes(r['baseline_rss']):>10}  {parts}"
        )
    if "ours" in results and "duckdb" in results:
        ratio = results["ours"]["seconds"] / results["duckdb"]["seconds"]
        lines.append(
            f"  ours / duckdb = {ratio:.2f}x (target <= 1.5x)"
            + (
                "; ours / duckdb 1 thread = "
                f"{results['ours']['seconds'] / results['duckdb_1thread']['seconds']:.2f}x"
                if "duckdb_1thread" in results
                else ""
            )
        )
    if "features" in results and "polars" in results:
        ours, theirs = results["features"], results["polars"]
        lines.append(
            f"  polars / features: {theirs['seconds'] / ours['seconds']:.2f}x the time, "
            f"{theirs['peak_rss'] / ours['peak_rss']:.2f}x the peak memory"
        )
    if "pipeline" in results:
        r = results["pipeline"]
        lines.append(
            f"  pipeline: {n / r['seconds'] / 1e6:.2f}M posts/s (target >= "
            f"1M), peak {fmt_bytes(r['peak_rss'])} (target < 4 GB at 10M)"
        )
    if "duckdb_whole" in results:
        lines.append(
            "  duckdb_whole (same work minus validation, compiled, all cores): "
            f"{n / results['duckdb_whole']['seconds'] / 1e6:.2f}M posts/s"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="posts per data set"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("build/bench"),
        help="synthetic data and results.json go here",
    )
    parser.add_argument("--posts-per-influencer", type=float, default=20.0)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per stage; the fastest is reported"
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="rewrite the synthetic data even if present"
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip checking ours against DuckDB on the smallest size",
    )
    # Internal: run one stage in this (child) process and print its result as JSON.
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cutoff", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stage:
        print(json.dumps(run_stage(args.stage, args.data_dir, args.cutoff)))
        return 0

    if not args.no_check and "polars" in args.stages:
        small = ensure_data(POLARS_CHECK_POSTS, args.out_dir, args.posts_per_influencer, False)
        folder = args.out_dir / f"posts_{POLARS_CHECK_POSTS}"
        print(check_polars(folder, small["cutoff"]), flush=True)
    all_results = {}
    for i, size in enumerate(sorted(args.sizes)):
        meta = ensure_data(size, args.out_dir, args.posts_per_influencer, args.regenerate)
        folder = args.out_dir / f"posts_{size}"
        # Rounds of every stage in turn, not each stage's runs back to back: on a shared machine
        # the load then changes under all of them alike.
        runs: dict[str, list[dict]] = {name: [] for name in args.stages}
        load = [os.getloadavg()[0]]
        for _ in range(max(1, args.repeat)):
            for name in args.stages:
                runs[name].append(run_stage_in_child(name, folder, meta["cutoff"]))
                load.append(os.getloadavg()[0])
        results = {}
        for name, stage_runs in runs.items():
            results[name] = min(stage_runs, key=lambda r: r["seconds"])
            results[name]["peak_rss"] = max(r["peak_rss"] for r in stage_runs)
        meta["load_1min"] = [min(load), max(load)]
        print("\n".join(report(meta, results)), flush=True)
        if i == 0 and not args.no_check:
            print("  " + check_reference(folder, meta["cutoff"]), flush=True)
        all_results[size] = {"meta": meta, "stages": results}
    out = args.out_dir / "results.json"
    out.write_text(json.dumps(all_results, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
