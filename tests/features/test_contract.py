"""The data contract: every class of bad input is
refused with a message naming file, column and rows,
and every handled case is fixed, counted and kept in the rejects."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract import (
    KNOWN_CATEGORIES,
    DataError,
    DataValidationError,
    load_and_validate,
    normalise_hashtags,
    parse_timestamps,
    read_table,
    suggest_column,
    validate,
)
from tests.conftest import NOW, raw_posts_frame, raw_profiles_frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def load(tmp_path: Path, profiles: pd.DataFrame, posts: pd.DataFrame | None):
    """Write both tables as CSV files and run the real entry point on them."""
    prof = write_csv(profiles, tmp_path / "profiles.csv")
    post = write_csv(posts, tmp_path / "posts.csv") if posts is not None else None
    return load_and_validate(prof, post, now=NOW)


def set_cell(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A mutator putting ``value`` into data row ``row`` (1-based, as the report counts)."""

    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column].astype(object)
        frame.loc[row - 1, column] = value
        return frame

    return mutate


def rename(old: str, new: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.rename(columns={old: new})


def append_copy_of(row: int, **changes: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Append a copy of data row ``row`` (1-based) with some cells changed."""

    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        extra = frame.iloc[[row - 1]].copy()
        for col, value in changes.items():
            extra[col] = value
        return pd.concat([frame, extra], ignore_index=True)

    return mutate


# ----------------------------------------------------------------- fatal problems

FATAL_CASES = [
    # A required column under another tool's name: the message suggests the rename.
    (
        "posts",
        rename("likes", "like_count"),
        r"posts\.csv, column 'likes': required column is missing; "
        r"did you mean 'like_count'\? \(rename it to 'likes'\)",
    ),
    (
        "profiles",
        rename("influencer", "username"),
        r"profiles\.csv, column 'influencer': required column is missing; did you mean 'username'",
    ),
    # A close misspelling is suggested too.
    (
        "profiles",
        rename("followers", "folowers"),
        r"column 'followers': required column is missing; did you mean 'folowers'",
    ),
    # No close match: the columns present are listed.
    (
        "posts",
        lambda f: f.drop(columns="comments"),
        r"column 'comments': required column is missing; columns present: influencer, post_id",
    ),
    # Text in a count column.
    ("posts", set_cell("likes", 2, "12k"), r"posts\.csv, column 'likes', rows 2: not a number"),
    # Negative counts.
    (
        "posts",
        set_cell("comments", 3, "-4"),
        r"posts\.csv, column 'comments', rows 3: negative count",
    ),
    (
        "profiles",
        set_cell("followers", 1, "-10"),
        r"profiles\.csv, column 'followers', rows 1: negative count",
    ),
    # An empty cell in a required count.
    (
        "posts",
        set_cell("likes", 4, None),
        r"posts\.csv, column 'likes', rows 4: missing value in a required column",
    ),
    (
        "profiles",
        set_cell("followers", 2, None),
        r"profiles\.csv, column 'followers', rows 2: missing value",
    ),
    # Infinite counts, spelled as text or overflowing.
    ("posts", set_cell("likes", 1, "inf"), r"posts\.csv, column 'likes', rows 1: infinite value"),
    ("posts", set_cell("likes", 5, "1e400"), r"posts\.csv, column 'likes', rows 5: infinite value"),
    # Implausibly huge counts (a unit or parsing error).
    (
        "profiles",
        set_cell("followers", 3, "5e12"),
        r"profiles\.csv, column 'followers', rows 3: implausibly large count",
    ),
    # Optional count columns are checked as well.
    ("posts", set_cell("shares", 5, "-1"), r"posts\.csv, column 'shares', rows 5: negative count"),
    (
        "profiles",
        set_cell("following", 1, "many"),
        r"profiles\.csv, column 'following', rows 1: not a number",
    ),
    # Timestamps that do not parse, or are missing.
    (
        "posts",
        set_cell("posted_at", 2, "yesterday-ish"),
        r"posts\.csv, column 'posted_at', rows 2: not "
        r"an ISO 8601 timestamp \(found 'yesterday-ish'\)",
    ),
    (
        "posts",
        set_cell("posted_at", 6, None),
        r"posts\.csv, column 'posted_at', rows 6: missing timestamp in a required column",
    ),
    # Other date forms are refused, never guessed: day-first and month-first look alike.
    (
        "posts",
        set_cell("posted_at", 1, "01/02/2020"),
        r"column 'posted_at', rows 1: not an ISO 8601 "
        r"timestamp \(found '01/02/2020'\); use ISO 8601",
    ),
    (
        "posts",
        set_cell("posted_at", 2, "02.03.2020"),
        r"column 'posted_at', rows 2: not an ISO 8601 timestamp",
    ),
    # Relative words and bare times of day are no dates.
    (
        "posts",
        set_cell("posted_at", 3, "now"),
        r"column 'posted_at', rows 3: not an ISO 8601 timestamp \(found 'now'\)",
    ),
    (
        "posts",
        set_cell("posted_at", 3, "12:30"),
        r"column 'posted_at', rows 3: not an ISO 8601 timestamp \(found '12:30'\)",
    ),
    # ISO-like but not the documented form: a year alone, a basic-format date, a lone hour.
    (
        "posts",
        set_cell("posted_at", 4, "2020"),
        r"column 'posted_at', rows 4: not an ISO 8601 timestamp",
    ),
    (
        "posts",
        set_cell("posted_at", 4, "20200102"),
        r"column 'posted_at', rows 4: not an ISO 8601 timestamp",
    ),
    (
        "posts",
        set_cell("posted_at", 4, "2020-01-02T10"),
        r"column 'posted_at', rows 4: not an ISO 8601 timestamp",
    ),
    # A date that does not exist.
    (
        "posts",
        set_cell("posted_at", 5, "2020-02-30T00:00:00Z"),
        r"column 'posted_at', rows 5: not an ISO 8601 timestamp",
    ),
    # Placeholder dates of exports.
    (
        "posts",
        set_cell("posted_at", 5, "1970-01-01T00:00:00Z"),
        r"column 'posted_at', rows 5: timestamp before 2000-01-01",
    ),
    # The profiles' as_of cutoffs follow the same rule.
    (
        "profiles",
        lambda f: f.assign(as_of=["2020-01-05", "05/01/2020", None]),
        r"profiles\.csv, column 'as_of', rows 2: not an ISO 8601 timestamp \(found '05/01/2020'\)",
    ),
    # Counts are whole numbers: fractions and sub-one follower counts are refused.
    (
        "profiles",
        set_cell("followers", 2, "0.5"),
        r"profiles\.csv, column 'followers', rows 2: not a whole number",
    ),
    (
        "posts",
        set_cell("likes", 3, "3.7"),
        r"posts\.csv, column 'likes', rows 3: not a whole number",
    ),
    # Thousands separators in counts.
    (
        "profiles",
        set_cell("followers", 1, "1,500"),
        r"column 'followers', rows 1: not a number \(write plain digits",
    ),
    # Timestamps after "now" (beyond the one-day tolerance).
    (
        "posts",
        set_cell("posted_at", 3, "2030-01-01T00:00:00Z"),
        r"posts\.csv, column 'posted_at', rows 3: timestamp in the future",
    ),
    # One influencer, two different profiles.
    (
        "profiles",
        append_copy_of(1, followers="6000"),
        r"profiles\.csv, column 'influencer', rows 1, 4: "
        "duplicate influencer with different values",
    ),
    # One post twice with different counts.
    (
        "posts",
        append_copy_of(2, likes="50"),
        r"posts\.csv, column 'post_id', rows 2, 9: duplicate post "
        r"\(same influencer and post_id\) with different values",
    ),
    # A platform we do not model.
    (
        "profiles",
        lambda f: f.assign(platform=["instagram", "facebook", "TikTok"]),
        r"profiles\.csv, column 'platform', rows 2: unknown platform \(facebook\)",
    ),
    # Yes/no columns must be yes/no.
    (
        "profiles",
        set_cell("verified", 3, "maybe"),
        r"profiles\.csv, column 'verified', rows 3: not a yes/no value",
    ),
    (
        "posts",
        set_cell("is_sponsored", 1, "sometimes"),
        r"posts\.csv, column 'is_sponsored', rows 1: not a yes/no value",
    ),
    # Missing keys.
    (
        "posts",
        set_cell("post_id", 4, None),
        r"posts\.csv, column 'post_id', rows 4: missing post_id",
    ),
    (
        "profiles",
        set_cell("influencer", 2, "  "),
        r"profiles\.csv, column 'influencer', rows 2: missing influencer key",
    ),
]


def _case_id(case: tuple) -> str:
    """A readable test id: table, column and the first words of the expected message."""
    table, _, match = case
    column = re.search(r"column '(\w+)'", match)
    message = re.sub(r"[^a-z ]", "", match.split(": ", 1)[-1].split(";")[0].lower()).split()[:4]
    return "-".join([table, column.group(1) if column else "", *message])


@pytest.mark.parametrize(
    ("table", "mutate", "match"), FATAL_CASES, ids=[_case_id(c) for c in FATAL_CASES]
)
def test_fatal_problem_names_file_column_rows(tmp_path, table, mutate, match):
    profiles, posts = raw_profiles_frame(), raw_posts_frame()
    if table == "profiles":
        profiles = mutate(profiles)
    else:
        posts = mutate(posts)
    with pytest.raises(DataValidationError, match=match) as info:
        load(tmp_path, profiles, posts)
    assert info.value.report.fatal


def test_all_problems_reported_at_once(tmp_path):
    posts = set_cell("likes", 1, "-1")(set_cell("comments", 2, "x")(raw_posts_frame()))
    profiles = set_cell("followers", 1, "-3")(set_cell("followers", 3, "0")(raw_profiles_frame()))
    with pytest.raises(DataValidationError, match=r"rows 1: negative count") as info:
        load(tmp_path, profiles, posts)
    columns = {p.column for p in info.value.report.fatal}
    assert columns == {"likes", "comments", "followers"}
    # Handled problems are listed beside the fatal ones.
    assert "NOTE  " in str(
        info.value
    ) and "rows 3: zero followers: engagement rate is undefined" in str(info.value)


def test_one_bad_cell_is_reported_once(tmp_path):
    # An infinite count is one problem, not also "negative" or "implausibly large".
    posts = set_cell("likes", 1, "-inf")(set_cell("comments", 2, "inf")(raw_posts_frame()))
    with pytest.raises(DataValidationError) as info:
        load(tmp_path, raw_profiles_frame(), posts)
    messages = sorted((p.column, p.rows[0], p.message) for p in info.value.report.fatal)
    assert messages == [("comments", 2, "infinite value"), ("likes", 1, "infinite value")]


def test_numeric_frames_are_checked_like_text(now):
    # Parquet or in-memory frames arrive typed: NaN, inf and negatives are still caught.
    posts = validate(raw_profiles_frame(), raw_posts_frame(), now=now).posts
    posts = posts.assign(likes=[1.0, np.nan, np.inf, -3.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(DataValidationError) as info:
        validate(raw_profiles_frame(), posts, now=now, posts_file="posts.parquet")
    found = {(p.message, tuple(p.rows)) for p in info.value.report.fatal}
    assert found == {
        ("missing value in a required column", (2,)),
        ("infinite value", (3,)),
        ("negative count", (4,)),
    }


def test_three_copies_one_different_names_every_row(tmp_path):
    # Which copy is right is unknowable: all rows of the conflicting key are named.
    posts = append_copy_of(2, likes="50")(append_copy_of(2)(raw_posts_frame()))
    with pytest.raises(
        DataValidationError, match=r"column 'post_id', rows 2, 9, 10: duplicate post"
    ) as info:
        load(tmp_path, raw_profiles_frame(), posts)
    # The same key repeated under one influencer is not "shared by several influencers".
    assert not any("several influencers" in p.message for p in info.value.report.problems)
    profiles = append_copy_of(1, followers="6000")(append_copy_of(1)(raw_profiles_frame()))
    with pytest.raises(
        DataValidationError, match=r"column 'influencer', rows 1, 4, 5: duplicate influencer"
    ):
        load(tmp_path, profiles, raw_posts_frame())


def test_future_tolerance_allows_clock_skew(tmp_path):
    # Twelve hours ahead of "now" is clock skew, not an error.
    posts = set_cell("posted_at", 1, (NOW + pd.Timedelta(hours=12)).isoformat())(raw_posts_frame())
    assert load(tmp_path, raw_profiles_frame(), posts).report.rows_out["posts"] == 8


# ----------------------------------------------------------------- files that cannot be read


def test_empty_file_is_a_data_error(tmp_path):
    (tmp_path / "profiles.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"profiles\.csv: the file is empty"):
        load_and_validate(tmp_path / "profiles.csv", None)


def test_header_only_profiles_is_a_validation_error(tmp_path):
    (tmp_path / "profiles.csv").write_text("influencer,followers\n")
    with pytest.raises(
        DataValidationError, match=r"profiles\.csv: the table has a header but no rows"
    ):
        load_and_validate(tmp_path / "profiles.csv", None)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        # Latin-1 export: the message says so and names the line.
        (
            "profiles.csv",
            "influencer,followers\nana,10\nJosé,20\n".encode("latin-1"),
            r"profiles\.csv: not valid UTF-8 text .*line 3",
        ),
        # The same inside gzip.
        (
            "profiles.csv.gz",
            gzip.compress(b"influencer,followers\n\xff\xfe,1\n"),
            r"profiles\.csv\.gz: not valid UTF-8 text .*line 2",
        ),
        # A spreadsheet is not a supported table.
        (
            "profiles.xlsx",
            b"PK\x03\x04",
            r"profiles\.xlsx: unknown file type; use \.csv, \.csv\.gz or \.parquet",
        ),
        ("profiles.json", b"{}", r"unknown file type"),
        # A broken Parquet file.
        ("profiles.parquet", b"not parquet", r"profiles\.parquet: cannot be read"),
        # A ragged row: the parser's own message names the line.
        (
            "profiles.csv",
            b"influencer,followers\nana,10\nben,1,2\n",
            r"profiles\.csv: cannot be parsed as CSV: .*line 3",
        ),
    ],
    ids=["latin1-csv", "latin1-gzip", "xlsx", "json", "broken-parquet", "ragged-row"],
)
def test_unreadable_files_are_data_errors(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_table(path)


def test_truncated_gzip_is_a_data_error(tmp_path):
    whole = gzip.compress(
        ("influencer,followers\n" + "".join(f"user{i},{i + 1}\n" for i in range(5000))).encode()
    )
    path = tmp_path / "profiles.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        DataError, match=r"profiles\.csv\.gz: the compressed file is truncated or corrupt"
    ):
        read_table(path)


@pytest.mark.parametrize(
    "header",
    [
        "influencer,likes,likes",  # the same name twice (pandas would rename one 'likes.1')
        "influencer,likes, likes",  # equal once surrounding space is removed
        "influencer,likes,Likes",  # equal once case is ignored
    ],
)
def test_a_column_named_twice_is_refused_naming_it(tmp_path, header):
    path = tmp_path / "posts.csv"
    path.write_text(header + "\nana,1,2\n")
    with pytest.raises(
        DataError,
        match=r"posts\.csv: the header names one column more than once \('likes' and '.?[lL]ikes'",
    ):
        read_table(path)


def test_a_column_named_twice_is_refused_in_parquet_and_frames(tmp_path, now):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "posts.parquet"
    pq.write_table(
        pa.table(
            [pa.array(["ana"]), pa.array([1]), pa.array([2])],
            names=["influencer", "likes", "likes"],
        ),
        path,
    )
    with pytest.raises(
        DataError,
        match=r"posts\.parquet: the header names one column more than once \('likes' and 'likes'",
    ):
        read_table(path)
    # A frame handed over directly (Python API, REST) is checked by validation.
    posts = raw_posts_frame().rename(columns={"comments": "Likes "})
    with pytest.raises(
        DataValidationError,
        match=r"posts: the header names one column more than once \('likes' and 'Likes '",
    ):
        validate(raw_profiles_frame(), posts, now=now)


def test_boolean_counts_are_refused(now):
    posts = raw_posts_frame().assign(likes=[True, False] * 4)
    with pytest.raises(
        DataValidationError,
        match=r"column 'likes', rows 1, 2, 3, 4, 5 \(first 5 of 8\): true/false values, not counts",
    ):
        validate(raw_profiles_frame(), posts, now=now)


def test_list_hashtags_are_joined_and_other_list_columns_refused(tmp_path, now):
    import pyarrow as pa
    import pyarrow.parquet as pq

    posts = raw_posts_frame()
    as_text = validate(raw_profiles_frame(), posts, now=now).posts["hashtags"].tolist()
    # The same tags as a Parquet list<string> column: each element is one tag.
    lists = [None if pd.isna(v) else v.split("|") for v in posts["hashtags"]]
    table = pa.Table.from_pandas(
        posts.drop(columns="hashtags"), preserve_index=False
    ).append_column("hashtags", pa.array(lists, pa.list_(pa.string())))
    pq.write_table(table, tmp_path / "posts.parquet")
    from_parquet = validate(raw_profiles_frame(), read_table(tmp_path / "posts.parquet"), now=now)
    assert from_parquet.posts["hashtags"].tolist() == as_text
    # Python lists in a frame built by hand, with '#' and capitals, normalise like text.
    by_hand = posts.assign(
        hashtags=[
            ["#X", "y"],
            ["x"],
            [],
            ["x", "Z"],
            ["travel", "sea"],
            ["travel", "sea"],
            ["leak"],
            ["leak", "late"],
        ]
    )
    assert validate(raw_profiles_frame(), by_hand, now=now).posts["hashtags"].tolist() == as_text
    # A list where one value belongs is refused, naming the rows.
    with pytest.raises(
        DataValidationError, match=r"column 'media_type', rows 2: cells hold lists or records"
    ):
        validate(
            raw_profiles_frame(),
            posts.assign(media_type=["image", ["a", "b"], *["image"] * 6]),
            now=now,
        )


@pytest.mark.parametrize(
    "text",
    [
        "2019-03-01T12:00:00Z",
        "2019-03-01 12:00:00",  # a space instead of "T" (RFC 3339, SQL exports)
        "2019-03-01T13:00:00+01:00",
        "2019-03-01T13:00+0100",  # minutes only, compact offset
        "2019-03-01T12:00:00.000000Z",
        " 2019-03-01T12:00:00Z ",  # surrounding space is not part of the value
    ],
)
def test_the_iso_forms_read(text):
    from features.contract import parse_time

    expected = pd.Timestamp("2019-03-01T12:00:00Z")
    assert parse_timestamps(pd.Series([text])).iloc[0] == expected
    assert parse_time(text, "--as-of") == expected


@pytest.mark.parametrize(
    "text",
    [
        "now",
        "today",
        "12:30",
        "01/03/2019",
        "2019",
        "2019-03",
        "20190301",
        "2019-3-1",
        "2019-03-01T12",
        "2019-03-01t12:00",
        "2019-02-30",
        "1551441600",
    ],
)
def test_other_time_forms_are_refused_not_guessed(text):
    from features.contract import parse_time

    assert pd.isna(parse_timestamps(pd.Series(["2019-03-01T12:00:00Z", text])).iloc[1])
    with pytest.raises(ValueError, match=r"--as-of: '.*' is not (an ISO 8601|a valid) time"):
        parse_time(text, "--as-of")


def test_utf8_with_bom_reads(tmp_path):
    # Excel's "CSV UTF-8" starts with a byte-order mark;
    # it must not end up in the first column name.
    path = tmp_path / "profiles.csv"
    path.write_bytes(b"\xef\xbb\xbfinfluencer,followers\nana,10\n")
    assert load_and_validate(path, None).profiles["influencer"].tolist() == ["ana"]


@pytest.mark.parametrize(("separator", "name"), [(";", "';'"), ("\t", "tabs"), ("|", "'|'")])
def test_a_csv_separated_otherwise_is_refused_not_guessed(tmp_path, separator, name):
    path = tmp_path / "profiles.csv"
    path.write_text(f"influencer{separator}followers\nana{separator}10\n")
    with pytest.raises(DataError, match=rf"profiles\.csv: the header is one column .* by {name}"):
        read_table(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_parquet_and_csv_gz_read_the_same(tmp_path, now):
    profiles, posts = raw_profiles_frame(), raw_posts_frame()
    profiles.to_parquet(tmp_path / "profiles.parquet", index=False)
    posts.to_parquet(tmp_path / "posts.parquet", index=False)
    profiles.to_csv(tmp_path / "profiles.csv.gz", index=False)
    posts.to_csv(tmp_path / "posts.csv.gz", index=False)
    from_parquet = load_and_validate(
        tmp_path / "profiles.parquet", tmp_path / "posts.parquet", now=now
    )
    from_csv = load_and_validate(tmp_path / "profiles.csv.gz", tmp_path / "posts.csv.gz", now=now)
    pd.testing.assert_frame_equal(from_parquet.profiles, from_csv.profiles)
    pd.testing.assert_frame_equal(from_parquet.posts, from_csv.posts)


def test_typed_parquet_reads(tmp_path, now):
    # Typed columns (numbers, booleans, timestamps) as a Parquet writer keeps them.
    clean = validate(raw_profiles_frame(), raw_posts_frame(), now=now)
    clean.profiles.to_parquet(tmp_path / "profiles.parquet", index=False)
    clean.posts.to_parquet(tmp_path / "posts.parquet", index=False)
    again = load_and_validate(tmp_path / "profiles.parquet", tmp_path / "posts.parquet", now=now)
    assert again.posts["likes"].tolist() == clean.posts["likes"].tolist()
    assert again.posts["posted_at"].tolist() == clean.posts["posted_at"].tolist()
    assert again.posts["is_sponsored"].tolist() == clean.posts["is_sponsored"].tolist()


# ----------------------------------------------------------------- handled problems


def test_exact_duplicate_posts_dropped_and_counted(tmp_path):
    posts = append_copy_of(1)(append_copy_of(1)(raw_posts_frame()))  # rows 9 and 10 copy row 1
    data = load(tmp_path, raw_profiles_frame(), posts)
    assert data.report.rows_in["posts"] == 10
    assert data.report.rows_out["posts"] == 8
    (note,) = [p for p in data.report.handled if "exact duplicate post" in p.message]
    assert (note.rows, note.count) == ([9, 10], 2)
    rejects = data.report.rejects_frame()
    assert rejects["row"].tolist() == [9, 10]
    assert set(rejects["reject_reason"]) == {"exact duplicate post"}
    assert data.posts["post_id"].is_unique


def test_exact_duplicate_profiles_dropped(tmp_path):
    data = load(tmp_path, append_copy_of(2)(raw_profiles_frame()), raw_posts_frame())
    assert data.profiles["influencer"].tolist() == ["ana", "ben", "cara"]
    assert data.report.rows_in["profiles"] == data.report.rows_out["profiles"] + len(
        data.report.rejects_frame()
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fashion", "fashion"),  # known
        ("Fashion ", "fashion"),  # case and space
        ("fasion", "fashion"),  # misspelled
        ("fashion 0.5", "fashion"),  # a score glued on
        ("beuaty", "beauty"),  # transposed letters
        ("pets", "pet"),  # plural
        ("by", "by"),  # nothing close: kept (the model's vocabulary decides at fit time)
        ("Gaming", "gaming"),  # a niche we do not know: kept, in lower case
        ("Motivational   Speaking", "motivational speaking"),  # inner space collapsed
        ("Dancing, Lipsyncing", "dancing"),  # several genres: the first is kept
        ("food; travel", "food"),  # other separators: ';'
        ("Comedy | Acting", "comedy"),  # '|'
        ("pets/fitness", "pet"),  # '/', and the first one misspelled
        (", Travel", "travel"),  # an empty first part is skipped
        ("☃☃", "☃☃"),  # no letters: nothing to compare, kept
        (None, "other"),  # empty
        ("  ", "other"),  # blank
        (" , ", "other"),  # separators only
    ],
)
def test_category_mapping(raw, expected, now):
    profiles = raw_profiles_frame().assign(category=[raw, "travel", "food"])
    data = validate(profiles, None, now=now)
    assert data.profiles["category"].iloc[0] == expected
    assert data.profiles["category"].iloc[1:].tolist() == ["travel", "food"]
    notes = [p for p in data.report.handled if p.column == "category"]
    if expected != " ".join((raw or "").lower().split()) or expected not in KNOWN_CATEGORIES:
        # Anything but a known niche in another case is reported, with its row.
        assert notes and all(p.rows == [1] and p.count == 1 for p in notes)
    else:
        assert not notes


def test_category_notes_say_what_was_done(now):
    profiles = raw_profiles_frame().assign(category=["Dancing, Lipsyncing", "fasion", "comedy"])
    notes = {p.message.split(" (")[0]: p for p in validate(profiles, None, now=now).report.handled}
    assert notes["several categories in one cell"].rows == [1]
    assert notes["several categories in one cell"].action == "kept the first one"
    assert "'fasion'->'fashion'" in notes["misspelled category"].message and notes[
        "misspelled category"
    ].rows == [2]
    outside = notes["category outside the known niches"]
    assert (outside.rows, outside.count) == (
        [1, 3],
        2,
    ) and "kept as its own niche" in outside.action


def test_zero_followers_are_set_aside_with_their_posts(tmp_path):
    # ana (row 1) has 0 followers: her profile and her 6 posts go to the rejects, with reasons
    # and counts; ben and cara, and ben's posts, are kept.
    profiles = set_cell("followers", 1, "0")(raw_profiles_frame())
    data = load(tmp_path, profiles, raw_posts_frame())
    assert data.profiles["influencer"].tolist() == ["ben", "cara"]
    assert set(data.posts["influencer"]) == {"ben"}
    (profile_note,) = [
        p for p in data.report.handled if p.table == "profiles" and p.column == "followers"
    ]
    assert (profile_note.rows, profile_note.count) == ([1], 1)
    assert profile_note.message == "zero followers: engagement rate is undefined"
    assert "set aside" in profile_note.action
    (posts_note,) = [
        p for p in data.report.handled if p.table == "posts" and "zero followers" in p.message
    ]
    assert (posts_note.rows, posts_note.count) == (
        [1, 2, 3, 4, 7],
        6,
    ) and posts_note.column == "influencer"
    rejects = data.report.rejects_frame()
    assert rejects[["table", "row", "reject_reason"]].values.tolist() == [
        ["profiles", 1, "zero followers: engagement rate is undefined"],
        *[["posts", row, "influencer has zero followers"] for row in (1, 2, 3, 4, 7, 8)],
    ]
    assert rejects.loc[rejects["table"] == "posts", "post_id"].tolist() == [
        "a1",
        "a2",
        "a3",
        "a4",
        "a5",
        "a6",
    ]  # as read
    for table in ("profiles", "posts"):  # every row read is kept or in the rejects
        assert data.report.rows_in[table] == data.report.rows_out[table] + int(
            (rejects["table"] == table).sum()
        )
    assert not data.report.fatal
    assert re.search(
        r"rows 1: zero followers: engagement rate is undefined -> set aside", data.report.format()
    )


def test_zero_followers_and_orphans_are_told_apart(tmp_path, now):
    # A zero-follower profile's posts are not "orphans"; exact copies of that profile are
    # dropped as duplicates first, so the profile is set aside once.
    profiles = append_copy_of(1)(set_cell("followers", 1, "0.0")(raw_profiles_frame()))
    posts = append_copy_of(5, influencer="ghost", post_id="g1")(raw_posts_frame())
    data = validate(profiles, posts, now=now)
    reasons = data.report.rejects_frame().groupby(["table", "reject_reason"]).size().to_dict()
    assert reasons == {
        ("profiles", "exact duplicate profile"): 1,
        ("profiles", "zero followers: engagement rate is undefined"): 1,
        ("posts", "influencer has zero followers"): 6,
        ("posts", "no profile for this influencer"): 1,
    }


def test_only_zero_follower_profiles_leave_empty_tables(now):
    profiles = raw_profiles_frame().assign(followers=["0", "0", "0"])
    data = validate(profiles, raw_posts_frame(), now=now)
    assert len(data.profiles) == 0 and len(data.posts) == 0
    assert data.report.rows_out == {"profiles": 0, "posts": 0}


def test_orphan_posts_set_aside_with_reason(tmp_path):
    posts = append_copy_of(1, influencer="ghost", post_id="g1")(
        append_copy_of(2, influencer="ghost", post_id="g2")(raw_posts_frame())
    )
    data = load(tmp_path, raw_profiles_frame(), posts)
    assert "ghost" not in set(data.posts["influencer"])
    rejects = data.report.rejects_frame()
    assert rejects["row"].tolist() == [9, 10]
    assert rejects["post_id"].tolist() == ["g2", "g1"]  # the original rows, as read
    assert set(rejects["reject_reason"]) == {"no profile for this influencer"}
    assert set(rejects["table"]) == {"posts"}
    assert (
        "column 'influencer', rows 9, 10: posts whose influencer has no profile"
        in data.report.format()
    )


def test_nothing_is_lost_silently(tmp_path):
    # Duplicates and orphans together: every row read is either kept or in the rejects.
    posts = append_copy_of(3)(append_copy_of(1, influencer="ghost")(raw_posts_frame()))
    data = load(tmp_path, raw_profiles_frame(), posts)
    rejects = data.report.rejects_frame()
    n_rejected = int((rejects["table"] == "posts").sum())
    assert data.report.rows_in["posts"] == data.report.rows_out["posts"] + n_rejected
    assert (data.report.rows_in["posts"], data.report.rows_out["posts"], n_rejected) == (10, 8, 2)


def test_post_id_shared_by_two_influencers_is_kept(tmp_path):
    posts = append_copy_of(1, influencer="ben")(raw_posts_frame())
    data = load(tmp_path, raw_profiles_frame(), posts)
    assert (data.posts["post_id"] == "a1").sum() == 2
    assert any("several influencers" in p.message and p.rows == [1, 9] for p in data.report.handled)


@pytest.mark.parametrize("collide", ["never", "always"])
def test_key_checks_compare_text_whatever_the_hashes(monkeypatch, now, collide):
    # Keys are compared as 64-bit hashes first, then as text where hashes repeat. With every hash
    # equal, every row is compared as text, and the report must be the same as with real hashes.
    from features import contract

    posts = append_copy_of(1)(raw_posts_frame())  # row 9: an exact copy of row 1
    posts = append_copy_of(2, likes="7")(posts)  # row 10: a clashing version of row 2
    posts = append_copy_of(3, influencer="ben")(posts)  # row 11: row 3's post_id under ben
    expected = validate(raw_profiles_frame(), posts, now=now, raise_on_fatal=False).report
    if collide == "always":
        monkeypatch.setattr(
            contract, "text_hashes", lambda values: np.zeros(len(values), dtype=np.uint64)
        )
    report = validate(raw_profiles_frame(), posts, now=now, raise_on_fatal=False).report
    assert report.format() == expected.format()
    described = report.format()
    assert (
        "rows 2, 10: duplicate post (same influencer and post_id) with different values"
        in described
    )
    assert "rows 9: exact duplicate post rows" in described
    assert "rows 3, 11: the same post_id appears under several influencers" in described


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet="aBc|#, \t\u00a0\u2003\u00c9\u00e9\x1c_1", max_size=15),
            st.text(max_size=8),
        ),
        max_size=30,
    )
)
def test_hashtag_normalising_matches_rewriting_every_cell(cells):
    # Only cells whose bytes may hold a separator are rewritten; the result must be what the
    # rewrite of every cell gives (lowercase, '#', commas and any whitespace run -> one '|').
    from features.contract import HASHTAG_SEPARATORS, normalise_hashtags

    values = pd.Series(cells, dtype=object)
    expected = (
        values.astype("string")
        .fillna("")
        .str.lower()
        .str.replace(HASHTAG_SEPARATORS, "|", regex=True)
        .str.strip("|")
    )
    got = normalise_hashtags(values)
    assert got.tolist() == expected.tolist()


def test_double_pipes_are_found_at_any_byte_offset():
    from features.contract import normalise_hashtags

    # '||' starting at odd and at even offsets of the text buffer, and across two cells.
    cells = ["a||b", "ab||c", "x|", "|y", "abc||", "||d", "plain|tags"]
    assert normalise_hashtags(pd.Series(cells, dtype="string")).tolist() == [
        "a|b",
        "ab|c",
        "x",
        "y",
        "abc",
        "d",
        "plain|tags",
    ]


def test_embedded_data_validates(embedded_paths):
    data = load_and_validate(*embedded_paths)
    report = data.report
    assert not report.fatal
    assert report.rows_out["profiles"] == len(data.profiles) > 30_000
    rejected = int((report.rejects_frame()["table"] == "posts").sum())
    assert report.rows_in["posts"] == report.rows_out["posts"] + rejected


# ----------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "raw",
    [
        "#a #b",  # Instagram style
        "a,b",  # comma list
        "a|b",  # our own format
        "#A, #B",  # upper case, comma and space
        " a | b ",  # padded
    ],
)
def test_hashtag_formats_normalise_the_same(raw):
    assert normalise_hashtags(pd.Series([raw])).iloc[0] == "a|b"


def test_missing_hashtags_are_empty():
    assert normalise_hashtags(pd.Series([None, "", "  "])).tolist() == ["", "", ""]


@pytest.mark.parametrize(
    "values",
    [
        # UTC, offsets east and west, naive (taken as UTC), all in one column
        [
            "2019-03-01T12:00:00Z",
            "2019-03-01T14:00:00+02:00",
            "2019-03-01T07:00:00-05:00",
            "2019-03-01 12:00:00",
        ],
        # the same, with one unparseable cell forcing the slow path
        ["2019-03-01T12:00:00Z", "2019-03-01T14:00:00+02:00", "2019-03-01 12:00:00", "not a time"],
        # fractional seconds and a compact offset
        ["2019-03-01T12:00:00.000Z", "2019-03-01T13:30:00+0130"],
    ],
)
def test_timestamps_parse_to_utc(values):
    parsed = parse_timestamps(pd.Series(values))
    assert str(parsed.dt.tz) == "UTC"
    expected = pd.Timestamp("2019-03-01T12:00:00Z")
    for raw, ts in zip(values, parsed, strict=True):
        if raw == "not a time":
            assert pd.isna(ts)
        else:
            assert ts == expected, raw


def test_typed_timestamps_parse_to_utc():
    naive = pd.Series(pd.to_datetime(["2019-03-01 12:00:00"]))
    berlin = naive.dt.tz_localize("Europe/Berlin")
    assert parse_timestamps(naive).iloc[0] == pd.Timestamp("2019-03-01T12:00:00Z")
    assert parse_timestamps(berlin).iloc[0] == pd.Timestamp("2019-03-01T11:00:00Z")


@pytest.mark.parametrize(
    ("missing", "present", "expected"),
    [
        ("likes", ["like_count", "comments"], "like_count"),  # known alias
        ("influencer", ["username", "followers"], "username"),  # known alias
        ("followers", ["Followers_Count"], "Followers_Count"),  # alias, other case
        ("comments", ["coments"], "coments"),  # typo
        ("posted_at", ["foo", "bar"], None),  # nothing close
    ],
)
def test_suggest_column(missing, present, expected):
    assert suggest_column(missing, present) == expected


def test_text_is_read_as_arrow_whatever_the_string_storage_option():
    # as_text and the hashtag normaliser have no pandas-storage path: with pandas' "python"
    # string storage they still read arrow text and give the same result.
    from features.contract import as_text, normalise_hashtags

    cells = pd.Series([" A ", None, "", "#Fun, Travel  LIFE||x"], dtype=object)
    expected = (as_text(cells).tolist(), normalise_hashtags(cells).tolist())
    with pd.option_context("mode.string_storage", "python"):
        assert pd.Series(["x"], dtype="string").dtype.storage == "python"
        assert (as_text(cells).tolist(), normalise_hashtags(cells).tolist()) == expected
    assert expected[1] == ["a", "", "", "fun|travel|life|x"]


def test_validation_does_not_mutate_inputs(now):
    profiles, posts = raw_profiles_frame(), raw_posts_frame()
    validate(profiles, posts, now=now)
    pd.testing.assert_frame_equal(profiles, raw_profiles_frame())
    pd.testing.assert_frame_equal(posts, raw_posts_frame())


@pytest.mark.parametrize("dtype", [object, "string[pyarrow]", "string[python]", "str"])
@pytest.mark.parametrize("cells", [["a", " b ", "", None, "  ", "c\u00a0"], ["x", "y"], [], [None]])
def test_as_text_strips_and_makes_blank_cells_missing(cells, dtype):
    # Every text dtype is read as arrow text: the same result as pandas' .str.strip().
    from features.contract import as_text

    series = pd.Series(cells, dtype=dtype, name="key")
    stripped = series.astype("string").str.strip()
    expected = stripped.mask((stripped == "").to_numpy(dtype=bool, na_value=False))
    pd.testing.assert_series_equal(as_text(series), expected)
