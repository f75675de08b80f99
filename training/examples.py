"""Leakage-safe training examples: an influencer at a cutoff, with the label from what follows.

Default (post histories): every post is a target (rolling cutoffs), with the posts strictly
before it as history; each influencer's first post is a cold-start example (profile features
only). Examples are weighted so that each influencer counts once, whatever its number of posts,
and each platform too (:func:`example_weights`).
``targets_per_influencer = N`` keeps only each influencer's latest N targets.

Young posts: counts keep growing for days after a post goes up, and a scrape reads every post
on one day. A post younger than ``MIN_POST_AGE`` at the scrape is no target (its label would
be biased low). The scrape time is each platform's newest post in the table: the counts were
read no earlier than that.

Campaign mode: each row of a campaigns table is an example whose label is that campaign
post's engagement rate, with features as of its ``posted_at``.

The target post never reaches the features: the cutoff is its own timestamp and history is
strictly earlier, so its likes, comments, caption and hashtags cannot leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.aggregate import MIN_POST_AGE, compute_features
from features.contract import (
    DEFAULT_PLATFORM,
    MAX_ROWS_LISTED,
    DataValidationError,
    Problem,
    ValidationReport,
    as_count,
    as_text,
    check_columns,
    parse_timestamps,
)
from features.engagement import interactions, log_er

CAMPAIGN_REQUIRED = ("influencer", "campaign_id", "posted_at", "likes", "comments")


@dataclass
class ExampleSet:
    """Examples with their base features and labels, aligned row by row."""

    base: pd.DataFrame  # compute_features output (influencer, cutoff, features...)
    label: np.ndarray  # log ER of the target post
    target_er: np.ndarray  # plain ER of the target post
    target_time: pd.Series

    @property
    def weight(self) -> np.ndarray:
        """Per example: see :func:`example_weights`."""
        return example_weights(self.base)

    @property
    def has_history(self) -> np.ndarray:
        return self.base["n_history_posts"].to_numpy() > 0

    def subset(self, mask: np.ndarray) -> ExampleSet:
        idx = np.flatnonzero(mask)
        return ExampleSet(
            self.base.iloc[idx].reset_index(drop=True),
            self.label[idx],
            self.target_er[idx],
            self.target_time.iloc[idx].reset_index(drop=True),
        )

    def __len__(self) -> int:
        return len(self.label)


def example_weights(base: pd.DataFrame) -> np.ndarray:
    """Each influencer weighs the same in total, whatever its number of examples, and each
    platform too (mean weight 1), so a platform with many more creators cannot set the trees
    that every platform shares."""
    influencers = base["influencer"]
    counts = influencers.map(influencers.value_counts()).to_numpy(dtype="float64")
    if not len(counts):
        return np.zeros(0)
    weight = 1.0 / counts
    platform = base["platform"].astype(str).to_numpy() if "platform" in base else None
    if platform is not None and len(set(platform)) > 1:
        platform_total = pd.Series(weight).groupby(platform).transform("sum").to_numpy()
        weight = weight / platform_total
    return weight * (len(weight) / weight.sum())


def post_platform(profiles: pd.DataFrame, posts: pd.DataFrame) -> np.ndarray:
    """Each post's platform, from its creator's profile."""
    if "platform" not in profiles:
        return np.full(len(posts), DEFAULT_PLATFORM, dtype=object)
    platform_of = profiles.drop_duplicates("influencer").set_index("influencer")["platform"]
    return posts["influencer"].map(platform_of).astype(str).to_numpy(dtype=object)


def scrape_times(profiles: pd.DataFrame, posts: pd.DataFrame) -> dict[str, pd.Timestamp]:
    """When each platform's counts were read: no earlier than its newest post in the table."""
    if not len(posts):
        return {}
    newest = posts["posted_at"].groupby(post_platform(profiles, posts)).max()
    return {str(k): pd.Timestamp(v) for k, v in newest.items()}


