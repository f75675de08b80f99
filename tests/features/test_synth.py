"""Tests for features.synth: the synthetic generator used for speed and scale tests only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engage.cli import embedded_posts, embedded_profiles
from features.aggregate import tier_of
from features.contract import load_and_validate, validate
from features.engagement import interactions, log_er
from features.synth import fit_synth_params, generate, write_synthetic


@pytest.fixture(scope="module")
def real():
    return load_and_validate(embedded_profiles(), embedded_posts())


@pytest.fixture(scope="module")
def params(real):
    return fit_synth_params(real.profiles, real.posts)


@pytest.fixture(scope="module")
def large(params):
    # Enough influencers that tier-level summaries are stable (takes well under a second).
    return generate(params, n_influencers=20_000, seed=7)


def _post_log_er(profiles: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    followers = (
        posts["influencer"]
        .map(profiles.set_index("influencer")["followers"])
        .to_numpy(dtype="float64")
    )
    return pd.DataFrame(
        {"log_er": log_er(interactions(posts), followers), "tier": tier_of(followers)}
    )


def test_fit_does_not_modify_inputs(real):
    profiles, posts = real.profiles.copy(), real.posts.copy()
    fit_synth_params(real.profiles, real.posts)
    pd.testing.assert_frame_equal(real.profiles, profiles)
    pd.testing.assert_frame_equal(real.posts, posts)


def test_same_seed_gives_identical_tables(params):
    first = generate(params, n_influencers=500, seed=3, posts_per_influencer=5)
    second = generate(params, n_influencers=500, seed=3, posts_per_influencer=5)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])


def test_different_seed_gives_different_tables(params):
    _, a = generate(params, n_influencers=500, seed=3)
    _, b = generate(params, n_influencers=500, seed=4)
    assert not a["likes"].equals(b["likes"])


@pytest.mark.parametrize(
    ("posts_per_influencer", "shuffle"),
    [
        (None, True),  # fitted post counts (short histories, many profiles without posts)
        (20, True),  # long histories, as the benchmark uses
        (20, False),  # unshuffled: rows grouped by influencer, oldest first
    ],
)
def test_output_passes_the_contract(params, posts_per_influencer, shuffle):
    profiles, posts = generate(
        params,
        n_influencers=1_000,
        seed=1,
        posts_per_influencer=posts_per_influencer,
        shuffle=shuffle,
    )
    data = validate(profiles, posts)  # raises on any fatal problem
    assert not data.report.problems
    assert data.report.rows_out == {"profiles": len(profiles), "posts": len(posts)}
    assert list(profiles.columns) == [
        "influencer",
        "followers",
        "following",
        "posts_count",
        "category",
        "platform",
    ]
    assert list(posts.columns) == [
        "influencer",
        "post_id",
        "posted_at",
        "likes",
        "comments",
        "media_type",
        "is_sponsored",
        "hashtags",
    ]
    assert profiles["influencer"].str.match(r"^syn_\d{6}$").all()
    assert posts["post_id"].is_unique
    assert set(posts["influencer"]) <= set(profiles["influencer"])
    assert (
        profiles["posts_count"]
        >= posts.groupby("influencer")
        .size()
        .reindex(profiles["influencer"], fill_value=0)
        .to_numpy()
    ).all()


@pytest.mark.parametrize(
    ("posts_per_influencer", "tolerance"),
    [
        (None, 0.10),  # mean of the fitted distribution
        (20, 0.05),  # an explicit mean over all influencers
        (3, 0.05),  # a short explicit mean
    ],
)
def test_row_counts(params, posts_per_influencer, tolerance):
    n = 5_000
    profiles, posts = generate(
        params, n_influencers=n, seed=2, posts_per_influencer=posts_per_influencer
    )
    assert len(profiles) == n
    pmf = params.posts_pmf
    expected = (
        float((np.arange(len(pmf)) * pmf).sum())
        if posts_per_influencer is None
        else posts_per_influencer
    )
    assert len(posts) == pytest.approx(n * expected, rel=tolerance)


def test_engagement_rate_by_tier_roughly_reproduced(real, large):
    # Loose on purpose: the generator draws a normal log ER, the real one is skewed.
    fitted = _post_log_er(real.profiles, real.posts).groupby("tier")["log_er"].mean()
    synthetic = _post_log_er(*large).groupby("tier")["log_er"].mean()
    for tier in ("nano", "micro", "mid", "macro", "mega"):
        assert synthetic[tier] == pytest.approx(fitted[tier], abs=0.25), tier
    # ER falls with size, as in the real data.
    assert synthetic["nano"] > synthetic["micro"] > synthetic["mid"]


@pytest.mark.parametrize(
    ("statistic", "rel"),
    [
        (lambda p, q: np.log(p["followers"]).median(), 0.02),  # audience size
        (lambda p, q: (p["following"] / p["followers"]).median(), 0.15),  # following ratio
        (lambda p, q: q["comments"].sum() / q["likes"].sum(), 0.30),  # comments per like
        (lambda p, q: (q["media_type"] == "carousel").mean(), 0.15),  # carousel share
        (lambda p, q: (q["hashtags"] == "").mean(), 0.20),  # posts without hashtags
        (lambda p, q: q["hashtags"].str.count(r"\|").mean(), 0.20),  # hashtags per post (minus one)
        (lambda p, q: q["influencer"].nunique() / len(p), 0.05),  # profiles with any post
    ],
)
def test_marginal_summaries_roughly_reproduced(real, large, statistic, rel):
    assert statistic(*large) == pytest.approx(statistic(real.profiles, real.posts), rel=rel)


def test_hashtags_are_reused_within_an_influencer(params):
    _, posts = generate(params, n_influencers=500, seed=5, posts_per_influencer=20)
    tags = posts.assign(tag=posts["hashtags"].str.split("|")).explode("tag")
    tags = tags[tags["tag"] != ""]
    per_influencer = tags.groupby("influencer")["tag"].agg(["size", "nunique"])
    assert (per_influencer["nunique"] < per_influencer["size"]).mean() > 0.8


def test_generate_rejects_bad_arguments(params):
    with pytest.raises(ValueError, match="n_influencers must be at least 1"):
        generate(params, n_influencers=0)
    with pytest.raises(ValueError, match="posts_per_influencer must be positive"):
        generate(params, n_influencers=10, posts_per_influencer=0)


def test_write_synthetic_rejects_unknown_format(params, tmp_path):
    profiles, posts = generate(params, n_influencers=10, seed=0)
    with pytest.raises(ValueError, match="file_format must be 'parquet' or 'csv'"):
        write_synthetic(profiles, posts, tmp_path, file_format="xlsx")


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_written_files_load_and_validate(params, tmp_path, file_format):
    profiles, posts = generate(params, n_influencers=200, seed=1, posts_per_influencer=4)
    paths = write_synthetic(profiles, posts, tmp_path / "out", file_format=file_format)
    assert [p.name for p in paths] == [f"profiles.{file_format}", f"posts.{file_format}"]
    data = load_and_validate(*paths)
    assert len(data.profiles) == 200
    assert len(data.posts) == len(posts)
