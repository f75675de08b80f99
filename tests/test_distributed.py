"""The Dask engine against the pandas engine, on a local cluster of two worker processes.

Worker processes, not threads: LightGBM's distributed training keeps its network state per
process, so two threaded workers in one process would share (and break) it.
"""

from __future__ import annotations

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
    score_dask,
    write_features_dask,
)
from serving.predictor import load_model
from tests.conftest import NOW, raw_posts_frame, raw_profiles_frame
from tests.model_fixtures import fast_config
from training.distributed import examples_dask, fit_model_dask, to_example_set
from training.evaluation import fit_model
from training.examples import latest_post_examples

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
    return write_parts(small_data.profiles, root / "profiles", 2), write_parts(small_data.posts, root / "posts", 3)


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
    pd.testing.assert_frame_equal(read_parquet_any(profiles_dir / "part-0.parquet"), pq.read_table(profiles_dir / "part-0.parquet").to_pandas())
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
    frame, report = compute_features_dask(read_parquet_any(profiles_dir, engine="dask"), read_parquet_any(posts_dir, engine="dask"), as_of=AS_OF, now=NOW, npartitions=5)
    got = frame.compute()
    assert len(got) == len(expected) and got["influencer"].is_unique
    pd.testing.assert_frame_equal(by_influencer(got), by_influencer(expected), check_exact=False, rtol=0, atol=1e-9)
    assert report.rows_out == {"profiles": len(expected), "posts": validate(read_parquet_any(profiles_dir), read_parquet_any(posts_dir), now=NOW).report.rows_out["posts"]}


def test_handled_problems_counted_as_pandas_does(client):
    profiles = raw_profiles_frame()
    posts = raw_posts_frame()
    orphan = posts.iloc[[0]].assign(influencer="nobody", post_id="o1")
    posts = pd.concat([posts, posts.iloc[[1]], orphan], ignore_index=True)  # one exact duplicate, one orphan
    expected = validate(profiles, posts, now=NOW).report
    # Many buckets for 3 influencers: empty buckets and a bucket holding only the orphan.
    _, report = compute_features_dask(dd.from_pandas(profiles, npartitions=1), dd.from_pandas(posts, npartitions=2), as_of=AS_OF, now=NOW, npartitions=8)
    assert {p.message: p.count for p in report.handled} == {p.message: p.count for p in expected.handled}
    assert report.rows_in == expected.rows_in and report.rows_out == expected.rows_out
    assert len(report.rejects_frame()) == len(expected.rejects_frame())


def test_contract_break_raises_with_merged_report(client):
    posts = raw_posts_frame()
    posts.loc[0, "likes"] = "-5"
    with pytest.raises(DataValidationError, match="negative count"):
        compute_features_dask(dd.from_pandas(raw_profiles_frame(), npartitions=1), dd.from_pandas(posts, npartitions=1), now=NOW, npartitions=3)


def test_missing_required_column_fails_before_any_work(client):
    with pytest.raises(DataValidationError, match="required column is missing; did you mean 'like_count'"):
        compute_features_dask(dd.from_pandas(raw_profiles_frame(), npartitions=1), dd.from_pandas(raw_posts_frame().rename(columns={"likes": "like_count"}), npartitions=1), now=NOW)


def test_write_features_writes_parts_and_refuses_a_used_folder(client, tmp_path):
    profiles, posts = dd.from_pandas(raw_profiles_frame(), npartitions=1), dd.from_pandas(raw_posts_frame(), npartitions=1)
    n, _ = write_features_dask(profiles, posts, tmp_path / "out", as_of=AS_OF, now=NOW, npartitions=3)
    written = read_parquet_any(tmp_path / "out")
    assert n == len(written) == 3 and len(list((tmp_path / "out").glob("part-*.parquet"))) == 3
    expected = pandas_features(raw_profiles_frame(), raw_posts_frame()).drop(columns="hashtag_doc")
    pd.testing.assert_frame_equal(by_influencer(written), by_influencer(expected), check_exact=False, rtol=0, atol=1e-9, check_dtype=False)
    with pytest.raises(DataError, match="already holds Parquet files"):
        write_features_dask(profiles, posts, tmp_path / "out", now=NOW)


# --------------------------------------------------------------------------- training


