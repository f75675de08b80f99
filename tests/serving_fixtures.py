"""One small trained model shared by the serving test modules, and a synthetic scored table.

Training takes about a minute, so the result is cached in this module: every serving test
module defines a session-scoped fixture calling :func:`serving_model`, and all get the same
model whichever runs first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.planner import apply_fees, check_fees, summarise
from serving.predictor import STATUS_COLD, STATUS_OK, STATUS_ZERO_FOLLOWERS
from serving.report import ModelIdentity, ReportContext
from tests.model_fixtures import SmallData, train_small, write_small_data
from training.train import TrainingResult

_CACHE: dict[str, ServingModel] = {}


@dataclass
class ServingModel:
    data: SmallData
    result: TrainingResult
    folder: Path

    @property
    def model_dir(self) -> Path:
        return self.result.model_dir

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"


def serving_model(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    if "model" not in _CACHE:
        folder = tmp_path_factory.mktemp("serving_model")
        data = write_small_data(folder / "data", n_influencers=1000)
        # Fewer rounds than model_fixtures' default: these tests exercise code paths, not quality.
        _CACHE["model"] = ServingModel(data, train_small(folder, data, num_boost_round=80), folder)
    return _CACHE["model"]


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    """The one small trained model the serving tests share (conftest makes it every module's)."""
    return serving_model(tmp_path_factory)


def shortlist(
    data: SmallData, n_with_posts: int = 12, n_without: int = 4
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw (text) profiles and posts of a few candidates with posts and a few without."""
    has_posts = data.profiles["influencer"].isin(data.posts["influencer"])
    profiles = pd.concat(
        [data.profiles[has_posts].head(n_with_posts), data.profiles[~has_posts].head(n_without)],
        ignore_index=True,
    )
    posts = data.posts[data.posts["influencer"].isin(profiles["influencer"])].reset_index(drop=True)
    return profiles, posts


def scored_table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A table shaped like :meth:`Predictor.score`
    output: history lengths 0-30, one unscored row."""
    rng = np.random.default_rng(seed)
    followers = np.exp(rng.uniform(np.log(2e3), np.log(3e6), n))
    history = rng.choice([0, 2, 8, 30], n).astype(float)
    er = np.exp(rng.normal(np.log(0.03), 0.8, n))
    width = np.select([history == 0, history < 5, history < 15], [1.2, 0.9, 0.7], 0.5)
    table = pd.DataFrame(
        {
            "influencer": [f"creator_{i:03d}" for i in range(n)],
            "predicted_er": er,
            "er_low": er * np.exp(-width),
            "er_high": er * np.exp(width),
            "expected_engagements": er * followers,
            "engagements_p10": er * np.exp(-width) * followers,
            "engagements_p50": er * followers,
            "engagements_p90": er * np.exp(width) * followers,
            "target_engagements": 5000.0,
            "p_reach": rng.uniform(0, 1, n),
            "expected_views": np.nan,
            "predicted_er_per_view": np.nan,
            "history_posts": history,
            "tier": "micro",
            "category": "food",
            "followers": followers,
            "peer_percentile": rng.uniform(0, 100, n),
            "reasons": "own past engagement above peers (+0.42); choice "
            "of hashtag themes lowers the estimate (-0.11)",
            "has_history": (history > 0).astype(object),
            "status": np.where(history > 0, STATUS_OK, STATUS_COLD).astype(object),
            "as_of": "2019-05-20T00:00:00Z",
        }
    )
    figures = [
        "predicted_er",
        "er_low",
        "er_high",
        "expected_engagements",
        "engagements_p10",
        "engagements_p50",
        "engagements_p90",
        "p_reach",
        "peer_percentile",
        "history_posts",
    ]
    table.loc[n - 1, figures] = np.nan
    table.loc[n - 1, ["followers", "status"]] = [0.0, STATUS_ZERO_FOLLOWERS]
    return table


def with_fees(table: pd.DataFrame, currency: str = "EUR") -> pd.DataFrame:
    fees = check_fees(
        pd.DataFrame(
            {
                "influencer": table["influencer"],
                "fee": (table["followers"] * 0.01 + 50).round(0).astype(str),
                "currency": currency,
            }
        )
    )
    return apply_fees(table, fees)[0]


def context(table: pd.DataFrame, top: int | None = None, **extra: object) -> ReportContext:
    identity = ModelIdentity(
        version="20261202T010000Z-abc123",
        name="engagement",
        number="3",
        alias="champion",
        trained_on=("2012-08-20", "2019-05-15"),
        resolved="models:/engagement@champion",
    )
    kept = table.head(top) if top else table
    return ReportContext(
        model=identity, as_of="2019-05-20 00:00 UTC", top=top, summary=summarise(kept), **extra
    )  # type: ignore[arg-type]
