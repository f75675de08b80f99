"""The ``--engine dask`` commands (engage/scale_commands.py), on an existing cluster."""

from __future__ import annotations

import pandas as pd
import pytest

from engage.cli import main
from features.contract import validate
from features.distributed import read_parquet_any
from serving.predictor import load_model
from tests.dask_fixtures import by_influencer, campaigns_frame, fee_table, pandas_features
from tests.model_fixtures import fast_config
from training.train import file_fingerprint


def test_cli_score_with_fees_and_shortlist(
    dask_cluster, trained, parquet_data, small_data, tmp_path, capsys
):
    profiles_dir, posts_dir = parquet_data
    fees_path, shortlist_path = tmp_path / "fees.csv", tmp_path / "shortlist.csv"
    fees = fee_table(small_data.profiles)
    fees.to_csv(fees_path, index=False)
    fees[["influencer"]].head(5).to_csv(shortlist_path, index=False)
    common = [
        "score",
        "--engine",
        "dask",
        "--scheduler",
        dask_cluster.scheduler.address,
        "--model",
        str(trained.model_dir),
        "--profiles",
        str(profiles_dir),
        "--posts",
        str(posts_dir),
        "--as-of",
        "2019-06-01",
    ]
    assert main([*common, "--fees", str(fees_path), "--out", str(tmp_path / "by_fees")]) == 0, (
        capsys.readouterr().err
    )
    out = capsys.readouterr().out
    assert (
        "unranked; with fee, currency and cost_per_engagement columns" in out
        and "no fee in rows 2" in out
    )
    written = read_parquet_any(tmp_path / "by_fees")
    assert sorted(written["influencer"]) == sorted(fees["influencer"]) and {
        "fee",
        "currency",
        "cost_per_engagement",
    } <= set(written.columns)
    assert (
        main(
            [
                *common,
                "--fees",
                str(fees_path),
                "--shortlist",
                str(shortlist_path),
                "--out",
                str(tmp_path / "short"),
            ]
        )
        == 0
    )
    assert sorted(read_parquet_any(tmp_path / "short")["influencer"]) == sorted(
        fees["influencer"].head(5)
    )


# --------------------------------------------------------------------------- CLI


def test_cli_features_on_an_existing_cluster(dask_cluster, parquet_data, tmp_path, capsys):
    profiles_dir, posts_dir = parquet_data
    out = tmp_path / "features"
    code = main(
        [
            "features",
            "--engine",
            "dask",
            "--scheduler",
            dask_cluster.scheduler.address,
            "--profiles",
            str(profiles_dir),
            "--posts",
            str(posts_dir / "*.parquet"),
            "--as-of",
            "2019-06-01",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    written = read_parquet_any(out)
    expected = pandas_features(read_parquet_any(profiles_dir), read_parquet_any(posts_dir)).drop(
        columns="hashtag_doc"
    )
    # The command reads the follower counts now, the pandas run at the fixtures' NOW.
    age = "follower_count_age_days"
    now_days = (pd.Timestamp.now(tz="UTC") - pd.Timestamp("2019-06-01", tz="UTC")).days
    assert written[age].between(now_days - 1, now_days + 1).all()
    pd.testing.assert_frame_equal(
        by_influencer(written).drop(columns=age),
        by_influencer(expected).drop(columns=age),
        check_exact=False,
        rtol=0,
        atol=1e-9,
        check_dtype=False,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        # a Dask-only option with the default pandas engine
        (
            ["features", "--scheduler", "tcp://127.0.0.1:1", "--out", "f.csv"],
            "--scheduler needs --engine dask",
        ),
        # the Dask engine writes a folder of parts, not one file
        (["features", "--engine", "dask", "--out", "f.csv"], "writes a folder of Parquet parts"),
    ],
)
def test_cli_engine_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_dask_with_campaigns_on_folders(
    dask_cluster, small_data, parquet_data, tmp_path, capsys
):
    profiles_dir, posts_dir = parquet_data
    campaigns = tmp_path / "campaigns.csv"
    campaigns_frame(small_data).to_csv(campaigns, index=False)
    config = fast_config(tmp_path)
    argv = [
        "train",
        "--engine",
        "dask",
        "--scheduler",
        dask_cluster.scheduler.address,
        "--profiles",
        str(profiles_dir),
        "--posts",
        str(posts_dir),
        "--campaigns",
        str(campaigns),
    ]
    argv += [
        "--folds",
        "2",
        "--models-dir",
        str(config.models_dir),
        "--tracking-uri",
        config.tracking_uri,
        "--metrics-out",
        str(tmp_path / "m.json"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    predictor = load_model("latest", models_dir=config.models_dir)
    assert predictor.metadata["n_examples"] == len(campaigns_frame(small_data))
    assert predictor.metadata["dask_inputs"]["campaigns"] == str(campaigns)
    # Folders are fingerprinted over every file in them, with the campaigns table (a campaigns run
    # never shares a posts-only run's fingerprint); the date range is that of all posts.
    assert predictor.metadata["data_fingerprint"] == file_fingerprint(
        [profiles_dir, posts_dir, campaigns]
    )
    assert predictor.metadata["inputs"]["campaigns"]["fingerprint"] == file_fingerprint([campaigns])
    times = validate(read_parquet_any(profiles_dir), read_parquet_any(posts_dir)).posts["posted_at"]
    assert predictor.metadata["data_date_range"] == [str(times.min()), str(times.max())]
