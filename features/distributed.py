"""The Dask engine: the same point-in-time features on a cluster.

Every feature is an aggregate over one influencer's profile and posts (see
:mod:`features.aggregate`), so the work splits cleanly by influencer: both tables are
hash-partitioned on the influencer key into the same ``npartitions`` buckets (partition ``i``
of each holds exactly the influencers whose key hashes to ``i``), and each aligned
(profiles, posts) pair runs through the *unchanged* pandas code, :func:`features.contract.validate`
then :func:`features.aggregate.compute_features`. There is no second implementation to drift.

What per-partition validation means, compared with the pandas engine:

* exact per-influencer checks stay exact: duplicate profiles, duplicate or conflicting posts
  (influencer, post_id), posts without a profile (an orphan post lands in the bucket its
  profile would be in), zero-follower profiles set aside with their posts (a bucket may then
  have no profile left: its features are empty), every per-cell check;
* "the same post_id under several influencers" is only seen when those influencers share a
  bucket, so the Dask engine under-counts that note (the posts are kept either way, so
  features are unaffected);
* row numbers are the input's: before the shuffle every row gets its place in the input
  (:data:`ROW`), each bucket is validated in input order, and the contract's positions are
  mapped back to 1-based data rows, counted across a folder's or glob's files in order, as
  the pandas engine counts the same files read together. A merged problem lists the smallest
  offending rows of all buckets (at most ``MAX_ROWS_LISTED``) and the total count; when a
  table spans several Parquet files the report also names the file and the row within it
  (``part-1.parquet row 66``), and rejects get ``input_file`` and ``input_file_row``. The
  partition lengths this needs come from the same read tasks as the work: no extra pass;
* "now" (future-timestamp check, default cutoff) is read once on the driver and passed to
  every partition, so all partitions agree.

Small driver-side tables (a campaigns table, a shortlist) are cut by influencer bucket
(:func:`split_by_bucket`) and handed to each bucket's task (``part_args`` of
:func:`map_by_influencer`); batch scoring on these buckets is
:func:`serving.distributed.score_dask`.

Reading: :func:`features.datasets.read_parquet_any` takes a Parquet file, a folder, a glob or
any fsspec URL (``s3://``, ``gs://``, ``abfs://``, ...) for both engines.

Nothing here starts a cluster at import time; :func:`dask_client` does, when asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.aggregate import compute_features, examples_at
from features.contract import (
    MAX_ROWS_LISTED,
    DataError,
    DataValidationError,
    ValidatedData,
    ValidationReport,
    describe_duplicate_columns,
    duplicate_columns,
    other_separator,
    read_table,
    validate,
)
from features.datasets import (
    is_dataset_path,
    parquet_files,
    read_parquet_any,
)

BUCKET = "_engage_bucket"
# Each input row's place in the input, attached before the shuffle (see with_row_numbers).
ROW = "_engage_row"
CSV_SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt", ".tsv")
# Stands in for the missing profile of a partition without profiles
# (orphan posts, shortlisted names without a profile), so that the
# contract's own code reports them (validation needs at least one profile row). Never output.
PLACEHOLDER = "\x00engage-placeholder"

PartFunc = Callable[..., tuple[pd.DataFrame | None, ValidationReport]]


# --------------------------------------------------------------------------- reading


def check_csv_headers(
    path: str | Path, sep: str, storage_options: dict[str, Any] | None = None
) -> None:
    """Refuse CSV files whose header names a column twice, as :func:`read_table` does: Dask,
    like pandas, would rename the second one (``likes.1``) and the first would silently win.
    Reads the first line of each file the path or glob names."""
    import csv
    import gzip
    import zlib

    import fsspec

    try:
        opened = fsspec.open_files(
            str(path), "rt", compression="infer", encoding="utf-8-sig", **(storage_options or {})
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read: {exc}") from None
    for item in opened:
        where = item.path if "://" not in str(path) else item.full_name
        try:
            with item as handle:
                first = handle.readline()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{where}: not valid UTF-8 text ({exc.reason}); re-save it as UTF-8"
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DataError(
                f"{where}: the compressed file is truncated or corrupt ({exc}); "
                "copy or export it again"
            ) from None
        except OSError as exc:
            raise DataError(f"{where}: cannot be read: {exc}") from None
        names: list[object] = list(next(csv.reader([first], delimiter=sep), []))
        groups = duplicate_columns(names)
        if groups:
            raise DataError(f"{where}: {describe_duplicate_columns(groups)}")
        separated = other_separator(names, sep)
        if separated:
            raise DataError(f"{where}: {separated}")


def read_any(
    path: str | Path, *, engine: str = "pandas", storage_options: dict[str, Any] | None = None
) -> Any:
    """A contract table for either engine: Parquet (file, folder, glob, URL) or CSV.

    The pandas engine reads single local files with :func:`features.contract.read_table` (its
    error messages); Dask reads CSV as text, as that function does, so validation decides.
    """
    name = str(path).lower()
    if engine == "pandas":
        return (
            read_parquet_any(path, storage_options=storage_options)
            if is_dataset_path(path)
            else read_table(path)
        )
    if name.endswith(CSV_SUFFIXES):
        import dask.dataframe as dd

        check_csv_headers(path, "\t" if ".tsv" in name else ",", storage_options)
        return dd.read_csv(
            str(path),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            sep="\t" if ".tsv" in name else ",",
            blocksize=None if name.endswith(".gz") else "64MB",  # gzip cannot be split
            storage_options=storage_options,
        )
    return read_parquet_any(path, engine="dask", storage_options=storage_options)


# --------------------------------------------------------------------------- cluster


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | float = "auto",
    processes: bool = True,
    local_directory: str | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` if given, else on a new local cluster.

    The local cluster is sized to the machine (one single-threaded worker process per core:
    the feature code is pandas and numpy, which hold the GIL much of the time) and is closed
    on exit. ``memory_limit`` is per worker; past it, workers spill to ``local_directory``.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    workers = n_workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            processes=processes,
            dashboard_address=":0",  # any free port: several clusters may run on one machine
            local_directory=local_directory,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


# --------------------------------------------------------------------------- partitioning


def column_named(columns: Any, name: str) -> Any:
    """The column called ``name`` once surrounding space is removed (as the contract does)."""
    return next((c for c in columns if str(c).strip() == name), None)


def influencer_buckets(values: pd.Series, npartitions: int) -> np.ndarray:
    """Bucket 0..npartitions-1 of each influencer key; the same in every process and dtype.

    Keys are normalised as the contract does (text, surrounding space removed) so that
    ``" ana"`` and ``"ana"`` share a bucket, and hashed with pandas' fixed-key hash (Python's
    ``hash`` is salted per process).
    """
    keys = values.astype("string").str.strip().fillna("").to_numpy(dtype=object)
    return (pd.util.hash_array(keys) % np.uint64(npartitions)).astype("int64")


def _add_bucket(frame: pd.DataFrame, npartitions: int) -> pd.DataFrame:
    key = column_named(frame.columns, "influencer")
    return frame.assign(**{BUCKET: influencer_buckets(frame[key], npartitions)})


def partition_by_influencer(frame: Any, npartitions: int) -> Any:
    """Shuffle a Dask DataFrame so that partition ``i``
    holds exactly the influencers of bucket ``i``.

    The bucket becomes the index with divisions ``0, 1, ..., npartitions``, so two tables
    partitioned with the same ``npartitions`` are aligned partition by partition.
    """
    meta = frame._meta.assign(**{BUCKET: pd.Series(dtype="int64")})
    keyed = frame.map_partitions(_add_bucket, npartitions, meta=meta)
    return keyed.set_index(BUCKET, divisions=list(range(npartitions + 1)))


def with_row_numbers(frame: Any) -> tuple[Any, list[Any]]:
    """``frame`` with :data:`ROW`, each row's place in
    the input, and the delayed length of each partition.

    :data:`ROW` packs (input partition, position within it) as ``partition << 32 | position``,
    so it sorts in input order; :func:`input_row_numbers` turns it into the 1-based data row
    (counted across a folder's or glob's files in :func:`parquet_files` order, as the pandas
    engine counts them) once the lengths are known. The lengths are computed with the main work,
    from the same read tasks, so numbering costs no extra pass over the input.
    """
    import dask
    import dask.dataframe as dd

    inputs = frame.to_delayed()
    numbered = [dask.delayed(_attach_rows, pure=True)(part, i) for i, part in enumerate(inputs)]
    lengths = [dask.delayed(len, pure=True)(part) for part in inputs]
    meta = frame._meta.assign(**{ROW: pd.Series(dtype="int64")})
    with dask.config.set({"dataframe.convert-string": False}):  # keep the read dtypes as they are
        return dd.from_delayed(numbered, meta=meta, verify_meta=False), lengths


def _attach_rows(part: pd.DataFrame, index: int) -> pd.DataFrame:
    return part.assign(
        **{ROW: (np.int64(index) << np.int64(32)) + np.arange(len(part), dtype="int64")}
    )


def input_row_numbers(keys: Sequence[int] | np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """1-based input data rows of :data:`ROW` keys, given the length of each input partition."""
    keys = np.asarray(keys, dtype="int64")
    starts = (
        np.cumsum([1, *lengths[:-1]]).astype("int64")
        if len(lengths)
        else np.zeros(0, dtype="int64")
    )
    return starts[keys >> np.int64(32)] + (keys & np.int64(0xFFFFFFFF))


def bucket_count(profiles: Any, posts: Any, npartitions: int | None = None) -> int:
    """The number of influencer buckets: ``npartitions``,
    else the larger input's partition count."""
    return npartitions or max(profiles.npartitions, posts.npartitions if posts is not None else 1)


