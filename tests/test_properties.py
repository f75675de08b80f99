"""Property-based tests of the feature invariants (hypothesis): shape, ranges, no new NaN,
point in time, and independence from the row order of the posts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.aggregate import PROFILE_FEATURES, compute_features, examples_at, feature_table
from features.contract import KNOWN_CATEGORIES, ValidatedData, validate

NOW = pd.Timestamp("2021-01-01", tz="UTC")
START = pd.Timestamp("2020-01-01", tz="UTC")
TAGS = ["fit", "food", "travel", "ootd", "cat"]
RATE_COLUMNS = [
    "comments_per_like",
    "shares_per_like",
    "zero_engagement_share",
    "sponsored_share",
    "top_hashtag_share",
    "hashtag_entropy",
    "carousel_share",
    "video_share",
]
UNIT_INTERVAL = [
    "zero_engagement_share",
    "sponsored_share",
    "top_hashtag_share",
    "hashtag_entropy",
    "carousel_share",
    "video_share",
]

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

profile_rows = st.fixed_dictionaries(
    {
        "followers": st.integers(1, 10**9),
        "following": st.integers(0, 10**5),
        "posts_count": st.integers(0, 10**4),
        "verified": st.booleans(),
        "category": st.sampled_from(KNOWN_CATEGORIES),
    }
)


def post_rows(n_influencers: int, min_day: int = 0, max_day: int = 30) -> st.SearchStrategy[dict]:
    # Whole days and hours from a small range, so equal timestamps (ties) are common.
    return st.fixed_dictionaries(
        {
            "who": st.integers(0, n_influencers - 1),
            "day": st.integers(min_day, max_day),
            "hour": st.sampled_from([0, 12]),
            "likes": st.integers(0, 10**6),
            "comments": st.integers(0, 10**4),
            "shares": st.one_of(st.none(), st.integers(0, 10**4)),
            "is_sponsored": st.booleans(),
            "media_type": st.sampled_from(["image", "video", "carousel"]),
            "hashtags": st.lists(st.sampled_from(TAGS), max_size=4).map("|".join),
        }
    )


def build_posts(rows: list[dict], prefix: str = "p") -> pd.DataFrame:
    columns = [
        "influencer",
        "post_id",
        "posted_at",
        "likes",
        "comments",
        "shares",
        "is_sponsored",
        "media_type",
        "hashtags",
    ]
    records = [
        {
            "influencer": f"i{r['who']}",
            "post_id": f"{prefix}{n}",
            "posted_at": START + pd.Timedelta(days=r["day"], hours=r["hour"]),
            **{k: r[k] for k in ("likes", "comments", "is_sponsored", "media_type", "hashtags")},
            "shares": np.nan if r["shares"] is None else float(r["shares"]),
        }
        for n, r in enumerate(rows)
    ]
    frame = pd.DataFrame(records, columns=columns)
    return frame.astype(
        {
            "likes": "float64",
            "comments": "float64",
            "posted_at": "datetime64[ns, UTC]",
            "is_sponsored": bool,
        }
    )


@st.composite
def datasets(draw: st.DrawFn, min_posts: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(profiles, posts, n_influencers) in the contract's raw form."""
    profiles_list = draw(st.lists(profile_rows, min_size=1, max_size=4))
    n = len(profiles_list)
    profiles = pd.DataFrame(profiles_list).assign(influencer=[f"i{k}" for k in range(n)])
    posts = build_posts(draw(st.lists(post_rows(n), min_size=min_posts, max_size=25)))
    return profiles, posts, n


def clean(profiles: pd.DataFrame, posts: pd.DataFrame) -> ValidatedData:
    return validate(profiles, posts, now=NOW)


cutoff_days = st.integers(0, 31).map(lambda d: START + pd.Timedelta(days=d))


