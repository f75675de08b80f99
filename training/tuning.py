"""Optional hyper-parameter search with Optuna, on training rows only.

Each trial fits on one part of the given training examples and is scored (MAE of log ER) on a
held-out part of the same examples, split by influencer; held-out evaluation folds are never
seen, because the caller passes only a training fold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.examples import ExampleSet
from training.fitting import influencer_holdout, new_model

# The loop a counting progress hook is told about (training.evaluation.report_step), by the name
# a progress bar shows: one bar, restarted for each model fitted with tuning.
TUNING_TRIALS = "Optuna trials"


def tune_params(
    train: ExampleSet,
    config: TrainConfig,
    step: Callable[[str, int, int], None] = lambda task, done, total: None,
) -> dict[str, Any]:
    """The best LightGBM parameters of ``config.tune_trials`` Optuna trials on ``train``;
    ``step(TUNING_TRIALS, done, total)`` is called before the first trial and after each one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    valid = influencer_holdout(train.base["influencer"], config.validation_share, config.seed + 2)
    fit_part, valid_part = train.subset(~valid), train.subset(valid)

    def objective(trial: optuna.Trial) -> float:
        params = {
            **config.lgbm_params,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }
        model = new_model(config, params).fit(
            fit_part.base,
            fit_part.label,
            valid=(valid_part.base, valid_part.label),
            num_boost_round=config.num_boost_round,
            early_stopping_rounds=config.early_stopping_rounds,
        )
        return float(np.mean(np.abs(model.predict_log(valid_part.base) - valid_part.label)))

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed)
    )
    step(TUNING_TRIALS, 0, config.tune_trials)
    study.optimize(
        objective,
        n_trials=config.tune_trials,
        callbacks=[lambda study, _: step(TUNING_TRIALS, len(study.trials), config.tune_trials)],
    )
    return {**config.lgbm_params, **study.best_params}