def split_by_bucket(
    frame: pd.DataFrame, npartitions: int, key: str = "influencer"
) -> list[pd.DataFrame]:
    """A small driver-side table (campaigns, a shortlist, fees) cut into the influencer buckets."""
    buckets = (
        influencer_buckets(frame[key], npartitions) if len(frame) else np.zeros(0, dtype="int64")
    )
    return [frame[buckets == i].reset_index(drop=True) for i in range(npartitions)]


def _check_required_columns(profiles: Any, posts: Any) -> None:
    """Fail early, as the pandas engine does, when a required column is missing."""
    report = validate(
        profiles._meta, posts._meta if posts is not None else None, raise_on_fatal=False
    ).report
    missing = [p for p in report.fatal if p.message.startswith("required column is missing")]
    if missing:
        report.problems = missing
        raise DataValidationError(report)


# --------------------------------------------------------------------------- reports


def merge_reports(
    reports: Sequence[ValidationReport], lengths: Mapping[str, Sequence[int]] | None = None
) -> ValidationReport:
    """One report from per-partition reports: counts summed, the same problem merged.

    A merged problem lists the smallest of its buckets' rows (input order, see
    :func:`_with_input_rows`), at most ``MAX_ROWS_LISTED``: each bucket listed its own smallest,
    so these are the first offending rows of the whole input. Rejects are merged per table in
    input order. With ``lengths`` (each table's input partition lengths), the rows, :data:`ROW`
    keys until then, become 1-based input data rows (:func:`input_row_numbers`).
    """
    merged = ValidationReport()
    problems: dict[tuple[Any, ...], Any] = {}
    rejects: dict[str, list[pd.DataFrame]] = {}
    for report in reports:
        for key in ("rows_in", "rows_out"):
            target = getattr(merged, key)
            for table, n in getattr(report, key).items():
                target[table] = target.get(table, 0) + n
        for p in report.problems:
            k = (p.table, p.file, p.column, p.message, p.fatal, p.action)
            if k in problems:
                problems[k].count += p.count
                problems[k].rows = sorted(problems[k].rows + list(p.rows))[:MAX_ROWS_LISTED]
            else:
                problems[k] = type(p)(
                    p.table,
                    p.file,
                    p.column,
                    sorted(p.rows)[:MAX_ROWS_LISTED],
                    p.count,
                    p.message,
                    p.fatal,
                    p.action,
                )
        for frame in report.rejects:
            rejects.setdefault(str(frame["table"].iloc[0]), []).append(frame)
    merged.problems = list(problems.values())
    merged.rejects = [
        pd.concat(frames, ignore_index=True, sort=False).sort_values(
            "row", kind="stable", ignore_index=True
        )
        for frames in rejects.values()
    ]
    for table, counts in (lengths or {}).items():
        for p in merged.problems:
            if p.table == table and p.rows:
                p.rows = input_row_numbers(p.rows, counts).tolist()
        for i, frame in enumerate(merged.rejects):
            if len(frame) and frame["table"].iloc[0] == table and frame["row"].notna().all():
                merged.rejects[i] = frame.assign(
                    row=input_row_numbers(frame["row"].to_numpy(dtype="int64"), counts)
                )
    return merged


