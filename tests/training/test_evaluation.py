"""Fitting and evaluating (training/evaluation.py): the time split, reproducible folds,
progress, the forecast pairs that calibrate the interval, and the planned post."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from features.contract import validate
from features.pipeline import creator_cell_weights, interval_group
from tests.model_fixtures import SmallData, fast_config
from tests.training_fixtures import TOY_NOW, creators_with_levels, toy_posts, toy_profiles
from training.config import TrainConfig
from training.evaluation import cross_validate, fit_model, horizon_pairs, time_split
from training.examples import ExampleSet, post_examples


def test_calibration_pairs_look_ahead_within_a_creator_only():
    data = creators_with_levels(20)
    examples = post_examples(data.profiles, data.posts)
    forecast, target = horizon_pairs(examples)
    influencer = examples.base["influencer"].to_numpy()
    assert (influencer[forecast] == influencer[target]).all()  # never another creator's post
    assert (
        examples.target_time.to_numpy()[target] >= examples.target_time.to_numpy()[forecast]
    ).all()
    # every example is scored on its own target, and at most 0.43 x its history further on
    assert set(zip(forecast, target, strict=True)) >= {(i, i) for i in range(len(examples))}
    ahead = pd.Series(1, index=forecast).groupby(level=0).sum() - 1
    n_history = examples.base["n_history_posts"].to_numpy()
    assert (ahead.to_numpy() <= np.floor(0.43 * n_history[ahead.index])).all()
    assert ahead.max() > 0
    # calibration weighs each creator once in each interval group, however many pairs it has
    groups = interval_group(examples.base).to_numpy()[forecast]
    weight = creator_cell_weights(influencer[forecast], groups)
    totals = pd.Series(weight).groupby([influencer[forecast], groups]).sum()
    np.testing.assert_allclose(totals.to_numpy(), 1.0)


def test_time_split_keeps_holdout_influencers_out_of_training():
    data = validate(toy_profiles(), toy_posts(), now=TOY_NOW)
    ex = post_examples(data.profiles, data.posts, targets_per_influencer=3)
    train, test = time_split(ex, 0.4)
    assert not set(ex.base["influencer"][train]) & set(ex.base["influencer"][test])
    assert ex.target_time[test].min() >= ex.target_time[train].max()


@dataclass(frozen=True)
class PlainCV:
    """One cross-validation of the small data, without a progress hook, shared by the tests
    that compare a second run with it (each run trains every fold)."""

    examples: ExampleSet
    config: TrainConfig
    metrics: dict


@pytest.fixture(scope="module")
def plain_cv(small_data: SmallData, tmp_path_factory: pytest.TempPathFactory) -> PlainCV:
    clean = validate(small_data.profiles, small_data.posts)
    examples = post_examples(clean.profiles, clean.posts)
    config = fast_config(tmp_path_factory.mktemp("cv"))
    return PlainCV(examples, config, cross_validate(examples, config)[0])


def test_same_seed_same_metrics(plain_cv: PlainCV):
    again, _ = cross_validate(plain_cv.examples, plain_cv.config)
    assert again == plain_cv.metrics


def test_a_counting_progress_hook_gets_every_fold(plain_cv: PlainCV):
    from training.evaluation import CV_FOLDS
    from training.train import ProgressPrinter

    ex, config = plain_cv.examples, plain_cv.config
    steps: list[tuple[str, int, int]] = []
    messages: list[str] = []

    class Counting(ProgressPrinter):
        def __call__(self, message: str) -> None:
            messages.append(message)

    counted, _ = cross_validate(ex, config, Counting(steps=lambda *step: steps.append(step)))
    assert steps == [(CV_FOLDS, k, config.n_folds) for k in range(config.n_folds + 1)]
    assert len(messages) == config.n_folds  # the messages as before
    assert counted == plain_cv.metrics  # counting changes nothing


def test_a_counting_progress_hook_gets_every_tuning_trial(small_data: SmallData, tmp_path):
    from training.train import ProgressPrinter
    from training.tuning import TUNING_TRIALS

    clean = validate(small_data.profiles, small_data.posts)
    ex = post_examples(clean.profiles, clean.posts)
    config = fast_config(tmp_path, tune_trials=3, num_boost_round=30)
    steps: list[tuple[str, int, int]] = []
    counting = ProgressPrinter(stream=io.StringIO(), steps=lambda *step: steps.append(step))
    counted = fit_model(ex, config, progress=counting)
    assert steps == [(TUNING_TRIALS, k, 3) for k in range(4)]
    # counting changes nothing: the same trials pick the same parameters
    assert counted.metadata["lgbm_params"] == fit_model(ex, config).metadata["lgbm_params"]


def test_the_forecast_is_for_the_planned_post_where_training_saw_such_posts():
    """Sponsored posts engage e times more than the creator's organic ones in these data: a
    forecast for a sponsored post is higher than one for an organic post, for the same creator
    at the same time, and by about that much."""
    from features.aggregate import compute_features, examples_at

    rng = np.random.default_rng(3)
    profiles, posts = [], []
    for i in range(240):
        name = f"s{i:03d}"
        followers = int(rng.integers(5_000, 500_000))
        level = rng.normal(np.log(0.03), 0.8)
        profiles.append({"influencer": name, "followers": followers, "category": "food"})
        for j in range(12):
            sponsored = bool(rng.random() < 0.35)
            rate = np.exp(level + 1.0 * sponsored + rng.normal(0, 0.2))
            posts.append(
                {
                    "influencer": name,
                    "post_id": f"{name}-{j}",
                    "posted_at": pd.Timestamp("2020-01-01", tz="UTC") + pd.Timedelta(days=5 * j),
                    "likes": int(rate * followers),
                    "comments": int(rate * followers / 20),
                    "is_sponsored": sponsored,
                }
            )
    data = validate(
        pd.DataFrame(profiles), pd.DataFrame(posts), now=pd.Timestamp("2021-01-01", tz="UTC")
    )
    examples = post_examples(data.profiles, data.posts)
    config = TrainConfig(n_topics=2, num_boost_round=300, early_stopping_rounds=30)
    model = fit_model(examples, config)
    at = examples_at(data.profiles, pd.Timestamp("2020-12-01", tz="UTC"))
    organic = compute_features(data.profiles, data.posts, at.assign(sponsored=False))
    paid = compute_features(data.profiles, data.posts, at.assign(sponsored=True))
    gap = model.predict_log(paid) - model.predict_log(organic)
    assert (gap >= 0).all() and 0.6 < float(np.median(gap)) < 1.3
