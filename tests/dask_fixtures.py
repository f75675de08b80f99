"""A local Dask cluster and inputs shared by the Dask engine's test modules.

Worker processes, not threads: LightGBM's distributed training keeps its network state per
process, so two threaded workers in one process would share (and break) it. The cluster is
module-scoped: each module that asks for it starts its own and stops it at its end.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.aggregate import compute_features, examples_at
from features.contract import validate
from tests.conftest import NOW

AS_OF = pd.Timestamp("2019-06-01", tz="UTC")


@pytest.fixture(scope="module")
def dask_cluster():
    from features.distributed import dask_client

    with dask_client(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GB") as c:
        yield c


def write_parts(frame: pd.DataFrame, folder: Path, n_files: int) -> Path:
    """``frame`` as ``n_files`` Parquet files (rows in input order, split evenly)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    step = -(-len(frame) // n_files)
    for i in range(n_files):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i}.parquet")
    return folder


@pytest.fixture(scope="module")
def parquet_data(tmp_path_factory: pytest.TempPathFactory, small_data) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("parquet")
    return write_parts(small_data.profiles, root / "profiles", 2), write_parts(
        small_data.posts, root / "posts", 3
    )


def pandas_features(profiles: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    data = validate(profiles, posts, now=NOW)
    return compute_features(data.profiles, data.posts, examples_at(data.profiles, AS_OF, now=NOW))


def by_influencer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("influencer", kind="stable").reset_index(drop=True)


def campaigns_frame(small_data, n: int = 300) -> pd.DataFrame:
    """A campaigns table as read from CSV: some influencers' own posts as campaign posts (several
    for some influencers), plus campaigns of influencers without posts (cold start)."""
    posts = small_data.posts.sample(n, random_state=1)
    with_posts = pd.DataFrame(
        {
            "influencer": posts["influencer"],
            "campaign_id": [f"c{i}" for i in range(n)],
            "posted_at": posts["posted_at"],
            "likes": posts["likes"],
            "comments": posts["comments"],
        }
    )
    cold = small_data.profiles[
        ~small_data.profiles["influencer"].isin(small_data.posts["influencer"])
    ].head(20)
    without = pd.DataFrame(
        {
            "influencer": cold["influencer"],
            "campaign_id": "cold",
            "posted_at": "2019-05-01T00:00:00Z",
            "likes": "120",
            "comments": "4",
        }
    )
    frame = pd.concat([with_posts, without], ignore_index=True).astype(str)
    frame["followers_at_post"] = ""
    frame.loc[::7, "followers_at_post"] = "50000"  # overrides the profile's followers for the label
    return frame.mask(frame == "")


def fee_table(profiles: pd.DataFrame) -> pd.DataFrame:
    """Fees for some candidates, one without a fee, one name without a profile."""
    names = profiles["influencer"].iloc[::13].tolist()
    fees = pd.DataFrame(
        {
            "influencer": [*names, "nobody-at-all"],
            "fee": [str(100 + 37 * i) for i in range(len(names) + 1)],
            "currency": "EUR",
        }
    )
    fees.loc[1, "fee"] = None
    return fees
