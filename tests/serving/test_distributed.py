"""Batch scoring on Dask (serving/distributed.py) against the predictor and the pandas fees."""

from __future__ import annotations

from functools import partial

import pandas as pd
import pytest

from features.distributed import read_parquet_any
from serving.distributed import score_dask
from serving.planner import add_fee_columns, apply_fees, check_fees
from serving.predictor import STATUS_NO_PROFILE, load_model
from tests.conftest import NOW
from tests.dask_fixtures import AS_OF, by_influencer, fee_table

dd = pytest.importorskip("dask.dataframe")


def _fail_in_one_bucket(table: pd.DataFrame) -> pd.DataFrame:
    if len(table) and table["influencer"].astype(str).str.endswith("7").any():
        raise RuntimeError("worker lost mid-write")
    return table


def test_a_failed_worker_publishes_no_part(dask_cluster, trained, small_data, tmp_path):
    predictor = load_model(trained.model_dir)
    with pytest.raises(RuntimeError, match="worker lost mid-write"):
        score_dask(
            predictor,
            dd.from_pandas(small_data.profiles.head(200), npartitions=2),
            dd.from_pandas(small_data.posts, npartitions=2),
            tmp_path / "scores",
            as_of=AS_OF,
            now=NOW,
            npartitions=4,
            finish=_fail_in_one_bucket,
        )
    assert list(tmp_path.iterdir()) == []  # neither the other buckets' parts nor the staging folder


# --------------------------------------------------------------------------- scoring


def test_batch_scores_identical_to_the_predictor(dask_cluster, trained, small_data, tmp_path):
    predictor = load_model(trained.model_dir)
    profiles, posts = small_data.profiles.head(400), small_data.posts
    expected = predictor.predict(profiles, posts, AS_OF, now=NOW)
    frame, _ = score_dask(
        predictor,
        dd.from_pandas(profiles, npartitions=2),
        dd.from_pandas(posts, npartitions=2),
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
    )
    # dtype aside (dd.from_pandas stores text as pyarrow strings, so the key column's dtype follows)
    pd.testing.assert_frame_equal(
        by_influencer(frame.compute()),
        by_influencer(expected),
        check_exact=False,
        rtol=0,
        atol=1e-12,
        check_dtype=False,
    )

    n, _ = score_dask(
        predictor,
        dd.from_pandas(profiles, npartitions=2),
        dd.from_pandas(posts, npartitions=2),
        tmp_path / "scores",
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
    )
    assert n == len(expected) == len(read_parquet_any(tmp_path / "scores"))


def test_batch_fees_equal_the_pandas_engines(dask_cluster, trained, small_data):
    predictor = load_model(trained.model_dir)
    profiles, posts = small_data.profiles.head(400), small_data.posts
    fees = check_fees(fee_table(profiles), "fees.csv")
    shortlist = fees.table["influencer"].tolist()
    expected, _ = apply_fees(
        predictor.score(profiles, posts, AS_OF, shortlist=shortlist, now=NOW).table, fees
    )
    frame, _ = score_dask(
        predictor,
        dd.from_pandas(profiles, npartitions=2),
        dd.from_pandas(posts, npartitions=2),
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
        shortlist=shortlist,
        finish=partial(add_fee_columns, fees=fees),
    )
    got = by_influencer(frame.compute())
    assert (
        len(got) == len(expected) == len(shortlist)
    )  # the name without a profile: one row, not one per bucket
    assert got.loc[got["influencer"] == "nobody-at-all", "status"].tolist() == [STATUS_NO_PROFILE]
    columns = [
        "influencer",
        "status",
        "expected_engagements",
        "fee",
        "currency",
        "cost_per_engagement",
    ]
    pd.testing.assert_frame_equal(
        got[columns],
        by_influencer(expected)[columns],
        check_exact=False,
        rtol=0,
        atol=1e-12,
        check_dtype=False,
    )
    assert got["cost_per_engagement"].notna().sum() == len(shortlist) - 2
