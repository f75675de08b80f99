"""Per-run reductions (features.segments) against pandas' groupby, which they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import segments
from features.segments import Segments

# Sorted example numbers (gaps allowed: examples without rows have no run) with values, some NaN.
runs = st.lists(
    st.tuples(st.integers(0, 6), st.one_of(st.floats(-20, 5), st.just(np.nan))),
    min_size=1,
    max_size=60,
).map(lambda rows: sorted(rows, key=lambda r: r[0]))


def _frame(rows: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["example", "value"])


@settings(max_examples=60, deadline=None)
@given(runs)
def test_reductions_match_pandas_groupby(rows: list[tuple[int, float]]) -> None:
    frame = _frame(rows)
    seg = Segments.of_sorted(frame["example"].to_numpy())
    g = frame.groupby("example", sort=True)["value"]
    complete = (
        frame["value"].fillna(0.0).to_numpy()
    )  # the non-NaN-skipping reductions get complete data
    gc = pd.Series(complete).groupby(frame["example"].to_numpy(), sort=True)

    assert seg.example.tolist() == list(g.size().index)
    assert seg.size.tolist() == g.size().tolist()
    np.testing.assert_allclose(
        seg.nanmean(frame["value"].to_numpy()), g.mean().to_numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        seg.nansum(frame["value"].to_numpy()), g.sum(min_count=1).to_numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(seg.mean(complete), gc.mean().to_numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(seg.std(complete), gc.std(ddof=1).to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(seg.median(complete), gc.median().to_numpy())
    np.testing.assert_array_equal(seg.max(complete), gc.max().to_numpy())
    np.testing.assert_array_equal(seg.min(complete), gc.min().to_numpy())
    np.testing.assert_array_equal(seg.last(complete), gc.last().to_numpy())
    np.testing.assert_array_equal(seg.rank(), gc.cumcount().to_numpy())
    mask = (np.arange(len(frame)) % 3 == 0) | (frame["value"].to_numpy() > -5)
    masked = frame["value"].where(mask).groupby(frame["example"], sort=True).mean()
    np.testing.assert_allclose(
        seg.masked_mean(frame["value"].to_numpy(), mask), masked.to_numpy(), rtol=1e-12, atol=1e-12
    )


def test_median_is_the_same_on_the_small_and_the_large_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    example = np.sort(rng.integers(0, 300, 3_000))
    values = rng.normal(size=len(example)).round(
        2
    )  # ties within runs, the hard case for a selection
    seg = Segments.of_sorted(example)
    small = seg.median(values)
    monkeypatch.setattr(segments, "SMALL_INPUT_ROWS", 0)  # force the pandas path
    np.testing.assert_array_equal(seg.median(values), small)


def test_spread_places_runs_at_their_examples_and_fills_the_rest() -> None:
    seg = Segments.of_sorted(np.array([1, 1, 4]))
    np.testing.assert_array_equal(
        seg.spread(seg.size.astype(float), 6, fill=0.0), [0, 2, 0, 0, 1, 0]
    )
    assert np.isnan(seg.spread(seg.size.astype(float), 6)[[0, 2, 3, 5]]).all()


def test_empty_input_gives_no_runs() -> None:
    seg = Segments.of_sorted(np.array([], dtype="int64"))
    assert len(seg) == 0
    assert seg.sum(np.array([])).shape == (0,)
    assert seg.median(np.array([])).shape == (0,)


def test_unsorted_examples_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted by example"):
        Segments.of_sorted(np.array([2, 1]))
