"""Reasons (serving/explain.py): a readable phrase for every feature, the largest pulled out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving import Predictor, load_model
from serving.explain import phrase_pair, reasons
from tests.serving_fixtures import ServingModel


@pytest.fixture(scope="session")
def predictor(served: ServingModel) -> Predictor:
    return load_model(served.model_dir)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("log_er_median", "own past engagement above peers"),  # directional phrase
        (
            "hashtag_topics",
            "choice of hashtag themes raises the estimate",
        ),  # the learned topics, pooled
        ("brand_new_feature", "brand new feature raises the estimate"),  # generic fallback
        ("category", "{} niche engages above average"),  # categorical: value filled in later
    ],
)
def test_every_feature_name_has_a_readable_phrase(name, fragment):
    assert phrase_pair(name)[0] == fragment


def test_every_model_feature_has_its_own_phrase(predictor):
    from serving.explain import CATEGORICAL, DIRECTIONAL, LABELS

    known = set(DIRECTIONAL) | set(LABELS) | set(CATEGORICAL)
    assert [
        n for n in predictor.model.feature_names_ if n not in known and not n.startswith("topic_")
    ] == []


def test_reasons_pick_the_largest_contributions_and_pool_missing_history():
    contributions = pd.DataFrame(
        {
            "log_er_median": [0.42, -0.30],
            "log_followers": [-0.10, 0.05],
            "category": [0.20, 0.01],
            "er_trend": [0.01, -0.25],
            "bias": [-3.0, -3.0],
        }
    )
    base = pd.DataFrame(
        {
            "n_history_posts": [5.0, 0.0],
            "log_er_median": [-3.0, np.nan],
            "er_trend": [0.1, np.nan],
            "category": ["travel", "food"],
        }
    )
    got = reasons(contributions, base)
    assert (
        got[0] == "own past engagement above peers (+0.42); travel niche engages "
        "above average (+0.20); larger audience than typical (-0.10)"
    )
    # No history: the two missing history features are one reason, summed (-0.30 - 0.25).
    assert (
        got[1] == "no post history (-0.55); smaller audience than typical "
        "(+0.05); food niche engages above average (+0.01)"
    )


def test_reasons_pool_the_hashtag_topics_into_one_plain_reason():
    # Two small topic contributions of one sign add up
    # to the largest reason; none is named by number.
    contributions = pd.DataFrame(
        {"topic_0": [0.15], "topic_7": [0.12], "log_followers": [-0.2], "bias": [-3.0]}
    )
    base = pd.DataFrame({"n_history_posts": [5.0], "log_followers": [9.0]})
    got = reasons(contributions, base)[0]
    assert (
        got == "choice of hashtag themes raises the estimate "
        "(+0.27); larger audience than typical (-0.20)"
    )
    assert "topic" not in got
