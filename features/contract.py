"""The data contract: what profiles and posts tables must look like, and how bad input is handled.

Every entry point (validate, features, train, evaluate,
score) goes through :func:`load_and_validate`
or :func:`validate`, so the rules below hold everywhere.

Fatal problems raise :class:`DataValidationError`, whose report names the file, column, the first
offending rows (1-based data rows, header not counted) and a count, all problems at once.
Problems with a safe, documented handling are fixed, and reported with counts:

* exact duplicate posts (same influencer, post_id and values): extra copies dropped;
* exact duplicate profiles: extra copies dropped;
* categories: compared in lower case with inner space collapsed; of several listed in one cell
  ("Dancing, Lipsyncing", separated by ``,`` ``;`` ``|`` or ``/``) the first is kept, as the
  creator's main one; close misspellings of a known niche are mapped to it; any other value
  keeps its name (the model's vocabulary, learned at fit time, keeps the frequent ones and maps
  the rest to ``other``: :class:`features.transformers.CategoryVocabulary`); empty is ``other``;
* profiles with zero followers (engagement rate is undefined): set aside, with their posts;
* posts whose influencer has no profile (orphans): set aside;
* one post_id under several influencers: kept for each, reported.

Rows set aside are kept in :attr:`ValidationReport.rejects` with their reasons, so nothing is
lost silently; ``--rejects PATH`` on the CLI writes them out.

Other tables' contracts (the campaign results in :mod:`training.examples`) are built from the
same public pieces, so that their problems read and count the same: :func:`check_columns`
(required columns), :func:`as_count` (count columns), :func:`as_text`,
:func:`parse_timestamps` and :func:`problem_at` (a problem at the rows of a mask).
"""

from __future__ import annotations

import difflib
import gzip
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.datasets import is_dataset_path, read_parquet_any
from features.errors import DataError
from features.keys import (
    combine_hashes,
    own_arrow_text,
    positions_in,
    repeated,
    text_bytes,
    text_hashes,
)

PLATFORMS = ("instagram", "tiktok", "youtube")
DEFAULT_PLATFORM = "instagram"
KNOWN_CATEGORIES = (
    "beauty",
    "family",
    "fashion",
    "fitness",
    "food",
    "interior",
    "pet",
    "travel",
    "other",
)
# Several categories in one cell ("Dancing, Lipsyncing") are separated by these; the first is kept.
CATEGORY_SEPARATORS = re.compile(r"[,;|/]")
# How close (difflib ratio, on letters only) a value
# must be to a known one to count as its misspelling.
CATEGORY_MATCH_CUTOFF = 0.75
# Why a profile with zero followers, and its posts,
# are set aside (problem message and reject reason).
ZERO_FOLLOWERS = "zero followers: engagement rate is undefined"
ZERO_FOLLOWERS_POSTS = "posts of an influencer with zero followers"
# Counts above this are taken as a unit or parsing error (the largest accounts have ~6e8 followers).
MAX_PLAUSIBLE_COUNT = 1e11
# Timestamps may run slightly ahead of the validating machine's clock (time zones, clock skew).
FUTURE_TOLERANCE = pd.Timedelta(days=1)
# Times before this are placeholders (0001-01-01,
# 1970-01-01), not posts: no platform we read existed.
EARLIEST_PLAUSIBLE_TIME = pd.Timestamp("2000-01-01", tz="UTC")
# The one timestamp form read: ISO 8601's extended calendar date, optionally with a time of day
# (minutes at least; "T" or, as RFC 3339 and SQL exports write it, one space between) and an
# offset ("Z", +02:00, +0200, +02). Anything else ("01/02/2020", "now", "12:30", "20200102") is
# refused rather than guessed: day-first and month-first dates cannot be told apart cell by cell.
ISO_8601 = (
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
ISO_8601_HINT = "use ISO 8601, e.g. 2019-03-01T12:00:00Z, 2019-03-01 12:00:00+02:00 or 2019-03-01"
MAX_ROWS_LISTED = 5

PROFILE_REQUIRED = ("influencer", "followers")
PROFILE_OPTIONAL = (
    "following",
    "posts_count",
    "category",
    "platform",
    "country",
    "verified",
    "as_of",
)
POST_REQUIRED = ("influencer", "post_id", "posted_at", "likes", "comments")
POST_OPTIONAL = (
    "shares",
    "saves",
    "views",
    "media_type",
    "is_sponsored",
    "hashtags",
    "caption",
    "image_description",
)
POST_COUNT_COLUMNS_REQUIRED = ("likes", "comments")
POST_COUNT_COLUMNS_OPTIONAL = ("shares", "saves", "views")

# Names other tools export for our columns, used to suggest a fix when a required column is missing.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "influencer": (
        "username",
        "handle",
        "user",
        "account",
        "creator",
        "influencer_id",
        "user_name",
    ),
    "followers": (
        "follower_count",
        "followers_count",
        "n_followers",
        "num_followers",
        "subscribers",
    ),
    "post_id": ("id", "shortcode", "postid", "media_id"),
    "posted_at": ("timestamp", "created_at", "date", "time", "taken_at", "post_date"),
    "likes": ("like_count", "likes_count", "n_likes", "num_likes", "hearts"),
    "comments": ("comment_count", "comments_count", "n_comments", "num_comments"),
}

_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0", ""}


@dataclass
class Problem:
    """One kind of problem found in one column of one table."""

    table: str
    file: str
    column: str | None
    rows: list[int]
    count: int
    message: str
    fatal: bool
    action: str = ""
    # Where the listed rows are when they are numbered across several input files (the Dask
    # engine's folders and globs), e.g. "part-0.parquet row 3; part-1.parquet row 66".
    located: str = ""

    def describe(self) -> str:
        where = f"{self.file}"
        if self.column:
            where += f", column '{self.column}'"
        if self.rows:
            listed = ", ".join(str(r) for r in self.rows)
            more = (
                f" (first {len(self.rows)} of {self.count})" if self.count > len(self.rows) else ""
            )
            where += f", rows {listed}{more}"
            if self.located:
                where += f" ({self.located})"
        elif self.count:
            where += f", {self.count} rows"
        text = f"{where}: {self.message}"
        if self.action:
            text += f" -> {self.action}"
        return text


