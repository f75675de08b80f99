"""Shared fixtures: a tiny hand-made data set in the contract, and the embedded data paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract import ValidatedData, validate

REPO_ROOT = Path(__file__).resolve().parents[1]
# A fixed "now" so that future-timestamp checks do not depend on the machine's clock.
NOW = pd.Timestamp("2020-06-01", tz="UTC")
CUTOFF = pd.Timestamp("2020-01-10", tz="UTC")


def raw_profiles_frame() -> pd.DataFrame:
    """Profiles as a CSV reader gives them (all text): three influencers, one without posts."""
    return pd.DataFrame(
        {
            "influencer": ["ana", "ben", "cara"],
            "followers": ["5000", "200000", "1000000"],
            "following": ["500", "100", "10"],
            "posts_count": ["10", "3", "0"],
            "category": ["fashion", "travel", "food"],
            "verified": ["false", "true", "false"],
        }
    )


def raw_posts_frame() -> pd.DataFrame:
    """Posts as text. ana: 4 posts (Jan 1-7), ben: 2 posts with shares/saves, cara: none.

    Two more posts of ana's sit exactly at and after :data:`CUTOFF`, with huge counts, so any
    leak past the cutoff shows in every feature.
    """
    rows = [
        # influencer, post_id, posted_at, likes, comments,
        # shares, saves, is_sponsored, hashtags, media_type
        ("ana", "a1", "2020-01-01T00:00:00Z", "99", "0", "", "", "false", "x|y", "image"),
        ("ana", "a2", "2020-01-03T00:00:00Z", "49", "10", "", "", "true", "x", "carousel"),
        ("ana", "a3", "2020-01-05T00:00:00Z", "0", "0", "", "", "false", "", "image"),
        ("ana", "a4", "2020-01-07T00:00:00Z", "199", "50", "", "", "true", "x|z", "video"),
        (
            "ben",
            "b1",
            "2020-01-02T00:00:00Z",
            "1000",
            "99",
            "500",
            "400",
            "false",
            "travel|sea",
            "image",
        ),
        (
            "ben",
            "b2",
            "2020-01-08T00:00:00Z",
            "3000",
            "199",
            "0",
            "800",
            "false",
            "travel|sea",
            "image",
        ),
        ("ana", "a5", "2020-01-10T00:00:00Z", "999999", "99999", "", "", "true", "leak", "video"),
        (
            "ana",
            "a6",
            "2020-01-20T00:00:00Z",
            "888888",
            "8888",
            "",
            "",
            "true",
            "leak|late",
            "video",
        ),
    ]
    cols = [
        "influencer",
        "post_id",
        "posted_at",
        "likes",
        "comments",
        "shares",
        "saves",
        "is_sponsored",
        "hashtags",
        "media_type",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    # Empty text means a missing cell, as read_table reads it.
    return frame.mask(frame == "")


def planned_data():
    profiles = pd.DataFrame({"influencer": ["vid", "pics", "new"], "followers": [5000, 5000, 5000]})
    posts = pd.DataFrame(
        {
            "influencer": ["vid"] * 3 + ["pics"] * 3,
            "post_id": [f"p{i}" for i in range(6)],
            "posted_at": [f"2020-0{m}-01T00:00:00Z" for m in (1, 2, 3, 1, 2, 3)] + [],
            "likes": [100] * 6,
            "comments": [5] * 6,
            "media_type": ["video", "reel", "image", "image", "carousel", "image"],
            "is_sponsored": [False] * 6,
        }
    )
    return validate(profiles, posts)


@pytest.fixture
def raw_profiles() -> pd.DataFrame:
    return raw_profiles_frame()


@pytest.fixture
def raw_posts() -> pd.DataFrame:
    return raw_posts_frame()


@pytest.fixture
def tiny() -> ValidatedData:
    """The tiny data set after validation (the form every feature function receives)."""
    return validate(raw_profiles_frame(), raw_posts_frame(), now=NOW)


@pytest.fixture
def tiny_files(tmp_path) -> tuple[Path, Path]:
    """The tiny data set as CSV files, plus one orphan post (row 9) for an unknown influencer."""
    posts = raw_posts_frame()
    orphan = posts.iloc[[0]].assign(influencer="ghost", post_id="g1")
    profiles_path, posts_path = tmp_path / "profiles.csv", tmp_path / "posts.csv"
    raw_profiles_frame().to_csv(profiles_path, index=False)
    pd.concat([posts, orphan], ignore_index=True).to_csv(posts_path, index=False)
    return profiles_path, posts_path


@pytest.fixture
def cutoff() -> pd.Timestamp:
    return CUTOFF


@pytest.fixture
def now() -> pd.Timestamp:
    return NOW


@pytest.fixture(scope="session")
def embedded_paths() -> tuple[Path, Path]:
    """The data set shipped with the source tree (profiles, posts)."""
    base = REPO_ROOT / "data" / "instagram"
    profiles, posts = base / "profiles.csv.gz", base / "posts.csv.gz"
    assert profiles.exists() and posts.exists(), f"embedded data missing under {base}"
    return profiles, posts


# Session fixtures that train one small real model (see tests/model_fixtures.py and
# tests/serving_fixtures.py).
# The Dask engine's cluster and Parquet inputs (see tests/dask_fixtures.py).
from tests.dask_fixtures import dask_cluster, parquet_data  # noqa: E402, F401
from tests.model_fixtures import small_data, trained  # noqa: E402, F401
from tests.serving_fixtures import served  # noqa: E402, F401


@pytest.fixture(autouse=True, scope="session")
def model_signing_key(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Tests sign and verify models with their own key (in the environment, so subprocesses
    started by tests share it); nothing is read from or written to ~/.config."""
    import os
    import secrets

    key = secrets.token_hex(32)
    previous = os.environ.get("ENGAGE_MODEL_KEY")
    os.environ["ENGAGE_MODEL_KEY"] = key
    yield key.encode()
    if previous is None:
        os.environ.pop("ENGAGE_MODEL_KEY", None)
    else:
        os.environ["ENGAGE_MODEL_KEY"] = previous


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 (hook signature)
    """The input fuzzers' figures (tests/fuzzing.py),
    when any ran: inputs tried, outcomes, unhandled."""
    from tests import fuzzing

    table = fuzzing.summary()
    if table:
        terminalreporter.write_sep("=", "fuzzed inputs (tests/fuzzing.py)")
        terminalreporter.write_line(table)
