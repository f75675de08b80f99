"""The engagement definition (features/engagement.py): interactions and the log rate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.engagement import ER_DEFINITION, engagement_rate, er_from_log, interactions, log_er

# ----------------------------------------------------------------- engagement definition


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"likes": 10.0, "comments": 2.0}, 12.0),  # Instagram: likes + comments
        (
            {"likes": 10.0, "comments": 2.0, "shares": 3.0, "saves": 4.0},
            19.0,
        ),  # shares and saves count
        (
            {"likes": 10.0, "comments": 2.0, "shares": np.nan, "saves": 4.0},
            16.0,
        ),  # a missing share counts 0
        ({"likes": 0.0, "comments": 0.0}, 0.0),  # zero engagement
    ],
)
def test_interactions(row, expected):
    assert interactions(pd.DataFrame([row])).iloc[0] == expected


def test_log_er_and_inverse():
    # ln((interactions + 1) / followers); zero interactions stay finite
    assert log_er(np.array([99.0]), np.array([1000.0]))[0] == pytest.approx(math.log(0.1))
    assert np.isfinite(log_er(np.array([0.0]), np.array([1e6]))).all()
    assert engagement_rate(np.array([30.0]), np.array([1000.0]))[0] == pytest.approx(0.03)
    assert er_from_log(log_er(np.array([30.0]), np.array([1000.0])), np.array([1000.0]))[
        0
    ] == pytest.approx(0.03)
    assert "shares" in ER_DEFINITION and "saves" in ER_DEFINITION
