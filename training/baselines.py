"""Baselines the model must beat, fitted and scored on exactly the same splits as the model.

* ``tier_niche_median``: the median label of training examples of the same tier and niche
  (what a benchmark table gives), falling back to the tier, then to everyone;
* ``persistence``: the influencer's own median historical log ER (what analytics dashboards
  show), or the tier x niche median when there is no history;
* ``ridge``: a ridge regression on the same base features (imputed, one-hot niches).

Each gets the same conformal interval treatment as the model, calibrated on the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.aggregate import NUMERIC_FEATURES
from features.pipeline import calibrated_interval, interval_group
from features.transformers import lookup_pairs


class Baseline:
    name = "baseline"

    def fit(self, base: pd.DataFrame, y: np.ndarray) -> Baseline:
        raise NotImplementedError

    def predict_log(self, base: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def calibrate(
        self,
        base: pd.DataFrame,
        y: np.ndarray,
        level: float,
        pairs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Baseline:
        """The model's calibration
        (:func:`features.pipeline.calibrated_interval`), on the same rows."""
        self.interval_ = calibrated_interval(level, self.predict_log(base), base, y, pairs)
        return self

    def predict_log_interval(
        self, base: pd.DataFrame, predicted: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.interval_.bounds(
            predicted, interval_group(base), self.interval_.row_scale(base)
        )


class TierNicheMedian(Baseline):
    name = "tier_niche_median"

    def fit(self, base: pd.DataFrame, y: np.ndarray) -> TierNicheMedian:
        labels = pd.Series(np.asarray(y, dtype="float64"), index=base.index)
        self.pair_ = (
            labels.groupby([base["tier"].astype(str), base["category"].astype(str)])
            .median()
            .to_dict()
        )
        self.tier_ = labels.groupby(base["tier"].astype(str)).median().to_dict()
        self.global_ = float(labels.median())
        return self

    def predict_log(self, base: pd.DataFrame) -> np.ndarray:
        return lookup_pairs(base, self.pair_, self.tier_, self.global_)


class Persistence(Baseline):
    name = "persistence"

    def fit(self, base: pd.DataFrame, y: np.ndarray) -> Persistence:
        self.fallback_ = TierNicheMedian().fit(base, y)
        return self

    def predict_log(self, base: pd.DataFrame) -> np.ndarray:
        own = base["log_er_median"].to_numpy(dtype="float64")
        return np.where(np.isfinite(own), own, self.fallback_.predict_log(base))


class RidgeBaseline(Baseline):
    name = "ridge"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, base: pd.DataFrame, y: np.ndarray) -> RidgeBaseline:
        numeric = [c for c in NUMERIC_FEATURES if base[c].notna().any()]
        self.columns_ = numeric
        prep = ColumnTransformer(
            [
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                    ),
                    numeric,
                ),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["tier", "category"]),
            ]
        )
        self.model_ = make_pipeline(prep, Ridge(alpha=self.alpha)).fit(
            self._frame(base), np.asarray(y, dtype="float64")
        )
        return self

    def _frame(self, base: pd.DataFrame) -> pd.DataFrame:
        frame = base[[*self.columns_, "tier", "category"]].copy()
        frame[self.columns_] = (
            frame[self.columns_].astype("float64").replace([np.inf, -np.inf], np.nan)
        )
        frame[["tier", "category"]] = frame[["tier", "category"]].astype(str)
        return frame

    def predict_log(self, base: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(self._frame(base))


def all_baselines() -> list[Baseline]:
    return [TierNicheMedian(), Persistence(), RidgeBaseline()]
