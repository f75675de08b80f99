"""The one training configuration (training/config.py): what a run logs as its parameters."""

from __future__ import annotations

from pathlib import Path

from training.config import DEFAULT_LGBM_PARAMS, TrainConfig


def test_params_are_flat_with_lightgbm_options_prefixed_and_paths_as_text():
    config = TrainConfig(models_dir=Path("somewhere/models"), lgbm_params={"num_leaves": 7})
    params = config.as_params()
    assert params["lgbm.num_leaves"] == 7 and "lgbm_params" not in params
    assert params["models_dir"] == "somewhere/models"
    assert params["n_folds"] == 5


def test_a_tracking_uris_credentials_are_not_in_the_params():
    config = TrainConfig(tracking_uri="https://engage:s3cret@mlflow.example.com/")
    assert config.as_params()["tracking_uri"] == "https://***@mlflow.example.com/"
    assert config.tracking_uri == "https://engage:s3cret@mlflow.example.com/"  # used to connect


def test_each_config_has_its_own_lightgbm_options():
    first, second = TrainConfig(), TrainConfig()
    first.lgbm_params["num_leaves"] = 3
    assert second.lgbm_params == DEFAULT_LGBM_PARAMS and DEFAULT_LGBM_PARAMS["num_leaves"] == 31
