"""The input fuzz harness: generated bad inputs, run
through the CLI, the Python API and REST in process.

One registry, :data:`KINDS`, lists every kind of bad input. A kind takes a small valid input
(:func:`base_case`) and breaks it one way, drawing the details (which column, row and value)
from hypothesis, and says what must happen:

* ``refused``: exit 2 from ``engage``, :class:`~features.contract.DataError` or
  :class:`~features.contract.DataValidationError` from the Python API, a 4xx from REST, each
  with a message naming what is wrong (the column, the file, the option);
* ``handled``: the contract's documented handling (rows set aside and counted, a note);
* ``clean``: another accepted spelling of a valid input;
* ``either``: combinations of several breaks (refused or handled, never anything else).

Whatever the kind, every surface must also: end without a traceback (an exception other than
the three above, exit 1, a 5xx), lose no row (rows in = rows kept + rows set aside, one output
row per influencer) and change no value without a note (follower counts come back exactly).

Some kinds break the run rather than the tables: ``model_*`` kinds score with a copy of the
model folder tampered with, damaged or missing a file (:data:`MODEL_FAULTS`), or under a faulty
signing key (:data:`KEY_FAULTS`); their "rest" surface is ``engage serve`` starting on it, which
must refuse before a server starts, and a planted pickle must never run. ``output_*`` kinds give
``engage score --out`` a path it cannot write (:data:`OUTPUT_FAULTS`). For every refusal by the
CLI the output is checked to be as it was before (absent, or the previous bytes) with no
temporary file beside it.

To add a kind: write a function ``(draw, case) -> None`` that changes ``case`` and sets its
expectation, and decorate it with ``@kind("name", surfaces=...)``. Surfaces a kind cannot
express (a truncated file over REST) are left out of its ``surfaces``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from features.contract import DataError, DataValidationError, as_text, read_table

SURFACES = ("cli", "api", "rest", "rest_csv")  # rest: JSON dataframe_split; rest_csv: text/csv
# The fixed clock of the Python API's future check, and the cutoff every case is scored at.
NOW = pd.Timestamp("2020-06-01", tz="UTC")
AS_OF = "2020-03-01T00:00:00Z"
# Outcomes counted per (kind, surface); "unhandled" must stay 0.
FIGURES: Counter[tuple[str, str, str]] = Counter()


# --------------------------------------------------------------------------- the base input


def base_tables(n_profiles: int = 6, posts_each: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small valid pair of tables, all text, as a CSV export would give them."""
    names = [f"user{i}" for i in range(n_profiles)]
    profiles = pd.DataFrame(
        {
            "influencer": names,
            "followers": [str(1000 * (i + 1) ** 2) for i in range(n_profiles)],
            "following": ["100"] * n_profiles,
            "category": ["fashion", "travel", "food", "beauty", "pet", "fitness"][:n_profiles],
            "platform": ["instagram"] * n_profiles,
        }
    )
    rows = []
    for i, name in enumerate(names[:-1]):  # the last influencer has no posts (cold start)
        for j in range(posts_each):
            rows.append(
                (
                    name,
                    f"p{i}_{j}",
                    f"2020-01-{j * 3 + 1:02d}T12:00:00Z",
                    str(50 * (i + j + 1)),
                    str(3 * j),
                    "image",
                    "x|y",
                )
            )
    posts = pd.DataFrame(
        rows,
        columns=[
            "influencer",
            "post_id",
            "posted_at",
            "likes",
            "comments",
            "media_type",
            "hashtags",
        ],
    )
    return profiles, posts


@dataclass
class Case:
    """One generated input and what must come of it."""

    kind: str
    profiles: pd.DataFrame
    posts: pd.DataFrame
    expect: str = "refused"  # refused | handled | clean | either
    # What a refusal must name: the column (as 'name' in contract messages, bare over REST),
    # the table whose file it must name, the command-line option.
    column: str | None = None
    table: str | None = None
    option: str | None = None
    file_format: str = "csv"  # csv | csv.gz | parquet
    raw: dict[str, bytes] = field(default_factory=dict)  # file bytes replacing a table's file
    fees: pd.DataFrame | None = None
    fees_format: str = "csv"  # csv | xlsx
    as_of: str = AS_OF
    cli_args: list[str] = field(default_factory=list)
    out_name: str = "out.csv"  # relative to the case's folder, for engage score --out
    surfaces: tuple[str, ...] = SURFACES
    detail: str = ""  # what was done, for failure messages
    # Where REST must answer otherwise (its columns are matched by exact name, see the kinds).
    rest_expect: str | None = None
    rest_column: str | None = None
    # Phrases every refusal must hold (the file at fault, the variable to set).
    must_name: tuple[str, ...] = ()
    # A fault in the model the case is scored with (see MODEL_FAULTS), and in the signing key.
    model_fault: str = ""
    key_fault: str = ""
    cut: float = 0.5  # where a truncated file is cut, as a share of its length
    # A fault in the output path (see OUTPUT_FAULTS); the output's earlier contents, if any.
    output_fault: str = ""
    previous_out: bytes | None = None

    def frame(self, table: str) -> pd.DataFrame:
        return self.profiles if table == "profiles" else self.posts

    def set_frame(self, table: str, frame: pd.DataFrame) -> None:
        if table == "profiles":
            self.profiles = frame
        else:
            self.posts = frame


def base_case(kind: str) -> Case:
    profiles, posts = base_tables()
    return Case(kind, profiles, posts)


# --------------------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[st.DrawFn, Case], None]
    surfaces: tuple[str, ...]


KINDS: dict[str, Kind] = {}


def kind(
    name: str, surfaces: tuple[str, ...] = SURFACES
) -> Callable[[Callable[[st.DrawFn, Case], None]], Callable[[st.DrawFn, Case], None]]:
    """Register a kind of bad input (see the module notes)."""

    def register(build: Callable[[st.DrawFn, Case], None]) -> Callable[[st.DrawFn, Case], None]:
        assert name not in KINDS, name
        KINDS[name] = Kind(name, build, surfaces)
        return build

    return register


def _set(
    draw: st.DrawFn, case: Case, table: str, column: str, value: object, *, row: int | None = None
) -> int:
    frame = case.frame(table).copy()
    row = draw(st.integers(0, len(frame) - 1)) if row is None else row
    frame[column] = frame[column].astype(object)
    frame.iloc[row, frame.columns.get_loc(column)] = value
    case.set_frame(table, frame)
    case.detail += f"{table}.{column}[{row + 1}]={value!r} "
    return row


def _count_cell(draw: st.DrawFn, values: list[str]) -> tuple[str, str, str]:
    table, column = draw(
        st.sampled_from(
            [
                ("profiles", "followers"),
                ("profiles", "following"),
                ("posts", "likes"),
                ("posts", "comments"),
            ]
        )
    )
    return table, column, draw(st.sampled_from(values))


