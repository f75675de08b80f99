"""The Dask feature engine (features/distributed.py) against the pandas engine, on a local
cluster of two worker processes: features, reports, and parts published all at once."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import DataError, DataValidationError, validate
from features.distributed import (
    compute_features_dask,
    influencer_buckets,
    read_parquet_any,
    write_features_dask,
)
from tests.conftest import NOW, raw_posts_frame, raw_profiles_frame
from tests.dask_fixtures import AS_OF, by_influencer, pandas_features, write_parts

dd = pytest.importorskip("dask.dataframe")


def test_buckets_ignore_surrounding_space_and_dtype():
    plain = influencer_buckets(pd.Series(["ana", "ben"], dtype=object), 7)
    spaced = influencer_buckets(pd.Series([" ana", "ben "], dtype="string[pyarrow]"), 7)
    np.testing.assert_array_equal(plain, spaced)


# --------------------------------------------------------------------------- features


def test_features_identical_to_pandas_engine(dask_cluster, parquet_data):
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


def test_handled_problems_counted_as_pandas_does(dask_cluster):
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


def test_contract_break_raises_with_merged_report(dask_cluster):
    posts = raw_posts_frame()
    posts.loc[0, "likes"] = "-5"
    with pytest.raises(DataValidationError, match="negative count"):
        compute_features_dask(
            dd.from_pandas(raw_profiles_frame(), npartitions=1),
            dd.from_pandas(posts, npartitions=1),
            now=NOW,
            npartitions=3,
        )


def test_missing_required_column_fails_before_any_work(dask_cluster):
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


def test_write_features_counts_the_parts_written_for_a_progress_bar(dask_cluster, tmp_path):
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


def test_write_features_writes_parts_and_refuses_a_used_folder(dask_cluster, tmp_path):
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


def test_dask_parts_are_published_all_at_once_or_not_at_all(dask_cluster, tmp_path):
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


def test_report_rows_are_the_pandas_engines_across_files(dask_cluster, tmp_path):
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


def test_fatal_rows_listed_smallest_first_with_the_total(dask_cluster):
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
