"""The baselines the model must beat (training/baselines.py), on hand-made and real examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training_fixtures import creators_with_levels
from training.baselines import Persistence, RidgeBaseline, TierNicheMedian, all_baselines
from training.examples import post_examples


def _base() -> tuple[pd.DataFrame, np.ndarray]:
    base = pd.DataFrame(
        {
            "tier": ["micro", "micro", "micro", "mega", "mega"],
            "category": ["food", "food", "pet", "food", "food"],
            "log_er_median": [-3.0, np.nan, -2.0, np.nan, -5.0],
        }
    )
    return base, np.array([-3.0, -4.0, -1.0, -6.0, -8.0])


def test_tier_niche_median_falls_back_to_the_tier_then_to_everyone():
    base, y = _base()
    baseline = TierNicheMedian().fit(base, y)
    asked = pd.DataFrame(
        {
            "tier": ["micro", "micro", "mega", "nano"],
            "category": ["food", "pet", "pet", "food"],  # mega/pet and nano were never seen
        }
    )
    expected = [
        -3.5,  # micro/food: median of -3 and -4
        -1.0,  # micro/pet
        -7.0,  # mega has no pet: the tier's median
        -4.0,  # nano is unknown: everyone's median
    ]
    np.testing.assert_allclose(baseline.predict_log(asked), expected)


def test_persistence_is_the_own_median_else_the_tier_niche_median():
    base, y = _base()
    baseline = Persistence().fit(base, y)
    np.testing.assert_allclose(baseline.predict_log(base), [-3.0, -3.5, -2.0, -7.0, -5.0])


@pytest.fixture(scope="module")
def examples():
    data = creators_with_levels(60)
    return post_examples(data.profiles, data.posts)


def test_ridge_learns_from_the_base_features(examples):
    ridge = RidgeBaseline().fit(examples.base, examples.label)
    predicted = ridge.predict_log(examples.base)
    assert np.isfinite(predicted).all()
    # The creators' own levels are in their history: ridge explains most of the label's spread.
    residual = np.mean((examples.label - predicted) ** 2)
    assert residual < 0.5 * np.var(examples.label)
    # A niche it never saw is scored, not refused.
    unseen = examples.base.head(3).assign(category="gaming")
    assert np.isfinite(ridge.predict_log(unseen)).all()


def test_every_baseline_gets_an_interval_around_its_prediction(examples):
    names = []
    for baseline in all_baselines():
        baseline.fit(examples.base, examples.label).calibrate(
            examples.base, examples.label, level=0.8
        )
        predicted = baseline.predict_log(examples.base)
        low, high = baseline.predict_log_interval(examples.base, predicted)
        assert (low <= predicted).all() and (predicted <= high).all()
        covered = np.mean((examples.label >= low) & (examples.label <= high))
        assert 0.7 <= covered <= 0.9, baseline.name  # calibrated on these rows: about 80 %
        names.append(baseline.name)
    assert names == ["tier_niche_median", "persistence", "ridge"]