def _refuse(case: Case, table: str | None, column: str | None) -> None:
    case.expect, case.table, case.column = "refused", table, column


@kind("count_not_a_number")
def _count_text(draw: st.DrawFn, case: Case) -> None:
    table, column, value = _count_cell(
        draw,
        ["lots", "12abc", "1,000", "1 000", "0x10", "1.000,5", "$5", "\uff11\uff12", "12k", "None"],
    )
    _set(draw, case, table, column, value)
    _refuse(case, table, column)


@kind("count_fraction")
def _count_fraction(draw: st.DrawFn, case: Case) -> None:
    table, column, value = _count_cell(draw, ["3.7", "0.5", "1e-3", "2.50", "0.999"])
    _set(draw, case, table, column, value)
    _refuse(case, table, column)


@kind("count_negative_or_huge")
def _count_range(draw: st.DrawFn, case: Case) -> None:
    table, column, value = _count_cell(
        draw, ["-5", "-1", "inf", "-inf", "1e300", "99999999999999999999999", "1e12", "Infinity"]
    )
    _set(draw, case, table, column, value)
    _refuse(case, table, column)


@kind("count_missing")
def _count_missing(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(
        st.sampled_from([("profiles", "followers"), ("posts", "likes"), ("posts", "comments")])
    )
    _set(draw, case, table, column, draw(st.sampled_from([None, "", "  "])))
    _refuse(case, table, column)


@kind("count_true_false")
def _count_flags(draw: st.DrawFn, case: Case) -> None:
    # A typed Boolean column (Parquet, a frame, JSON true/false) where a count belongs.
    table, column = draw(
        st.sampled_from([("profiles", "followers"), ("posts", "likes"), ("posts", "comments")])
    )
    frame = case.frame(table).copy()
    frame[column] = [bool(i % 2) for i in range(len(frame))]
    case.set_frame(table, frame)
    case.file_format = "parquet"
    case.detail += f"{table}.{column}=true/false "
    _refuse(case, table, column)


NOT_ISO = [
    "01/02/2020",
    "13/02/2020",
    "02.03.2020",
    "now",
    "today",
    "12:30",
    "yesterday",
    "1577836800",
    "2020",
    "2020-01",
    "20200102",
    "2020-1-2",
    "2020-02-30",
    "2020-01-02T10",
    "2020-01-02t10:00",
    "Jan 2, 2020",
    "2020-01-02T10:00:00 UTC",
]


@kind("time_not_iso")
def _time_not_iso(draw: st.DrawFn, case: Case) -> None:
    _set(draw, case, "posts", "posted_at", draw(st.sampled_from(NOT_ISO)))
    _refuse(case, "posts", "posted_at")


@kind("time_out_of_range")
def _time_range(draw: st.DrawFn, case: Case) -> None:
    _set(
        draw,
        case,
        "posts",
        "posted_at",
        draw(
            st.sampled_from(
                [
                    "0001-01-01",
                    "1970-01-01T00:00:00Z",
                    "1999-12-31T23:00:00Z",
                    "2099-01-01T00:00:00Z",
                    "9999-12-31",
                ]
            )
        ),
    )
    _refuse(case, "posts", "posted_at")


@kind("time_missing")
def _time_missing(draw: st.DrawFn, case: Case) -> None:
    _set(draw, case, "posts", "posted_at", draw(st.sampled_from([None, "", " "])))
    _refuse(case, "posts", "posted_at")


REQUIRED = [
    ("profiles", "influencer"),
    ("profiles", "followers"),
    ("posts", "post_id"),
    ("posts", "posted_at"),
    ("posts", "likes"),
    ("posts", "comments"),
]


@kind("column_missing")
def _column_missing(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(st.sampled_from(REQUIRED))
    frame = case.frame(table)
    alias = draw(
        st.sampled_from(
            [None, f"{column}_count", column[:-1], "username", "timestamp", "like_count"]
        )
    )
    if alias is None or alias in frame.columns:
        case.set_frame(table, frame.drop(columns=column))
    else:
        case.set_frame(table, frame.rename(columns={column: alias}))
    case.detail += f"{table} without {column} (renamed {alias}) "
    _refuse(case, table, column)


@kind("column_named_twice")
def _column_twice(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(
        st.sampled_from([*REQUIRED, ("posts", "influencer"), ("profiles", "category")])
    )
    twin = draw(st.sampled_from([column, f" {column}", column.upper(), f"{column.title()} "]))
    frame = case.frame(table)
    copy = frame[column].rename(twin)
    case.set_frame(table, pd.concat([frame, copy], axis=1))
    case.detail += f"{table}: {column!r} and {twin!r} "
    case.expect, case.table = "refused", table
    case.column = "more than once"  # the message names both spellings; checked as a phrase
    # REST matches columns by exact name: another spelling is an extra column, ignored (as in
    # a file), and the same name twice is refused by the scoring server naming the column.
    case.rest_expect, case.rest_column = ("refused", column) if twin == column else ("clean", None)


@kind("key_conflict")
def _key_conflict(draw: st.DrawFn, case: Case) -> None:
    table = draw(st.sampled_from(["profiles", "posts"]))
    frame = case.frame(table)
    row = draw(st.integers(0, len(frame) - 1))
    copy = frame.iloc[[row]].copy()
    column = (
        "followers"
        if table == "profiles"
        else draw(st.sampled_from(["likes", "comments", "media_type"]))
    )
    copy[column] = "7" if column != "media_type" else "video"
    if copy[column].iloc[0] == frame[column].iloc[row]:
        copy[column] = "8"
    case.set_frame(table, pd.concat([frame, copy], ignore_index=True))
    case.detail += f"{table} row {row + 1} again with another {column} "
    _refuse(case, table, "influencer" if table == "profiles" else "post_id")


@kind("key_missing")
def _key_missing(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(st.sampled_from([("profiles", "influencer"), ("posts", "post_id")]))
    _set(draw, case, table, column, draw(st.sampled_from([None, "", "   "])))
    _refuse(case, table, column)
    case.surfaces = (
        ("cli", "api") if table == "profiles" else SURFACES
    )  # REST rows are keyed by influencer


@kind("platform_unknown")
def _platform(draw: st.DrawFn, case: Case) -> None:
    _set(
        draw,
        case,
        "profiles",
        "platform",
        draw(st.sampled_from(["myspace", "insta gram", "\u2603", "tik-tok", "facebook"])),
    )
    _refuse(case, "profiles", "platform")


@kind("flag_not_yes_no")
def _flag(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(st.sampled_from([("profiles", "verified"), ("posts", "is_sponsored")]))
    frame = case.frame(table).copy()
    frame[column] = "false"
    case.set_frame(table, frame)
    _set(draw, case, table, column, draw(st.sampled_from(["maybe", "sometimes", "2", "ja", "-1"])))
    _refuse(case, table, column)


@kind("cells_hold_lists", surfaces=("cli", "api"))
def _lists(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(
        st.sampled_from(
            [
                ("posts", "media_type"),
                ("posts", "likes"),
                ("profiles", "category"),
                ("profiles", "followers"),
            ]
        )
    )
    frame = case.frame(table).copy()
    frame[column] = [[str(v), str(v)] for v in frame[column]]
    case.set_frame(table, frame)
    case.file_format = "parquet"
    case.detail += f"{table}.{column} as lists "
    _refuse(case, table, column)


def _file_bytes(case: Case, table: str) -> bytes:
    return case.frame(table).to_csv(index=False).encode()


@kind("file_unreadable", surfaces=("cli", "api"))
def _file_unreadable(draw: st.DrawFn, case: Case) -> None:
    table = draw(st.sampled_from(["profiles", "posts"]))
    how = draw(
        st.sampled_from(
            ["empty", "latin1", "binary", "truncated_gz", "ragged", "not_parquet", "semicolons"]
        )
    )
    text = _file_bytes(case, table)
    if how == "empty":
        case.raw[table] = b""
    elif how == "latin1":
        case.raw[table] = text.replace(b"user1", "us\u00e9r1".encode("latin-1"))
    elif how == "binary":
        case.raw[table] = b"\x80\x81\xff\xfe" + text
    elif how == "truncated_gz":
        case.file_format = "csv.gz"
        whole = gzip.compress(text * 40)
        case.raw[table] = whole[: draw(st.integers(10, len(whole) - 10))]
    elif how == "ragged":
        case.raw[table] = text + b"a,b,c,d,e,f,g,h,i,j,k\n"
    elif how == "semicolons":  # Excel's CSV where the decimal point is a comma
        case.raw[table] = text.replace(b",", b";")
    else:
        case.file_format = "parquet"
        case.raw[table] = b"PAR1 but not really" + text[:50]
    case.detail += f"{table} file {how} "
    _refuse(case, table, None)


@kind("profiles_header_only", surfaces=("cli", "api"))
def _header_only(draw: st.DrawFn, case: Case) -> None:
    case.raw["profiles"] = (",".join(case.profiles.columns) + "\n").encode()
    _refuse(case, "profiles", None)


FEE_BAD = ["1.500,00", "2,5", "1,500", "$100", "100 EUR", "lots", "-5", "inf", "1e3", "\u20ac5"]


def _fees(case: Case) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "influencer": case.profiles["influencer"],
            "fee": [str(100 * (i + 1)) for i in range(len(case.profiles))],
            "currency": "EUR",
        }
    )


@kind("fee_not_plain", surfaces=("cli", "api"))
def _fee_bad(draw: st.DrawFn, case: Case) -> None:
    fees = _fees(case)
    row = draw(st.integers(0, len(fees) - 1))
    fees.loc[row, "fee"] = draw(st.sampled_from(FEE_BAD))
    case.fees, case.fees_format = fees, draw(st.sampled_from(["csv", "xlsx"]))
    case.detail += f"fee[{row + 1}]={fees.loc[row, 'fee']!r} in {case.fees_format} "
    _refuse(case, "fees", "fee")


@kind("fee_table_broken", surfaces=("cli", "api"))
def _fee_table_broken(draw: st.DrawFn, case: Case) -> None:
    fees = _fees(case)
    how = draw(st.sampled_from(["names_missing", "name_twice", "header_twice", "no_fee_column"]))
    case.fees_format = draw(st.sampled_from(["csv", "xlsx"]))
    if how == "names_missing":  # blank names with different fees (was a traceback)
        rows = draw(st.lists(st.integers(0, len(fees) - 1), min_size=1, max_size=3, unique=True))
        fees.loc[rows, "influencer"] = ""
        _refuse(case, "fees", "influencer")
    elif how == "name_twice":
        fees.loc[len(fees)] = [fees.loc[0, "influencer"], "999", "EUR"]
        _refuse(case, "fees", "influencer")
    elif how == "header_twice":
        twin = draw(st.sampled_from(["fee", "Fee", " fee "]))
        fees = pd.concat([fees, fees["fee"].rename(twin)], axis=1)
        _refuse(case, "fees", None)
        case.must_name = ("more than once",)
    else:
        fees = fees.rename(columns={"fee": draw(st.sampled_from(["price", "cost", "fees"]))})
        _refuse(case, "fees", None)
        case.must_name = ("fee",)
    case.fees = fees
    case.detail += f"{how} in {case.fees_format} "


@kind("key_looks_missing")
def _key_looks_missing(draw: st.DrawFn, case: Case) -> None:
    """A handle that pandas' defaults would read as missing ("NA", "null", ...): a name, as
    written, in files of every kind, a fee table (CSV or Excel) and requests."""
    name = draw(st.sampled_from(["NA", "null", "None", "nan", "N/A", "#N/A", "NULL", "n/a"]))
    row = draw(st.integers(0, len(case.profiles) - 2))  # one with posts
    old = case.profiles.loc[row, "influencer"]
    case.profiles = case.profiles.replace({"influencer": {old: name}})
    case.posts = case.posts.replace({"influencer": {old: name}})
    if draw(st.booleans()):
        case.fees = _fees(case)
        case.fees_format = draw(st.sampled_from(["csv", "xlsx"]))
        case.surfaces = ("cli", "api")
    case.detail += f"{old} renamed {name!r} (fees: {case.fees is not None}) "
    case.expect = "clean"
    if case.fees is not None and case.fees_format == "xlsx" and name == "#N/A":
        # Written into Excel, "#N/A" is the error value (as when a planner types it), which
        # pandas would read as empty: refused, naming the cell's column and its error.
        _refuse(case, "fees", "influencer")
        case.must_name = ("Excel error #N/A",)


@kind("as_of_not_a_cutoff", surfaces=("cli", "api"))
def _as_of_arg(draw: st.DrawFn, case: Case) -> None:
    case.as_of = draw(
        st.sampled_from(
            [
                "now",
                "today",
                "01/02/2020",
                "yesterday",
                "2020-13-01",
                "1000-01-01",
                "2263-01-01",
                "2099-01-01",
                "12:30",
                "2020",
            ]
        )
    )
    case.detail += f"as_of={case.as_of!r} "
    case.expect, case.option = "refused", "as_of"


@kind("as_of_column_bad")
def _as_of_column(draw: st.DrawFn, case: Case) -> None:
    frame = case.profiles.copy()
    frame["as_of"] = AS_OF
    case.profiles = frame
    _set(
        draw,
        case,
        "profiles",
        "as_of",
        draw(
            st.sampled_from(
                ["01/03/2020", "now", "2099-01-01T00:00:00Z", "1970-01-01", "March 1st"]
            )
        ),
    )
    _refuse(case, "profiles", "as_of")


@kind("cli_argument_bad", surfaces=("cli",))
def _cli_argument(draw: st.DrawFn, case: Case) -> None:
    how = draw(st.sampled_from(["top", "out_under_file", "out_folder", "out_type", "partitions"]))
    if how == "top":
        case.cli_args, case.option = ["--top", draw(st.sampled_from(["-1", "-20", "ten"]))], "--top"
    elif how == "out_under_file":
        case.out_name, case.option = "posts.csv/out.csv", "--out"
    elif how == "out_folder":
        case.out_name, case.option = ".", "--out"
    elif how == "out_type":
        case.out_name, case.option = (
            draw(st.sampled_from(["out.txt", "out.json", "out.parquet"])),
            "--out",
        )
    else:
        case.cli_args, case.option = (
            ["--partitions", draw(st.sampled_from(["0", "-2", "x"]))],
            "--partitions",
        )
    case.detail += how
    case.expect = "refused"


# ----------------------------------------------------------------- refused: the model and the key
#
# A model fault is applied to a copy of the served model folder; the CLI scores with it, the
# Python API loads it (serving.load_model) and "rest" is `engage serve` starting on it, which must
# refuse before the server starts. Nothing may be unpickled from a planted pickle, and no output
# file may be written.

MODEL_FAULTS = {
    # tampered with after signing
    "model_byte_changed": "model.joblib",
    "metadata_byte_changed": "metadata.json",
    "manifest_missing": "MANIFEST.json is missing",
    "manifest_garbled": "MANIFEST.json is unreadable",
    "planted_pickle": "signature of MANIFEST.json does not match",
    "planted_file": "not covered by the signed manifest",
    "signed_with_another_key": "signed with another key",
    "legacy_manifest": "MANIFEST.sha256",
    # damaged, or of something else, and then signed with the right key
    "truncated_booster_signed": "model.joblib matches its signature but cannot be unpickled",
    "not_a_pickle_signed": "model.joblib matches its signature but cannot be unpickled",
    "not_an_engage_model": "not an engage model",
    "metadata_not_json": "metadata.json is not JSON",
    "manifest_omits_model": "model.joblib is not covered by the signed manifest",
    # files missing
    "truncated_booster": "model.joblib does not match its SHA-256",
    "model_file_missing": "model.joblib is missing",
    "metadata_missing": "metadata.json is missing",
    "folder_missing": "no such model folder",
    "path_is_a_file": "no such model folder",
}

KEY_FAULTS = {
    "key_missing": "no model signing key",
    "key_wrong": "signed with another key",
    "key_too_short": "characters, at least 32",
    "key_file_readable_by_others": "accessible to other users",
    "key_file_missing": "does not exist",
}


def _model_refusal(case: Case, fault: str, phrase: str) -> None:
    case.expect, case.table, case.column = "refused", None, None
    case.must_name = (phrase,)
    case.surfaces = ("cli", "api", "rest")
    case.detail += fault


@kind("model_tampered", surfaces=("cli", "api", "rest"))
def _model_tampered(draw: st.DrawFn, case: Case) -> None:
    names = [n for n in MODEL_FAULTS if n not in _MODEL_DAMAGED]
    case.model_fault = draw(st.sampled_from(names))
    _model_refusal(case, case.model_fault, MODEL_FAULTS[case.model_fault])


_MODEL_DAMAGED = (
    "truncated_booster_signed",
    "not_a_pickle_signed",
    "not_an_engage_model",
    "metadata_not_json",
    "manifest_omits_model",
    "truncated_booster",
    "model_file_missing",
    "metadata_missing",
    "folder_missing",
    "path_is_a_file",
)


@kind("model_damaged_or_missing", surfaces=("cli", "api", "rest"))
def _model_damaged(draw: st.DrawFn, case: Case) -> None:
    case.model_fault = draw(st.sampled_from(_MODEL_DAMAGED))
    case.cut = draw(st.floats(0.0, 0.99))
    _model_refusal(case, case.model_fault, MODEL_FAULTS[case.model_fault])


@kind("model_key_problem", surfaces=("cli", "api", "rest"))
def _model_key(draw: st.DrawFn, case: Case) -> None:
    case.key_fault = draw(st.sampled_from(sorted(KEY_FAULTS)))
    case.model_fault = "copy"  # an intact copy, loaded under the faulty key
    _model_refusal(case, case.key_fault, KEY_FAULTS[case.key_fault])


# ----------------------------------------------------------------- refused: the output path
#
# `engage score --out` where the file cannot be written: exit 2 naming the file, the previous
# file (if any) byte for byte as it was, and no temporary file left beside it.

OUTPUT_FAULTS = {
    "folder_unwritable": "permission",
    "disk_full": "no space left on the device",
    "path_is_a_folder": "is a folder",
    "existing_read_only": "read-only",
    "cell_too_long_for_excel": "an Excel cell keeps",
}


@kind("output_cannot_be_written", surfaces=("cli",))
def _output_fault(draw: st.DrawFn, case: Case) -> None:
    case.output_fault = draw(st.sampled_from(sorted(OUTPUT_FAULTS)))
    suffix = draw(st.sampled_from([".csv", ".csv.gz", ".xlsx", ".html"]))
    if case.output_fault == "cell_too_long_for_excel":  # a handle Excel would cut
        suffix, long_name = ".xlsx", "h" * draw(st.integers(32_768, 40_000))
        case.profiles = case.profiles.replace({"influencer": {"user2": long_name}})
        case.posts = case.posts.replace({"influencer": {"user2": long_name}})
    case.out_name = f"out/ranked{suffix}"
    if case.output_fault != "path_is_a_folder" and draw(st.booleans()):
        case.previous_out = b"the previous good output\n"
    if case.output_fault == "existing_read_only":
        case.previous_out = b"a file someone made read-only\n"
    case.cut = draw(st.sampled_from([0.0, 0.01, 0.1]))  # disk_full: x 2000 bytes fit
    case.expect, case.table, case.column = "refused", None, None
    case.must_name = (f"ranked{suffix}", OUTPUT_FAULTS[case.output_fault])
    case.detail += f"{case.output_fault} {case.out_name} previous={case.previous_out is not None}"


# ----------------------------------------------------------------- handled: the documented handling


@kind("zero_followers")
def _zero_followers(draw: st.DrawFn, case: Case) -> None:
    _set(draw, case, "profiles", "followers", draw(st.sampled_from(["0", "0.0", "00", "0e0"])))
    case.expect = "handled"


@kind("orphan_post", surfaces=("cli", "api"))
def _orphan(draw: st.DrawFn, case: Case) -> None:
    _set(draw, case, "posts", "influencer", draw(st.sampled_from(["nobody", "user99", "USER1"])))
    case.expect = "handled"


@kind("duplicate_exact")
def _duplicate_exact(draw: st.DrawFn, case: Case) -> None:
    table = draw(st.sampled_from(["profiles", "posts"]))
    frame = case.frame(table)
    row = draw(st.integers(0, len(frame) - 1))
    case.set_frame(table, pd.concat([frame, frame.iloc[[row]]], ignore_index=True))
    case.detail += f"{table} row {row + 1} twice "
    case.expect = "handled"
    case.surfaces = ("cli", "api")  # REST rows repeat the profile by design


@kind("category_free_text")
def _category(draw: st.DrawFn, case: Case) -> None:
    # Case and surrounding space are normalised without a note (the README says so); a
    # misspelling, an unknown niche, an empty cell or several niches in one cell get one.
    value, case.expect = draw(
        st.sampled_from(
            [
                ("fashon", "handled"),
                ("crypto", "handled"),
                ("", "handled"),
                ("pets", "handled"),
                ("Dancing, Lipsyncing", "handled"),
                ("\u2603\u2603", "handled"),
                ("Travel / Food", "handled"),
                ("FOOD ", "clean"),
                ("  beauty  ", "clean"),
            ]
        )
    )
    _set(draw, case, "profiles", "category", value)


@kind("key_with_spaces")
def _key_spaces(draw: st.DrawFn, case: Case) -> None:
    table = draw(st.sampled_from(["profiles", "posts"]))
    frame = case.frame(table)
    row = draw(st.integers(0, len(frame) - 1))
    _set(draw, case, table, "influencer", f"  {frame['influencer'].iloc[row]}\t", row=row)
    case.expect = "clean"
    case.surfaces = ("cli", "api")  # REST rows carry both tables' columns in one row


@kind("extra_columns")
def _extra(draw: st.DrawFn, case: Case) -> None:
    table = draw(st.sampled_from(["profiles", "posts"]))
    frame = case.frame(table).copy()
    frame[draw(st.sampled_from(["junk", "notes", "likes_2", "total_likes"]))] = "x"
    case.set_frame(table, frame)
    case.expect = "clean"


@kind("hashtag_lists", surfaces=("cli", "api"))
def _hashtag_lists(draw: st.DrawFn, case: Case) -> None:
    frame = case.posts.copy()
    frame["hashtags"] = [
        draw(st.sampled_from([["x", "y"], ["#X", "y"], [], ["travel"], None]))
        for _ in range(len(frame))
    ]
    case.posts = frame
    case.file_format = "parquet"
    case.expect = "clean"


@kind("time_other_iso_forms")
def _time_forms(draw: st.DrawFn, case: Case) -> None:
    form = draw(
        st.sampled_from(
            [
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S+02:00",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d",
                "%Y-%m-%dT%H:%M:%S.000000Z",
                " %Y-%m-%dT%H:%M:%SZ ",
            ]
        )
    )
    frame = case.posts.copy()
    frame["posted_at"] = pd.to_datetime(frame["posted_at"]).dt.strftime(form)
    case.posts = frame
    case.detail += form
    case.expect = "clean"


@kind("counts_other_spellings")
def _count_forms(draw: st.DrawFn, case: Case) -> None:
    table, column = draw(
        st.sampled_from([("profiles", "followers"), ("posts", "likes"), ("posts", "comments")])
    )
    frame = case.frame(table).copy()
    form = draw(st.sampled_from(["float", "exponent", "spaces", "plus"]))
    values = pd.to_numeric(frame[column])
    frame[column] = {
        "float": values.map(lambda v: f"{v:.1f}"),
        "exponent": values.map(lambda v: f"{v:e}"),
        "spaces": values.map(lambda v: f" {v} "),
        "plus": values.map(lambda v: f"+{v}"),
    }[form]
    case.set_frame(table, frame)
    case.detail += f"{table}.{column} as {form}"
    case.expect = "clean"


@kind("fees_handled", surfaces=("cli", "api"))
def _fees_handled(draw: st.DrawFn, case: Case) -> None:
    fees = _fees(case)
    case.fees_format = draw(st.sampled_from(["csv", "xlsx"]))
    how = draw(st.sampled_from(["empty_fee", "unknown_name", "decimals"]))
    if how == "empty_fee":
        fees.loc[draw(st.integers(0, len(fees) - 1)), "fee"] = ""
    elif how == "unknown_name":
        fees = pd.concat(
            [fees, pd.DataFrame({"influencer": ["ghost"], "fee": ["10"], "currency": "EUR"})],
            ignore_index=True,
        )
    else:
        fees["fee"] = [f"{100 * (i + 1)}.50" for i in range(len(fees))]
    case.fees = fees
    case.detail += how
    case.expect = "clean" if how == "decimals" else "handled"


@kind("combined", surfaces=("cli", "api"))
def _combined(draw: st.DrawFn, case: Case) -> None:
    # Two or three breaks at once: every refusal must still name each file at fault.
    names = [
        n
        for n in KINDS
        if n not in ("combined", "cli_argument_bad", "as_of_not_a_cutoff")
        and not n.startswith(("model_", "output_"))  # faults of the run, not of the tables
    ]
    parts = draw(st.lists(st.sampled_from(names), min_size=2, max_size=3))
    expects = []
    for name in parts:
        part = Case(name, case.profiles, case.posts)
        part.raw, part.fees, part.file_format = case.raw, case.fees, case.file_format
        part.fees_format = case.fees_format
        try:
            KINDS[name].build(draw, part)
        except (KeyError, ValueError, IndexError):
            continue  # an earlier break removed what this one needs (a dropped column)
        case.profiles, case.posts, case.raw, case.fees, case.file_format = (
            part.profiles,
            part.posts,
            part.raw,
            part.fees,
            part.file_format,
        )
        case.fees_format = part.fees_format
        case.detail += f"[{name}: {part.detail}] "
        expects.append(part.expect)
    case.expect = "refused" if "refused" in expects else "either"


# --------------------------------------------------------------------------- generating


@st.composite
def cases(draw: st.DrawFn, kind_name: str) -> Case:
    case = base_case(kind_name)
    KINDS[kind_name].build(draw, case)
    case.surfaces = tuple(
        s for s in case.surfaces if s in KINDS[kind_name].surfaces and s != "rest_csv"
    )
    # CSV carries no types or lists; a model fault is one 'engage serve' start, not a request.
    if "rest" in case.surfaces and case.file_format != "parquet" and not case.model_fault:
        case.surfaces = (*case.surfaces, "rest_csv")
    return case


# --------------------------------------------------------------------------- the surfaces


@dataclass
class Outcome:
    surface: str
    result: str  # refused | handled | clean | n/a
    message: str = ""
    table: pd.DataFrame | None = None  # the scores, when accepted
    notes: str = ""


def write_files(case: Case, folder: Path) -> dict[str, Path]:
    """The case's tables as files (and its fee table),
    in its format; raw bytes where it has them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for table in ("profiles", "posts"):
        path = folder / f"{table}.{case.file_format}"
        if table in case.raw:
            path.write_bytes(case.raw[table])
        elif case.file_format == "parquet":
            case.frame(table).to_parquet(path, index=False)
        elif case.file_format == "csv.gz":
            path.write_bytes(gzip.compress(_file_bytes(case, table)))
        else:
            path.write_bytes(_file_bytes(case, table))
        paths[table] = path
    if case.fees is not None:
        paths["fees"] = folder / f"fees.{case.fees_format}"
        if case.fees_format == "xlsx":  # every cell text, as a planner types it
            case.fees.to_excel(paths["fees"], index=False)
        else:
            case.fees.to_csv(paths["fees"], index=False)
    return paths


# --------------------------------------------------------------------------- faults of the run


class _Trap:
    """Unpickling this creates ``marker``: proof that a planted pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


TRAP_MARKER = "PLANTED_PICKLE_RAN"


def faulty_model(case: Case, folder: Path, pristine: Path) -> Path:
    """A copy of the served model folder under ``folder`` with the case's fault applied."""
    import json
    import pickle
    import shutil

    from features.artifact import (
        LEGACY_MANIFEST,
        MANIFEST_FILE,
        METADATA_FILE,
        MODEL_FILE,
        model_key,
        sha256_of,
        sign_folder,
    )

    target = folder / "models" / pristine.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(pristine, target)
    fault, model, meta = case.model_fault, target / MODEL_FILE, target / METADATA_FILE
    key = model_key()

    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[int(case.cut * (len(data) - 1))] ^= 0x01
        path.write_bytes(bytes(data))

    def truncated(path: Path) -> bytes:
        return path.read_bytes()[: int(case.cut * path.stat().st_size)]

    if fault == "model_byte_changed":
        flip(model)
    elif fault == "metadata_byte_changed":
        data = meta.read_bytes()
        meta.write_bytes(data.replace(b'"version"', b'"versioN"', 1))
    elif fault == "manifest_missing":
        (target / MANIFEST_FILE).unlink()
    elif fault == "manifest_garbled":
        (target / MANIFEST_FILE).write_bytes(truncated(target / MANIFEST_FILE)[:-1] or b"{")
    elif fault == "planted_pickle":  # the attack a bare checksum cannot stop
        model.write_bytes(pickle.dumps(_Trap(folder / TRAP_MARKER)))
        signed = json.loads((target / MANIFEST_FILE).read_text())
        signed["files"] = {n: sha256_of(target / n) for n in signed["files"]}
        (target / MANIFEST_FILE).write_text(json.dumps(signed))
    elif fault == "planted_file":
        (target / "sitecustomize.py").write_text("import os\n")
    elif fault == "signed_with_another_key":
        model.write_bytes(pickle.dumps(_Trap(folder / TRAP_MARKER)))
        sign_folder(target, b"an attacker's own key, 32+ characters long")
    elif fault == "legacy_manifest":
        (target / MANIFEST_FILE).unlink()
        (target / LEGACY_MANIFEST).write_text(f"{sha256_of(model)}  {MODEL_FILE}\n")
    elif fault == "truncated_booster_signed":
        model.write_bytes(truncated(model))
        sign_folder(target, key)
    elif fault == "not_a_pickle_signed":
        model.write_bytes(b"<html>not a model</html>")
        sign_folder(target, key)
    elif fault == "not_an_engage_model":
        import joblib

        joblib.dump({"weights": [1, 2, 3]}, model)
        sign_folder(target, key)
    elif fault == "metadata_not_json":
        meta.write_bytes(truncated(meta)[:-1] + b"\x00")
        sign_folder(target, key)
    elif fault == "manifest_omits_model":  # signed without the model, which is put back beside it
        aside = folder / "aside.joblib"
        model.rename(aside)
        sign_folder(target, key)
        aside.rename(model)
    elif fault == "truncated_booster":
        model.write_bytes(truncated(model))
    elif fault == "model_file_missing":
        model.unlink()
    elif fault == "metadata_missing":
        meta.unlink()
    elif fault == "folder_missing":
        shutil.rmtree(target)
    elif fault == "path_is_a_file":
        shutil.rmtree(target)
        target.write_text("not a folder")
    return target


@contextlib.contextmanager
def key_environment(case: Case, folder: Path) -> Any:
    """The signing key as the case breaks it, for the duration of one surface's run."""
    import os

    from features.artifact import KEY_ENV, KEY_FILE_ENV

    saved = {name: os.environ.get(name) for name in (KEY_ENV, KEY_FILE_ENV, "XDG_CONFIG_HOME")}
    fault = case.key_fault
    key_file = folder / "model.key"
    if fault == "key_missing":
        os.environ.pop(KEY_ENV, None)
        os.environ.pop(KEY_FILE_ENV, None)
        os.environ["XDG_CONFIG_HOME"] = str(folder / "empty-config")
    elif fault == "key_wrong":
        os.environ[KEY_ENV] = "another machine's key, 40 characters long"
    elif fault == "key_too_short":
        os.environ[KEY_ENV] = "short"
    elif fault == "key_file_readable_by_others":
        key_file.write_text(str(saved[KEY_ENV]))
        key_file.chmod(0o644)
        os.environ.pop(KEY_ENV, None)
        os.environ[KEY_FILE_ENV] = str(key_file)
    elif fault == "key_file_missing":
        os.environ.pop(KEY_ENV, None)
        os.environ[KEY_FILE_ENV] = str(folder / "no-such.key")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def output_fault(case: Case, out: Path) -> Any:
    """The output path as the case breaks it. A folder cannot be made unwritable for root, so
    there the creation of files in it fails as the kernel would fail it (EACCES)."""
    import errno
    import os

    if out.parent != out and case.output_fault:
        out.parent.mkdir(parents=True, exist_ok=True)
    if case.previous_out is not None:
        out.write_bytes(case.previous_out)
    fault = case.output_fault
    undo: list[Callable[[], None]] = []
    if fault == "path_is_a_folder":
        out.mkdir()
    elif fault == "existing_read_only":
        out.chmod(0o444)
        undo.append(lambda: out.chmod(0o644))
    elif fault == "folder_unwritable" and os.geteuid() != 0:
        out.parent.chmod(0o555)
        undo.append(lambda: out.parent.chmod(0o755))
    elif fault == "folder_unwritable":
        real_open = os.open

        def refused(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT and Path(path).parent.resolve() == out.parent.resolve():
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        os.open = refused  # type: ignore[assignment]
        undo.append(lambda: setattr(os, "open", real_open))
    elif fault == "disk_full":
        import builtins

        from tests.features.test_outputs import FullDisk

        disk = FullDisk(out.parent, budget=int(case.cut * 2000))
        real = builtins.open, io.open
        builtins.open = io.open = disk.open  # type: ignore[assignment]

        def restore() -> None:
            builtins.open, io.open = real

        undo.append(restore)
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


def _state(path: Path) -> object:
    """What is at ``path``: its bytes, 'folder' or None."""
    if path.is_file():
        return path.read_bytes()
    return "folder" if path.is_dir() else None


def _left_behind(out: Path) -> list[str]:
    """Temporary files of an output beside it (atomic_output's '.<token>.tmp.<name>')."""
    folder = out.parent
    return sorted(p.name for p in folder.glob(".*.tmp.*")) if folder.is_dir() else []


def run_cli(case: Case, folder: Path, model_dir: Path) -> Outcome:
    """``engage score`` in process, as a planner runs it."""
    from engage.cli import main

    paths = write_files(case, folder)
    out = folder / case.out_name
    if case.model_fault:
        model_dir = faulty_model(case, folder, model_dir)
    argv = [
        "score",
        "--model",
        str(model_dir),
        "--profiles",
        str(paths["profiles"]),
        "--posts",
        str(paths["posts"]),
        "--out",
        str(out),
        "--show",
        "3",
    ]  # --top would keep only 3 rows
    argv += [
        "--as-of",
        case.as_of,
        *(["--fees", str(paths["fees"])] if "fees" in paths else []),
        *case.cli_args,
    ]
    stdout, stderr = io.StringIO(), io.StringIO()
    with output_fault(case, out):
        before = _state(out)
        with (
            key_environment(case, folder),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
        ):
            status = main(argv)
    err = stderr.getvalue()
    assert status in (0, 2), f"exit {status}: {err[-2000:]}"
    assert "Traceback" not in err, err
    assert not (folder / TRAP_MARKER).exists(), f"a planted pickle ran: {case.detail}"
    if status == 2:
        # Nothing half-written: the output as it was, no temporary file beside it.
        assert _state(out) == before, f"{case.detail}: a refused run changed {out}"
        assert not _left_behind(out), f"{case.detail}: left {_left_behind(out)}"
        return Outcome("cli", "refused", err)
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    return Outcome("cli", "accepted", stdout.getvalue(), table, err)


def run_api(case: Case, folder: Path, predictor: Any, model_dir: Path | None = None) -> Outcome:
    """The Python API on the same files: ``read_table``, ``check_fees``, ``Predictor.score``;
    with a model fault, ``serving.load_model`` on the faulty copy of ``model_dir``."""
    from serving.planner import apply_fees, read_candidates

    paths = write_files(case, folder)
    if case.model_fault:
        assert model_dir is not None
        from features.artifact import ArtifactError
        from serving import load_model

        faulty = faulty_model(case, folder, model_dir)
        try:
            with key_environment(case, folder):
                predictor = load_model(faulty)
        except ArtifactError as exc:
            return Outcome("api", "refused", str(exc))
        finally:
            assert not (folder / TRAP_MARKER).exists(), f"a planted pickle ran: {case.detail}"
    try:
        profiles, posts = read_table(paths["profiles"]), read_table(paths["posts"])
        fees, shortlist = read_candidates(paths.get("fees"), None)
        scored = predictor.score(
            profiles,
            posts,
            case.as_of,
            shortlist=shortlist,
            now=NOW,
            profiles_file=str(paths["profiles"]),
            posts_file=str(paths["posts"]),
        )
    except (DataError, DataValidationError) as exc:
        return Outcome("api", "refused", str(exc))
    assert_rows_accounted(scored.report)
    table, fee_notes = apply_fees(scored.table, fees) if fees is not None else (scored.table, [])
    return Outcome(
        "api",
        "accepted",
        "",
        table,
        "\n".join([scored.report.format(), *(f"note: {n}" for n in fee_notes)]),
    )


def run_serve(case: Case, folder: Path, model_dir: Path) -> Outcome:
    """``engage serve`` starting on the faulty model: it must refuse (exit 2) before it starts
    the server; a server started for it fails the case rather than being left running."""
    from unittest import mock

    from engage.cli import main

    faulty = faulty_model(case, folder, model_dir)
    stderr = io.StringIO()

    def no_server(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"engage serve started a server for a bad model: {case.detail}")

    with (
        key_environment(case, folder),
        mock.patch("engage.serve_commands.subprocess.Popen", no_server),
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        status = main(["serve", "--model", str(faulty), "--port", "0", "--workers", "1"])
    err = stderr.getvalue()
    assert not (folder / TRAP_MARKER).exists(), f"a planted pickle ran: {case.detail}"
    assert status == 2 and "Traceback" not in err, f"exit {status}: {err[-2000:]}"
    return Outcome("rest", "refused", err)


def rest_rows(case: Case) -> pd.DataFrame | None:
    """The case as one REST request (one row per post with its profile's columns), or None
    where a request cannot say it (posts without their influencer key)."""
    profiles, posts = case.profiles, case.posts
    if "influencer" not in profiles:
        return profiles.reset_index(drop=True)  # a request without the key column at all
    if "influencer" not in posts:
        return None
    # A column named twice in a table is sent twice, as a client that repeats it would.
    twins = [c for frame in (profiles, posts) for c in frame.columns[frame.columns.duplicated()]]
    profiles = profiles.loc[:, ~profiles.columns.duplicated()]
    posts = posts.loc[:, ~posts.columns.duplicated()]
    rows = profiles.assign(as_of=profiles.get("as_of", case.as_of))
    post_columns = [c for c in posts.columns if c != "influencer" and c not in rows.columns]
    rows = rows.merge(posts[["influencer", *post_columns]], on="influencer", how="left", sort=False)
    return pd.concat([rows, *(rows[[c]] for c in twins)], axis=1) if twins else rows


def run_rest(case: Case, client: Any, as_csv: bool = False) -> Outcome:
    """``POST /invocations`` on the served app, in process: JSON, or the same rows as text/csv."""
    surface = "rest_csv" if as_csv else "rest"
    rows = rest_rows(case)
    if rows is None:
        return Outcome(surface, "n/a")
    if as_csv:
        answer = client.post(
            "/invocations",
            content=rows.to_csv(index=False).encode(),
            headers={"Content-Type": "text/csv"},
        )
    else:
        clean = rows.astype(object).where(rows.notna(), None)
        body = {
            "dataframe_split": {
                "columns": [str(c) for c in clean.columns],
                "data": clean.to_numpy().tolist(),
            }
        }
        answer = client.post("/invocations", json=body)
    assert answer.status_code < 500, f"{answer.status_code}: {answer.text[:2000]}"
    if 400 <= answer.status_code < 500:
        message = answer.json().get("message", "")
        assert message, answer.text
        return Outcome(surface, "refused", message)
    assert answer.status_code == 200, answer.text[:2000]
    table = pd.DataFrame(answer.json()["predictions"])
    return Outcome(surface, "accepted", "", table)


# --------------------------------------------------------------------------- the checks


def assert_rows_accounted(report: Any) -> None:
    """Rows in = rows kept + rows set aside, for each table."""
    rejected = report.rejects_frame()
    for table in ("profiles", "posts"):
        if table in report.rows_in and table in report.rows_out:
            n_rejected = int((rejected["table"] == table).sum()) if len(rejected) else 0
            assert report.rows_in[table] == report.rows_out[table] + n_rejected, (
                table,
                report.format(),
            )


def _file_name(case: Case, table: str) -> str:
    return f"fees.{case.fees_format}" if table == "fees" else f"{table}.{case.file_format}"


def check(case: Case, outcome: Outcome) -> str:
    """Assert what must hold for this outcome; returns the outcome's name for the figures."""
    if outcome.result == "n/a":
        return "n/a"
    where = f"{case.kind} on {outcome.surface} ({case.detail})"
    rest = outcome.surface.startswith("rest")
    # JSON columns are matched by exact name; a CSV request's header is checked as a file's is.
    override = outcome.surface == "rest" and case.rest_expect
    expect = case.rest_expect if override else case.expect
    column = case.rest_column if override else case.column
    if outcome.result == "refused":
        assert expect in ("refused", "either"), (
            f"{where}: refused an input it must accept: {outcome.message[-1500:]}"
        )
        message = outcome.message
        assert message.strip() and "Traceback" not in message, f"{where}: {message}"
        if expect == "refused":
            if column:
                named = column if rest or column == "more than once" else f"'{column}'"
                assert named in message, (
                    f"{where}: the refusal does not name {named}: {message[-1500:]}"
                )
            if case.table and not rest:
                assert _file_name(case, case.table) in message, (
                    f"{where}: the refusal does not name the file: {message[-1500:]}"
                )
            if case.option and outcome.surface == "cli":
                assert case.option.replace("as_of", "--as-of") in message, (
                    f"{where}: {message[-1500:]}"
                )
            for phrase in case.must_name:
                assert phrase in message, f"{where}: the refusal does not say {phrase!r}: {message}"
        return "refused"
    assert expect in ("handled", "clean", "either"), (
        f"{where}: accepted an input it must refuse; notes: {outcome.notes[-1500:]}"
    )
    assert_scores_carry_the_input(case, outcome, where)
    if expect == "handled" and not rest:
        said = outcome.notes + outcome.message
        assert "NOTE" in said or "note:" in said, f"{where}: handled without a note"
    return "handled" if expect == "handled" else "clean"


def _expected_followers(case: Case) -> pd.Series:
    """Each influencer's follower count as the input
    wrote it (keys stripped, as the contract does)."""
    profiles = case.profiles
    keys = as_text(profiles["influencer"].astype("string"))
    counts = pd.to_numeric(as_text(profiles["followers"].astype("string")), errors="coerce")
    return (
        pd.Series(counts.to_numpy(dtype="float64"), index=keys.to_numpy()).groupby(level=0).first()
    )


def assert_scores_carry_the_input(case: Case, outcome: Outcome, where: str) -> None:
    """One output row per influencer (none lost, none
    invented) and follower counts exactly as given."""
    table = outcome.table
    assert table is not None
    expected = _expected_followers(case)
    got = table.assign(influencer=table["influencer"].astype(str))
    names = set(got["influencer"])
    if (
        case.fees is not None
    ):  # the fee table is the shortlist: its unknown names are 'no profile' rows
        fee_names = set(as_text(case.fees["influencer"].astype("string")).dropna())
        assert names == fee_names, (
            f"{where}: rows {sorted(names)} for fee names {sorted(fee_names)}"
        )
    else:
        assert names == set(expected.index), (
            f"{where}: rows {sorted(names)} for profiles {sorted(expected.index)}"
        )
    assert got["influencer"].is_unique, f"{where}: an influencer twice"
    scored = got[got["influencer"].isin(expected.index)]
    followers = pd.to_numeric(scored["followers"], errors="coerce").to_numpy(dtype="float64")
    want = expected.loc[scored["influencer"]].to_numpy(dtype="float64")
    assert np.array_equal(followers, want), (
        f"{where}: followers {followers.tolist()} for {want.tolist()}"
    )
    ok = scored["status"].astype(str).str.startswith("ok")
    rates = pd.to_numeric(scored.loc[ok, "predicted_er"], errors="coerce")
    assert np.isfinite(rates).all() and (rates > 0).all(), f"{where}: {rates.tolist()}"


def record(case: Case, outcome: str, surface: str) -> None:
    FIGURES[(case.kind, surface, outcome)] += 1


def summary() -> str:
    """The figures as a table: inputs tried per kind and surface, outcomes, unhandled."""
    if not FIGURES:
        return ""
    kinds = sorted({k for k, _, _ in FIGURES})
    lines = [f"{'kind':28s}" + "".join(f"{s:>10s}" for s in SURFACES) + "   outcomes", "-" * 110]
    by_outcome: Counter[str] = Counter()
    for name in kinds:
        cells, outcomes = [], Counter()
        for surface in SURFACES:
            tried = sum(
                v for (k, s, o), v in FIGURES.items() if k == name and s == surface and o != "n/a"
            )
            cells.append(f"{tried:>10d}" if tried else f"{'-':>10s}")
            for (k, s, o), v in FIGURES.items():
                if k == name and s == surface and o != "n/a":
                    outcomes[o] += v
        by_outcome.update(outcomes)
        lines.append(
            f"{name:28s}{''.join(cells)}   "
            + ", ".join(f"{o} {v}" for o, v in sorted(outcomes.items()))
        )
    total = sum(by_outcome.values())
    per_surface = {
        s: sum(v for (_, s2, o), v in FIGURES.items() if s2 == s and o != "n/a") for s in SURFACES
    }
    lines.append("-" * 110)
    lines.append(
        f"{'total':28s}"
        + "".join(f"{per_surface[s]:>10d}" for s in SURFACES)
        + f"   {total} inputs: "
        + ", ".join(f"{o} {v}" for o, v in sorted(by_outcome.items()))
    )
    lines.append(
        "unhandled (traceback, exit 1, 5xx, a lost row or "
        f"a changed value): {by_outcome.get('unhandled', 0)}"
    )
    return "\n".join(lines)