def test_dask_model_close_to_pandas_model_and_saves_like_any_other(client, small_data, tmp_path):
    clean = validate(small_data.profiles, small_data.posts, now=NOW)
    examples = latest_post_examples(clean.profiles, clean.posts)
    frame, _ = examples_dask(dd.from_pandas(small_data.profiles, npartitions=2), dd.from_pandas(small_data.posts, npartitions=3), now=NOW, npartitions=4)
    collected = to_example_set(frame.compute())
    pd.testing.assert_frame_equal(collected.base, examples.base, check_exact=False, rtol=0, atol=1e-9)
    np.testing.assert_allclose(collected.label, examples.label, rtol=0, atol=1e-12)

    config = fast_config(tmp_path)
    test_keys = pd.unique(examples.base["influencer"])[::5]  # the same held-out influencers for both
    is_test = examples.base["influencer"].isin(test_keys).to_numpy()
    pandas_model = fit_model(examples.subset(~is_test), config)
    dask_model = fit_model_dask(frame[~frame["influencer"].isin(list(test_keys))].persist(), config, client=client)
    test = examples.subset(is_test)

    def mae_and_coverage(model) -> tuple[float, float]:
        pred = model.predict_log(test.base)
        lo, hi = model.predict_log_interval(test.base, pred)
        return float(np.mean(np.abs(pred - test.label))), float(np.mean((test.label >= lo) & (test.label <= hi)))

    (mae_p, cov_p), (mae_d, cov_d) = mae_and_coverage(pandas_model), mae_and_coverage(dask_model)
    assert dask_model.metadata["n_boost_rounds"] == pandas_model.metadata["n_boost_rounds"]  # same probe, same split
    assert abs(mae_d - mae_p) < 0.03, (mae_d, mae_p)
    assert abs(cov_d - cov_p) < 0.06, (cov_d, cov_p)

    folder = save_artifact(dask_model, tmp_path / "models", dask_model.metadata)
    loaded = load_artifact(folder)
    np.testing.assert_array_equal(loaded.predict_log(test.base), dask_model.predict_log(test.base))


# --------------------------------------------------------------------------- scoring


def test_batch_scores_identical_to_the_predictor(client, trained, small_data, tmp_path):
    predictor = load_model(trained.model_dir)
    profiles, posts = small_data.profiles.head(400), small_data.posts
    expected = predictor.predict(profiles, posts, AS_OF, now=NOW)
    frame, _ = score_dask(predictor, dd.from_pandas(profiles, npartitions=2), dd.from_pandas(posts, npartitions=2), as_of=AS_OF, now=NOW, npartitions=3)
    # dtype aside (dd.from_pandas stores text as pyarrow strings, so the key column's dtype follows)
    pd.testing.assert_frame_equal(by_influencer(frame.compute()), by_influencer(expected), check_exact=False, rtol=0, atol=1e-12, check_dtype=False)

    n, _ = score_dask(predictor, dd.from_pandas(profiles, npartitions=2), dd.from_pandas(posts, npartitions=2), tmp_path / "scores", as_of=AS_OF, now=NOW, npartitions=3)
    assert n == len(expected) == len(read_parquet_any(tmp_path / "scores"))


# --------------------------------------------------------------------------- CLI


def test_cli_features_on_an_existing_cluster(client, parquet_data, tmp_path, capsys):
    profiles_dir, posts_dir = parquet_data
    out = tmp_path / "features"
    code = main(["features", "--engine", "dask", "--scheduler", client.scheduler.address, "--profiles", str(profiles_dir), "--posts", str(posts_dir / "*.parquet"), "--as-of", "2019-06-01", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    written = read_parquet_any(out)
    expected = pandas_features(read_parquet_any(profiles_dir), read_parquet_any(posts_dir)).drop(columns="hashtag_doc")
    pd.testing.assert_frame_equal(by_influencer(written), by_influencer(expected), check_exact=False, rtol=0, atol=1e-9, check_dtype=False)


@pytest.mark.parametrize(
    "argv, message",
    [
        # a Dask-only option with the default pandas engine
        (["features", "--scheduler", "tcp://127.0.0.1:1", "--out", "f.csv"], "--scheduler needs --engine dask"),
        # the Dask engine writes a folder of parts, not one file
        (["features", "--engine", "dask", "--out", "f.csv"], "writes a folder of Parquet parts"),
    ],
)
def test_cli_engine_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_run_training_dask_end_to_end(client, small_data, tmp_path):
    from training.distributed import run_training_dask

    result = run_training_dask(small_data.profiles_path, small_data.posts_path, fast_config(tmp_path), client=client, npartitions=4, progress=lambda _: None)
    predictor = load_model(result.model_dir)
    assert predictor.metadata["training_engine"] == "dask" and result.tracking["alias"] == "champion"
    assert predictor.metadata["dask_inputs"]["rows_kept"]["profiles"] == len(small_data.profiles)
    assert len(predictor.predict(small_data.profiles.head(5), small_data.posts)) == 5
