"""The feature engine's primitives (features.engine) against the plain pandas or numpy they stand
in for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.mark.parametrize("n_rows", [0, 1, 50])
def test_take_text_from_chunks_matches_arrow_take(n_rows):
    import pyarrow as pa

    from features.engine import take_text

    column = pa.chunked_array([pa.array(["a|b", "", "c"]), pa.array(["d"]), pa.array(["e", "f|g"])])
    rows = np.random.default_rng(n_rows).integers(0, len(column), n_rows)
    expected = column.take(pa.array(rows, type=pa.int64())).combine_chunks()
    assert take_text(column, rows).equals(expected)
    assert take_text(column.combine_chunks(), rows).equals(expected)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2**40)), max_size=200),
    st.sampled_from([1, 1_000, 1_000_000_000]),
)
def test_stable_order_is_lexsort(rows, unit):
    # The packed sort must give exactly the stable (example, time) order, ties in input order.
    from features.engine import stable_order

    example = np.array([r[0] for r in rows], dtype=np.int64)
    t = np.array([r[1] for r in rows], dtype=np.int64) * unit
    np.testing.assert_array_equal(stable_order(example, t), np.lexsort((t, example)))


def test_stable_order_when_times_must_be_cut():
    # 2^30 examples and 2^17 rows leave 17 bits for time: times are cut to their leading bits and
    # posts sharing a cut time are put in order by their full time afterwards.
    from features.engine import stable_order

    rng = np.random.default_rng(3)
    n = 1 << 17
    example = rng.integers(0, 2**30, n // 4).repeat(4)  # four posts per example, close in time
    t = rng.integers(0, 2**45, n) // 3 * 3
    t[1::4] = t[::4] + 5  # some within a cut step of each other ...
    t[2::4] = t[::4]  # ... and some tied, which must stay in input order
    np.testing.assert_array_equal(stable_order(example, t), np.lexsort((t, example)))


def test_take_rows_matches_pandas_take():
    from features import engine

    frame = pd.DataFrame(
        {
            "posted_at": pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC"),
            "likes": np.arange(6),
            "shares": pd.array([1, None, 3, None, 5, 6], dtype="Int64"),
            "is_sponsored": [True, False] * 3,
        }
    )
    rows = np.array([5, 0, 3, 3])
    expected = frame.take(rows).reset_index(drop=True).assign(example=[1, 2, 3, 4])
    got = engine.take_rows(frame, list(frame.columns), rows, example=np.array([1, 2, 3, 4]))
    pd.testing.assert_frame_equal(got, expected)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_strictly_before_the_cutoff_to_the_nanosecond_in_any_stored_unit(unit):
    from features.engine import epoch_nanoseconds, strictly_before

    posted = pd.Series(
        pd.to_datetime(["2024-01-01 00:00:01", "2024-01-01 00:00:02", None], utc=True)
    ).astype(f"datetime64[{unit}, UTC]")
    at = pd.Timestamp("2024-01-01 00:00:02", tz="UTC").value
    cutoffs = np.array([at - 1, at, at + 1])
    for cutoff in cutoffs:
        expected = epoch_nanoseconds(posted) < cutoff  # the plain nanosecond comparison
        np.testing.assert_array_equal(strictly_before(posted, np.full(3, cutoff)), expected)
    assert strictly_before(posted, np.full(3, at)).tolist()[:2] == [True, False]


@pytest.mark.parametrize("is_sorted", [True, False])
@pytest.mark.parametrize("slice_items", [2, 1 << 14])
def test_count_pairs_is_a_groupby_size(is_sorted, slice_items, monkeypatch):
    import pyarrow as pa

    from features import engine

    monkeypatch.setattr(engine, "HASHTAG_HASH_TAGS", slice_items)
    rng = np.random.default_rng(3)
    example = rng.integers(0, 6, 60)
    example = np.sort(example) if is_sorted else example
    items = [f"t{i}" for i in rng.integers(0, 5, 60)]
    counts, pair_example = engine.count_pairs(example, pa.array(items), is_sorted)
    expected = (
        pd.DataFrame({"e": example, "item": items})
        .groupby(["e", "item"], sort=False)
        .size()
        .reset_index()
        .sort_values("e", kind="stable")
    )
    np.testing.assert_array_equal(pair_example, expected["e"])
    np.testing.assert_array_equal(counts, expected[0])


@pytest.mark.parametrize("is_sorted", [True, False])
def test_join_per_example_is_a_groupby_join(is_sorted):
    import pyarrow as pa

    from features.engine import join_per_example

    example = np.array([1, 1, 3, 4, 4, 4]) if is_sorted else np.array([4, 1, 4, 3, 1, 4])
    items = ["a", "b", "c", "d", "e", "f"]
    got = join_per_example(pa.array(items), example, (0, 6), " ", is_sorted).to_pylist()
    joined = pd.Series(items).groupby(example).agg(" ".join)
    assert got == [joined.get(e, "") for e in range(6)]


def test_whole_example_chunks_end_between_examples():
    from features.engine import whole_example_chunks

    example = np.array([0, 0, 0, 2, 2, 5, 6, 6])
    chunks = list(whole_example_chunks(example, 8, step=2))
    assert chunks == [(0, 3, 1), (3, 5, 3), (5, 8, 7)]
    assert list(whole_example_chunks(np.array([2, 0, 1]), 4, step=1)) == [(0, 3, 4)]
    assert list(whole_example_chunks(np.array([], dtype=np.int64), 4, step=1)) == []
