"""Planner-facing checks on a saved model and the embedded data (figures for the README).

1. Leaving out an optional column: how far each one moves the predictions (the median and the
   90th percentile of |change|, and the share moved by more than 10 %).
2. Interval width by tier and history band: do wider ranges go with less history?

Usage: python scripts/planner_checks.py [--model REF] [--influencers N] [--as-of 2019-05-16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import read_table
from serving.predictor import load_model

DATA = Path(__file__).resolve().parents[1] / "data" / "instagram"
DROPPED = {
    "profiles": ["posts_count", "following", "verified", "category"],
    "posts": ["hashtags", "caption", "media_type", "is_sponsored"],
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models:/engagement@champion")
    parser.add_argument("--tracking-uri")
    parser.add_argument(
        "--influencers", type=int, default=4000, help="profiles with posts to score (seeded sample)"
    )
    parser.add_argument("--as-of", default="2019-05-16")
    args = parser.parse_args()

    predictor = load_model(args.model, tracking_uri=args.tracking_uri)
    profiles, posts = read_table(DATA / "profiles.csv.gz"), read_table(DATA / "posts.csv.gz")
    has_posts = profiles["influencer"].isin(posts["influencer"])
    # Candidates with posts, and a quarter as many without (cold starts, for the width table).
    with_posts = pd.concat(
        [
            profiles[has_posts].sample(args.influencers, random_state=0),
            profiles[~has_posts].sample(args.influencers // 4, random_state=0),
        ]
    )
    posts = posts[posts["influencer"].isin(with_posts["influencer"])]
    as_of = pd.Timestamp(args.as_of, tz="UTC")

    def predict(p: pd.DataFrame, q: pd.DataFrame) -> pd.DataFrame:
        return predictor.predict(p, q, as_of, explain=False).set_index("influencer")

    full = predict(with_posts, posts)
    print(
        f"model {predictor.version}; {len(full)} influencers "
        f"({int((full['history_posts'] > 0).sum())} with earlier posts), as of {args.as_of}\n"
    )
    print("column left out | median |change| | 90th percentile | share moved > 10 %")
    for table, columns in DROPPED.items():
        for column in columns:
            if column not in (with_posts if table == "profiles" else posts):
                print(f"{table}.{column} | not in the embedded data")
                continue
            p = with_posts.drop(columns=[column]) if table == "profiles" else with_posts
            q = posts.drop(columns=[column]) if table == "posts" else posts
            shifted = predict(p, q)["predicted_er"].reindex(full.index)
            change = (shifted / full["predicted_er"] - 1).abs().dropna()
            print(
                f"{table}.{column} | {100 * change.median():.1f} % | "
                f"{100 * change.quantile(0.9):.1f} % | {100 * (change > 0.1).mean():.0f} %"
            )

    bands = pd.cut(
        full["history_posts"], [-1, 0, 4, 14, np.inf], labels=["cold", "1-4", "5-14", "15+"]
    )
    width = np.log(full["er_high"] / full["er_low"])
    table = width.groupby([full["tier"], bands], observed=True).median().unstack()
    counts = width.groupby([full["tier"], bands], observed=True).size().unstack()
    print("\nmedian interval width, ln(high / low), by tier and earlier posts (n in brackets)")
    print("tier | " + " | ".join(str(c) for c in table.columns))
    for tier, row in table.iterrows():
        print(
            f"{tier} | "
            + " | ".join(
                f"{v:.2f} ({counts.loc[tier, c]:.0f})" if np.isfinite(v) else ""
                for c, v in row.items()
            )
        )


if __name__ == "__main__":
    main()
