"""Leakage-safe training examples: an influencer at a cutoff, with the label from what follows.

Default (post histories): each influencer's latest post is the target and the posts strictly
before it are the history; an influencer with one post is a cold-start example with profile
features only. ``targets_per_influencer > 1`` also uses earlier posts as targets (rolling
cutoffs), each with only the posts before it as history.

Campaign mode: each row of a campaigns table is an example whose label is that campaign
post's engagement rate, with features as of its ``posted_at``.

The target post never reaches the features: the cutoff is its own timestamp and history is
strictly earlier, so its likes, comments, caption and hashtags cannot leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.aggregate import compute_features
from features.contract import (
    MAX_ROWS_LISTED,
    DataValidationError,
    Problem,
    ValidationReport,
    _as_count,
    _check_columns,
    _problem,
    as_text,
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
    def has_history(self) -> np.ndarray:
        return self.base["n_history_posts"].to_numpy() > 0

    def subset(self, mask: np.ndarray) -> ExampleSet:
        idx = np.flatnonzero(mask)
        return ExampleSet(self.base.iloc[idx].reset_index(drop=True), self.label[idx], self.target_er[idx], self.target_time.iloc[idx].reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.label)


def latest_post_examples(profiles: pd.DataFrame, posts: pd.DataFrame, targets_per_influencer: int = 1) -> ExampleSet:
    """Each influencer's latest post(s) as targets, earlier posts as history."""
    followers = profiles.set_index("influencer")["followers"]
    ordered = posts.sort_values(["influencer", "posted_at", "post_id"], kind="stable")
    from_end = ordered.groupby("influencer").cumcount(ascending=False)
    targets = ordered[from_end < targets_per_influencer].reset_index(drop=True)
    target_followers = targets["influencer"].map(followers).to_numpy(dtype="float64")
    examples = pd.DataFrame({"influencer": targets["influencer"].to_numpy(), "cutoff": targets["posted_at"].to_numpy()})
    base = compute_features(profiles, posts, examples)
    n_inter = interactions(targets)
    return ExampleSet(
        base=base,
        label=log_er(n_inter, target_followers),
        target_er=(n_inter / target_followers).to_numpy(dtype="float64"),
        target_time=targets["posted_at"].reset_index(drop=True),
    )


def validate_campaigns(frame: pd.DataFrame, file: str, known_influencers: pd.Series) -> pd.DataFrame:
    """Check a campaign results table; raise DataValidationError naming file, column and rows."""
    report = ValidationReport()
    table = "campaigns"
    report.rows_in[table] = len(frame)
    frame = frame.rename(columns=lambda c: str(c).strip())
    if not _check_columns(table, file, frame, CAMPAIGN_REQUIRED, report):
        raise DataValidationError(report)
    out = pd.DataFrame(index=frame.index)
    for col in ("influencer", "campaign_id"):
        out[col] = as_text(frame[col])
        p = _problem(table, file, col, out[col].isna().to_numpy(dtype=bool), f"missing {col}", fatal=True)
        if p:
            report.add(p)
    out["posted_at"] = parse_timestamps(frame["posted_at"])
    p = _problem(table, file, "posted_at", out["posted_at"].isna().to_numpy(dtype=bool), "missing or unparseable timestamp", fatal=True)
    if p:
        report.add(p)
    for col in ("likes", "comments"):
        out[col] = _as_count(table, file, frame, col, report, required=True)
    for col in ("shares", "saves", "views", "followers_at_post"):
        if col in frame:
            out[col] = _as_count(table, file, frame, col, report, required=False)
    if "followers_at_post" in out:
        p = _problem(table, file, "followers_at_post", (out["followers_at_post"] == 0).to_numpy(dtype=bool), "zero followers at post time", fatal=True)
        if p:
            report.add(p)
    unknown = ~out["influencer"].isin(known_influencers) & out["influencer"].notna()
    rows = np.flatnonzero(unknown.to_numpy()) + 1
    if len(rows):
        report.add(Problem(table, file, "influencer", rows[:MAX_ROWS_LISTED].tolist(), len(rows), "campaign influencer has no profile", True))
    dup = out.duplicated(subset=["influencer", "campaign_id"], keep="first")
    p = _problem(table, file, "campaign_id", dup.to_numpy(dtype=bool), "duplicate (influencer, campaign_id)", fatal=True)
    if p:
        report.add(p)
    if report.fatal:
        raise DataValidationError(report)
    return out.reset_index(drop=True)


def campaign_examples(profiles: pd.DataFrame, posts: pd.DataFrame, campaigns: pd.DataFrame) -> ExampleSet:
    """One example per campaign row: features as of its posted_at, label its engagement rate."""
    followers = campaigns["influencer"].map(profiles.set_index("influencer")["followers"]).to_numpy(dtype="float64")
    if "followers_at_post" in campaigns:
        followers = np.where(campaigns["followers_at_post"].notna(), campaigns["followers_at_post"], followers)
    examples = pd.DataFrame({"influencer": campaigns["influencer"].to_numpy(), "cutoff": campaigns["posted_at"].to_numpy()})
    base = compute_features(profiles, posts, examples)
    n_inter = interactions(campaigns)
    return ExampleSet(
        base=base,
        label=log_er(n_inter, followers),
        target_er=(n_inter / followers).to_numpy(dtype="float64"),
        target_time=campaigns["posted_at"].reset_index(drop=True),
    )