def post_scrape_times(
    profiles: pd.DataFrame, posts: pd.DataFrame, scraped: dict[str, pd.Timestamp]
) -> pd.Series:
    """Each post's scrape time (its platform's, from ``scraped``)."""
    platform = pd.Series(post_platform(profiles, posts), index=posts.index)
    return pd.to_datetime(platform.map(scraped), utc=True)


def post_examples(
    profiles: pd.DataFrame,
    posts: pd.DataFrame,
    targets_per_influencer: int = 0,
    scraped: dict[str, pd.Timestamp] | None = None,
) -> ExampleSet:
    """Every mature post as a target (or each influencer's latest ``targets_per_influencer``),
    earlier posts as history.

    ``scraped``: when each platform's counts were read; default :func:`scrape_times` of these
    tables (the Dask engine passes the whole input's, since it sees one bucket at a time).
    """
    followers = profiles.set_index("influencer")["followers"]
    ordered = posts.sort_values(["influencer", "posted_at", "post_id"], kind="stable")
    observed = post_scrape_times(profiles, ordered, scraped or scrape_times(profiles, posts))
    targets = ordered.assign(observed_at=observed)
    targets = targets[(targets["posted_at"] <= targets["observed_at"] - MIN_POST_AGE).to_numpy()]
    if targets_per_influencer > 0:
        from_end = targets.groupby("influencer").cumcount(ascending=False)
        targets = targets[(from_end < targets_per_influencer).to_numpy()]
    targets = targets.reset_index(drop=True)
    target_followers = targets["influencer"].map(followers).to_numpy(dtype="float64")
    examples = pd.DataFrame(
        {
            "influencer": targets["influencer"].to_numpy(),
            "cutoff": targets["posted_at"].to_numpy(),
            "observed_at": targets["observed_at"].to_numpy(),
        }
    )
    # The target post's own format and sponsorship, known before it went up.
    if "media_type" in targets:
        examples["post_type"] = targets["media_type"].to_numpy()
    if "is_sponsored" in targets:
        examples["sponsored"] = targets["is_sponsored"].to_numpy()
    return _example_set(features_in_batches(profiles, posts, examples), targets, target_followers)


# (example, earlier post) pairs joined at once when the features of many cutoffs per creator
# are computed: bounds the memory of the join (each creator's posts meet each of its cutoffs).
MAX_PAIRS_PER_BATCH = 2_000_000


