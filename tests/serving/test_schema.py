"""The logged REST schema and example (serving/schema.py)."""

from __future__ import annotations

import pandas as pd

from serving.schema import EXAMPLE_COLUMNS, input_example, package_model, pyfunc_model


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    profiles = pd.DataFrame(
        {
            "influencer": ["a", "b", "c"],
            "followers": [100, 200, 300],
            "platform": "instagram",  # a schema column the example leaves out
        }
    )
    posts = pd.DataFrame(
        {
            "influencer": ["b", "b", "a", "c"],
            "post_id": ["p1", "p2", "p3", "p4"],
            "posted_at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]),
            "likes": [1, 2, 3, 4],
            "comments": [0, 0, 1, 1],
            "is_sponsored": [False, True, False, False],
        }
    )
    return profiles, posts


def test_the_logged_input_example_is_the_first_influencers_posts_as_a_client_sends_them():
    profiles, posts = _tables()
    example = input_example(profiles, posts, n_influencers=2)
    # b's posts, then a's: the first two influencers in the posts' order, with their profiles.
    assert example["post_id"].tolist() == ["p1", "p2", "p3"]
    assert example["followers"].tolist() == [200.0, 200.0, 100.0]
    assert list(example.columns) == [c for c in EXAMPLE_COLUMNS if c in example]
    assert "platform" not in example
    # As JSON carries them: counts as floats, times as text, flags as booleans.
    assert example["likes"].dtype == "float64"
    assert example["posted_at"].tolist()[0].startswith("2024-01-01")
    assert example["is_sponsored"].dtype == bool


def test_training_logs_the_pyfunc_model_with_the_example_of_its_data(tmp_path):
    """package_model is what engage hands training (training.tracking.ModelPackager): the
    arguments of mlflow.pyfunc.log_model, the wrapper, folder and signature of pyfunc_model and
    the input example of the training data."""
    profiles, posts = _tables()
    arguments = package_model(tmp_path, profiles, posts)
    example = arguments.pop("input_example")
    assert arguments == pyfunc_model(tmp_path)
    pd.testing.assert_frame_equal(example, input_example(profiles, posts))
