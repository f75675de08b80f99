"""Build the embedded default data set (data/instagram/) from ../shared/data/instagram.

Handles and post shortcodes are replaced by keyed hashes (HMAC-SHA256) under a random key that is
generated for the run and never written anywhere, so the ids are stable across both tables but
the handle cannot be recovered from them. Captions are dropped; counts, times, categories, media
type, sponsorship, hashtags and Instagram's automatic image description are kept. The known mess
of the source (duplicated posts, misspelled categories, orphan posts) is kept on purpose.

Usage: python scripts/make_embedded_data.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
from pathlib import Path

import pandas as pd


def pseudonym(key: bytes, prefix: str):
    def encode(value: str) -> str:
        return prefix + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:12]

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="../shared/data/instagram")
    parser.add_argument("--out", default="data/instagram")
    args = parser.parse_args()
    source, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    key = os.urandom(32)  # deliberately not saved: the mapping must not be recoverable
    handle = pseudonym(key, "inf_")
    post = pseudonym(key, "p_")

    profiles = pd.read_csv(source / "influencers.csv", dtype=str, keep_default_na=False)
    posts = pd.read_csv(source / "posts.csv", dtype=str, keep_default_na=False)

    profiles["influencer"] = profiles["influencer"].map(handle)
    posts["influencer"] = posts["influencer"].map(handle)
    posts["post_id"] = posts["post_id"].map(post)
    keep = [
        "influencer",
        "post_id",
        "posted_at",
        "likes",
        "comments",
        "media_type",
        "is_sponsored",
        "hashtags",
        "image_description",
    ]
    posts = posts[keep]

    profiles.to_csv(
        out / "profiles.csv.gz",
        index=False,
        compression={"method": "gzip", "compresslevel": 9, "mtime": 0},
    )
    posts.to_csv(
        out / "posts.csv.gz",
        index=False,
        compression={"method": "gzip", "compresslevel": 9, "mtime": 0},
    )
    for name in ("profiles.csv.gz", "posts.csv.gz"):
        print(f"{out / name}: {(out / name).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