@dataclass
class ValidationReport:
    """Everything validation found, plus the rows it set aside (with reasons)."""

    problems: list[Problem] = field(default_factory=list)
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    rejects: list[pd.DataFrame] = field(default_factory=list)

    @property
    def fatal(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    @property
    def handled(self) -> list[Problem]:
        return [p for p in self.problems if not p.fatal]

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def add_at(
        self,
        table: str,
        file: str,
        column: str | None,
        mask: np.ndarray | pd.Series,
        message: str,
        *,
        fatal: bool,
        action: str = "",
    ) -> None:
        """Add the problem ``message`` at the rows where ``mask`` holds, if it holds anywhere
        (the arguments are :func:`problem_at`'s)."""
        problem = problem_at(table, file, column, mask, message, fatal=fatal, action=action)
        if problem:
            self.add(problem)

    def reject(self, table: str, frame: pd.DataFrame, row_numbers: np.ndarray, reason: str) -> None:
        if len(frame) == 0:
            return
        out = frame.copy()
        out.insert(0, "reject_reason", reason)
        out.insert(0, "row", row_numbers)
        out.insert(0, "table", table)
        self.rejects.append(out)

    def rejects_frame(self) -> pd.DataFrame:
        if not self.rejects:
            return pd.DataFrame(columns=["table", "row", "reject_reason"])
        return pd.concat(self.rejects, ignore_index=True, sort=False)

    def format(self) -> str:
        lines = []
        for table, n_in in self.rows_in.items():
            n_out = self.rows_out.get(table)
            kept = f", {n_out} kept" if n_out is not None else ""
            lines.append(f"{table}: {n_in} rows read{kept}")
        if self.fatal:
            lines.append(f"{len(self.fatal)} fatal problem(s):")
            lines += [f"  ERROR {p.describe()}" for p in self.fatal]
        if self.handled:
            lines.append(f"{len(self.handled)} handled problem(s):")
            lines += [f"  NOTE  {p.describe()}" for p in self.handled]
        if not self.problems:
            lines.append("no problems found")
        return "\n".join(lines)


class DataValidationError(ValueError):
    """Raised when the input breaks the contract; ``report`` holds every problem found."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__("input data breaks the contract:\n" + report.format())


@dataclass
class ValidatedData:
    """Clean profiles and posts, ready for feature computation, with the report that made them."""

    profiles: pd.DataFrame
    posts: pd.DataFrame
    report: ValidationReport


# --------------------------------------------------------------------------- reading


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (plain or gzip) or Parquet table; any read failure becomes a :class:`DataError`.

    A header naming one column twice (also once surrounding space and case are ignored) is
    refused: which of the two holds the values is unknowable. A folder, glob or URL
    (``s3://...``) of Parquet files is read by :func:`features.datasets.read_parquet_any`.
    """
    if is_dataset_path(path):
        return read_parquet_any(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            _refuse_duplicate_columns(path, pq.read_schema(path).names)
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz", ".gz", ".txt", ".tsv")):
            sep = "\t" if ".tsv" in name else ","
            # The header as written: pandas renames a repeated name ("likes", "likes.1").
            header = pd.read_csv(
                path,
                sep=sep,
                header=None,
                nrows=1,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
            )
            names = header.iloc[0].tolist() if len(header) else []
            _refuse_duplicate_columns(path, names)
            separated = other_separator(names, sep)
            if separated:
                raise DataError(f"{path}: {separated}")
            # Everything as text: the validator decides what parses, so it can name bad rows.
            return pd.read_csv(
                path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8"
            )
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        # The decoder's byte offset is relative to pandas' read buffer, so find the line ourselves.
        line = _first_non_utf8_line(path)
        where = f"line {line}, " if line else ""
        raise DataError(
            f"{path}: not valid UTF-8 text ({where}{exc.reason}); re-save it as UTF-8"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (no header row)") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot be parsed as CSV: {exc}") from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: the compressed file is truncated or corrupt ({exc}); copy or export it again"
        ) from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read: {exc}") from exc
    raise DataError(f"{path}: unknown file type; use .csv, .csv.gz or .parquet")


def duplicate_columns(columns: Iterable[object]) -> list[list[str]]:
    """Groups of column names that are the same once surrounding space and case are ignored."""
    groups: dict[str, list[str]] = {}
    for column in columns:
        groups.setdefault(str(column).strip().casefold(), []).append(str(column))
    return [names for names in groups.values() if len(names) > 1]


def describe_duplicate_columns(groups: list[list[str]]) -> str:
    named = "; ".join(" and ".join(f"'{n}'" for n in names) for names in groups)
    return (
        f"the header names one column more than once ({named}, equal once surrounding "
        "space and case are ignored); keep one of each and rename or drop the others"
    )


def _refuse_duplicate_columns(path: Path, columns: list[object]) -> None:
    groups = duplicate_columns(columns)
    if groups:
        raise DataError(f"{path}: {describe_duplicate_columns(groups)}")


def other_separator(columns: list[object], sep: str = ",") -> str | None:
    """What a one-column header says about a file separated by something other than ``sep``:
    ``;`` (Excel's CSV where the decimal point is a comma), a tab or ``|``; None otherwise."""
    if len(columns) != 1:
        return None
    header = str(columns[0])
    for other, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
        if other != sep and header.count(other) >= 1:
            return (
                f"the header is one column ({header[:80]!r}) separated by {name}, not "
                f"{'commas' if sep == ',' else 'tabs'}; save it as comma-separated CSV "
                "(Excel: 'CSV UTF-8 (Comma delimited)'); the separator is never guessed"
            )
    return None


def _first_non_utf8_line(path: Path) -> int | None:
    """1-based line number (header = line 1) of the first line that is not valid UTF-8."""
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- helpers


def _row_numbers(mask: np.ndarray | pd.Series) -> np.ndarray:
    """1-based data row numbers (header not counted) where ``mask`` holds."""
    return np.flatnonzero(np.asarray(mask)) + 1


def problem_at(
    table: str,
    file: str,
    column: str | None,
    mask: np.ndarray | pd.Series,
    message: str,
    *,
    fatal: bool,
    action: str = "",
) -> Problem | None:
    """The problem ``message`` at the rows where ``mask`` holds, or None if it holds nowhere.

    Parameters
    ----------
    table, file, column
        Where the problem is, as the report names it (``column`` None: the whole row).
    mask
        One flag per data row of the table, True where the problem is.
    message, action
        What is wrong, and what engage did about it (for a problem that is not fatal).
    fatal
        Whether the problem stops the command (:class:`DataValidationError`).

    Returns
    -------
    Problem or None
        With the first :data:`MAX_ROWS_LISTED` row numbers (1-based, header not counted) and
        the count of all of them; add it to a report with :meth:`ValidationReport.add`.
    """
    rows = _row_numbers(mask)
    if len(rows) == 0:
        return None
    return Problem(
        table, file, column, rows[:MAX_ROWS_LISTED].tolist(), int(len(rows)), message, fatal, action
    )


def suggest_column(missing: str, present: list[str]) -> str | None:
    """The present column that most likely means ``missing`` (alias or close spelling)."""
    lowered = {c.lower().strip(): c for c in present}
    for alias in COLUMN_ALIASES.get(missing, ()):
        if alias in lowered:
            return lowered[alias]
    close = difflib.get_close_matches(missing, list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def check_columns(
    table: str, file: str, frame: pd.DataFrame, required: tuple[str, ...], report: ValidationReport
) -> bool:
    """Report every ``required`` column ``frame`` lacks (fatal), with the likely misspelling.

    Returns
    -------
    bool
        True if every required column is present; else the problems are in ``report`` and the
        caller should raise :class:`DataValidationError` with it before reading any column.
    """
    present = [str(c) for c in frame.columns]
    ok = True
    for col in required:
        if col not in frame.columns:
            ok = False
            hint = suggest_column(col, present)
            msg = "required column is missing"
            msg += (
                f"; did you mean '{hint}'? (rename it to '{col}')"
                if hint
                else f"; columns present: {', '.join(present) or 'none'}"
            )
            report.add(Problem(table, file, col, [], 0, msg, fatal=True))
    return ok


def _check_header(
    table: str, file: str, frame: pd.DataFrame, used: tuple[str, ...], report: ValidationReport
) -> bool:
    """Refuse repeated column names and columns of lists; True if the frame can be read on.

    Files are checked when read (:func:`read_table`); this covers tables handed over directly
    (the Python API, REST). ``hashtags`` may hold lists: they are its tags (joined by the caller).
    """
    groups = duplicate_columns(frame.columns)
    if groups:
        report.add(
            Problem(table, file, None, [], 0, describe_duplicate_columns(groups), fatal=True)
        )
        return False
    ok = True
    frame = frame.rename(columns=lambda c: str(c).strip())
    for col in used:
        if col in frame and col != "hashtags":
            nested = nested_cells(frame[col])
            p = problem_at(
                table,
                file,
                col,
                nested,
                "cells hold lists or records, not one value each (write one value per cell)",
                fatal=True,
            )
            if p:
                report.add(p)
                ok = False
    return ok


def _readable_columns(
    table: str,
    file: str,
    frame: pd.DataFrame,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    report: ValidationReport,
) -> pd.DataFrame | None:
    """``frame`` with its column names stripped, counted in the report's ``rows_in``; None when
    its header cannot be read on (:func:`_check_header`, :func:`check_columns`)."""
    report.rows_in[table] = len(frame)
    if not _check_header(table, file, frame, (*required, *optional), report):
        return None
    frame = frame.rename(columns=lambda c: str(c).strip())
    if not check_columns(table, file, frame, required, report):
        return None
    return frame


def nested_cells(values: pd.Series) -> np.ndarray:
    """Where cells hold lists, arrays or records (a Parquet ``list<...>``/``struct`` column, or
    Python lists in a frame built by hand) rather than one value each."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype):
        kind = dtype.pyarrow_dtype
        if pa.types.is_nested(kind):
            return values.notna().to_numpy(dtype=bool)
        return np.zeros(len(values), dtype=bool)
    if values.dtype.kind != "O" or pd.api.types.infer_dtype(values, skipna=True) not in (
        "mixed",
        "unknown-array",
    ):
        return np.zeros(len(values), dtype=bool)
    return np.fromiter(
        (isinstance(v, list | tuple | set | dict | np.ndarray) for v in values),
        dtype=bool,
        count=len(values),
    )


def joined_lists(values: pd.Series) -> pd.Series:
    """A hashtags column whose cells are lists (Parquet ``list<string>``) as '|'-joined text:
    each element one tag. Other columns come back as they are."""
    nested = nested_cells(values)
    if not nested.any():
        return values
    if isinstance(values.dtype, pd.ArrowDtype):
        array = values.array._pa_array  # noqa: SLF001 (pandas' own arrow array, no copy)
        joined = pc.binary_join(array.cast(pa.list_(pa.string())), "|")
        return pd.Series(pd.arrays.ArrowStringArray(joined), index=values.index)
    out = [
        (
            "|".join(
                str(tag)
                for tag in v
                if tag is not None and not (isinstance(tag, float) and np.isnan(tag))
            )
            if isinstance(v, list | tuple | set | np.ndarray)
            else v
        )
        for v in values
    ]
    return pd.Series(out, index=values.index, dtype=object)


def _arrow_string(
    values: pd.Series, missing: str | None = None
) -> tuple[pd.Series, pa.ChunkedArray]:
    """``values`` as arrow-backed text (whatever ``pd.options.mode.string_storage`` says), with
    its arrow chunks: the text paths below are arrow calls, with no pandas fallback to test.
    ``missing``: what missing cells become (None: they stay missing)."""
    text = values.astype(pd.StringDtype("pyarrow"))
    if missing is not None:
        text = text.fillna(missing)
    chunked = own_arrow_text(text)
    assert chunked is not None  # pyarrow storage: its own chunks
    return text, chunked


def as_text(series: pd.Series) -> pd.Series:
    """Strings with surrounding space removed; missing stays missing."""
    # A few arrow calls: pandas' .str steps have a fixed cost per column that dominates for one
    # candidate. utf8_trim_whitespace is what .str.strip() runs.
    text, chunked = _arrow_string(series)
    stripped = pc.utf8_trim_whitespace(chunked)
    nothing_stripped = (
        pc.sum(pc.binary_length(stripped)).as_py() == pc.sum(pc.binary_length(chunked)).as_py()
    )
    out = pd.Series(pd.arrays.ArrowStringArray(stripped), index=text.index, name=text.name)
    empty = pc.equal(stripped, "").fill_null(False).to_numpy(zero_copy_only=False)
    if nothing_stripped:
        # Keep the input's own text buffers, so a large key column is not held twice.
        out = text
    # mask() has its fixed cost even when nothing is empty
    return out.mask(empty) if empty.any() else out


def as_count(
    table: str,
    file: str,
    frame: pd.DataFrame,
    col: str,
    report: ValidationReport,
    *,
    required: bool,
) -> pd.Series:
    """Parse a non-negative whole-number count column, reporting every bad cell.

    Numbers and text of plain digits become float64 (NaN for a missing cell). Every other cell
    is a fatal problem added to ``report``, one per kind: text that is not a number (thousands
    separators included), true/false, infinite, negative, implausibly large
    (:data:`MAX_PLAUSIBLE_COUNT`) or fractional values, and missing cells when ``required``.

    Returns
    -------
    pandas.Series
        The counts, on ``frame``'s index.
    """
    raw = frame[col]
    # Checked as numpy arrays: a handful of pandas calls per column would cost more than the
    # checks themselves for a one-candidate request.
    flags = raw.dtype.kind == "b"
    if flags:
        # True/false is no count: reading it as 1/0 would invent engagement.
        values = np.full(len(raw), np.nan)
        missing = raw.isna().to_numpy(dtype=bool)
        non_numeric = ~missing
    elif raw.dtype.kind in "fiu":
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
        non_numeric = np.zeros(len(values), dtype=bool)
    else:
        text = raw.astype("string").str.strip()
        missing_cells = (text.isna() | (text == "")).fillna(True).astype(bool)
        values = pd.to_numeric(text.mask(missing_cells), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        missing = missing_cells.to_numpy(dtype=bool)
        non_numeric = np.isnan(values) & ~missing
    infinite = np.isinf(values)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values)
        checks = [
            (
                non_numeric,
                "true/false values, not counts"
                if flags
                else "not a number (write plain digits, e.g. 1500, without thousands separators)",
            ),
            (infinite, "infinite value"),
            # Finite values only: an infinite cell is one
            # problem, not also "negative" or "too large".
            ((values < 0) & ~infinite, "negative count"),
            (
                (values > MAX_PLAUSIBLE_COUNT) & ~infinite,
                f"implausibly large count (> {MAX_PLAUSIBLE_COUNT:.0e})",
            ),
            # A count is a whole number: 0.5 followers would make every rate meaningless, and
            # 3.7 likes is a unit or export error (thousands written with a decimal point?).
            (
                finite & (values >= 0) & (values != np.floor(values)),
                "not a whole number (counts are whole numbers: write 1500, not 1.5 for thousands)",
            ),
        ]
    if required:
        checks.append((missing, "missing value in a required column"))
    for mask, message in checks:
        report.add_at(table, file, col, mask, message, fatal=True)
    return pd.Series(np.where(infinite, np.nan, values), index=raw.index)


def _as_bool(
    table: str, file: str, frame: pd.DataFrame, col: str, report: ValidationReport
) -> pd.Series:
    raw = frame[col]
    if raw.dtype == bool:
        return raw
    if raw.dtype.kind in "fi":
        ok = raw.isna() | raw.isin([0, 1])
        report.add_at(
            table,
            file,
            col,
            ~ok.to_numpy(dtype=bool),
            "not a yes/no value (use true/false or 1/0)",
            fatal=True,
        )
        return raw.fillna(0).astype(bool)
    text = raw.astype("string").str.strip().str.lower().fillna("")
    is_true = text.isin(_TRUE)
    is_false = text.isin(_FALSE)
    report.add_at(
        table,
        file,
        col,
        ~(is_true | is_false).to_numpy(dtype=bool),
        "not a yes/no value (use true/false or 1/0)",
        fatal=True,
    )
    return is_true.astype(bool)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse timestamps to UTC. Naive times are taken as UTC; offsets are converted.

    Text must be ISO 8601 as :data:`ISO_8601` spells it; any other cell (and a date that does
    not exist, 2020-02-30) becomes NaT, for the caller to report with its rows: never a guess.
    Typed timestamps (Parquet, datetime64) are taken as they are.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is None:
            return ts.dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC")
    text = as_text(values)
    iso = iso_8601_cells(text) | text.isna().to_numpy(dtype=bool)
    if iso.all():
        try:
            return pd.to_datetime(text, utc=True, format="ISO8601", errors="raise")
        except (ValueError, OverflowError):
            pass  # an impossible date (2020-02-30): found cell by cell below
    # Cells that pass the pattern can still be impossible dates: those become NaT too.
    return pd.to_datetime(text.where(iso), utc=True, format="ISO8601", errors="coerce")


def iso_8601_cells(text: pd.Series) -> np.ndarray:
    """Where stripped text cells are written as :data:`ISO_8601` (missing cells: False)."""
    chunked = own_arrow_text(text)
    if chunked is None:
        # Python strings (small frames handed over directly); numbers as text, which never match.
        cells = [None if pd.isna(v) else str(v) for v in text.tolist()]
        chunked = pa.chunked_array([pa.array(cells, type=pa.large_string())])
    # RE2 over arrow's buffers, not Python's re on one Python string per cell.
    return (
        pc.match_substring_regex(chunked, ISO_8601).fill_null(False).to_numpy(zero_copy_only=False)
    )


def timestamp_problems(
    table: str,
    file: str,
    column: str,
    raw: pd.Series,
    parsed: pd.Series,
    report: ValidationReport,
    *,
    required: bool,
) -> None:
    """Report the cells of ``raw`` that :func:`parse_timestamps` could not read, with examples."""
    # Empty or blank text counts as missing, as in every other column.
    missing = (
        (raw if pd.api.types.is_datetime64_any_dtype(raw) else as_text(raw))
        .isna()
        .to_numpy(dtype=bool)
    )
    unread = parsed.isna().to_numpy(dtype=bool) & ~missing
    if unread.any():
        found = list(dict.fromkeys(str(v).strip() for v in raw[unread].head(50)))[:3]
        shown = ", ".join(f"'{v}'" for v in found)
        report.add_at(
            table,
            file,
            column,
            unread,
            f"not an ISO 8601 timestamp (found {shown}); "
            f"{ISO_8601_HINT}; other forms are not guessed",
            fatal=True,
        )
    if required:
        report.add_at(
            table, file, column, missing, "missing timestamp in a required column", fatal=True
        )
    with np.errstate(invalid="ignore"):
        early = (parsed < EARLIEST_PLAUSIBLE_TIME).to_numpy(dtype=bool)
    report.add_at(
        table,
        file,
        column,
        early,
        f"timestamp before {EARLIEST_PLAUSIBLE_TIME:%Y-%m-%d} (a placeholder such as "
        "0001-01-01 or 1970-01-01?); leave the cell empty only where the column allows it",
        fatal=True,
    )


def parse_time(text: str, what: str) -> pd.Timestamp:
    """One time given as text (a command-line option, an API argument), in UTC; ISO 8601 only.

    Raises
    ------
    ValueError
        Naming ``what`` and the accepted form, for anything else ("now", "01/02/2020", "12:30").
    """
    stripped = str(text).strip()
    if not re.fullmatch(ISO_8601, stripped):
        raise ValueError(f"{what}: '{text}' is not an ISO 8601 time; {ISO_8601_HINT}")
    try:
        ts = pd.Timestamp(stripped)
    except (ValueError, OverflowError) as exc:  # 2020-02-30, or outside pandas' range
        raise ValueError(f"{what}: '{text}' is not a valid time ({exc}); {ISO_8601_HINT}") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_cutoff(ts: pd.Timestamp, what: str, now: pd.Timestamp | None = None) -> pd.Timestamp:
    """``ts`` if it can be a scoring cutoff: not before the first plausible post, not after now
    (a cutoff leaves out the posts after it; in the future it leaves out nothing).

    Raises
    ------
    ValueError
        Naming ``what`` and the range.
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now
    if ts < EARLIEST_PLAUSIBLE_TIME:
        raise ValueError(
            f"{what} {ts:%Y-%m-%d}: before {EARLIEST_PLAUSIBLE_TIME:%Y-%m-%d}, "
            "earlier than any post; give a cutoff inside the data's date range"
        )
    if ts > now + FUTURE_TOLERANCE:
        raise ValueError(
            f"{what} {ts:%Y-%m-%d}: in the future (now is {now:%Y-%m-%d %H:%M} UTC); a "
            "cutoff leaves out the posts after it, so leave it out to score as of now"
        )
    return ts


# Python's ``\s`` spelled out. Same matches as r"[#,\s|]+", but pandas can hand this pattern to
# pyarrow (RE2, whose \s is ASCII-only) instead of running Python's re cell by cell.
_UNICODE_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
# What separates tags in a hashtags cell ('#', commas, '|', any whitespace): normalise_hashtags
# writes each run of them as one '|'.
HASHTAG_SEPARATORS = f"[#,|{_UNICODE_WHITESPACE}]+"
# The replacement above changes a cell only if it has '#', a comma, whitespace or '||': cells are
# searched for those first (_rewrite_candidates), since most are already clean '|'-joined lists.
# Rows normalised at a time: bounds the whole-column copies each step makes.
_HASHTAG_CHUNK_ROWS = 1 << 20


def normalise_hashtags(values: pd.Series) -> pd.Series:
    """Hashtags as a lowercase, '|'-joined string without '#'; accepts '|', commas or spaces."""
    if len(values) > _HASHTAG_CHUNK_ROWS:
        # Row by row, so chunks give the same result; each step copies the whole text, and at
        # millions of posts whole-column intermediates would multiply the peak memory.
        return pd.concat(
            [
                _normalise_hashtags(values.iloc[i : i + _HASHTAG_CHUNK_ROWS])
                for i in range(0, len(values), _HASHTAG_CHUNK_ROWS)
            ]
        )
    return _normalise_hashtags(values)


# Bytes that flag a cell for the separator rewrite: everything below '0' ('#', ',', Python's ASCII
# whitespace, and punctuation that needs nothing: the rewrite leaves such a cell as it was) and
# every non-ASCII byte (the cell may hold Unicode whitespace; the regex then decides). Read as
# signed bytes, both are one comparison: non-ASCII bytes are negative.
_FIRST_PLAIN_BYTE = ord("0")
_DOUBLE_PIPE = 0x7C7C  # "||"


def _rewrite_candidates(text: pa.ChunkedArray) -> tuple[np.ndarray, bool]:
    """(cells that may need the separator rewrite, whether all the text is ASCII), read off
    arrow's byte buffers: two numpy passes over the bytes, cheaper than arrow's regex and
    substring kernels, which work cell by cell. A '||' across two cells only flags a cell for
    nothing."""
    needs, ascii_only = [], True
    for chunk in text.chunks:
        offsets, data = text_bytes(chunk)
        if len(data) == 0:
            needs.append(np.zeros(len(chunk), dtype=bool))
            continue
        ascii_only = ascii_only and int(data.max()) < 0x80
        hits = [np.flatnonzero(data.view(np.int8) < _FIRST_PLAIN_BYTE)]
        # '||' as one 16-bit number, at even and at odd byte offsets: half the passes of
        # comparing every byte with '|' and then each with the next.
        for first in (0, 1):
            pairs = data[first : first + (len(data) - first) // 2 * 2].view("<u2")
            hits.append(np.flatnonzero(pairs == _DOUBLE_PIPE) * 2 + first)
        chunk_needs = np.zeros(len(chunk), dtype=bool)
        for at in hits:
            chunk_needs[np.searchsorted(offsets, at, side="right") - 1] = True
        needs.append(chunk_needs)
    return (np.concatenate(needs) if needs else np.zeros(0, dtype=bool)), ascii_only


def _normalise_hashtags(values: pd.Series) -> pd.Series:
    original, chunked = _arrow_string(values, missing="")
    needs, ascii_only = _rewrite_candidates(chunked)
    # ASCII text lowers byte by byte, much cheaper than Unicode case mapping (same result).
    lowered = pc.ascii_lower(chunked) if ascii_only else pc.utf8_lower(chunked)
    text = pd.Series(pd.arrays.ArrowStringArray(lowered), index=original.index)
    if needs.any():
        text.iloc[np.flatnonzero(needs)] = (
            text[needs].str.replace(HASHTAG_SEPARATORS, "|", regex=True).to_numpy()
        )
    text = text.str.strip("|")
    if not needs.any() and (text == original).all():
        # Already normalised (exports from our own tools, re-runs): keep the input's buffers
        # instead of a second copy of every tag.
        text = original
    # Arrow-backed text, not one Python object per cell (far less memory).
    return text.astype("str")


def _letters(value: str) -> str:
    return re.sub(r"[^a-z]", "", value)


def closest_category(
    value: str, vocabulary: Iterable[str], cutoff: float = CATEGORY_MATCH_CUTOFF
) -> str | None:
    """The value of ``vocabulary`` that ``value`` most likely misspells, else None.

    Compared on letters only ("fashion 0.5" and "Fashion!" are "fashion"), with difflib's
    similarity ratio at least ``cutoff``. A value without letters matches nothing.
    """
    by_letters = {_letters(v): v for v in vocabulary}
    letters = _letters(value)
    if not letters:
        return None
    if letters in by_letters:
        return by_letters[letters]
    close = difflib.get_close_matches(letters, list(by_letters), n=1, cutoff=cutoff)
    return by_letters[close[0]] if close else None


def normalise_category(value: object) -> str | None:
    """One category cell as text the contract compares: lower case, inner space collapsed, and
    of several categories listed in one cell ("Dancing, Lipsyncing") the first; None if empty."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.lower().split())
    first = next((part.strip() for part in CATEGORY_SEPARATORS.split(text) if part.strip()), "")
    return first or None


def _fix_category(raw: pd.Series, table: str, file: str, report: ValidationReport) -> pd.Series:
    # Work per distinct value: profiles hold few categories, and the rules are plain Python.
    code, uniques = pd.factorize(raw.astype("string"))
    cells = [" ".join(str(v).lower().split()) for v in uniques]
    first = [normalise_category(v) for v in uniques]
    known = set(KNOWN_CATEGORIES)
    fixed = [
        v if v is None or v in known else (closest_category(v, KNOWN_CATEGORIES) or v)
        for v in first
    ]
    # Which distinct values each note is about, and the rows that hold them.
    distinct = range(len(uniques))
    several = [i for i in distinct if first[i] is not None and cells[i] != first[i]]
    misspelled = [i for i in distinct if first[i] is not None and first[i] != fixed[i]]
    unknown = [i for i in distinct if fixed[i] is not None and fixed[i] not in known]
    notes = [
        (
            several,
            lambda i: f"'{cells[i]}'->'{first[i]}'",
            "several categories in one cell",
            "kept the first one",
        ),
        (
            misspelled,
            lambda i: f"'{first[i]}'->'{fixed[i]}'",
            "misspelled category",
            "mapped to the closest known niche",
        ),
        (
            unknown,
            lambda i: f"'{fixed[i]}'",
            "category outside the known niches",
            "kept as its own niche; the model keeps those of enough "
            "training influencers and maps the rest to 'other'",
        ),
    ]
    rows_of = np.bincount(code[code >= 0], minlength=len(uniques))
    for values, show, message, action in notes:
        if values:
            # The most common first, each text once (several cells can give the same category).
            shown = list(dict.fromkeys(show(i) for i in sorted(values, key=lambda i: -rows_of[i])))
            detail = ", ".join(shown[:8]) + (", ..." if len(shown) > 8 else "")
            report.add_at(
                table,
                file,
                "category",
                np.isin(code, values),
                f"{message} ({detail})",
                fatal=False,
                action=action,
            )
    out = np.asarray([*fixed, None], dtype=object)[
        code
    ]  # code -1 (missing) picks the trailing None
    missing = pd.isna(out)
    p = problem_at(
        table, file, "category", missing, "category is empty", fatal=False, action="set to 'other'"
    )
    if p:
        report.add(p)
        out[missing] = "other"
    return pd.Series(out, index=raw.index, dtype=object)


def clean_categories(values: pd.Series) -> pd.Series:
    """A category column as :func:`validate` leaves it (see the module notes), without a report."""
    return _fix_category(values, "profiles", "profiles", ValidationReport())


# --------------------------------------------------------------------------- profiles


def validate_profiles(
    frame: pd.DataFrame, file: str, report: ValidationReport, now: pd.Timestamp | None = None
) -> pd.DataFrame | None:
    """Check and normalise a profiles table; returns None if a required column is missing.

    ``now`` (default: the machine's clock) bounds the ``as_of`` cutoffs: one in the future
    leaves no post out."""
    table = "profiles"
    readable = _readable_columns(table, file, frame, PROFILE_REQUIRED, PROFILE_OPTIONAL, report)
    if readable is None:
        return None
    frame = readable
    if len(frame) == 0:
        report.add(
            Problem(table, file, None, [], 0, "the table has a header but no rows", fatal=True)
        )
        return None
    # The clean columns, framed once at the end (pandas has a fixed cost per
    # inserted column, which adds up for one candidate scored over REST).
    cols: dict[str, Any] = {"influencer": as_text(frame["influencer"])}
    report.add_at(
        table,
        file,
        "influencer",
        cols["influencer"].isna().to_numpy(dtype=bool),
        "missing influencer key",
        fatal=True,
    )
    followers = as_count(table, file, frame, "followers", report, required=True)
    cols["followers"] = followers
    zero = (followers == 0).to_numpy(dtype=bool)
    for col in ("following", "posts_count"):
        cols[col] = (
            as_count(table, file, frame, col, report, required=False) if col in frame else np.nan
        )
    cols["category"] = (
        _fix_category(frame["category"], table, file, report) if "category" in frame else "other"
    )
    if "platform" in frame:
        platform = as_text(frame["platform"]).str.lower().fillna(DEFAULT_PLATFORM)
        bad = ~platform.isin(PLATFORMS)
        values = ", ".join(sorted(set(platform[bad].astype(str)))[:5]) if bad.any() else ""
        report.add_at(
            table,
            file,
            "platform",
            bad.to_numpy(dtype=bool),
            f"unknown platform ({values}); expected one of {', '.join(PLATFORMS)}",
            fatal=True,
        )
        cols["platform"] = platform.astype(object)
    else:
        cols["platform"] = DEFAULT_PLATFORM
    cols["country"] = as_text(frame["country"]).astype(object) if "country" in frame else None
    cols["verified"] = (
        _as_bool(table, file, frame, "verified", report) if "verified" in frame else False
    )
    if "as_of" in frame:
        as_of = parse_timestamps(frame["as_of"])
        timestamp_problems(table, file, "as_of", frame["as_of"], as_of, report, required=False)
        now = pd.Timestamp.now(tz="UTC") if now is None else now
        report.add_at(
            table,
            file,
            "as_of",
            (as_of > now + FUTURE_TOLERANCE).to_numpy(dtype=bool),
            f"cutoff in the future (after {now:%Y-%m-%d}); a cutoff leaves "
            "out the posts after it: leave the cell empty to score as of now",
            fatal=True,
        )
        cols["as_of"] = as_of
    # copy=False: the columns are new already; copying them into 2-D blocks would be a second copy.
    out = pd.DataFrame(cols, index=frame.index, copy=False)

    # Duplicate keys: identical rows are harmless copies; conflicting ones are ambiguous.
    keep = np.ones(len(out), dtype=bool)
    key = out["influencer"]
    dup_key = key.duplicated(keep=False) & key.notna()
    if dup_key.any():
        exact_extra = out.duplicated(keep="first") & dup_key
        # Every row of a key with two or more different versions: which one is right is unknowable.
        versions = out.drop_duplicates()["influencer"]
        conflicting = dup_key & key.isin(versions[versions.duplicated()])
        report.add_at(
            table,
            file,
            "influencer",
            conflicting.to_numpy(dtype=bool),
            "duplicate influencer with different values",
            fatal=True,
        )
        p = problem_at(
            table,
            file,
            "influencer",
            exact_extra.to_numpy(dtype=bool),
            "exact duplicate profile rows",
            fatal=False,
            action="extra copies dropped",
        )
        if p:
            report.add(p)
            report.reject(
                table,
                frame[exact_extra.to_numpy()],
                _row_numbers(exact_extra),
                "exact duplicate profile",
            )
            keep &= ~exact_extra.to_numpy()
    # Zero followers: no rate can be computed for this influencer, but the rest of the input is
    # fine, so the profile (first copy; extra ones went above) is set aside, and validate() sets
    # its posts aside too.
    zero = zero & keep
    p = problem_at(
        table,
        file,
        "followers",
        zero,
        ZERO_FOLLOWERS,
        fatal=False,
        action="set aside with the influencer's posts (listed in the rejects)",
    )
    if p:
        report.add(p)
        report.reject(table, frame[zero], _row_numbers(zero), ZERO_FOLLOWERS)
        keep &= ~zero
    if not keep.all():
        out = out[keep]
    return out.reset_index(drop=True)


def zero_follower_profiles(report: ValidationReport) -> pd.DataFrame:
    """The profile rows set aside for zero followers, as read (with ``table``, ``row`` and
    ``reject_reason``), from the report's rejects; their ``influencer`` keys are stripped."""
    frames = [
        f
        for f in report.rejects
        if len(f)
        and f["table"].iloc[0] == "profiles"
        and (f["reject_reason"] == ZERO_FOLLOWERS).all()
    ]
    if not frames:
        return pd.DataFrame(columns=["table", "row", "reject_reason", "influencer"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    return out.assign(influencer=as_text(out["influencer"]))


# --------------------------------------------------------------------------- posts


def validate_posts(
    frame: pd.DataFrame, file: str, report: ValidationReport, now: pd.Timestamp
) -> pd.DataFrame | None:
    """Check and normalise a posts table; returns None if a required column is missing."""
    table = "posts"
    readable = _readable_columns(table, file, frame, POST_REQUIRED, POST_OPTIONAL, report)
    if readable is None:
        return None
    frame = readable
    # The clean columns, framed once at the end (pandas has a fixed cost per
    # inserted column, which adds up for one candidate scored over REST).
    cols: dict[str, Any] = {}
    for col in ("influencer", "post_id"):
        cols[col] = as_text(frame[col])
        report.add_at(
            table, file, col, cols[col].isna().to_numpy(dtype=bool), f"missing {col}", fatal=True
        )
    posted = parse_timestamps(frame["posted_at"])
    timestamp_problems(table, file, "posted_at", frame["posted_at"], posted, report, required=True)
    report.add_at(
        table,
        file,
        "posted_at",
        (posted > now + FUTURE_TOLERANCE).to_numpy(dtype=bool),
        f"timestamp in the future (after {now:%Y-%m-%d})",
        fatal=True,
    )
    cols["posted_at"] = posted
    for col in POST_COUNT_COLUMNS_REQUIRED:
        cols[col] = as_count(table, file, frame, col, report, required=True)
    for col in POST_COUNT_COLUMNS_OPTIONAL:
        if col in frame:
            cols[col] = as_count(table, file, frame, col, report, required=False)
    cols["media_type"] = (
        as_text(frame["media_type"]).str.lower().fillna("unknown").astype("str")
        if "media_type" in frame
        else "unknown"
    )
    cols["is_sponsored"] = (
        _as_bool(table, file, frame, "is_sponsored", report) if "is_sponsored" in frame else False
    )
    cols["hashtags"] = (
        normalise_hashtags(joined_lists(frame["hashtags"])) if "hashtags" in frame else ""
    )
    for col in ("caption", "image_description"):
        if col in frame:
            cols[col] = frame[col].astype("string").fillna("").astype("str")
    cols["row"] = np.arange(1, len(frame) + 1)
    out = pd.DataFrame(cols, index=frame.index, copy=False)  # as for the profiles

    # Duplicate keys: (influencer, post_id). Identical
    # copies are dropped, conflicting ones are fatal.
    # Keys are compared as 64-bit hashes first (one number per row, far smaller than a hash
    # table of every post id); only the rows whose hashes repeat, usually none, are compared as
    # text.
    key_cols = ["influencer", "post_id"]
    post_hash = text_hashes(out["post_id"])
    maybe_dup = np.flatnonzero(repeated(combine_hashes(text_hashes(out["influencer"]), post_hash)))
    dup_rows = maybe_dup
    if len(maybe_dup):
        dup_rows = maybe_dup[out.iloc[maybe_dup].duplicated(subset=key_cols, keep=False).to_numpy()]
    if len(dup_rows):
        # Exact copies and clashing versions can only be among the rows of repeated keys.
        dups = out.iloc[dup_rows]
        value_cols = [c for c in out.columns if c != "row"]
        exact_extra = np.zeros(len(out), dtype=bool)
        exact_extra[dup_rows] = dups.duplicated(subset=value_cols, keep="first").to_numpy()
        # Every row of a key with two or more different versions, not only the odd one out.
        versions = dups.drop_duplicates(subset=value_cols)[key_cols]
        clashing = pd.MultiIndex.from_frame(versions[versions.duplicated()])
        conflicting = np.zeros(len(out), dtype=bool)
        conflicting[dup_rows] = pd.MultiIndex.from_frame(dups[key_cols]).isin(clashing)
        report.add_at(
            table,
            file,
            "post_id",
            conflicting,
            "duplicate post (same influencer and post_id) with different values",
            fatal=True,
        )
        p = problem_at(
            table,
            file,
            "post_id",
            exact_extra,
            "exact duplicate post rows",
            fatal=False,
            action="extra copies dropped",
        )
        if p:
            report.add(p)
            report.reject(
                table, frame[exact_extra], _row_numbers(exact_extra), "exact duplicate post"
            )
            out = out[~exact_extra]
            post_hash = post_hash[~exact_extra]
    # One post_id under several influencers; a key repeated under one influencer is a duplicate,
    # reported above, so only distinct influencers count. Missing post ids are reported elsewhere.
    same_post = np.flatnonzero(repeated(post_hash) & out["post_id"].notna().to_numpy(dtype=bool))
    shared_rows = same_post
    if len(same_post):
        pairs = out.iloc[same_post][key_cols]
        influencers_per_post = pairs.drop_duplicates().groupby("post_id", dropna=True).size()
        shared_rows = same_post[
            (pairs["post_id"].map(influencers_per_post) > 1).to_numpy(dtype=bool)
        ]
    if len(shared_rows):
        p = Problem(
            table,
            file,
            "post_id",
            out["row"].to_numpy()[shared_rows[:MAX_ROWS_LISTED]].tolist(),
            len(shared_rows),
            "the same post_id appears under several influencers",
            False,
            "kept for each influencer",
        )
        report.add(p)
    return out


# --------------------------------------------------------------------------- both


def validate(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    *,
    profiles_file: str = "profiles",
    posts_file: str = "posts",
    now: pd.Timestamp | None = None,
    raise_on_fatal: bool = True,
) -> ValidatedData:
    """Validate both tables together; raise
    :class:`DataValidationError` listing every fatal problem.

    ``posts`` may be None (candidates with no post history: profile features only).
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        now = now.tz_localize("UTC")
    report = ValidationReport()
    clean_profiles = validate_profiles(profiles, profiles_file, report, now)
    clean_posts = (
        validate_posts(posts, posts_file, report, now) if posts is not None else empty_posts()
    )

    if clean_profiles is not None and clean_posts is not None and not report.fatal:
        zero_keys = zero_follower_profiles(report)["influencer"].drop_duplicates()
        unrated = (
            positions_in(zero_keys, clean_posts["influencer"]) >= 0 if len(zero_keys) else None
        )
        if unrated is not None and unrated.any():
            rows = clean_posts.loc[unrated, "row"].to_numpy()
            report.add(
                Problem(
                    "posts",
                    posts_file,
                    "influencer",
                    rows[:MAX_ROWS_LISTED].tolist(),
                    int(unrated.sum()),
                    ZERO_FOLLOWERS_POSTS,
                    False,
                    "set aside with their profile (no followers to rate them against)",
                )
            )
            original = posts.iloc[rows - 1] if posts is not None else clean_posts[unrated]
            report.reject("posts", original, rows, "influencer has zero followers")
            clean_posts = clean_posts[~unrated]
        # Profile keys are unique here (conflicting copies are fatal, exact ones were dropped).
        orphan = positions_in(clean_profiles["influencer"], clean_posts["influencer"]) < 0
        if orphan.any():
            rows = clean_posts.loc[orphan, "row"].to_numpy()
            report.add(
                Problem(
                    "posts",
                    posts_file,
                    "influencer",
                    rows[:MAX_ROWS_LISTED].tolist(),
                    int(orphan.sum()),
                    "posts whose influencer has no profile",
                    False,
                    "set aside (no followers to rate them against)",
                )
            )
            original = posts.iloc[rows - 1] if posts is not None else clean_posts[orphan]
            report.reject("posts", original, rows, "no profile for this influencer")
            clean_posts = clean_posts[~orphan]
    if report.fatal or clean_profiles is None or clean_posts is None:
        if raise_on_fatal:
            raise DataValidationError(report)
        return ValidatedData(
            clean_profiles if clean_profiles is not None else pd.DataFrame(),
            clean_posts if clean_posts is not None else empty_posts(),
            report,
        )
    clean_posts = clean_posts.drop(columns="row").reset_index(drop=True)
    clean_profiles["followers"] = clean_profiles["followers"].astype("float64")
    report.rows_out["profiles"] = len(clean_profiles)
    report.rows_out["posts"] = len(clean_posts)
    return ValidatedData(clean_profiles, clean_posts, report)


def empty_posts() -> pd.DataFrame:
    """A posts table with the contract's columns and no rows."""
    return pd.DataFrame(
        {
            "influencer": pd.Series(dtype=object),
            "post_id": pd.Series(dtype=object),
            "posted_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "likes": pd.Series(dtype="float64"),
            "comments": pd.Series(dtype="float64"),
            "media_type": pd.Series(dtype=object),
            "is_sponsored": pd.Series(dtype=bool),
            "hashtags": pd.Series(dtype=object),
            "row": pd.Series(dtype="int64"),
        }
    )


def load_and_validate(
    profiles_path: str | Path, posts_path: str | Path | None, *, now: pd.Timestamp | None = None
) -> ValidatedData:
    """Read both files and validate them; read failures and contract breaks both raise."""
    profiles = read_table(profiles_path)
    posts = read_table(posts_path) if posts_path is not None else None
    return validate(
        profiles, posts, profiles_file=str(profiles_path), posts_file=str(posts_path), now=now
    )