def _with_input_rows(
    report: ValidationReport, numbers: dict[str, np.ndarray | None]
) -> ValidationReport:
    """Turn the contract's row positions (1-based, within one bucket) into :data:`ROW` keys.

    ``numbers[table][i]`` is the key of the bucket's row ``i + 1``. The bucket was
    validated in input order, so the positions a problem lists (its first ones) map to the
    bucket's first rows in input order. Done here, after the fact, so that every report made from a
    bucket's frames (the contract's, and notes a scorer adds itself) names input rows, with no
    change to the checks. Without numbers, positions mean nothing and are dropped.
    """
    for p in report.problems:
        rows = numbers.get(p.table)
        p.rows = (
            rows[np.asarray(p.rows, dtype="int64") - 1].tolist()
            if rows is not None and len(p.rows)
            else []
        )
    for i, frame in enumerate(report.rejects):
        rows = numbers.get(str(frame["table"].iloc[0])) if len(frame) else None
        report.rejects[i] = frame.assign(
            row=rows[frame["row"].to_numpy(dtype="int64") - 1] if rows is not None else None
        )
    return report


def _file_starts(path: str, storage_options: dict[str, Any] | None) -> tuple[list[str], np.ndarray]:
    """The Parquet files of ``path`` (relative to their common folder) and each one's first row
    in the numbering of :func:`with_row_numbers`, from the files' footers (no data is read)."""
    import pyarrow.parquet as pq

    fs, files = parquet_files(path, storage_options)
    counts = []
    for file in files:
        with fs.open(file, "rb") as handle:
            counts.append(pq.read_metadata(handle).num_rows)
    common = os.path.commonpath(files) if len(files) > 1 else ""
    names = [f[len(common) :].lstrip("/") if common else f for f in files]
    return names, np.cumsum([1, *counts[:-1]])


