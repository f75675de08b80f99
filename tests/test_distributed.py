"""The Dask engine against the pandas engine, on a local cluster of two worker processes.

Worker processes, not threads: LightGBM's distributed training keeps its network state per
process, so two threaded workers in one process would share (and break) it.
"""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engage.cli import main
from features.aggregate import compute_features, examples_at
from features.artifact import load_artifact, save_artifact
from features.contract import DataError, DataValidationError, validate
from features.distributed import (
    compute_features_dask,
    dask_client,
    influencer_buckets,
    read_parquet_any,
    write_features_dask,
)
from serving.distributed import score_dask
from serving.planner import add_fee_columns, apply_fees, check_fees
from serving.predictor import STATUS_NO_PROFILE, load_model
from tests.conftest import NOW, raw_posts_frame, raw_profiles_frame
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
AS_OF = pd.Timestamp("2019-06-01", tz="UTC")


@pytest.fixture(scope="module")
def client():
    with dask_client(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GB") as c:
        yield c


def write_parts(frame: pd.DataFrame, folder: Path, n_files: int) -> Path:
    """``frame`` as ``n_files`` Parquet files (rows in input order, split evenly)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    step = -(-len(frame) // n_files)
    for i in range(n_files):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i}.parquet")
    return folder


@pytest.fixture(scope="module")
def parquet_data(tmp_path_factory: pytest.TempPathFactory, small_data) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("parquet")
    return write_parts(small_data.profiles, root / "profiles", 2), write_parts(
        small_data.posts, root / "posts", 3
    )


def pandas_features(profiles: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    data = validate(profiles, posts, now=NOW)
    return compute_features(data.profiles, data.posts, examples_at(data.profiles, AS_OF))


def by_influencer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("influencer", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- reading


def test_read_parquet_any_file_folder_glob_agree(parquet_data):
    profiles_dir, _ = parquet_data
    whole = read_parquet_any(profiles_dir)
    assert len(whole) == sum(len(pq.read_table(f)) for f in profiles_dir.glob("*.parquet"))
    pd.testing.assert_frame_equal(read_parquet_any(str(profiles_dir / "part-*.parquet")), whole)
    pd.testing.assert_frame_equal(
        read_parquet_any(profiles_dir / "part-0.parquet"),
        pq.read_table(profiles_dir / "part-0.parquet").to_pandas(),
    )
    lazy = read_parquet_any(profiles_dir, engine="dask")
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), whole, check_dtype=False)


def test_read_parquet_any_no_files(tmp_path):
    with pytest.raises(DataError, match="no Parquet files found"):
        read_parquet_any(str(tmp_path / "*.parquet"))


def test_buckets_ignore_surrounding_space_and_dtype():
    plain = influencer_buckets(pd.Series(["ana", "ben"], dtype=object), 7)
    spaced = influencer_buckets(pd.Series([" ana", "ben "], dtype="string[pyarrow]"), 7)
    np.testing.assert_array_equal(plain, spaced)


# --------------------------------------------------------------------------- features


def test_features_identical_to_pandas_engine(client, parquet_data):
    profiles_dir, posts_dir = parquet_data
    expected = pandas_features(read_parquet_any(profiles_dir), read_parquet_any(posts_dir))
    frame, report = compute_features_dask(
        read_parquet_any(profiles_dir, engine="dask"),
        read_parquet_any(posts_dir, engine="dask"),
        as_of=AS_OF,
        now=NOW,
        npartitions=5,
    )
    got = frame.compute()
    assert len(got) == len(expected) and got["influencer"].is_unique
    pd.testing.assert_frame_equal(
        by_influencer(got), by_influencer(expected), check_exact=False, rtol=0, atol=1e-9
    )
    assert report.rows_out == {
        "profiles": len(expected),
        "posts": validate(
            read_parquet_any(profiles_dir), read_parquet_any(posts_dir), now=NOW
        ).report.rows_out["posts"],
    }


def test_handled_problems_counted_as_pandas_does(client):
    profiles = raw_profiles_frame()
    posts = raw_posts_frame()
    orphan = posts.iloc[[0]].assign(influencer="nobody", post_id="o1")
    posts = pd.concat(
        [posts, posts.iloc[[1]], orphan], ignore_index=True
    )  # one exact duplicate, one orphan
    expected = validate(profiles, posts, now=NOW).report
    # Many buckets for 3 influencers: empty buckets and a bucket holding only the orphan.
    _, report = compute_features_dask(
        dd.from_pandas(profiles, npartitions=1),
        dd.from_pandas(posts, npartitions=2),
        as_of=AS_OF,
        now=NOW,
        npartitions=8,
    )
    assert {p.message: p.count for p in report.handled} == {
        p.message: p.count for p in expected.handled
    }
    assert report.rows_in == expected.rows_in and report.rows_out == expected.rows_out
    assert len(report.rejects_frame()) == len(expected.rejects_frame())


def test_contract_break_raises_with_merged_report(client):
    posts = raw_posts_frame()
    posts.loc[0, "likes"] = "-5"
    with pytest.raises(DataValidationError, match="negative count"):
        compute_features_dask(
            dd.from_pandas(raw_profiles_frame(), npartitions=1),
            dd.from_pandas(posts, npartitions=1),
            now=NOW,
            npartitions=3,
        )


def test_missing_required_column_fails_before_any_work(client):
    with pytest.raises(
        DataValidationError, match="required column is missing; did you mean 'like_count'"
    ):
        compute_features_dask(
            dd.from_pandas(raw_profiles_frame(), npartitions=1),
            dd.from_pandas(
                raw_posts_frame().rename(columns={"likes": "like_count"}), npartitions=1
            ),
            now=NOW,
        )


def test_write_features_counts_the_parts_written_for_a_progress_bar(client, tmp_path):
    profiles, posts = (
        dd.from_pandas(raw_profiles_frame(), npartitions=1),
        dd.from_pandas(raw_posts_frame(), npartitions=1),
    )
    counted: list[tuple[int, int]] = []
    n, _ = write_features_dask(
        profiles,
        posts,
        tmp_path / "out",
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
        progress=lambda done, total: counted.append((done, total)),
    )
    assert counted == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert n == len(read_parquet_any(tmp_path / "out")) == 3


def test_write_features_writes_parts_and_refuses_a_used_folder(client, tmp_path):
    profiles, posts = (
        dd.from_pandas(raw_profiles_frame(), npartitions=1),
        dd.from_pandas(raw_posts_frame(), npartitions=1),
    )
    n, _ = write_features_dask(
        profiles, posts, tmp_path / "out", as_of=AS_OF, now=NOW, npartitions=3
    )
    written = read_parquet_any(tmp_path / "out")
    assert n == len(written) == 3 and len(list((tmp_path / "out").glob("part-*.parquet"))) == 3
    expected = pandas_features(raw_profiles_frame(), raw_posts_frame()).drop(columns="hashtag_doc")
    pd.testing.assert_frame_equal(
        by_influencer(written),
        by_influencer(expected),
        check_exact=False,
        rtol=0,
        atol=1e-9,
        check_dtype=False,
    )
    with pytest.raises(DataError, match=r"already holds 3 file\(s\) or folder\(s\) \(part-00000"):
        write_features_dask(profiles, posts, tmp_path / "out", now=NOW)
    assert not list(tmp_path.glob(".out.tmp-*"))  # the staging folder is a hidden sibling, gone


def test_dask_parts_are_published_all_at_once_or_not_at_all(client, tmp_path):
    """Parts are written to a hidden staging folder and renamed into place: a contract break
    leaves no folder, a folder holding other files is refused and left as it was (it used to be
    removed whole on a contract break), an empty folder is filled."""
    profiles = dd.from_pandas(raw_profiles_frame(), npartitions=1)
    bad_posts = raw_posts_frame()
    bad_posts.loc[0, "likes"] = "-5"
    with pytest.raises(DataValidationError, match="negative count"):
        write_features_dask(
            profiles, dd.from_pandas(bad_posts, npartitions=1), tmp_path / "new", now=NOW
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no out, no staging

    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work")
    posts = dd.from_pandas(raw_posts_frame(), npartitions=1)
    with pytest.raises(DataError, match=r"documents: already holds 1 file.*thesis\.docx"):
        write_features_dask(profiles, posts, mine, now=NOW)
    assert (mine / "thesis.docx").read_text() == "years of work"

    empty = tmp_path / "empty"
    empty.mkdir()
    n, _ = write_features_dask(profiles, posts, empty, as_of=AS_OF, now=NOW, npartitions=2)
    assert n == 3 and sorted(p.name for p in empty.iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents", "empty"]


def _fail_in_one_bucket(table: pd.DataFrame) -> pd.DataFrame:
    if len(table) and table["influencer"].astype(str).str.endswith("7").any():
        raise RuntimeError("worker lost mid-write")
    return table


def test_a_failed_worker_publishes_no_part(client, trained, small_data, tmp_path):
    predictor = load_model(trained.model_dir)
    with pytest.raises(RuntimeError, match="worker lost mid-write"):
        score_dask(
            predictor,
            dd.from_pandas(small_data.profiles.head(200), npartitions=2),
            dd.from_pandas(small_data.posts, npartitions=2),
            tmp_path / "scores",
            as_of=AS_OF,
            now=NOW,
            npartitions=4,
            finish=_fail_in_one_bucket,
        )
    assert list(tmp_path.iterdir()) == []  # neither the other buckets' parts nor the staging folder


def test_readers_skip_hidden_and_underscore_folders(tmp_path):
    write_parts(raw_profiles_frame(), tmp_path / "t", 1)
    write_parts(
        raw_profiles_frame(), tmp_path / "t" / "_tmp-1234", 2
    )  # an unpublished staging folder
    write_parts(raw_profiles_frame(), tmp_path / "t" / ".hidden", 1)
    assert len(read_parquet_any(tmp_path / "t")) == len(raw_profiles_frame())


def test_dask_csv_with_a_repeated_header_is_refused_and_a_bom_is_not_a_name(tmp_path):
    from features.distributed import read_any

    (tmp_path / "twice.csv").write_text("influencer,followers,Followers \na,1,2\n")
    with pytest.raises(DataError, match=r"twice\.csv: the header names one column more than once"):
        read_any(tmp_path / "twice.csv", engine="dask")
    (tmp_path / "excel.csv").write_bytes("\ufeffinfluencer,followers\na,1\n".encode())
    assert list(read_any(tmp_path / "excel.csv", engine="dask").columns) == [
        "influencer",
        "followers",
    ]


# --------------------------------------------------------------------------- training


def test_dask_model_close_to_pandas_model_and_saves_like_any_other(client, small_data, tmp_path):
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
        frame[~frame["influencer"].isin(list(test_keys))].persist(), config, client=client
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


def campaigns_frame(small_data, n: int = 300) -> pd.DataFrame:
    """A campaigns table as read from CSV: some influencers' own posts as campaign posts (several
    for some influencers), plus campaigns of influencers without posts (cold start)."""
    posts = small_data.posts.sample(n, random_state=1)
    with_posts = pd.DataFrame(
        {
            "influencer": posts["influencer"],
            "campaign_id": [f"c{i}" for i in range(n)],
            "posted_at": posts["posted_at"],
            "likes": posts["likes"],
            "comments": posts["comments"],
        }
    )
    cold = small_data.profiles[
        ~small_data.profiles["influencer"].isin(small_data.posts["influencer"])
    ].head(20)
    without = pd.DataFrame(
        {
            "influencer": cold["influencer"],
            "campaign_id": "cold",
            "posted_at": "2019-05-01T00:00:00Z",
            "likes": "120",
            "comments": "4",
        }
    )
    frame = pd.concat([with_posts, without], ignore_index=True).astype(str)
    frame["followers_at_post"] = ""
    frame.loc[::7, "followers_at_post"] = "50000"  # overrides the profile's followers for the label
    return frame.mask(frame == "")


def test_campaign_examples_identical_to_pandas_engine(client, small_data):
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


def test_campaigns_checked_against_the_dask_profiles(client, small_data, tmp_path):
    raw = campaigns_frame(small_data, n=10)
    raw.loc[3, "influencer"] = "nobody-at-all"
    path = tmp_path / "campaigns.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(
        DataValidationError,
        match=r"campaigns.csv, column 'influencer', rows 4: campaign influencer has no profile",
    ):
        read_campaigns(path, dd.from_pandas(small_data.profiles, npartitions=2))


# --------------------------------------------------------------------------- scoring


def test_batch_scores_identical_to_the_predictor(client, trained, small_data, tmp_path):
    predictor = load_model(trained.model_dir)
    profiles, posts = small_data.profiles.head(400), small_data.posts
    expected = predictor.predict(profiles, posts, AS_OF, now=NOW)
    frame, _ = score_dask(
        predictor,
        dd.from_pandas(profiles, npartitions=2),
        dd.from_pandas(posts, npartitions=2),
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
    )
    # dtype aside (dd.from_pandas stores text as pyarrow strings, so the key column's dtype follows)
    pd.testing.assert_frame_equal(
        by_influencer(frame.compute()),
        by_influencer(expected),
        check_exact=False,
        rtol=0,
        atol=1e-12,
        check_dtype=False,
    )

    n, _ = score_dask(
        predictor,
        dd.from_pandas(profiles, npartitions=2),
        dd.from_pandas(posts, npartitions=2),
        tmp_path / "scores",
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
    )
    assert n == len(expected) == len(read_parquet_any(tmp_path / "scores"))


def fee_table(profiles: pd.DataFrame) -> pd.DataFrame:
    """Fees for some candidates, one without a fee, one name without a profile."""
    names = profiles["influencer"].iloc[::13].tolist()
    fees = pd.DataFrame(
        {
            "influencer": [*names, "nobody-at-all"],
            "fee": [str(100 + 37 * i) for i in range(len(names) + 1)],
            "currency": "EUR",
        }
    )
    fees.loc[1, "fee"] = None
    return fees


def test_batch_fees_equal_the_pandas_engines(client, trained, small_data):
    predictor = load_model(trained.model_dir)
    profiles, posts = small_data.profiles.head(400), small_data.posts
    fees = check_fees(fee_table(profiles), "fees.csv")
    shortlist = fees.table["influencer"].tolist()
    expected, _ = apply_fees(
        predictor.score(profiles, posts, AS_OF, shortlist=shortlist, now=NOW).table, fees
    )
    frame, _ = score_dask(
        predictor,
        dd.from_pandas(profiles, npartitions=2),
        dd.from_pandas(posts, npartitions=2),
        as_of=AS_OF,
        now=NOW,
        npartitions=3,
        shortlist=shortlist,
        finish=partial(add_fee_columns, fees=fees),
    )
    got = by_influencer(frame.compute())
    assert (
        len(got) == len(expected) == len(shortlist)
    )  # the name without a profile: one row, not one per bucket
    assert got.loc[got["influencer"] == "nobody-at-all", "status"].tolist() == [STATUS_NO_PROFILE]
    columns = [
        "influencer",
        "status",
        "expected_engagements",
        "fee",
        "currency",
        "cost_per_engagement",
    ]
    pd.testing.assert_frame_equal(
        got[columns],
        by_influencer(expected)[columns],
        check_exact=False,
        rtol=0,
        atol=1e-12,
        check_dtype=False,
    )
    assert got["cost_per_engagement"].notna().sum() == len(shortlist) - 2


def test_cli_score_with_fees_and_shortlist(
    client, trained, parquet_data, small_data, tmp_path, capsys
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
        client.scheduler.address,
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


def test_cli_features_on_an_existing_cluster(client, parquet_data, tmp_path, capsys):
    profiles_dir, posts_dir = parquet_data
    out = tmp_path / "features"
    code = main(
        [
            "features",
            "--engine",
            "dask",
            "--scheduler",
            client.scheduler.address,
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
    pd.testing.assert_frame_equal(
        by_influencer(written),
        by_influencer(expected),
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


def mlflow_run(tracking_uri: str, run_id: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).get_run(run_id)


@pytest.mark.slow
def test_run_training_dask_end_to_end(client, small_data, tmp_path):
    from training.distributed import run_training_dask

    config = fast_config(tmp_path)
    result = run_training_dask(
        small_data.profiles_path,
        small_data.posts_path,
        config,
        client=client,
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


@pytest.mark.slow
def test_cli_train_dask_with_campaigns_on_folders(
    client, small_data, parquet_data, tmp_path, capsys
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
        client.scheduler.address,
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


# --------------------------------------------------------------------------- row numbers


def bad_rows_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Text tables with handled problems at known rows: an exact duplicate profile, a misspelled
    category, exact duplicate posts and orphan posts, spread so that they land in several files."""
    profiles = pd.concat(
        [raw_profiles_frame(), raw_profiles_frame().iloc[[1]]], ignore_index=True
    )  # row 4 copies row 2
    profiles.loc[2, "category"] = "fod"
    base = raw_posts_frame()
    copies = [base.assign(post_id=base["post_id"] + f"-{k}") for k in range(3)]
    orphans = [
        base.iloc[[2]].assign(influencer="nobody", post_id="o1"),
        base.iloc[[5]].assign(influencer="ghost", post_id="o2"),
    ]
    posts = pd.concat(
        [*copies, base.iloc[[0, 4]].assign(post_id=["a1-1", "b1-2"]), *orphans], ignore_index=True
    )
    return profiles, pd.concat(
        [posts, base.iloc[[0]].assign(post_id="a1-0")], ignore_index=True
    )  # the last row copies row 1


