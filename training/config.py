"""The one typed training configuration, passed explicitly to every training function."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from features.artifact import redact

DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "objective": "huber",
    "alpha": 0.6,
    "learning_rate": 0.03,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_cat_to_onehot": 16,
}


@dataclass
class TrainConfig:
    """Everything a training run depends on; logged to MLflow as parameters."""

    seed: int = 0
    n_folds: int = 5
    interval_level: float = 0.8
    calibration_share: float = 0.25  # held out of each training fold to calibrate the interval
    validation_share: float = 0.15  # held out of the rest for early stopping
    holdout_share: float = (
        0.2  # latest share of examples (by target time) for the time-ordered holdout
    )
    num_boost_round: int = 3000
    early_stopping_rounds: int = 100
    prior_strength: float | None = None  # None: learned by empirical Bayes
    n_topics: int = 12
    targets_per_influencer: int = 0  # 0: every mature post is a target (rolling cutoffs)
    tune_trials: int = 0
    lgbm_params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_LGBM_PARAMS))
    models_dir: Path = Path("models")
    tracking_uri: str | None = None
    experiment: str = "engage"
    registered_model: str = "engagement"
    promote: bool = False

    def as_params(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k != "lgbm_params"}
        flat.update({f"lgbm.{k}": v for k, v in self.lgbm_params.items()})
        # Logged to MLflow and stored in the model: a tracking URI's credentials never are.
        flat["tracking_uri"] = redact(self.tracking_uri)
        return {k: str(v) if isinstance(v, Path) else v for k, v in flat.items()}
