"""The MLflow pyfunc wrapper (serving/pyfunc.py): REST rows in, the predictor's answers out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from serving import Predictor, load_model
from serving.predictor import STATUS_ZERO_FOLLOWERS
from tests.serving_fixtures import ServingModel, shortlist


@pytest.fixture(scope="session")
def predictor(served: ServingModel) -> Predictor:
    return load_model(served.model_dir)


@pytest.fixture(scope="session")
def candidates(served: ServingModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    return shortlist(served.data)


# ---------------------------------------------------------------------------
# pyfunc wrapper (in process)


def test_pyfunc_rows_match_the_predictor(predictor, candidates):
    from serving.pyfunc import predict_rows
    from serving.schema import to_rest_rows

    profiles, posts = candidates
    rows = to_rest_rows(profiles, posts)
    got = predict_rows(predictor, rows)
    expected = predictor.predict(profiles, posts)
    assert got["influencer"].tolist() == expected["influencer"].tolist()
    np.testing.assert_allclose(
        got["predicted_er"].to_numpy(float), expected["predicted_er"].to_numpy(float), rtol=1e-12
    )


@pytest.mark.parametrize("text_dtype", [object, "str", "string[pyarrow]"])
def test_rest_rows_split_into_profiles_and_posts(text_dtype):
    # Identical profile copies collapse, differing ones stay (validation then names them);
    # a row whose post cells are empty or blank is a candidate without posts, not a post.
    from serving.pyfunc import split_rows

    rows = pd.DataFrame(
        {
            "influencer": ["a", "a", "b", "c", "c"],
            "followers": [100.0, 100.0, 5.0, -0.0, 0.0],
            "category": ["food", "food", None, "x", "x"],
            "post_id": ["p1", "p2", "  ", "p4", "p5"],
            "likes": [1.0, 2.0, np.nan, 3.0, 4.0],
            "hashtags": ["a|b", "", None, " ", "x"],
        }
    ).astype(
        {
            "influencer": text_dtype,
            "category": text_dtype,
            "post_id": text_dtype,
            "hashtags": text_dtype,
        }
    )
    profiles, posts, profile_rows, post_rows = split_rows(rows)
    assert profiles["influencer"].tolist() == ["a", "b", "c", "c"]  # c's followers differ as text
    assert profile_rows.tolist() == [1, 3, 4, 5]
    assert post_rows.tolist() == [1, 2, 4, 5] and posts["post_id"].tolist() == [
        "p1",
        "p2",
        "p4",
        "p5",
    ]
    assert list(posts.columns) == ["influencer", "post_id", "likes", "hashtags"]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda r: r.drop(columns="followers"), "no 'followers' column"),  # required profile column
        (
            lambda r: r.drop(columns="likes"),
            "column 'likes': required column is missing",
        ),  # post column
        (
            lambda r: r.assign(likes=["x"] + ["1"] * (len(r) - 1)),
            r"request \(posts columns\), column 'likes', rows 1: not a number",
        ),  # request row named
        (lambda r: r.iloc[0:0], "no rows"),  # empty request
    ],
)
def test_pyfunc_malformed_input_is_an_invalid_parameter(predictor, candidates, change, match):
    from serving.pyfunc import predict_rows
    from serving.schema import to_rest_rows

    rows = to_rest_rows(*candidates)
    with pytest.raises(MlflowException, match=match) as info:
        predict_rows(predictor, change(rows))
    assert info.value.get_http_status_code() == 400


def test_a_planned_post_per_candidate_is_scored_as_engage_score_scores_it(predictor, candidates):
    from serving.pyfunc import predict_rows, to_response
    from serving.schema import to_rest_rows

    profiles, posts = candidates
    names = profiles["influencer"].tolist()
    # A video for the first candidate, a sponsored post with a target for the second, the
    # rest left to their usual post: on every row of each candidate, as a client repeats it.
    plan = pd.DataFrame(
        {
            "influencer": names[:2],
            "post_type": ["Reel", None],
            "sponsored": [None, "yes"],
            "target_engagements": [None, "500"],
        }
    )
    rows = to_rest_rows(profiles, posts).merge(plan, on="influencer", how="left")
    got = predict_rows(predictor, rows).set_index("influencer")
    by_name = plan.set_index("influencer")
    scored = predictor.score(
        profiles,
        posts,
        post_type=by_name["post_type"].dropna().str.lower().replace({"reel": "video"}),
        sponsored=by_name["sponsored"].dropna().eq("yes"),
        target_engagements=by_name["target_engagements"].dropna().astype(float),
    )
    expected = to_response(scored.table).set_index("influencer")
    for column in ("predicted_er", "planned_post", "p_reach", "target_engagements"):
        assert got[column].tolist() == expected[column].tolist(), column
    assert got.loc[names[1], "p_reach"] is not None and got.loc[names[2], "p_reach"] is None
    unplanned = predict_rows(predictor, to_rest_rows(profiles, posts)).set_index("influencer")
    assert got.loc[names[2:], "predicted_er"].tolist() == (
        unplanned.loc[names[2:], "predicted_er"].tolist()
    )  # the candidates without a plan: as before
    assert got.loc[names[0], "planned_post"] != unplanned.loc[names[0], "planned_post"]


@pytest.mark.parametrize(
    "plan, match",
    [
        ({"post_type": "vidoe"}, r"planned posts cannot be used:\n  column 'post_type', rows 1:"),
        ({"sponsored": "maybe"}, r"column 'sponsored', rows 1: not yes or no"),
        ({"target_engagements": "5,000"}, r"column 'target_engagements', rows 1: not a positive"),
    ],
)
def test_a_planned_post_engage_cannot_read_is_a_400_naming_the_request_row(
    predictor, candidates, plan, match
):
    from serving.pyfunc import predict_rows
    from serving.schema import to_rest_rows

    rows = to_rest_rows(*candidates)
    first = rows["influencer"] == rows["influencer"].iloc[0]
    for column, value in plan.items():
        rows[column] = pd.Series(None, index=rows.index, dtype=object).mask(first, value)
    with pytest.raises(MlflowException, match=match) as info:
        predict_rows(predictor, rows)
    assert info.value.get_http_status_code() == 400


def test_two_planned_posts_for_one_candidate_are_refused(predictor, candidates):
    from serving.pyfunc import predict_rows
    from serving.schema import to_rest_rows

    rows = to_rest_rows(*candidates)
    name = rows["influencer"].value_counts().index[0]  # a candidate with several rows
    rows["post_type"] = np.where(rows["influencer"] == name, "video", None)
    rows.loc[int(np.flatnonzero(rows["influencer"] == name)[1]), "post_type"] = "image"
    with pytest.raises(MlflowException, match="different planned posts for the same influencer"):
        predict_rows(predictor, rows)


def test_pyfunc_conflicting_profile_rows_name_request_rows(predictor, candidates):
    from serving.pyfunc import predict_rows
    from serving.schema import to_rest_rows

    rows = to_rest_rows(*candidates)
    name = rows["influencer"].value_counts().index[0]
    second = int(np.flatnonzero(rows["influencer"] == name)[1])
    rows.loc[second, "followers"] = "123"
    with pytest.raises(
        MlflowException,
        match=f"rows [0-9, ]*{second + 1}.*duplicate influencer with different values",
    ):
        predict_rows(predictor, rows)


def test_the_model_registered_by_training_takes_real_shortlists(served, predictor, candidates):
    """The signature training logs (serving.schema) lets real shortlists through unchanged:
    text yes/no values are not flipped, cold-start-only requests are taken, extra columns kept."""
    import json

    import mlflow
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    from serving.schema import dataframe_split, to_rest_rows

    mlflow.set_tracking_uri(served.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/engagement@champion")
    schema = model.metadata.get_input_schema()
    profiles, posts = candidates
    as_of = "2019-06-01T00:00:00Z"
    cases = [
        (profiles, posts),  # as read from CSV: every value text ("False", "1432")
        (profiles[["influencer", "followers"]], None),  # profile columns only: cold starts
        (
            profiles,
            posts.assign(shares="900", is_sponsored="true"),
        ),  # columns outside the training example
    ]
    for case_profiles, case_posts in cases:
        rows = to_rest_rows(case_profiles.assign(as_of=as_of), case_posts)
        parsed = infer_and_parse_data(
            json.loads(json.dumps(dataframe_split(rows))), schema
        )  # what the server does
        got = model.predict(parsed)
        expected = predictor.predict(case_profiles.assign(as_of=as_of), case_posts)
        np.testing.assert_allclose(
            got["predicted_er"].astype(float), expected["predicted_er"], rtol=1e-9
        )
        assert got["status"].tolist() == expected["status"].tolist()


COUNT_COLUMNS = ["followers", "following", "posts_count", "likes", "comments"]


@pytest.mark.parametrize(
    "dtype",
    [
        "int64",  # counts as a database or pandas reads them: MLflow refused these
        "int32",
        "float64",
        "Int64",  # pandas' nullable integers
    ],
)
def test_mlflow_pyfunc_predict_takes_integer_and_float_counts(served, predictor, candidates, dtype):
    """``mlflow.pyfunc.load_model(...).predict(df)`` on the registered model, with counts typed as
    a caller's DataFrame holds them, answers as the Python API does."""
    import mlflow

    from serving.schema import to_rest_rows

    mlflow.set_tracking_uri(served.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/engagement@champion")
    profiles, posts = candidates
    has_posts = profiles["influencer"].isin(posts["influencer"])
    profiles = profiles[has_posts].reset_index(
        drop=True
    )  # every row holds a post: no gaps in the counts
    rows = to_rest_rows(profiles, posts)[
        ["influencer", *COUNT_COLUMNS, "category", "post_id", "posted_at", "hashtags"]
    ]
    rows = rows.assign(
        as_of="2019-06-01T00:00:00Z",
        **{c: pd.to_numeric(rows[c]).astype(dtype) for c in COUNT_COLUMNS},
    )
    assert (rows.dtypes[COUNT_COLUMNS] == rows["likes"].dtype).all() and str(
        rows["likes"].dtype
    ).lower().startswith(dtype.lower()[:3])
    got = model.predict(rows)
    expected = predictor.predict(profiles.assign(as_of="2019-06-01T00:00:00Z"), posts)
    assert got["influencer"].tolist() == expected["influencer"].tolist()
    np.testing.assert_allclose(
        got["predicted_er"].astype(float), expected["predicted_er"], rtol=1e-9
    )


def test_mlflow_pyfunc_predict_refuses_a_negative_integer_count_by_row(served, candidates):
    import mlflow

    from serving.schema import to_rest_rows

    mlflow.set_tracking_uri(served.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/engagement@champion")
    profiles, posts = candidates
    rows = to_rest_rows(profiles[profiles["influencer"].isin(posts["influencer"])], posts)
    rows = rows.assign(
        likes=pd.to_numeric(rows["likes"]).astype("int64"),
        followers=pd.to_numeric(rows["followers"]).astype("int64"),
    )
    rows.loc[2, "likes"] = -5
    with pytest.raises(
        MlflowException, match=r"likes.*rows 3\b.*negative|likes.*negative.*rows 3\b"
    ):
        model.predict(rows)


def test_pyfunc_answers_unscored_rows_with_nulls_not_nan(predictor, candidates):
    import json

    from serving.pyfunc import predict_rows
    from serving.schema import to_rest_rows

    profiles, posts = candidates
    rows = to_rest_rows(
        profiles.assign(followers=["0"] + profiles["followers"].tolist()[1:]), posts
    )
    answer = predict_rows(predictor, rows)
    assert answer.loc[0, "status"] == STATUS_ZERO_FOLLOWERS
    text = json.dumps(answer.to_dict(orient="records"))  # what the scoring server does
    assert "NaN" not in text and json.loads(text)[0]["predicted_er"] is None
