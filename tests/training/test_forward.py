"""The forward protocol (training/forward.py) and the model's start from the creator's own level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training_fixtures import creators_with_levels
from training.config import TrainConfig
from training.evaluation import fit_model
from training.examples import post_examples
from training.forward import (
    MIN_POSTS,
    RATE_FLOOR,
    creator_errors,
    evaluate_forward,
    evaluate_forward_all,
    forward_report,
    forward_set,
    forward_split,
    paired_bootstrap,
)


def test_split_puts_no_creator_on_both_sides():
    data = creators_with_levels()
    split = forward_split(data.posts, seed=0)
    assert not set(split.train) & set(split.evaluate)
    assert set(split.train) | set(split.evaluate) == set(data.posts["influencer"])
    n_posts = data.posts.groupby("influencer").size()
    # only creators with enough posts are evaluated; 60 % of them train
    assert (n_posts[list(split.evaluate)] >= MIN_POSTS).all()
    long = (n_posts >= MIN_POSTS).sum()
    assert len(split.evaluate) == long - round(long * 0.6)
    # seeded: the same split every time, another with another seed
    assert list(forward_split(data.posts, seed=0).evaluate) == list(split.evaluate)
    assert list(forward_split(data.posts, seed=1).evaluate) != list(split.evaluate)


def test_history_holds_no_later_post_and_the_label_is_the_later_median():
    data = creators_with_levels()
    creators = forward_split(data.posts, seed=0).evaluate
    test = forward_set(data, creators)
    followers = data.profiles.set_index("influencer")["followers"]
    for row, name in enumerate(test.base["influencer"]):
        own = data.posts[data.posts["influencer"] == name].sort_values("posted_at")
        n_history = int(np.floor(len(own) * 0.7))
        history, later = own.iloc[:n_history], own.iloc[n_history:]
        assert test.base["cutoff"].iloc[row] == later["posted_at"].iloc[0]
        assert test.base["n_history_posts"].iloc[row] == n_history  # not one later post
        rate = (later["likes"] + later["comments"]) / followers[name]
        assert test.label[row] == pytest.approx(np.log(max(rate.median(), RATE_FLOOR)))
        past = (history["likes"] + history["comments"]) / followers[name]
        assert test.persistence[row] == pytest.approx(np.log(max(past.median(), RATE_FLOOR)))
    # The follower counts were read at the scrape (the newest post), as in training's examples.
    scrape = data.posts["posted_at"].max()
    age = (scrape - test.base["cutoff"]).dt.total_seconds() / 86_400
    np.testing.assert_allclose(test.base["follower_count_age_days"], age)


def test_report_puts_persistence_beside_the_model():
    data = creators_with_levels()
    test = forward_set(data, forward_split(data.posts, seed=0).evaluate)

    def perfect(base):  # predicts each creator's later median exactly (model scale)
        pred = test.label + 0.0
        return pred, pred - 1.0, pred + 1.0

    report = forward_report(perfect, test, seed=0)
    assert report["model"]["mae_log_er"] < 0.05  # only the +1 pseudo-interaction separates them
    assert report["mae_gain"] == pytest.approx(
        report["persistence"]["mae_log_er"] - report["model"]["mae_log_er"]
    )
    lo, hi = report["mae_gain_90ci"]
    assert lo <= report["mae_gain"] <= hi
    assert 0.0 <= report["model"]["coverage_80_posts"] <= 1.0
    model = report["model"]
    c_lo, c_hi = model["coverage_80_mature_posts_90ci"]
    assert c_lo <= model["coverage_80_mature_posts"] <= c_hi
    for tier in model["by_tier"].values():
        assert 0.0 <= tier["coverage_80_mature_posts"] <= 1.0


@pytest.mark.parametrize(
    ("gain", "expected"),
    [
        (np.full(50, 0.2), [0.2, 0.2]),  # no spread: the interval is the value
        (np.array([]), None),  # nothing to resample
    ],
)
def test_paired_bootstrap(gain, expected):
    lo, hi = paired_bootstrap(gain, seed=0)
    if expected is None:
        assert np.isnan(lo) and np.isnan(hi)
    else:
        assert [lo, hi] == pytest.approx(expected)


def test_a_saved_model_is_evaluated_forward_on_every_long_creator():
    data = creators_with_levels(60)
    examples = post_examples(data.profiles, data.posts)
    model = fit_model(
        examples, TrainConfig(n_topics=2, num_boost_round=50, early_stopping_rounds=10)
    )
    report = evaluate_forward_all(model, data, seed=0)
    n_long = int((data.posts.groupby("influencer").size() >= MIN_POSTS).sum())
    assert report["n_creators"] == n_long
    assert {"model", "persistence", "mae_gain", "mae_gain_90ci"} <= set(report)
    few = evaluate_forward_all(model, creators_with_levels(5), seed=0)
    assert "fewer than 10 creators" in few["skipped"]


def test_features_in_batches_equal_the_features_at_once(monkeypatch):
    import training.examples as examples_module

    data = creators_with_levels(30)
    at_once = post_examples(data.profiles, data.posts)
    monkeypatch.setattr(examples_module, "MAX_PAIRS_PER_BATCH", 40)  # a few creators a batch
    batched = post_examples(data.profiles, data.posts)
    pd.testing.assert_frame_equal(batched.base, at_once.base)
    np.testing.assert_array_equal(batched.label, at_once.label)


def test_creator_errors_are_the_forward_reports_errors_creator_by_creator():
    data = creators_with_levels()
    creators = forward_split(data.posts, seed=0).evaluate

    class Constant:  # predicts the same log ER for everyone, with a +-1 interval
        def predict_log(self, base):
            return np.full(len(base), -3.0)

        def predict_log_interval(self, base, predicted):
            return predicted - 1.0, predicted + 1.0

    errors = creator_errors(Constant(), forward_set(data, creators))
    report = evaluate_forward(Constant(), data, creators, seed=0)
    assert sorted(errors.index) == sorted(creators)
    assert errors.mean() == pytest.approx(report["model"]["mae_log_er"])
