"""Feature pipeline benchmark against a DuckDB reference, on synthetic posts (``make bench``).

For each size (posts; ~20 per influencer) it writes synthetic Parquet files (not timed; see
:mod:`features.synth`, fitted on the embedded data) and times three stages, each in a fresh
Python process so that peak memory (the child's own maximum RSS) is measured separately:

pipeline
    read both Parquet files + ``features.contract.validate``
    + ``features.aggregate.compute_features``
    (hashtag features and docs included), one cutoff for all just after the last post.
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
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would then
# shadow the ``features`` package. Put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

STAGES = ("pipeline", "ours", "duckdb", "duckdb_1thread", "duckdb_whole")
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

    import features.aggregate  # noqa: F401

    baseline = peak_rss_bytes()
    started = time.perf_counter()
    if name == "pipeline":
        result = stage_pipeline(folder, cutoff)
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
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--stage",
        name,
        "--data-dir",
        str(folder),
        "--cutoff",
        cutoff,
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"stage {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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


def fmt_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def report(meta: dict, results: dict[str, dict]) -> list[str]:
    n = meta["n_posts"]
    lines = [
        f"{n:,} posts, {meta['n_influencers']:,} influencers "
        f"(generated in {meta['generate_seconds']} s, not timed)"
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

    all_results = {}
    for i, size in enumerate(sorted(args.sizes)):
        meta = ensure_data(size, args.out_dir, args.posts_per_influencer, args.regenerate)
        folder = args.out_dir / f"posts_{size}"
        results = {}
        for name in args.stages:
            runs = [
                run_stage_in_child(name, folder, meta["cutoff"]) for _ in range(max(1, args.repeat))
            ]
            results[name] = min(runs, key=lambda r: r["seconds"])
            results[name]["peak_rss"] = max(r["peak_rss"] for r in runs)
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