@FAST
@given(data=datasets(), cutoff=cutoff_days)
def test_shape_rates_and_no_new_nan(data, cutoff):
    """One row per profile, rates in range, no NaN
    where the inputs are complete, inputs untouched."""
    profiles, posts, n = data
    valid = clean(profiles, posts)
    profiles_before, posts_before = valid.profiles.copy(deep=True), valid.posts.copy(deep=True)
    out = feature_table(valid.profiles, valid.posts, cutoff)

    # Row count kept, profile order kept, inputs untouched.
    assert len(out) == n
    assert out["influencer"].tolist() == valid.profiles["influencer"].tolist()
    pd.testing.assert_frame_equal(valid.profiles, profiles_before)
    pd.testing.assert_frame_equal(valid.posts, posts_before)

    # Rates non-negative; shares and normalised entropy within [0, 1].
    for col in RATE_COLUMNS:
        assert (out[col].dropna() >= 0).all(), col
    for col in UNIT_INTERVAL:
        assert (out[col].dropna() <= 1).all(), (col, out[col].max())
    assert (out["days_since_last_post"].dropna() > 0).all()  # strictly before the cutoff

    # No NaN in profile features and post counts; history features present exactly with history.
    complete = [*PROFILE_FEATURES, "n_history_posts", "tier", "category", "platform"]
    assert not out[complete].isna().any().any()
    has_history = out["n_history_posts"] > 0
    for col in (
        "log_er_median",
        "log_er_last",
        "days_since_last_post",
        "zero_engagement_share",
        "hashtags_per_post",
    ):
        assert not out.loc[has_history, col].isna().any(), col
        assert out.loc[~has_history, col].isna().all(), col


@FAST
@given(
    data=datasets(),
    cutoff_day=st.integers(0, 31),
    late=st.data(),
)
def test_posts_on_or_after_cutoff_change_nothing(data, cutoff_day, late):
    """POINT IN TIME: whatever is posted at or after the cutoff cannot move any feature."""
    profiles, posts, n = data
    cutoff = START + pd.Timedelta(days=cutoff_day)
    extra_rows = late.draw(
        st.lists(post_rows(n, min_day=cutoff_day, max_day=cutoff_day + 40), min_size=1, max_size=10)
    )
    extra = build_posts(extra_rows, prefix="late")
    # Some late posts exactly at the cutoff (hour 0 of the cutoff day is the cutoff itself).
    extra = extra[extra["posted_at"] >= cutoff]
    after = clean(profiles, pd.concat([posts, extra], ignore_index=True))
    before = after.posts[~after.posts["post_id"].str.startswith("late")]
    pd.testing.assert_frame_equal(
        feature_table(after.profiles, before, cutoff),
        feature_table(after.profiles, after.posts, cutoff),
    )
    # Each influencer at two cutoffs (the merge path): the later posts still leak into neither.
    examples = pd.concat(
        [
            examples_at(after.profiles, cutoff),
            examples_at(after.profiles, cutoff - pd.Timedelta(days=2)),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(
        compute_features(after.profiles, before, examples),
        compute_features(after.profiles, after.posts, examples),
    )


@FAST
@given(data=datasets(), days=st.lists(st.integers(0, 31), min_size=4, max_size=4), late=st.data())
def test_per_influencer_cutoffs_are_point_in_time(data, days, late):
    profiles, posts, n = data
    cutoffs = pd.Series({f"i{k}": START + pd.Timedelta(days=days[k]) for k in range(n)})
    extra_rows = late.draw(st.lists(post_rows(n, max_day=70), max_size=15))
    extra = build_posts(extra_rows, prefix="late")
    extra = extra[extra["posted_at"] >= extra["influencer"].map(cutoffs)]
    after = clean(profiles, pd.concat([posts, extra], ignore_index=True))
    before = after.posts[~after.posts["post_id"].str.startswith("late")]
    examples = examples_at(after.profiles, cutoffs)
    pd.testing.assert_frame_equal(
        compute_features(after.profiles, before, examples),
        compute_features(after.profiles, after.posts, examples),
    )


@FAST
@given(data=datasets(min_posts=2), cutoff=cutoff_days, seed=st.integers(0, 2**32 - 1))
def test_row_order_of_posts_does_not_matter(data, cutoff, seed):
    profiles, posts, _ = data
    valid = clean(profiles, posts)
    order = np.random.default_rng(seed).permutation(len(valid.posts))
    # Shuffled rows under a non-default index (as a filtered frame would have).
    shuffled = valid.posts.iloc[order].set_axis(np.arange(len(order)) * 7 + 3)
    pd.testing.assert_frame_equal(
        feature_table(valid.profiles, valid.posts, cutoff),
        feature_table(valid.profiles, shuffled, cutoff),
    )
