"""Column-wise table helpers shared by the features, the model pipeline and serving.

Public API of ``features`` for code outside it (serving's REST input, the predictor's peer
percentiles): each does what one pandas call does, with fewer of pandas' fixed costs per call,
which a request of a few dozen rows pays in full. (Rows are taken with
:func:`features.engine.take_rows`.)

* :func:`value_codes`: each cell's code into the column's distinct values, and those as text;
* :func:`text_values`: a column's cells as Python text (None for missing);
* :func:`has_text`: which cells hold something besides whitespace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from features.keys import own_arrow_text


def value_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each cell's code into the column's distinct values (in order of appearance, a missing
    cell one value of its own), and ``str`` of those values: for work done once per value, not
    once per row."""
    code, uniques = pd.factorize(values, use_na_sentinel=False)
    return code.astype("int64"), [str(value) for value in uniques]


def text_values(values: pd.Series) -> list[str | None]:
    """``values.astype("string")`` as Python values (None for missing), without pandas' copy for
    arrow text: numbers and flags become text as ``astype`` writes them (str)."""
    arrow = own_arrow_text(values)
    if arrow is not None:
        return arrow.to_pylist()
    missing = values.isna().to_numpy(dtype=bool)
    return [
        None if gone else str(value)
        for value, gone in zip(values.to_numpy(dtype=object), missing, strict=True)
    ]


def has_text(values: pd.Series) -> np.ndarray:
    """Cells with something besides whitespace (``.str.strip()`` removes arrow's whitespace)."""
    arrow = own_arrow_text(values)
    if arrow is None:
        text = values.astype("string")
        arrow = own_arrow_text(text)
        if arrow is None:
            return (text.str.strip().fillna("") != "").to_numpy(dtype=bool)
    stripped = pc.utf8_trim_whitespace(arrow)
    return pc.not_equal(stripped, "").fill_null(False).to_numpy(zero_copy_only=False)
