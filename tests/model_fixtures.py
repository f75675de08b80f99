"""Shared fixtures that train a small real model once per test session.

Registered as a pytest plugin from conftest.py. The model is trained on a slice of the
embedded data with few folds and rounds: it is for exercising code paths, not for quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from features.contract import validate
from serving.schema import package_model
from training.config import TrainConfig
from training.train import TrainingResult, run_training

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "data" / "instagram"


@dataclass
class SmallData:
    profiles: pd.DataFrame  # raw (unvalidated) contract tables
    posts: pd.DataFrame
    profiles_path: Path
    posts_path: Path


def write_small_data(folder: Path, n_influencers: int = 2500, seed: int = 0) -> SmallData:
    """A reproducible slice of the embedded data (influencers with posts, plus some without)."""
    profiles = pd.read_csv(EMBEDDED / "profiles.csv.gz", dtype=str, keep_default_na=False)
    posts = pd.read_csv(EMBEDDED / "posts.csv.gz", dtype=str, keep_default_na=False)
    with_posts = profiles[profiles["influencer"].isin(posts["influencer"])].sample(
        n_influencers, random_state=seed
    )
    without = profiles[~profiles["influencer"].isin(posts["influencer"])].sample(
        100, random_state=seed
    )
    small_profiles = pd.concat([with_posts, without], ignore_index=True)
    small_posts = posts[posts["influencer"].isin(small_profiles["influencer"])].reset_index(
        drop=True
    )
    folder.mkdir(parents=True, exist_ok=True)
    profiles_path, posts_path = folder / "profiles.csv", folder / "posts.csv"
    small_profiles.to_csv(profiles_path, index=False)
    small_posts.to_csv(posts_path, index=False)
    return SmallData(small_profiles, small_posts, profiles_path, posts_path)


def load_small_data(folder: Path) -> SmallData:
    """The slice :func:`write_small_data` wrote to ``folder``, read back (e.g. in a subprocess)."""
    profiles_path, posts_path = folder / "profiles.csv", folder / "posts.csv"
    profiles = pd.read_csv(profiles_path, dtype=str, keep_default_na=False)
    posts = pd.read_csv(posts_path, dtype=str, keep_default_na=False)
    return SmallData(profiles, posts, profiles_path, posts_path)


def fast_config(folder: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "n_folds": 2,
        "num_boost_round": 150,
        "early_stopping_rounds": 20,
        "n_topics": 4,
        "models_dir": folder / "models",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def train_small(folder: Path, data: SmallData, **overrides: object) -> TrainingResult:
    clean = validate(data.profiles, data.posts)
    config = fast_config(folder, **overrides)
    return run_training(
        clean,
        {"profiles": data.profiles_path, "posts": data.posts_path},
        config,
        package=package_model,
        progress=lambda _: None,
    )


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> SmallData:
    return write_small_data(tmp_path_factory.mktemp("small_data"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, small_data: SmallData) -> TrainingResult:
    """One trained model for the session: ``trained.model_dir`` is a complete models/<version>."""
    return train_small(tmp_path_factory.mktemp("trained"), small_data)