def rows_by_message(report) -> dict[str, tuple[list[int], int]]:
    return {p.message: (list(p.rows), p.count) for p in report.problems}


def test_report_rows_are_the_pandas_engines_across_files(client, tmp_path):
    profiles, posts = bad_rows_data()
    # 12 files: part-10 sorts before part-2 as text, not in Dask's (natural) order.
    profiles_dir, posts_dir = (
        write_parts(profiles, tmp_path / "profiles", 2),
        write_parts(posts, tmp_path / "posts", 12),
    )
    expected = validate(read_parquet_any(profiles_dir), read_parquet_any(posts_dir), now=NOW).report
    assert {m for m, (rows, _) in rows_by_message(expected).items() if rows} >= {
        "exact duplicate profile rows",
        "exact duplicate post rows",
        "posts whose influencer has no profile",
    }

    _, report = compute_features_dask(
        read_parquet_any(profiles_dir, engine="dask"),
        read_parquet_any(posts_dir, engine="dask"),
        as_of=AS_OF,
        now=NOW,
        npartitions=4,
        files=(str(profiles_dir), str(posts_dir)),
    )
    assert rows_by_message(report) == rows_by_message(expected)
    got, want = report.rejects_frame(), expected.rejects_frame()
    assert sorted(zip(got["table"], got["row"], strict=True)) == sorted(
        zip(want["table"], want["row"], strict=True)
    )

    # ... and which file, and which row in it: what a user can open and fix.
    sizes = [len(pq.read_table(posts_dir / f"part-{i}.parquet")) for i in range(12)]
    starts = np.cumsum([1, *sizes[:-1]])

    def in_file(row: int) -> tuple[str, int]:
        i = int(np.searchsorted(starts, row, side="right")) - 1
        return f"part-{i}.parquet", int(row - starts[i] + 1)

    for problem in (p for p in report.problems if p.table == "posts"):
        grouped = [
            (name, [r for _, r in rows])
            for name, rows in itertools.groupby(map(in_file, problem.rows), key=lambda fr: fr[0])
        ]
        assert problem.located == "; ".join(
            f"{name} row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}"
            for name, rows in grouped
        )
        assert problem.located in problem.describe()
    post_rejects = got[got["table"] == "posts"]
    assert len(post_rejects) == 5  # 3 exact copies, 2 orphans
    assert list(zip(post_rejects["input_file"], post_rejects["input_file_row"], strict=True)) == [
        in_file(r) for r in post_rejects["row"]
    ]


def test_fatal_rows_listed_smallest_first_with_the_total(client):
    posts = pd.concat([raw_posts_frame()] * 3, ignore_index=True)
    posts["post_id"] = [f"p{i}" for i in range(len(posts))]
    bad = [3, 5, 9, 12, 14, 17, 20, 22]  # 1-based rows with a negative like count, in every bucket
    posts.loc[[r - 1 for r in bad], "likes"] = "-1"
    with pytest.raises(DataValidationError) as pandas_error:
        validate(raw_profiles_frame(), posts, now=NOW)
    with pytest.raises(DataValidationError) as dask_error:
        compute_features_dask(
            dd.from_pandas(raw_profiles_frame(), npartitions=1),
            dd.from_pandas(posts, npartitions=3),
            now=NOW,
            npartitions=3,
        )
    problem = next(p for p in dask_error.value.report.fatal if p.message == "negative count")
    assert (problem.rows, problem.count) == (bad[:5], len(bad))
    assert rows_by_message(dask_error.value.report) == rows_by_message(pandas_error.value.report)
    assert "rows 3, 5, 9, 12, 14 (first 5 of 8)" in str(dask_error.value)
