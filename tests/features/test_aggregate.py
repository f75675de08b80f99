"""Point-in-time features on a tiny hand-made data set, every value computed by hand.

Fixture (see conftest): cutoff 2020-01-10.
ana  (5 000 followers):   posts Jan 1, 3, 5, 7 with
interactions 99, 59, 0, 249; two more at/after the cutoff.
ben  (200 000 followers): posts Jan 2, 8 with interactions 1999, 3999 (shares and saves included).
cara (1 000 000 followers): no posts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.aggregate import (
    FORECAST_POST_AGE,
    TIERS,
    compute_features,
    examples_at,
    feature_table,
    tier_of,
)
from features.contract import validate
from tests.conftest import planned_data

NOW = pd.Timestamp("2020-06-01", tz="UTC")


# log ER of ana's four history posts: ln((interactions + 1) / 5000)
A1, A2, A3, A4 = (math.log(x / 5000) for x in (100, 60, 1, 250))


# ben: ln((interactions + 1) / 200000) = ln(0.01), ln(0.02)
B1, B2 = math.log(0.01), math.log(0.02)


@pytest.fixture
def table(tiny, cutoff) -> pd.DataFrame:
    return feature_table(tiny.profiles, tiny.posts, cutoff).set_index("influencer")


def test_one_row_per_profile_in_profile_order(tiny, cutoff):
    out = feature_table(tiny.profiles, tiny.posts, cutoff)
    assert out.columns[:2].tolist() == ["influencer", "cutoff"]
    assert out["influencer"].tolist() == ["ana", "ben", "cara"]
    assert (out["cutoff"] == cutoff).all()


# ----------------------------------------------------------------- profile family


def test_profile_features(table):
    assert table.loc["ana", "log_followers"] == pytest.approx(math.log(5000))
    assert table.loc["cara", "log_followers"] == pytest.approx(math.log(1_000_000))
    assert table.loc["ana", "following_ratio"] == pytest.approx(500 / 5000)
    assert table.loc["ben", "following_ratio"] == pytest.approx(100 / 200_000)
    assert table.loc["ana", "log_posts_count"] == pytest.approx(math.log1p(10))
    assert table["verified"].tolist() == [0.0, 1.0, 0.0]
    assert table["tier"].tolist() == ["nano", "mid", "mega"]
    assert table["category"].tolist() == ["fashion", "travel", "food"]
    assert (table["platform"] == "instagram").all()


@pytest.mark.parametrize(
    ("followers", "tier"),
    [
        (1, "nano"),
        (9_999, "nano"),  # just under 10k
        (10_000, "micro"),  # 10k is micro
        (99_999, "micro"),
        (100_000, "mid"),  # 100k starts mid
        (499_999, "mid"),
        (500_000, "macro"),  # 500k: mid -> macro
        (999_999, "macro"),
        (1_000_000, "mega"),  # 1M is mega
        (600_000_000, "mega"),  # the largest accounts
    ],
)
def test_tier_boundaries(followers, tier):
    assert tier_of(np.array([followers]))[0] == tier
    profiles = pd.DataFrame({"influencer": ["x"], "followers": [float(followers)]})
    assert (
        feature_table(profiles, _no_posts(), pd.Timestamp("2020-01-01", tz="UTC"))["tier"].iloc[0]
        == tier
    )


def test_tiers_are_ordered():
    assert tier_of(np.array([5e3, 5e4, 2e5, 7e5, 2e6])).tolist() == list(TIERS)


# ----------------------------------------------------------------- history family


def test_cadence_family(table):
    assert table["n_history_posts"].tolist() == [4.0, 2.0, 0.0]
    assert table.loc["ana", "history_days"] == pytest.approx(6.0)  # Jan 1 -> Jan 7
    assert table.loc["ana", "cadence_days"] == pytest.approx(2.0)  # 6 days / 3 gaps
    assert table.loc["ana", "days_since_last_post"] == pytest.approx(3.0)  # Jan 7 -> cutoff Jan 10
    assert table.loc["ben", "history_days"] == pytest.approx(6.0)
    assert table.loc["ben", "cadence_days"] == pytest.approx(6.0)
    assert table.loc["ben", "days_since_last_post"] == pytest.approx(2.0)


def test_log_er_family(table):
    ana = [A1, A2, A3, A4]
    assert table.loc["ana", "log_er_median"] == pytest.approx(
        (A1 + A2) / 2
    )  # sorted: A3 < A2 < A1 < A4
    assert table.loc["ana", "log_er_mean"] == pytest.approx(sum(ana) / 4)
    assert table.loc["ana", "log_er_std"] == pytest.approx(float(np.std(ana, ddof=1)))
    assert table.loc["ana", "log_er_last"] == pytest.approx(A4)
    assert table.loc["ana", "log_er_max"] == pytest.approx(A4)
    assert table.loc["ben", "log_er_median"] == pytest.approx((B1 + B2) / 2)
    assert table.loc["ben", "log_er_std"] == pytest.approx(abs(B2 - B1) / math.sqrt(2))
    assert table.loc["ben", "log_er_last"] == pytest.approx(B2)


def test_robust_levels(table):
    ana = np.array([A1, A2, A3, A4])
    # 4 posts: all of them are within the latest 12
    assert table.loc["ana", "log_er_recent_median"] == pytest.approx((A1 + A2) / 2)
    # weights halve every 5 posts back from the latest
    decay = 0.5 ** (np.arange(3, -1, -1) / 5.0)
    assert table.loc["ana", "log_er_ewm"] == pytest.approx(float(np.sum(decay * ana) / decay.sum()))
    assert table.loc["ana", "log_er_mad"] == pytest.approx(
        float(np.median(np.abs(ana - (A1 + A2) / 2)))
    )
    assert np.isnan(table.loc["cara", "log_er_ewm"])  # no history


def test_recent_median_uses_the_latest_12_posts_only():
    # 20 posts: the 8 oldest engage 100x better; the recent median must not see them
    posted = pd.date_range("2020-01-01", periods=20, freq="D", tz="UTC")
    posts = pd.DataFrame(
        {
            "influencer": "x",
            "post_id": [f"p{i}" for i in range(20)],
            "posted_at": posted,
            "likes": [9999.0] * 8 + [99.0] * 12,
            "comments": 0.0,
        }
    )
    data = validate(pd.DataFrame({"influencer": ["x"], "followers": [10_000]}), posts, now=NOW)
    out = compute_features(
        data.profiles,
        data.posts,
        pd.DataFrame({"influencer": ["x"], "cutoff": [posted[-1] + pd.Timedelta(days=1)]}),
    )
    assert out["log_er_recent_median"].iloc[0] == pytest.approx(math.log(0.01))
    assert out["log_er_median"].iloc[0] == pytest.approx(math.log(0.01))  # 12 of 20 are low
    assert out["log_er_mean"].iloc[0] > math.log(0.01) + 1


def test_views_features(tiny, cutoff):
    # views known for a1 and a2 only; unknown views are left out, not read as 0
    views = tiny.posts["post_id"].map({"a1": 999.0, "a2": 1999.0}).astype("float64")
    out = feature_table(tiny.profiles, tiny.posts.assign(views=views), cutoff).set_index(
        "influencer"
    )
    assert out.loc["ana", "log_views_per_follower"] == pytest.approx(
        float(np.median([math.log(1000 / 5000), math.log(2000 / 5000)]))
    )
    assert out.loc["ana", "log_interactions_per_view"] == pytest.approx(
        float(np.median([math.log(100 / 1000), math.log(60 / 2000)]))
    )
    assert np.isnan(out.loc["ben", "log_views_per_follower"])  # no views at all
    no_views = feature_table(tiny.profiles, tiny.posts, cutoff)
    assert no_views["log_views_per_follower"].isna().all()


@pytest.mark.parametrize(
    ("observed_at", "n_history"),
    [
        (None, 4),  # no observation time: every post before the cutoff counts
        ("2020-06-01", 4),  # read months later: every post is mature
        ("2020-01-10T12:00:00", 4),  # a4 (Jan 7) is 3.5 days old: it counts
        ("2020-01-09", 3),  # a4 is 2 days old: left out
        ("2020-01-07", 2),  # a3 (Jan 5) too
    ],
)
def test_young_posts_are_no_history(tiny, cutoff, observed_at, n_history):
    examples = pd.DataFrame({"influencer": ["ana"], "cutoff": [cutoff]})
    if observed_at is not None:
        examples["observed_at"] = pd.Timestamp(observed_at, tz="UTC")
    out = compute_features(tiny.profiles, tiny.posts, examples)
    assert out["n_history_posts"].iloc[0] == n_history
    assert out["cutoff"].iloc[0] == cutoff  # the example keeps its own cutoff
    assert out["days_since_last_post"].iloc[0] >= 3.0


def test_follower_count_age_is_days_from_the_cutoff_to_the_reading(tiny, cutoff):
    examples = pd.DataFrame({"influencer": ["ana", "ana", "ben", "ben"], "cutoff": [cutoff] * 4})
    examples["observed_at"] = pd.to_datetime(
        ["2020-01-20", "2020-01-01", None, "2020-01-20"], utc=True
    )
    # followers_read_at wins over observed_at where both are given.
    examples["followers_read_at"] = pd.to_datetime(
        [None, None, None, "2020-01-11T12:00:00"], utc=True
    )
    age = compute_features(tiny.profiles, tiny.posts, examples)["follower_count_age_days"]
    # Read ten days later; read before the cutoff counts as fresh; not read: missing.
    assert age.iloc[0] == pytest.approx(10.0)
    assert age.iloc[1] == 0.0
    assert np.isnan(age.iloc[2])
    assert age.iloc[3] == pytest.approx(1.5)


def test_scoring_forecasts_the_post_as_read_two_weeks_after_it_goes_up(tiny):
    def age(examples):
        return compute_features(tiny.profiles, tiny.posts, examples)["follower_count_age_days"]

    # Scored today: the planned post's counts as read FORECAST_POST_AGE later, not hours old
    # (every training target was at least MIN_POST_AGE old when read).
    two_weeks = FORECAST_POST_AGE / pd.Timedelta(days=1)
    assert two_weeks == 14.0
    assert age(examples_at(tiny.profiles, now=NOW)).tolist() == [two_weeks] * 3
    # A backtest ten days ago still asks for two weeks; one a month ago reads the counts now.
    ten_days = examples_at(tiny.profiles, pd.Timestamp("2020-05-22", tz="UTC"), now=NOW)
    assert age(ten_days).tolist() == [two_weeks] * 3
    month = examples_at(tiny.profiles, pd.Timestamp("2020-05-02", tz="UTC"), now=NOW)
    assert age(month).tolist() == [30.0, 30.0, 30.0]


def test_er_trend_is_later_half_minus_earlier_half(table):
    assert table.loc["ana", "er_trend"] == pytest.approx((A3 + A4) / 2 - (A1 + A2) / 2)
    assert table.loc["ben", "er_trend"] == pytest.approx(math.log(2))  # doubled


def test_er_trend_odd_count_puts_middle_post_in_earlier_half(tiny):
    # a1, a2, a3 before Jan 6: later half = [a3], earlier half = [a1, a2]
    out = feature_table(tiny.profiles, tiny.posts, pd.Timestamp("2020-01-06", tz="UTC")).set_index(
        "influencer"
    )
    assert out.loc["ana", "er_trend"] == pytest.approx(A3 - (A1 + A2) / 2)


def test_er_trend_single_post_is_missing(tiny):
    examples = examples_at(tiny.profiles, pd.Timestamp("2020-01-02", tz="UTC"))  # only a1 before
    out = compute_features(tiny.profiles, tiny.posts, examples).set_index("influencer")
    assert out.loc["ana", "n_history_posts"] == 1
    assert np.isnan(out.loc["ana", "er_trend"])
    assert np.isnan(out.loc["ana", "log_er_std"])
    assert np.isnan(out.loc["ana", "cadence_days"])
    assert out.loc["ana", "history_days"] == 0.0


def test_interaction_ratios(table):
    assert table.loc["ana", "comments_per_like"] == pytest.approx(60 / 347)
    assert table.loc["ben", "comments_per_like"] == pytest.approx(298 / 4000)
    assert table.loc["ben", "shares_per_like"] == pytest.approx(500 / 4000)
    assert table.loc["ben", "saves_per_like"] == pytest.approx(1200 / 4000)
    assert np.isnan(table.loc["ana", "shares_per_like"])  # ana's shares are all unknown
    assert table.loc["ana", "zero_engagement_share"] == pytest.approx(0.25)  # a3
    assert table.loc["ben", "zero_engagement_share"] == 0.0


def test_sponsored_family(table):
    assert table.loc["ana", "sponsored_share"] == pytest.approx(0.5)
    assert table.loc["ana", "sponsored_er_gap"] == pytest.approx((A2 + A4) / 2 - (A1 + A3) / 2)
    assert table.loc["ben", "sponsored_share"] == 0.0
    assert np.isnan(table.loc["ben", "sponsored_er_gap"])  # no sponsored post to compare


def test_media_family(table):
    assert table.loc["ana", "carousel_share"] == pytest.approx(0.25)
    assert table.loc["ana", "video_share"] == pytest.approx(0.25)


def test_hashtag_family(table):
    # ana: x|y, x, (none), x|z -> 5 tags on 4 posts; x three times, y and z once
    assert table.loc["ana", "hashtags_per_post"] == pytest.approx(5 / 4)
    assert table.loc["ana", "distinct_hashtags"] == 3
    assert table.loc["ana", "top_hashtag_share"] == pytest.approx(3 / 5)
    entropy = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    assert table.loc["ana", "hashtag_entropy"] == pytest.approx(entropy / math.log(3))
    # ben: travel|sea twice -> evenly spread over 2 tags: entropy 1
    assert table.loc["ben", "hashtags_per_post"] == pytest.approx(2.0)
    assert table.loc["ben", "distinct_hashtags"] == 2
    assert table.loc["ben", "top_hashtag_share"] == pytest.approx(0.5)
    assert table.loc["ben", "hashtag_entropy"] == pytest.approx(1.0)
    assert table.loc["ana", "hashtag_doc"] == "x y x x z"


def test_one_tag_repeated_has_zero_entropy(tiny, cutoff):
    posts = tiny.posts.assign(hashtags="same")
    out = feature_table(tiny.profiles, posts, cutoff).set_index("influencer")
    assert out.loc["ana", "hashtag_entropy"] == 0.0
    assert out.loc["ana", "top_hashtag_share"] == 1.0


def test_no_posts_gives_missing_history_not_zero(table):
    cara = table.loc["cara"]
    assert cara["n_history_posts"] == 0
    for col in (
        "history_days",
        "log_er_median",
        "er_trend",
        "comments_per_like",
        "hashtags_per_post",
        "distinct_hashtags",
    ):
        assert np.isnan(cara[col]), col
    assert cara["hashtag_doc"] == ""


def test_history_posts_without_any_hashtag(tiny, cutoff):
    # No tag anywhere: the niche family is missing, not an error.
    out = feature_table(tiny.profiles, tiny.posts.assign(hashtags=""), cutoff).set_index(
        "influencer"
    )
    assert out.loc["ana", "hashtags_per_post"] == 0.0
    assert out.loc["ana", "distinct_hashtags"] == 0.0
    assert np.isnan(out.loc["cara", "distinct_hashtags"])


def test_posts_table_without_a_hashtag_column(tiny, cutoff):
    # compute_features on a posts frame that never had the column: no tags, not a KeyError.
    out = feature_table(tiny.profiles, tiny.posts.drop(columns="hashtags"), cutoff).set_index(
        "influencer"
    )
    assert out.loc["ana", "hashtags_per_post"] == 0.0
    assert np.isnan(out.loc["ana", "top_hashtag_share"])
    assert out.loc["ana", "hashtag_doc"] == ""


@pytest.mark.parametrize(
    ("captions", "expected"),
    [
        (
            ["ab", "abcd", "", "abcdef"],
            (2 + 4 + 0 + 6) / 4,
        ),  # the mean over ana's four history posts
        (["é✓", "x", "yz", ""], (2 + 1 + 2 + 0) / 4),  # characters, not bytes
    ],
)
def test_caption_length_mean(tiny, cutoff, captions, expected):
    ana_history = (tiny.posts["influencer"] == "ana") & (tiny.posts["posted_at"] < cutoff)
    posts = tiny.posts.assign(caption="a caption far too long to be counted")
    posts.loc[ana_history, "caption"] = captions
    out = feature_table(tiny.profiles, posts, cutoff).set_index("influencer")
    assert out.loc["ana", "caption_length_mean"] == pytest.approx(expected)


# ----------------------------------------------------------------- point in time


def test_posts_at_or_after_cutoff_are_excluded(tiny, cutoff):
    # a5 is exactly at the cutoff, a6 after it; both carry huge counts and the tag 'leak'.
    with_late = feature_table(tiny.profiles, tiny.posts, cutoff)
    without = feature_table(
        tiny.profiles, tiny.posts[~tiny.posts["post_id"].isin(["a5", "a6"])], cutoff
    )
    pd.testing.assert_frame_equal(with_late, without)
    assert "leak" not in with_late.loc[0, "hashtag_doc"]


def test_post_just_before_cutoff_is_included(tiny, cutoff):
    out = feature_table(tiny.profiles, tiny.posts, cutoff + pd.Timedelta(microseconds=1)).set_index(
        "influencer"
    )
    assert out.loc["ana", "n_history_posts"] == 5  # a5 (at the old cutoff) now counts


def test_per_influencer_cutoffs(tiny):
    cutoffs = pd.Series(
        {
            "ana": pd.Timestamp("2020-01-04", tz="UTC"),  # a1, a2
            "ben": pd.Timestamp("2020-01-30", tz="UTC"),  # b1, b2
            "cara": pd.Timestamp("2020-01-01", tz="UTC"),
        }
    )
    examples = examples_at(tiny.profiles, cutoffs)
    assert examples["cutoff"].tolist() == cutoffs.tolist()
    out = compute_features(tiny.profiles, tiny.posts, examples).set_index("influencer")
    assert out["n_history_posts"].tolist() == [2.0, 2.0, 0.0]
    assert out.loc["ana", "log_er_last"] == pytest.approx(A2)
    assert out.loc["ana", "days_since_last_post"] == pytest.approx(1.0)
    assert out.loc["ben", "days_since_last_post"] == pytest.approx(22.0)
    pd.testing.assert_frame_equal(
        feature_table(tiny.profiles, tiny.posts, cutoffs), out.reset_index()
    )


def test_same_influencer_at_several_cutoffs(tiny):
    examples = pd.DataFrame(
        {
            "influencer": ["ana", "ana", "ana"],
            "cutoff": pd.to_datetime(["2020-01-02", "2020-01-06", "2020-02-01"], utc=True),
        }
    )
    out = compute_features(tiny.profiles, tiny.posts, examples)
    assert out["n_history_posts"].tolist() == [1.0, 3.0, 6.0]
    assert out["log_er_last"].iloc[0] == pytest.approx(A1)


def test_naive_cutoff_is_utc(tiny):
    aware = feature_table(tiny.profiles, tiny.posts, pd.Timestamp("2020-01-10", tz="UTC"))
    naive = feature_table(tiny.profiles, tiny.posts, pd.Timestamp("2020-01-10"))
    pd.testing.assert_frame_equal(aware, naive)


def test_profiles_as_of_column_is_the_default_cutoff(tiny):
    profiles = tiny.profiles.assign(as_of=pd.Timestamp("2020-01-04", tz="UTC"))
    out = feature_table(profiles, tiny.posts).set_index("influencer")
    assert out.loc["ana", "n_history_posts"] == 2


# ----------------------------------------------------------------- purity


def test_inputs_are_not_mutated(tiny, cutoff):
    profiles, posts = tiny.profiles.copy(deep=True), tiny.posts.copy(deep=True)
    examples = examples_at(tiny.profiles, cutoff)
    examples_before = examples.copy(deep=True)
    feature_table(tiny.profiles, tiny.posts, cutoff)
    compute_features(tiny.profiles, tiny.posts, examples)
    pd.testing.assert_frame_equal(tiny.profiles, profiles)
    pd.testing.assert_frame_equal(tiny.posts, posts)
    pd.testing.assert_frame_equal(examples, examples_before)


def test_no_examples_gives_empty_table(tiny):
    examples = pd.DataFrame(
        {"influencer": pd.Series(dtype=object), "cutoff": pd.Series(dtype="datetime64[ns, UTC]")}
    )
    out = compute_features(tiny.profiles, tiny.posts, examples)
    assert len(out) == 0
    assert "n_history_posts" in out


def _no_posts() -> pd.DataFrame:
    from features.contract import empty_posts

    return empty_posts().drop(columns="row")


@pytest.mark.parametrize(
    "n_tags", [2, 3, 5, 12, 13]
)  # counts where sum(-p log p) / log k rounds above 1
def test_even_spread_of_tags_has_entropy_one_not_more(tiny, cutoff, n_tags):
    posts = tiny.posts.assign(hashtags="|".join(f"t{k}" for k in range(n_tags)))
    out = feature_table(tiny.profiles, posts, cutoff).set_index("influencer")
    assert out.loc["ana", "hashtag_entropy"] == pytest.approx(1.0)
    assert (out["hashtag_entropy"].dropna() <= 1.0).all()


def test_hashtag_chunks_give_the_one_pass_result(small_data, monkeypatch):
    # Big inputs split the tags a chunk of posts at a time and build each chunk's docs in example
    # order, examples without posts included; tiny chunks on real data must change nothing.
    from features import aggregate, engine
    from features.contract import validate

    data = validate(small_data.profiles, small_data.posts, now=pd.Timestamp("2030-01-01", tz="UTC"))
    # Mid-history cutoff: many influencers (some between chunks) have no posts before it.
    as_of = data.posts["posted_at"].quantile(0.5)
    one_pass = feature_table(data.profiles, data.posts, as_of)
    assert (one_pass["n_history_posts"] == 0).sum() > 100 and (
        one_pass["hashtag_doc"] != ""
    ).sum() > 100
    monkeypatch.setattr(aggregate, "HASHTAG_CHUNK_POSTS", 7)
    monkeypatch.setattr(engine, "HASHTAG_HASH_TAGS", 5)
    pd.testing.assert_frame_equal(feature_table(data.profiles, data.posts, as_of), one_pass)


def test_planned_post_defaults_to_the_creators_usual_post_and_takes_what_the_planner_says():
    from features.aggregate import compute_features, examples_at

    data = planned_data()
    at = pd.Timestamp("2020-06-01", tz="UTC")
    usual = compute_features(data.profiles, data.posts, examples_at(data.profiles, at)).set_index(
        "influencer"
    )
    assert usual.loc[
        "vid", ["planned_video", "planned_carousel", "planned_sponsored"]
    ].tolist() == [1.0, 0.0, 0.0]
    assert usual.loc["pics", ["planned_video", "planned_carousel"]].tolist() == [0.0, 0.0]
    assert np.isnan(usual.loc["new", "planned_video"])  # no history, nothing stated: as in training
    stated = examples_at(data.profiles, at).assign(
        post_type=["Carousel", "short", None], sponsored=[True, False, None]
    )
    told = compute_features(data.profiles, data.posts, stated).set_index("influencer")
    assert told.loc["vid", ["planned_video", "planned_carousel", "planned_sponsored"]].tolist() == [
        0.0,
        1.0,
        1.0,
    ]
    assert told.loc[
        "pics", ["planned_video", "planned_carousel", "planned_sponsored"]
    ].tolist() == [1.0, 0.0, 0.0]
    # An unstated row keeps the usual post.
    assert (
        np.isnan(told.loc["new", "planned_video"]) and told.loc["new", "planned_sponsored"] == 0.0
    )