def _located(rows: Sequence[int], names: list[str], starts: np.ndarray) -> str:
    """``part-0.parquet rows 3, 5; part-1.parquet row 66``
    for input rows 3, 5 and ``starts[1] + 65``."""
    groups: list[tuple[str, list[int]]] = []
    for row in rows:
        i = int(np.searchsorted(starts, row, side="right")) - 1
        if not groups or groups[-1][0] != names[i]:
            groups.append((names[i], []))
        groups[-1][1].append(int(row - starts[i] + 1))
    return "; ".join(
        f"{name} row{'s' if len(r) > 1 else ''} {', '.join(map(str, r))}" for name, r in groups
    )


def locate_rows(
    report: ValidationReport, files: tuple[str, str], storage_options: dict[str, Any] | None = None
) -> ValidationReport:
    """Name the file and the row within it for the rows a report lists, for tables read from
    several Parquet files (a folder or glob), so that a user can find them.

    Rows stay numbered across the files (as the pandas engine numbers them); problems get
    ``located`` text, rejects ``input_file`` and ``input_file_row`` columns. The files' footers
    are read on the driver only when the report lists rows of that table.
    """
    for table, path in zip(("profiles", "posts"), files, strict=True):
        problems = [p for p in report.problems if p.table == table and p.rows]
        rejects = [
            i
            for i, f in enumerate(report.rejects)
            if len(f) and f["table"].iloc[0] == table and f["row"].notna().all()
        ]
        if (
            not (problems or rejects)
            or not is_dataset_path(path)
            or str(path).lower().endswith(CSV_SUFFIXES)
        ):
            continue
        try:
            names, starts = _file_starts(path, storage_options)
        except (DataError, OSError, ValueError):
            continue  # unreadable footers: the rows stay numbered across the files
        if len(names) < 2:
            continue
        for p in problems:
            p.located = _located(p.rows, names, starts)
        for i in rejects:
            rows = report.rejects[i]["row"].to_numpy(dtype="int64")
            which = np.searchsorted(starts, rows, side="right") - 1
            report.rejects[i] = report.rejects[i].assign(
                input_file=np.asarray(names, dtype=object)[which],
                input_file_row=rows - starts[which] + 1,
            )
    return report


