"""Training on Dask (training/distributed.py) against the pandas engine: examples, campaigns,
the final booster and ``run_training(engine="dask")``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.artifact import load_artifact, save_artifact
from features.contract import DataValidationError, validate
from serving.predictor import load_model
from serving.schema import package_model
from tests.conftest import NOW
from tests.dask_fixtures import campaigns_frame
from tests.model_fixtures import fast_config
from training.distributed import (
    examples_dask,
    fit_model_dask,
    known_influencers,
    read_campaigns,
    to_example_set,
)
from training.evaluation import fit_model
from training.examples import campaign_examples, post_examples, validate_campaigns
from training.train import file_fingerprint

dd = pytest.importorskip("dask.dataframe")


# --------------------------------------------------------------------------- training


def test_dask_model_close_to_pandas_model_and_saves_like_any_other(
    dask_cluster, small_data, tmp_path
):
    clean = validate(small_data.profiles, small_data.posts, now=NOW)
    examples = post_examples(clean.profiles, clean.posts)
    frame, _ = examples_dask(
        dd.from_pandas(small_data.profiles, npartitions=2),
        dd.from_pandas(small_data.posts, npartitions=3),
        now=NOW,
        npartitions=4,
    )
    collected = to_example_set(frame.compute())
    pd.testing.assert_frame_equal(
        collected.base, examples.base, check_exact=False, rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(collected.label, examples.label, rtol=0, atol=1e-12)

    config = fast_config(tmp_path)
    test_keys = pd.unique(examples.base["influencer"])[
        ::5
    ]  # the same held-out influencers for both
    is_test = examples.base["influencer"].isin(test_keys).to_numpy()
    pandas_model = fit_model(examples.subset(~is_test), config)
    dask_model = fit_model_dask(
        frame[~frame["influencer"].isin(list(test_keys))].persist(), config, client=dask_cluster
    )
    test = examples.subset(is_test)

    def mae_and_coverage(model) -> tuple[float, float]:
        pred = model.predict_log(test.base)
        lo, hi = model.predict_log_interval(test.base, pred)
        return float(np.mean(np.abs(pred - test.label))), float(
            np.mean((test.label >= lo) & (test.label <= hi))
        )

    (mae_p, cov_p), (mae_d, cov_d) = mae_and_coverage(pandas_model), mae_and_coverage(dask_model)
    assert (
        dask_model.metadata["n_boost_rounds"] == pandas_model.metadata["n_boost_rounds"]
    )  # same probe, same split
    assert abs(mae_d - mae_p) < 0.03, (mae_d, mae_p)
    assert abs(cov_d - cov_p) < 0.06, (cov_d, cov_p)

    folder = save_artifact(dask_model, tmp_path / "models", dask_model.metadata)
    loaded = load_artifact(folder)
    np.testing.assert_array_equal(loaded.predict_log(test.base), dask_model.predict_log(test.base))


def test_campaign_examples_identical_to_pandas_engine(dask_cluster, small_data):
    raw = campaigns_frame(small_data)
    clean = validate(small_data.profiles, small_data.posts, now=NOW)
    expected = campaign_examples(
        clean.profiles,
        clean.posts,
        validate_campaigns(raw, "campaigns.csv", clean.profiles["influencer"]),
    )

    profiles, posts = (
        dd.from_pandas(small_data.profiles, npartitions=2),
        dd.from_pandas(small_data.posts, npartitions=3),
    )
    campaigns = validate_campaigns(raw, "campaigns.csv", known_influencers(profiles))
    frame, _ = examples_dask(profiles, posts, campaigns=campaigns, now=NOW, npartitions=4)
    got = to_example_set(frame.compute())
    assert len(got) == len(expected) == len(raw)
    pd.testing.assert_frame_equal(
        got.base, expected.base, check_exact=False, rtol=0, atol=1e-9
    )  # same rows, same order
    np.testing.assert_allclose(got.label, expected.label, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.target_er, expected.target_er, rtol=0, atol=1e-12)
    pd.testing.assert_series_equal(got.target_time, expected.target_time, check_names=False)


def test_campaigns_checked_against_the_dask_profiles(dask_cluster, small_data, tmp_path):
    raw = campaigns_frame(small_data, n=10)
    raw.loc[3, "influencer"] = "nobody-at-all"
    path = tmp_path / "campaigns.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(
        DataValidationError,
        match=r"campaigns.csv, column 'influencer', rows 4: campaign influencer has no profile",
    ):
        read_campaigns(path, dd.from_pandas(small_data.profiles, npartitions=2))


def mlflow_run(tracking_uri: str, run_id: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).get_run(run_id)


@pytest.mark.slow
def test_run_training_dask_end_to_end(dask_cluster, small_data, tmp_path):
    from training.distributed import run_training_dask

    config = fast_config(tmp_path)
    result = run_training_dask(
        small_data.profiles_path,
        small_data.posts_path,
        config,
        client=dask_cluster,
        package=package_model,
        npartitions=4,
        progress=lambda _: None,
    )
    predictor = load_model(result.model_dir)
    assert (
        predictor.metadata["training_engine"] == "dask" and result.tracking["alias"] == "champion"
    )
    assert predictor.metadata["dask_inputs"]["rows_kept"]["profiles"] == len(small_data.profiles)
    assert len(predictor.predict(small_data.profiles.head(5), small_data.posts)) == 5

    # The inputs are recorded as the pandas engine records them.
    clean = validate(small_data.profiles, small_data.posts)
    times = clean.posts["posted_at"]
    assert predictor.metadata["data_fingerprint"] == file_fingerprint(
        [small_data.profiles_path, small_data.posts_path]
    )
    assert predictor.metadata["data_date_range"] == [str(times.min()), str(times.max())]
    run = mlflow_run(config.tracking_uri, result.tracking["run_id"])
    tags = run.data.tags
    assert run.data.params["data_fingerprint"] == predictor.metadata["data_fingerprint"]
    assert tags["data.posts.fingerprint"] == file_fingerprint([small_data.posts_path])
    assert tags["data.profiles.fingerprint"] == file_fingerprint([small_data.profiles_path])
    assert (tags["data.profiles.rows"], tags["data.posts.rows"]) == (
        str(len(clean.profiles)),
        str(len(clean.posts)),
    )
    assert tags["data.posts.date_range"] == f"{times.min()} .. {times.max()}"
    assert sorted(d.dataset.name for d in run.inputs.dataset_inputs) == ["posts", "profiles"]
