"""features.tables: each helper gives what the pandas call it stands for gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.tables import has_text, text_values, value_codes


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["b", "a", None, "b"], dtype="string[pyarrow]"),  # arrow text, one missing
        pd.Series(["b", "a", None, "b"], dtype=object),  # Python objects
        pd.Series([2.0, 1.0, np.nan, 2.0]),  # numbers
    ],
)
def test_value_codes_index_the_distinct_values_as_text(values):
    code, distinct = value_codes(values)
    # In order of appearance; the missing cell is a value of its own, not dropped.
    assert code.dtype == np.int64
    assert code.tolist() == [0, 1, 2, 0]
    assert distinct[:2] == [str(values[0]), str(values[1])]
    assert len(distinct) == 3


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["x", None, " y "], dtype="string[pyarrow]"),  # arrow text: its own values
        pd.Series(["x", None, " y "], dtype=object),
        pd.Series([1.5, np.nan, 3.0]),  # numbers as astype("string") writes them
        pd.Series([True, None, False], dtype="boolean"),
    ],
)
def test_text_values_are_astype_string_as_python_values(values):
    expected = [None if pd.isna(v) else v for v in values.astype("string")]
    assert text_values(values) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series(["x", " ", None, "\t y"], dtype="string[pyarrow]"), [True, False, False, True]),
        (pd.Series(["x", "", None, "y "], dtype=object), [True, False, False, True]),
        (pd.Series([0.0, np.nan]), [True, False]),  # a number is text; a missing cell is not
    ],
)
def test_has_text_is_anything_but_whitespace(values, expected):
    assert has_text(values).tolist() == expected
