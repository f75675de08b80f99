"""Key lookups and text hashes (features/keys.py) against the pandas calls they stand for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.aggregate import feature_table


def test_parallel_key_lookup_gives_the_serial_result(tiny, cutoff, monkeypatch):
    # Big inputs look keys up in slices on several threads; force that path on the tiny data.
    from features import keys

    serial = feature_table(tiny.profiles, tiny.posts, cutoff)
    monkeypatch.setattr(keys, "PARALLEL_LOOKUP_ROWS", 0)
    monkeypatch.setattr(keys.os, "cpu_count", lambda: 3)  # more slices than rows per slice
    pd.testing.assert_frame_equal(feature_table(tiny.profiles, tiny.posts, cutoff), serial)


@pytest.mark.parametrize("parallel", [False, True])
def test_key_lookup_over_arrow_chunks_is_get_indexer(parallel, monkeypatch):
    # Posts read from Parquet are arrow text in several chunks (row groups): each chunk is looked
    # up as it is, without joining them first.
    import pyarrow as pa

    from features import keys

    if parallel:
        monkeypatch.setattr(keys, "PARALLEL_LOOKUP_ROWS", 0)
    chunked = pa.chunked_array(
        [pa.array(["b", "x", "a"]), pa.array([], pa.string()), pa.array(["a", "c"])]
    )
    values = pd.Series(pd.arrays.ArrowStringArray(chunked))
    profile_keys = pd.Series(["a", "b", "c"], dtype="string[pyarrow]")
    expected = pd.Index(["a", "b", "c"]).get_indexer(["b", "x", "a", "a", "c"])
    np.testing.assert_array_equal(keys.positions_in(profile_keys, values), expected)
    np.testing.assert_array_equal(keys.positions_in(profile_keys, values.iloc[:0]), [])


def test_text_hashes_are_stable_and_find_repeats():
    from features.keys import HASH_SLICE_ROWS, repeated, text_hashes

    values = pd.Series(["a", "b", "", None, "ab", "a", "ba", "é", "x" * 300, ""], dtype="string")
    hashes = text_hashes(values)
    assert repeated(hashes).tolist() == [
        True,
        False,
        True,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert len(set(hashes[[0, 1, 2, 4, 6, 7, 8]])) == 7
    as_objects = text_hashes(values.astype(object))  # Python strings: same hashes as arrow text
    assert (as_objects == hashes).all()
    # Slices of a long column hash as the whole does.
    long = pd.Series(
        np.tile(values.fillna("z").to_numpy(), HASH_SLICE_ROWS // 5 + 1), dtype="string"
    )
    assert (text_hashes(long)[: len(values)] == text_hashes(long.iloc[: len(values)])).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.text(max_size=12), st.text(alphabet="ab_0123456789", max_size=80)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 7),
)
def test_text_hashes_agree_between_the_padded_and_the_byte_paths(values, slice_rows):
    # ASCII slices are hashed 8 bytes at a time from arrow's zero-padded copy, the others byte by
    # byte: a string must get the same hash whichever slice (and so whichever path) it falls in.
    from features import keys

    series = pd.Series(values, dtype="string[pyarrow]")
    hashes = keys.text_hashes(series)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keys, "PADDED_HASH_MAX_BYTES", -1)  # every slice byte by byte
        np.testing.assert_array_equal(keys.text_hashes(series), hashes)
        patch.setattr(keys, "PADDED_HASH_MAX_BYTES", 64)
        patch.setattr(keys, "HASH_SLICE_ROWS", slice_rows)  # mixed slices, different paddings
        np.testing.assert_array_equal(keys.text_hashes(series), hashes)
    by_text: dict[str, int] = {}
    for value, h in zip(values, hashes.tolist(), strict=True):
        if value is None:
            assert h == 0
        else:
            assert by_text.setdefault(value, h) == h  # equal strings, equal hashes
