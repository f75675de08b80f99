"""Hyper-parameter search (training/tuning.py): a seeded Optuna search over LightGBM's options."""

from __future__ import annotations

from tests.training_fixtures import creators_with_levels
from training.config import TrainConfig
from training.examples import post_examples
from training.tuning import tune_params

TUNED = ("learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction", "lambda_l2")


def test_tuning_returns_the_configs_params_with_the_best_trials_values_and_is_seeded():
    data = creators_with_levels(40)
    examples = post_examples(data.profiles, data.posts)
    config = TrainConfig(n_topics=2, tune_trials=3, num_boost_round=20, early_stopping_rounds=5)
    params = tune_params(examples, config)
    # Every option the config sets is kept; the searched ones are within their ranges.
    assert {k: v for k, v in params.items() if k not in TUNED} == {
        k: v for k, v in config.lgbm_params.items() if k not in TUNED
    }
    assert 0.01 <= params["learning_rate"] <= 0.1
    assert 7 <= params["num_leaves"] <= 127
    assert 10 <= params["min_data_in_leaf"] <= 200
    assert 0.4 <= params["feature_fraction"] <= 1.0
    assert 1e-3 <= params["lambda_l2"] <= 30.0
    assert tune_params(examples, config) == params  # same seed, same search