def _without_placeholder(report: ValidationReport) -> ValidationReport:
    for key in ("rows_in", "rows_out"):
        counts = getattr(report, key)
        if "profiles" in counts:
            counts["profiles"] -= 1
    return report


# --------------------------------------------------------------------------- mapping


def _in_input_order(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
    """A bucket's rows in input order without :data:`ROW`,
    and their input row numbers (None if unnumbered).

    Input order makes the bucket's "first" rows its smallest input rows and keeps the first
    copy of a duplicate, as the pandas engine does.
    """
    if ROW not in frame.columns:
        return frame.reset_index(drop=True), None
    frame = frame.sort_values(ROW, kind="stable", ignore_index=True)
    return frame.drop(columns=ROW), frame[ROW].to_numpy(dtype="int64")


def _run_part(
    func: PartFunc,
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    index: int,
    args: tuple[Any, ...],
) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Run ``func(profiles, posts, *args)`` on one
    aligned bucket; a contract break becomes a report.

    The report's rows are input row numbers (:func:`_with_input_rows`).
    """
    for frame in (profiles, posts):
        if frame is not None and len(frame) and not (frame.index == index).all():
            raise RuntimeError(
                f"partition {index} holds rows of other buckets: the tables are not aligned"
            )
    profiles, profile_rows = _in_input_order(profiles)
    posts, post_rows = _in_input_order(posts) if posts is not None else (None, None)
    placeholder = len(profiles) == 0
    if placeholder:
        # No profiles in this bucket: run against a stand-in profile, so that the contract's own
        # code reports orphan posts, and names of a shortlist still get their "no profile" rows.
        profile_rows = None  # the stand-in is no input row
        stand_in: dict[Any, list[Any]] = {c: [None] for c in profiles.columns}
        stand_in[column_named(profiles.columns, "influencer")] = [PLACEHOLDER]
        stand_in[column_named(profiles.columns, "followers")] = ["1"]
        if (category := column_named(profiles.columns, "category")) is not None:
            stand_in[category] = ["other"]  # an empty one would be reported
        profiles = pd.DataFrame(stand_in).astype(object)
    numbers = {"profiles": profile_rows, "posts": post_rows}
    try:
        result, report = func(profiles, posts, *args)
    except DataValidationError as exc:
        return None, _with_input_rows(
            _without_placeholder(exc.report) if placeholder else exc.report, numbers
        )
    if placeholder:
        report = _without_placeholder(report)
        result = (
            result[result["influencer"].astype(str) != PLACEHOLDER] if result is not None else None
        )
    return result, _with_input_rows(report, numbers)


@dataclass
class Buckets:
    """Delayed ``(frame, report)`` per influencer bucket,
    and what turns the reports' rows into input rows.

    Iterating gives the ``(frame, report)`` pairs. ``lengths`` holds, per table, the delayed
    length of each input partition: compute them in the same call as the buckets (they share
    the read tasks) and pass them to :func:`merge_reports`.
    """

    parts: list[tuple[Any, Any]]
    lengths: dict[str, list[Any]]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    def reports(self) -> list[Any]:
        return [r for _, r in self.parts]

    def lazy_lengths(self) -> list[Any]:
        """The length delayeds, flat (for ``dask.compute(..., *lazy_lengths())``)."""
        return [n for table in self.lengths.values() for n in table]

    def merge(
        self, reports: Sequence[ValidationReport], lengths: Sequence[int], files: tuple[str, str]
    ) -> ValidationReport:
        """The merged report of computed ``reports`` and flat
        ``lengths``, rows as input rows in named files."""
        by_table, at = {}, 0
        for table, lazy in self.lengths.items():
            by_table[table] = list(lengths[at : at + len(lazy)])
            at += len(lazy)
        return locate_rows(merge_reports(reports, by_table), files)


def map_by_influencer(
    func: PartFunc,
    profiles: Any,
    posts: Any,
    *,
    npartitions: int | None = None,
    args: tuple[Any, ...] = (),
    part_args: Sequence[tuple[Any, ...]] | None = None,
) -> Buckets:
    """Delayed ``(frame, report)`` per influencer bucket, from raw Dask tables.

    ``func(profiles_part, posts_part, *args, *part_args[i])`` receives raw pandas frames of
    bucket ``i`` (every influencer in them complete, with all its posts, rows in input order)
    and returns a result frame and a :class:`~features.contract.ValidationReport`; a
    :class:`DataValidationError` it raises is turned into its report (exceptions with custom
    arguments do not survive pickling). ``part_args`` (one tuple per bucket, see
    :func:`bucket_count` and :func:`split_by_bucket`) carries small driver-side tables cut by
    bucket. Rows are numbered first (:func:`with_row_numbers`) so reports name input rows.
    """
    import dask

    _check_required_columns(profiles, posts)
    n = bucket_count(profiles, posts, npartitions)
    if part_args is not None and len(part_args) != n:
        raise ValueError(f"part_args has {len(part_args)} entries for {n} buckets")
    profiles, lengths = with_row_numbers(profiles)
    prof_parts = partition_by_influencer(profiles, n).to_delayed()
    numbering = {"profiles": lengths}
    if posts is not None:
        posts, numbering["posts"] = with_row_numbers(posts)
        post_parts = partition_by_influencer(posts, n).to_delayed()
    else:
        post_parts = [None] * n
    run = dask.delayed(_run_part, nout=2, pure=True)
    parts = [
        run(func, p, q, i, args + (tuple(part_args[i]) if part_args is not None else ()))
        for i, (p, q) in enumerate(zip(prof_parts, post_parts, strict=True))
    ]
    return Buckets(parts, numbering)


def _frame_or_empty(frame: pd.DataFrame | None, meta: pd.DataFrame) -> pd.DataFrame:
    return meta if frame is None else frame


# progress(done, total): how many of a stage's pieces the cluster has finished.
PartsProgress = Callable[[int, int], None]


def wait_counted(persisted: Sequence[Any], progress: PartsProgress | None) -> None:
    """Wait for persisted Dask objects, calling ``progress(done, total)`` as each one finishes
    on the cluster (nothing to count off a distributed scheduler: no call)."""
    if progress is None:
        return
    from distributed import as_completed, futures_of

    futures = futures_of(list(persisted))
    if not futures:
        return
    progress(0, len(futures))
    for done, _ in enumerate(as_completed(futures), start=1):
        progress(done, len(futures))


def collect(
    parts: Buckets,
    meta: pd.DataFrame,
    files: tuple[str, str] = ("profiles", "posts"),
    progress: PartsProgress | None = None,
) -> tuple[Any, ValidationReport]:
    """Persist the per-bucket frames on the cluster; return
    them as one Dask DataFrame and the merged report.

    Raises :class:`DataValidationError` (the merged report) if any bucket broke the contract.
    ``files`` (the inputs' paths) lets the report name the file of each row (:func:`locate_rows`).
    ``progress(done, total)`` counts the finished buckets (:func:`wait_counted`).
    """
    import dask
    import dask.dataframe as dd

    frames = [dask.delayed(_frame_or_empty, pure=True)(f, meta) for f, _ in parts]
    reports, lengths = parts.reports(), parts.lazy_lengths()
    persisted = dask.persist(*frames, *reports, *lengths)
    wait_counted(persisted[: len(frames)], progress)
    done = dask.compute(*persisted[len(frames) :])
    report = parts.merge(done[: len(reports)], done[len(reports) :], files)
    if report.fatal:
        raise DataValidationError(report)
    # As computed, dtypes included: Dask would otherwise turn object columns (has_history: True,
    # False or None) into strings.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed(list(persisted[: len(frames)]), meta=meta, verify_meta=False), report


# --------------------------------------------------------------------------- features


def _features_part(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    as_of: Any,
    now: pd.Timestamp,
    include_docs: bool,
    files: tuple[str, str],
) -> tuple[pd.DataFrame, ValidationReport]:
    data = validate(profiles, posts, profiles_file=files[0], posts_file=files[1], now=now)
    return features_of(data, as_of, now, include_docs), data.report


def features_of(
    data: ValidatedData, as_of: Any, now: pd.Timestamp, include_docs: bool = True
) -> pd.DataFrame:
    """:func:`features.aggregate.compute_features` for
    every profile, exactly as the pandas engine runs it."""
    return compute_features(
        data.profiles,
        data.posts,
        examples_at(data.profiles, as_of, now=now),
        include_hashtag_docs=include_docs,
    )


def features_meta(include_docs: bool = True) -> pd.DataFrame:
    """An empty frame with the columns and dtypes
    :func:`features_of` returns (from a one-row run)."""
    now = pd.Timestamp("2020-01-02", tz="UTC")
    data = validate(
        pd.DataFrame({"influencer": ["x"], "followers": ["1"]}),
        pd.DataFrame(
            {
                "influencer": ["x"],
                "post_id": ["p"],
                "posted_at": ["2020-01-01"],
                "likes": ["0"],
                "comments": ["0"],
            }
        ),
        now=now,
    )
    return features_of(data, None, now, include_docs).iloc[:0]


def utc_now(now: pd.Timestamp | None) -> pd.Timestamp:
    """``now`` as a UTC timestamp (the clock when None): read once on the driver."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")


def _feature_parts(
    profiles: Any,
    posts: Any,
    as_of: pd.Timestamp | pd.Series | None,
    now: pd.Timestamp | None,
    npartitions: int | None,
    include_hashtag_docs: bool,
    files: tuple[str, str],
) -> Buckets:
    """The lazy parts of :func:`compute_features_dask`: each influencer bucket's features, cut
    off at ``as_of`` and checked against the clock ``now`` (read once, here on the driver)."""
    return map_by_influencer(
        _features_part,
        profiles,
        posts,
        npartitions=npartitions,
        args=(as_of, utc_now(now), include_hashtag_docs, files),
    )


def compute_features_dask(
    profiles: Any,
    posts: Any,
    *,
    as_of: pd.Timestamp | pd.Series | None = None,
    now: pd.Timestamp | None = None,
    npartitions: int | None = None,
    include_hashtag_docs: bool = True,
    files: tuple[str, str] = ("profiles", "posts"),
) -> tuple[Any, ValidationReport]:
    """Point-in-time features of raw Dask tables: one row per profile, persisted on the cluster.

    The Dask counterpart of ``compute_features(validate(profiles, posts), examples_at(...))``:
    the same functions run on each influencer bucket. Rows come in bucket order, not input
    order. Raises :class:`DataValidationError` with the merged report on a contract break.
    """
    parts = _feature_parts(profiles, posts, as_of, now, npartitions, include_hashtag_docs, files)
    return collect(parts, features_meta(include_hashtag_docs), files)


# --------------------------------------------------------------------------- writing


def _write_part(
    frame: pd.DataFrame | None,
    meta: pd.DataFrame,
    out: str,
    index: int,
    storage_options: dict[str, Any] | None,
) -> int:
    import fsspec

    frame = meta if frame is None else frame
    with fsspec.open(
        f"{out.rstrip('/')}/part-{index:05d}.parquet", "wb", **(storage_options or {})
    ) as handle:
        frame.to_parquet(handle, index=False)
    return len(frame)


def _check_output_folder(fs: Any, root: str, out: str | Path) -> None:
    """``out`` must be new or an empty folder: parts of two runs would mix, and a folder that
    holds other files is never written into (nor removed on failure)."""
    if not fs.exists(root):
        return
    if not fs.isdir(root):
        raise DataError(f"{out}: is a file; the Dask engine writes a folder of Parquet parts")
    held = fs.ls(root, detail=False)
    if held:
        shown = ", ".join(Path(str(f)).name for f in sorted(held)[:3])
        more = ", ..." if len(held) > 3 else ""
        raise DataError(
            f"{out}: already holds {len(held)} file(s) or folder(s) ({shown}{more}); "
            "choose an empty or new folder"
        )


def _staging_folder(fs: Any, root: str, out: str | Path) -> tuple[str, str, bool]:
    """Where the parts are written before they are published (as a path of ``fs`` and as the
    URL workers open), and whether one rename publishes them all: a hidden sibling folder on a
    local disk; on object stores (no rename) a folder inside ``out`` whose name starts with
    '_' (readers skip it, see :func:`parquet_files`)."""
    import uuid

    from fsspec.implementations.local import LocalFileSystem

    token = uuid.uuid4().hex[:8]
    if isinstance(fs, LocalFileSystem):
        parent, name = os.path.split(root)
        staging = os.path.join(parent, f".{name}.tmp-{token}")
        return staging, staging, True
    return f"{root}/_tmp-{token}", f"{str(out).rstrip('/')}/_tmp-{token}", False


def write_by_influencer(
    parts: Buckets,
    meta: pd.DataFrame,
    out: str | Path,
    *,
    storage_options: dict[str, Any] | None = None,
    files: tuple[str, str] = ("profiles", "posts"),
    progress: PartsProgress | None = None,
) -> tuple[int, ValidationReport]:
    """Each bucket's frame written by its worker to ``out/part-NNNNN.parquet``; nothing gathered.

    ``out`` is a local folder or an fsspec URL, new or empty. The workers write into a staging
    folder (:func:`_staging_folder`) and the parts are published only when every one is written
    and the merged report has no fatal problem: on a local disk by one rename of the folder, so
    ``out`` holds every part or none; on an object store each finished part is moved into
    ``out``. On a contract break, a failed worker or an interrupt the staging folder is removed,
    ``out`` is left as it was, and a contract break raises :class:`DataValidationError` with the
    merged report. ``files`` and ``progress`` (parts written): as for :func:`collect`.
    """
    import dask
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
    root = str(root).rstrip("/") or str(root)
    _check_output_folder(fs, root, out)
    staging, staging_url, renames = _staging_folder(fs, root, out)
    fs.makedirs(staging, exist_ok=True)
    try:
        write = dask.delayed(_write_part, pure=True)
        counts = [write(f, meta, staging_url, i, storage_options) for i, (f, _) in enumerate(parts)]
        reports = parts.reports()
        pieces = (*counts, *reports, *parts.lazy_lengths())
        if progress is not None:
            pieces = dask.persist(*pieces)
            wait_counted(pieces[: len(counts)], progress)
        results = dask.compute(*pieces)
        report = parts.merge(
            results[len(counts) : len(counts) + len(reports)],
            results[len(counts) + len(reports) :],
            files,
        )
        if report.fatal:
            raise DataValidationError(report)
        if renames:
            _publish_folder(staging, root, out)
        else:
            fs.makedirs(root, exist_ok=True)
            for part in sorted(fs.ls(staging, detail=False)):
                fs.mv(part, f"{root}/{Path(str(part)).name}")
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
    return int(sum(results[: len(counts)])), report


def _publish_folder(staging: str, root: str, out: str | Path) -> None:
    """Rename the finished staging folder to ``root`` (new, or an empty folder it replaces)."""
    try:
        os.rename(staging, root)  # replaces an empty folder atomically on POSIX
    except OSError:
        if not os.path.isdir(root) or os.listdir(root):
            raise DataError(
                f"{out}: was created or filled by something else while the parts were written; "
                "nothing was published"
            ) from None
        os.rmdir(root)  # Windows cannot rename onto a folder; the gap is this one call
        os.rename(staging, root)


def write_features_dask(
    profiles: Any,
    posts: Any,
    out: str | Path,
    *,
    as_of: pd.Timestamp | pd.Series | None = None,
    now: pd.Timestamp | None = None,
    npartitions: int | None = None,
    include_hashtag_docs: bool = False,
    files: tuple[str, str] = ("profiles", "posts"),
    storage_options: dict[str, Any] | None = None,
    progress: PartsProgress | None = None,
) -> tuple[int, ValidationReport]:
    """Like :func:`compute_features_dask`, but each worker
    writes its bucket to ``out/part-NNNNN.parquet``.

    Nothing but row counts and reports comes back to the driver, so the input can exceed the
    memory of the driver and of any one worker. Returns (rows written, merged report).
    ``progress(done, total)`` counts the parts written.
    """
    parts = _feature_parts(profiles, posts, as_of, now, npartitions, include_hashtag_docs, files)
    return write_by_influencer(
        parts,
        features_meta(include_hashtag_docs),
        out,
        storage_options=storage_options,
        files=files,
        progress=progress,
    )
