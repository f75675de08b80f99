"""Per-example reductions over rows sorted by example, in plain numpy.

:func:`features.aggregate.history_posts` returns each example's posts as one contiguous run
(sorted by example, then time). Every history feature is a reduction over those runs, so
``np.add.reduceat`` and friends compute it in one pass without hashing the keys again, as a
pandas groupby would for each of the ~20 aggregates. Their fixed cost per call is far
below a groupby's, which matters as much for one candidate scored over REST
as the pass itself does for ten million posts.

Reductions skip NaN the way pandas' groupby does (mean of the non-missing values; NaN when a
run has none) where a column may hold missing cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Below this many rows a lexsort beats pandas' fixed cost per groupby.
SMALL_INPUT_ROWS = 20_000


@dataclass(frozen=True)
class Segments:
    """Contiguous runs of rows that share an example number.

    Attributes
    ----------
    example
        The example number of each run, ascending (examples without rows have no run).
    start, size
        First row and number of rows of each run.
    row_segment
        For every row, the number of its run (0 .. n_runs - 1).
    """

    example: np.ndarray
    start: np.ndarray
    size: np.ndarray
    row_segment: np.ndarray

    @classmethod
    def of_sorted(cls, example: np.ndarray) -> Segments:
        """Runs of a non-decreasing ``example`` array; raises if it is not sorted."""
        example = np.asarray(example, dtype="int64")
        if len(example) > 1 and (example[1:] < example[:-1]).any():
            raise ValueError("rows must be sorted by example")
        new_run = np.empty(len(example), dtype=bool)
        new_run[:1] = True
        np.not_equal(example[1:], example[:-1], out=new_run[1:])
        start = np.flatnonzero(new_run)
        size = np.diff(np.append(start, len(example)))
        return cls(example[start], start, size, np.cumsum(new_run) - 1)

    def __len__(self) -> int:
        return len(self.start)

    # ------------------------------------------------------------------
    # reductions (one value per run)

    def sum(self, values: np.ndarray) -> np.ndarray:
        if len(self) == 0:
            return np.zeros(0, dtype="float64")
        return np.add.reduceat(np.asarray(values, dtype="float64"), self.start)

    def mean(self, values: np.ndarray) -> np.ndarray:
        return self.sum(values) / self.size

    def nanmean(self, values: np.ndarray) -> np.ndarray:
        """Mean of the non-missing values of each run (NaN when there are none)."""
        values = np.asarray(values, dtype="float64")
        return self._mean_where(values, ~np.isnan(values))

    def masked_mean(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean of the non-missing ``values`` where ``mask`` holds, per run (NaN when none).

        The same sums as ``nanmean(np.where(mask, values, np.nan))``, without the NaN pass over a
        copy.
        """
        values = np.asarray(values, dtype="float64")
        mask = np.asarray(mask, dtype=bool)
        missing = np.isnan(values)
        return self._mean_where(values, mask & ~missing if missing.any() else mask)

    def _mean_where(self, values: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Mean of ``values`` where ``present`` holds, per run (NaN when it never holds)."""
        count = self.sum(present)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, self.sum(np.where(present, values, 0.0)) / count, np.nan)

    def nansum(self, values: np.ndarray) -> np.ndarray:
        """Sum of the non-missing values (NaN when a run has none: pandas' ``min_count=1``)."""
        values = np.asarray(values, dtype="float64")
        present = ~np.isnan(values)
        return np.where(self.sum(present) > 0, self.sum(np.where(present, values, 0.0)), np.nan)

    def min(self, values: np.ndarray) -> np.ndarray:
        return (
            np.minimum.reduceat(values, self.start)
            if len(self)
            else np.zeros(0, dtype=np.asarray(values).dtype)
        )

    def max(self, values: np.ndarray) -> np.ndarray:
        return (
            np.maximum.reduceat(values, self.start)
            if len(self)
            else np.zeros(0, dtype=np.asarray(values).dtype)
        )

    def last(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[self.start + self.size - 1]

    def std(self, values: np.ndarray) -> np.ndarray:
        """Sample standard deviation (ddof=1), two-pass for accuracy; NaN for single-row runs."""
        values = np.asarray(values, dtype="float64")
        deviation = values - self.mean(values)[self.row_segment]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.size > 1, np.sqrt(self.sum(deviation * deviation) / (self.size - 1)), np.nan
            )

    def median(self, values: np.ndarray) -> np.ndarray:
        """Median of each run (mean of the two middle values for even sizes)."""
        values = np.asarray(values, dtype="float64")
        if len(self) == 0:
            return np.zeros(0, dtype="float64")
        if len(values) > SMALL_INPUT_ROWS:
            # pandas' groupby median selects within each
            # group in C, cheaper than sorting all rows.
            return (
                pd.Series(values)
                .groupby(self.row_segment, sort=True)
                .median()
                .to_numpy(dtype="float64")
            )
        ordered = values[np.lexsort((values, self.row_segment))]
        low = self.start + (self.size - 1) // 2
        high = self.start + self.size // 2
        return (ordered[low] + ordered[high]) / 2.0

    def rank(self) -> np.ndarray:
        """Position of each row within its run (0 for the first)."""
        return np.arange(len(self.row_segment)) - self.start[self.row_segment]

    def spread_sizes(self, n_examples: int) -> np.ndarray:
        """Rows per example as floats, NaN for examples without rows."""
        return self.spread(self.size.astype("float64"), n_examples)

    def spread(self, per_run: np.ndarray, n_examples: int, fill: float = np.nan) -> np.ndarray:
        """Per-run values placed at their example numbers in an array of ``n_examples``."""
        out = np.full(n_examples, fill, dtype="float64")
        out[self.example] = per_run
        return out