def features_in_batches(
    profiles: pd.DataFrame, posts: pd.DataFrame, examples: pd.DataFrame
) -> pd.DataFrame:
    """:func:`compute_features` of ``examples``, a batch of whole creators at a time.

    With rolling cutoffs a creator of n posts brings n cutoffs, and joining its posts to them
    makes n x n rows, which for long histories is most of the memory a training run takes.
    Batches of creators keep the join under ``MAX_PAIRS_PER_BATCH`` rows; the features are the
    same.
    """
    posts_per_creator = examples["influencer"].map(posts["influencer"].value_counts()).fillna(0)
    pairs = posts_per_creator.groupby(examples["influencer"].to_numpy()).sum()
    if pairs.sum() <= MAX_PAIRS_PER_BATCH:
        return compute_features(profiles, posts, examples)
    batch_of = (pairs.cumsum() // MAX_PAIRS_PER_BATCH).astype("int64")
    example_batch = examples["influencer"].map(batch_of).to_numpy()
    post_batch = posts["influencer"].map(batch_of).to_numpy()
    parts = [
        compute_features(
            profiles, posts[post_batch == b], examples[example_batch == b].reset_index(drop=True)
        ).set_axis(np.flatnonzero(example_batch == b))
        for b in np.unique(example_batch)
    ]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def validate_campaigns(
    frame: pd.DataFrame, file: str, known_influencers: pd.Series
) -> pd.DataFrame:
    """Check a campaign results table; raise DataValidationError naming file, column and rows."""
    report = ValidationReport()
    table = "campaigns"
    report.rows_in[table] = len(frame)
    frame = frame.rename(columns=lambda c: str(c).strip())
    if not check_columns(table, file, frame, CAMPAIGN_REQUIRED, report):
        raise DataValidationError(report)
    out = pd.DataFrame(index=frame.index)
    for col in ("influencer", "campaign_id"):
        out[col] = as_text(frame[col])
        report.add_at(
            table, file, col, out[col].isna().to_numpy(dtype=bool), f"missing {col}", fatal=True
        )
    out["posted_at"] = parse_timestamps(frame["posted_at"])
    report.add_at(
        table,
        file,
        "posted_at",
        out["posted_at"].isna().to_numpy(dtype=bool),
        "missing or unparseable timestamp",
        fatal=True,
    )
    for col in ("likes", "comments"):
        out[col] = as_count(table, file, frame, col, report, required=True)
    for col in ("shares", "saves", "views", "followers_at_post"):
        if col in frame:
            out[col] = as_count(table, file, frame, col, report, required=False)
    if "followers_at_post" in out:
        report.add_at(
            table,
            file,
            "followers_at_post",
            (out["followers_at_post"] == 0).to_numpy(dtype=bool),
            "zero followers at post time",
            fatal=True,
        )
    unknown = ~out["influencer"].isin(known_influencers) & out["influencer"].notna()
    rows = np.flatnonzero(unknown.to_numpy()) + 1
    if len(rows):
        report.add(
            Problem(
                table,
                file,
                "influencer",
                rows[:MAX_ROWS_LISTED].tolist(),
                len(rows),
                "campaign influencer has no profile",
                True,
            )
        )
    dup = out.duplicated(subset=["influencer", "campaign_id"], keep="first")
    report.add_at(
        table,
        file,
        "campaign_id",
        dup.to_numpy(dtype=bool),
        "duplicate (influencer, campaign_id)",
        fatal=True,
    )
    if report.fatal:
        raise DataValidationError(report)
    return out.reset_index(drop=True)


def campaign_examples(
    profiles: pd.DataFrame,
    posts: pd.DataFrame,
    campaigns: pd.DataFrame,
    scraped: dict[str, pd.Timestamp] | None = None,
) -> ExampleSet:
    """One example per campaign row: features as of its posted_at, label its engagement rate.

    The label divides by ``followers_at_post`` where given (a count read at the post), else by
    the profile's count, read at the scrape (``scraped``, as for :func:`post_examples`).
    """
    followers = (
        campaigns["influencer"]
        .map(profiles.set_index("influencer")["followers"])
        .to_numpy(dtype="float64")
    )
    read_at = post_scrape_times(profiles, campaigns, scraped or scrape_times(profiles, posts))
    if "followers_at_post" in campaigns:
        at_post = campaigns["followers_at_post"].notna()
        followers = np.where(at_post, campaigns["followers_at_post"], followers)
        read_at = read_at.where(~at_post, pd.to_datetime(campaigns["posted_at"], utc=True))
    examples = pd.DataFrame(
        {
            "influencer": campaigns["influencer"].to_numpy(),
            "cutoff": campaigns["posted_at"].to_numpy(),
            "followers_read_at": read_at.to_numpy(),
        }
    )
    return _example_set(compute_features(profiles, posts, examples), campaigns, followers)


def _example_set(base: pd.DataFrame, targets: pd.DataFrame, followers: np.ndarray) -> ExampleSet:
    """Examples on the features ``base``, labelled by the engagement of the ``targets`` posts
    (one per row of ``base``) per follower of ``followers``."""
    n_inter = interactions(targets)
    return ExampleSet(
        base=base,
        label=log_er(n_inter, followers),
        target_er=(n_inter / followers).to_numpy(dtype="float64"),
        target_time=targets["posted_at"].reset_index(drop=True),
    )
