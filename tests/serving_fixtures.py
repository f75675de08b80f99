"""One small trained model shared by the serving test modules (test_serving*.py, test_rest.py).

Training takes about a minute, so the result is cached in this module: every serving test
module defines a session-scoped fixture calling :func:`serving_model`, and all get the same
model whichever runs first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

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
