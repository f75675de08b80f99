"""Training examples (training/examples.py): leakage-safe, weighted, campaigns checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import DataValidationError, validate
from tests.conftest import planned_data
from tests.training_fixtures import TOY_NOW, toy_examples, toy_posts, toy_profiles
from training.examples import (
    campaign_examples,
    example_weights,
    post_examples,
    validate_campaigns,
)

# --------------------------------------------------------------------------- examples


def test_every_mature_post_is_a_target_and_history_is_strictly_earlier():
    ex = toy_examples(toy_posts())
    # d has no posts: no label, no example. a3 (Jan 9) is the scrape's newest post, younger than
    # 3 days at the scrape: no target. Every other post is one, with the posts before it.
    assert list(zip(ex.base["influencer"], ex.base["n_history_posts"], strict=True)) == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("c", 0),
        ("c", 1),
    ]
    # label of a's second example = log((200 + 20 + 1) / 1000)
    assert ex.label[1] == pytest.approx(np.log(221 / 1000))
    assert ex.target_er[1] == pytest.approx(220 / 1000)


def test_each_influencer_weighs_the_same_in_total():
    ex = toy_examples(toy_posts())  # a and c have 2 examples, b one
    totals = pd.Series(ex.weight).groupby(ex.base["influencer"].to_numpy()).sum()
    assert totals.to_dict() == pytest.approx({"a": 5 / 3, "b": 5 / 3, "c": 5 / 3})
    assert ex.weight.mean() == pytest.approx(1.0)


def test_each_platform_weighs_the_same_in_total():
    base = pd.DataFrame(
        {
            "influencer": ["a", "a", "b", "c", "d"],
            "platform": ["instagram", "instagram", "instagram", "instagram", "tiktok"],
        }
    )
    weight = pd.Series(example_weights(base), index=base["influencer"])
    by_platform = weight.groupby(base["platform"].to_numpy()).sum()
    assert by_platform["instagram"] == pytest.approx(by_platform["tiktok"])
    assert weight.groupby(level=0).sum()[["a", "b", "c"]].nunique() == 1  # equal within a platform


def test_young_posts_are_no_targets():
    posts = toy_posts()
    # A post on Jan 19 moves the scrape to Jan 19: a3 (Jan 9) is then 10 days old, so a target,
    # and the new post itself is too young to be one.
    posts.loc[len(posts)] = ["b", "b2", "2020-01-19", "1", "0", "", ""]
    ex = toy_examples(posts)
    assert (ex.target_time == pd.Timestamp("2020-01-09", tz="UTC")).any()
    assert not (ex.target_time == pd.Timestamp("2020-01-19", tz="UTC")).any()


def test_follower_counts_are_read_at_the_scrape_or_at_the_campaign_post():
    data = validate(toy_profiles(), toy_posts(), now=TOY_NOW)
    scrape = data.posts["posted_at"].max()  # a3, Jan 9
    ex = post_examples(data.profiles, data.posts)
    age = (scrape - ex.base["cutoff"]).dt.total_seconds() / 86_400
    np.testing.assert_allclose(ex.base["follower_count_age_days"], age)
    campaigns = pd.DataFrame(
        {
            "influencer": ["a", "b"],
            "posted_at": pd.to_datetime(["2020-01-04", "2020-01-05"], utc=True),
            "likes": [10, 20],
            "comments": [1, 2],
            "followers_at_post": [np.nan, 5000.0],
        }
    )
    campaign = campaign_examples(data.profiles, data.posts, campaigns)
    # a's rate divides by the profile's count, read at the scrape 5 days later; b's by the
    # count read at the post itself.
    assert campaign.base["follower_count_age_days"].tolist() == [5.0, 0.0]


def test_changing_the_target_post_changes_no_feature():
    """The target post's likes, comments, caption and hashtags must never be inputs."""
    data = validate(toy_profiles(), toy_posts(), now=TOY_NOW)
    before = post_examples(data.profiles, data.posts, targets_per_influencer=1)
    changed = toy_posts()
    target = changed["post_id"].isin(["a2", "b1", "c2"])  # each influencer's latest mature post
    changed.loc[target, "likes"] = "999999"
    changed.loc[target, "comments"] = "77777"
    changed.loc[target, "caption"] = "a completely different caption"
    changed.loc[target, "hashtags"] = "leak|leak|leak"
    data = validate(toy_profiles(), changed, now=TOY_NOW)
    after = post_examples(data.profiles, data.posts, targets_per_influencer=1)
    pd.testing.assert_frame_equal(before.base, after.base)
    assert not np.allclose(before.label, after.label)


def test_rolling_cutoffs_keep_the_latest_n_targets():
    data = validate(toy_profiles(), toy_posts(), now=TOY_NOW)
    ex = post_examples(data.profiles, data.posts, targets_per_influencer=1)
    assert sorted(ex.base["influencer"]) == ["a", "b", "c"]
    a = ex.base[ex.base["influencer"] == "a"]
    assert list(a["n_history_posts"]) == [1]  # a2, the latest mature post


# --------------------------------------------------------------------------- campaigns


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        # a required column under another tool's name: suggest the rename
        (
            pd.DataFrame(
                {
                    "influencer": ["a"],
                    "campaign_id": ["x"],
                    "posted_at": ["2020-01-01"],
                    "like_count": ["1"],
                    "comments": ["1"],
                }
            ),
            "did you mean 'like_count'",
        ),
        # campaign for an influencer without a profile
        (
            pd.DataFrame(
                {
                    "influencer": ["zz"],
                    "campaign_id": ["x"],
                    "posted_at": ["2020-01-01"],
                    "likes": ["1"],
                    "comments": ["1"],
                }
            ),
            "campaign influencer has no profile",
        ),
        # negative count
        (
            pd.DataFrame(
                {
                    "influencer": ["a"],
                    "campaign_id": ["x"],
                    "posted_at": ["2020-01-01"],
                    "likes": ["-1"],
                    "comments": ["1"],
                }
            ),
            "negative count",
        ),
        # the same campaign twice for one influencer
        (
            pd.DataFrame(
                {
                    "influencer": ["a", "a"],
                    "campaign_id": ["x", "x"],
                    "posted_at": ["2020-01-01"] * 2,
                    "likes": ["1", "2"],
                    "comments": ["1", "1"],
                }
            ),
            "duplicate",
        ),
    ],
)
def test_bad_campaign_tables_are_refused_with_file_and_column(frame, match):
    with pytest.raises(DataValidationError, match=match) as info:
        validate_campaigns(frame, "campaigns.csv", pd.Series(["a", "b"]))
    assert "campaigns.csv" in str(info.value)


def test_training_examples_carry_each_target_posts_own_format():
    data = planned_data()
    # The scrape's newest posts (March) are too young to be targets.
    ex = post_examples(data.profiles, data.posts)
    by_time = ex.base.assign(t=ex.target_time.to_numpy()).sort_values(["influencer", "t"])
    vid = by_time[by_time["influencer"] == "vid"]
    assert vid["planned_video"].tolist() == [
        1.0,
        1.0,
    ]  # the video and the reel, not the history's mix
    pics = by_time[by_time["influencer"] == "pics"]
    assert pics["planned_carousel"].tolist() == [0.0, 1.0]
