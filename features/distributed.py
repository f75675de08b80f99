"""The Dask engine: the same point-in-time features, and any fitted predictor, on a cluster.

Every feature is an aggregate over one influencer's profile and posts (see
:mod:`features.aggregate`), so the work splits cleanly by influencer: both tables are
hash-partitioned on the influencer key into the same ``npartitions`` buckets (partition ``i``
of each holds exactly the influencers whose key hashes to ``i``), and each aligned
(profiles, posts) pair runs through the *unchanged* pandas code, :func:`features.contract.validate`
then :func:`features.aggregate.compute_features`. There is no second implementation to drift.

What per-partition validation means, compared with the pandas engine:

* exact per-influencer checks stay exact: duplicate profiles, duplicate or conflicting posts
  (influencer, post_id), posts without a profile (an orphan post lands in the bucket its
  profile would be in), every per-cell check;
* "the same post_id under several influencers" is only seen when those influencers share a
  bucket, so the Dask engine under-counts that note (the posts are kept either way, so
  features are unaffected);
* row numbers in the report are dropped (``count`` only; ``row`` is empty in the rejects):
  after the shuffle a position no longer points to a row of the input files;
* "now" (future-timestamp check, default cutoff) is read once on the driver and passed to
  every partition, so all partitions agree.

Reading: :func:`read_parquet_any` takes a Parquet file, a folder, a glob or any fsspec URL
(``s3://``, ``gs://``, ``abfs://``, ...) for both engines.

Nothing here starts a cluster at import time; :func:`dask_client` does, when asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.aggregate import compute_features, examples_at
from features.contract import (
    DataError,
    DataValidationError,
    ValidatedData,
    ValidationReport,
    read_table,
    validate,
)

ENGINES = ("pandas", "dask")
BUCKET = "_engage_bucket"
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt", ".tsv")
# Stands in for the missing profile of a partition that holds only orphan posts, so that the
# contract's own code reports them (validation needs at least one profile row). Never output.
PLACEHOLDER = "\x00engage-placeholder"

PartFunc = Callable[..., tuple[pd.DataFrame | None, ValidationReport]]


# --------------------------------------------------------------------------- reading


def is_dataset_path(path: str | Path) -> bool:
    """True for what only :func:`read_parquet_any` reads: a URL, a glob or a folder."""
    text = str(path)
    return "://" in text or any(ch in text for ch in "*?[") or Path(text).is_dir()


def parquet_files(path: str | Path, storage_options: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    """The fsspec filesystem and the Parquet files that a file, folder, glob or URL names."""
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(str(path), storage_options=storage_options or {})
    files: list[str] = []
    for item in paths:
        if fs.isdir(item):
            files += sorted(f for f in fs.find(item) if f.lower().endswith(PARQUET_SUFFIXES) and not Path(f).name.startswith((".", "_")))
        else:
            files.append(item)
    if not files:
        raise DataError(f"{path}: no Parquet files found")
    return fs, files


def read_parquet_any(
    path: str | Path,
    *,
    engine: str = "pandas",
    columns: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    blocksize: str = "32MiB",
) -> Any:
    """Read a Parquet file, folder, glob or fsspec URL as one pandas or Dask DataFrame.

    Parameters
    ----------
    path
        ``posts.parquet``, ``data/posts/``, ``data/posts/*.parquet``, ``s3://bucket/posts/``...
    engine
        ``"pandas"`` (read everything into memory) or ``"dask"`` (lazy, one partition per file
        or row group, read on the workers).
    columns
        Only these columns (all by default).
    storage_options
        Passed to fsspec (credentials, endpoint, ...); usually the environment is enough.
    blocksize
        Dask: row groups are packed into partitions of about this much *uncompressed* Parquet
        data. Text-heavy tables take several times that in pandas, so it is kept well below a
        worker's memory; a file written as one huge row group cannot be split at all.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "dask":
        import dask.dataframe as dd

        try:
            return dd.read_parquet(str(path), columns=list(columns) if columns else None, storage_options=storage_options, split_row_groups="infer", blocksize=blocksize)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot be read as Parquet: {exc}") from exc
    import pyarrow.dataset as ds

    fs, files = parquet_files(path, storage_options)
    try:
        table = ds.dataset(files, filesystem=fs, format="parquet").to_table(columns=list(columns) if columns else None)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet: {exc}") from exc
    return table.to_pandas()


def read_any(path: str | Path, *, engine: str = "pandas", storage_options: dict[str, Any] | None = None) -> Any:
    """A contract table for either engine: Parquet (file, folder, glob, URL) or CSV.

    The pandas engine reads single local files with :func:`features.contract.read_table` (its
    error messages); Dask reads CSV as text, as that function does, so validation decides.
    """
    name = str(path).lower()
    if engine == "pandas":
        return read_parquet_any(path, storage_options=storage_options) if is_dataset_path(path) else read_table(path)
    if name.endswith(CSV_SUFFIXES):
        import dask.dataframe as dd

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


def _column(columns: Any, name: str) -> Any:
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
    key = _column(frame.columns, "influencer")
    return frame.assign(**{BUCKET: influencer_buckets(frame[key], npartitions)})


def partition_by_influencer(frame: Any, npartitions: int) -> Any:
    """Shuffle a Dask DataFrame so that partition ``i`` holds exactly the influencers of bucket ``i``.

    The bucket becomes the index with divisions ``0, 1, ..., npartitions``, so two tables
    partitioned with the same ``npartitions`` are aligned partition by partition.
    """
    meta = frame._meta.assign(**{BUCKET: pd.Series(dtype="int64")})
    keyed = frame.map_partitions(_add_bucket, npartitions, meta=meta)
    return keyed.set_index(BUCKET, divisions=list(range(npartitions + 1)))


def _check_required_columns(profiles: Any, posts: Any) -> None:
    """Fail early, as the pandas engine does, when a required column is missing."""
    report = validate(profiles._meta, posts._meta if posts is not None else None, raise_on_fatal=False).report
    missing = [p for p in report.fatal if p.message.startswith("required column is missing")]
    if missing:
        report.problems = missing
        raise DataValidationError(report)


# --------------------------------------------------------------------------- reports


def merge_reports(reports: Sequence[ValidationReport]) -> ValidationReport:
    """One report from per-partition reports: counts summed, the same problem merged.

    Row numbers are dropped (positions within a shuffled partition are not input rows).
    """
    merged = ValidationReport()
    problems: dict[tuple[Any, ...], Any] = {}
    for report in reports:
        for key in ("rows_in", "rows_out"):
            target = getattr(merged, key)
            for table, n in getattr(report, key).items():
                target[table] = target.get(table, 0) + n
        for p in report.problems:
            k = (p.table, p.file, p.column, p.message, p.fatal, p.action)
            if k in problems:
                problems[k].count += p.count
            else:
                problems[k] = type(p)(p.table, p.file, p.column, [], p.count, p.message, p.fatal, p.action)
        for frame in report.rejects:
            merged.rejects.append(frame.assign(row=None))
    merged.problems = list(problems.values())
    return merged


def _without_placeholder(report: ValidationReport) -> ValidationReport:
    for key in ("rows_in", "rows_out"):
        counts = getattr(report, key)
        if "profiles" in counts:
            counts["profiles"] -= 1
    return report


# --------------------------------------------------------------------------- mapping


def _run_part(func: PartFunc, profiles: pd.DataFrame, posts: pd.DataFrame | None, index: int, args: tuple[Any, ...]) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Run ``func(profiles, posts, *args)`` on one aligned bucket; a contract break becomes a report."""
    for frame in (profiles, posts):
        if frame is not None and len(frame) and not (frame.index == index).all():
            raise RuntimeError(f"partition {index} holds rows of other buckets: the tables are not aligned")
    profiles = profiles.reset_index(drop=True)
    posts = posts.reset_index(drop=True) if posts is not None else None
    placeholder = len(profiles) == 0
    if placeholder:
        if posts is None or len(posts) == 0:
            return None, ValidationReport()
        # Orphan posts only: let the contract's own code report them, against a stand-in profile.
        stand_in: dict[Any, list[Any]] = {c: [None] for c in profiles.columns}
        stand_in[_column(profiles.columns, "influencer")] = [PLACEHOLDER]
        stand_in[_column(profiles.columns, "followers")] = ["1"]
        if (category := _column(profiles.columns, "category")) is not None:
            stand_in[category] = ["other"]  # an empty one would be reported
        profiles = pd.DataFrame(stand_in).astype(object)
    try:
        result, report = func(profiles, posts, *args)
    except DataValidationError as exc:
        return None, _without_placeholder(exc.report) if placeholder else exc.report
    if placeholder:
        report = _without_placeholder(report)
        result = result[result["influencer"].astype(str) != PLACEHOLDER] if result is not None else None
    return result, report


def map_by_influencer(func: PartFunc, profiles: Any, posts: Any, *, npartitions: int | None = None, args: tuple[Any, ...] = ()) -> list[Any]:
    """Delayed ``(frame, report)`` per influencer bucket, from raw Dask tables.

    ``func(profiles_part, posts_part, *args)`` receives raw pandas frames of one bucket (every
    influencer in them complete, with all its posts) and returns a result frame and a
    :class:`~features.contract.ValidationReport`; a :class:`DataValidationError` it raises is
    turned into its report (exceptions with custom arguments do not survive pickling).
    """
    import dask

    _check_required_columns(profiles, posts)
    n = npartitions or max(profiles.npartitions, posts.npartitions if posts is not None else 1)
    prof_parts = partition_by_influencer(profiles, n).to_delayed()
    post_parts = partition_by_influencer(posts, n).to_delayed() if posts is not None else [None] * n
    run = dask.delayed(_run_part, nout=2, pure=True)
    return [run(func, p, q, i, args) for i, (p, q) in enumerate(zip(prof_parts, post_parts, strict=True))]


def _frame_or_empty(frame: pd.DataFrame | None, meta: pd.DataFrame) -> pd.DataFrame:
    return meta if frame is None else frame


def collect(parts: list[Any], meta: pd.DataFrame) -> tuple[Any, ValidationReport]:
    """Persist the per-bucket frames on the cluster; return them as one Dask DataFrame and the merged report.

    Raises :class:`DataValidationError` (the merged report) if any bucket broke the contract.
    """
    import dask
    import dask.dataframe as dd

    frames = [dask.delayed(_frame_or_empty, pure=True)(f, meta) for f, _ in parts]
    persisted = dask.persist(*frames, *[r for _, r in parts])
    report = merge_reports(dask.compute(*persisted[len(frames) :]))
    if report.fatal:
        raise DataValidationError(report)
    # As computed, dtypes included: Dask would otherwise turn object columns (has_history: True,
    # False or None) into strings.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed(list(persisted[: len(frames)]), meta=meta, verify_meta=False), report


# --------------------------------------------------------------------------- features


def _features_part(profiles: pd.DataFrame, posts: pd.DataFrame | None, as_of: Any, now: pd.Timestamp, include_docs: bool, files: tuple[str, str]) -> tuple[pd.DataFrame, ValidationReport]:
    data = validate(profiles, posts, profiles_file=files[0], posts_file=files[1], now=now)
    return features_of(data, as_of, now, include_docs), data.report


def features_of(data: ValidatedData, as_of: Any, now: pd.Timestamp, include_docs: bool = True) -> pd.DataFrame:
    """:func:`features.aggregate.compute_features` for every profile, exactly as the pandas engine runs it."""
    return compute_features(data.profiles, data.posts, examples_at(data.profiles, as_of, now=now), include_hashtag_docs=include_docs)


def features_meta(include_docs: bool = True) -> pd.DataFrame:
    """An empty frame with the columns and dtypes :func:`features_of` returns (from a one-row run)."""
    now = pd.Timestamp("2020-01-02", tz="UTC")
    data = validate(
        pd.DataFrame({"influencer": ["x"], "followers": ["1"]}),
        pd.DataFrame({"influencer": ["x"], "post_id": ["p"], "posted_at": ["2020-01-01"], "likes": ["0"], "comments": ["0"]}),
        now=now,
    )
    return features_of(data, None, now, include_docs).iloc[:0]


def _now(now: pd.Timestamp | None) -> pd.Timestamp:
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")


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
    now = _now(now)
    parts = map_by_influencer(_features_part, profiles, posts, npartitions=npartitions, args=(as_of, now, include_hashtag_docs, files))
    return collect(parts, features_meta(include_hashtag_docs))


# --------------------------------------------------------------------------- writing


def _write_part(frame: pd.DataFrame | None, meta: pd.DataFrame, out: str, index: int, storage_options: dict[str, Any] | None) -> int:
    import fsspec

    frame = meta if frame is None else frame
    with fsspec.open(f"{out.rstrip('/')}/part-{index:05d}.parquet", "wb", **(storage_options or {})) as handle:
        frame.to_parquet(handle, index=False)
    return len(frame)


def write_by_influencer(parts: list[Any], meta: pd.DataFrame, out: str | Path, *, storage_options: dict[str, Any] | None = None) -> tuple[int, ValidationReport]:
    """Each bucket's frame written by its worker to ``out/part-NNNNN.parquet``; nothing gathered.

    ``out`` is a local folder or an fsspec URL; it must not hold Parquet files already (parts
    of two runs would mix). On a contract break the parts written are removed and
    :class:`DataValidationError` is raised with the merged report.
    """
    import dask
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
    if fs.exists(root) and any(str(f).endswith(".parquet") for f in fs.find(root)):
        raise DataError(f"{out}: already holds Parquet files; choose an empty or new folder")
    fs.makedirs(root, exist_ok=True)
    write = dask.delayed(_write_part, pure=True)
    counts = [write(f, meta, str(out), i, storage_options) for i, (f, _) in enumerate(parts)]
    results = dask.compute(*counts, *[r for _, r in parts])
    report = merge_reports(results[len(counts) :])
    if report.fatal:
        fs.rm(root, recursive=True)
        raise DataValidationError(report)
    return int(sum(results[: len(counts)])), report


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
) -> tuple[int, ValidationReport]:
    """Like :func:`compute_features_dask`, but each worker writes its bucket to ``out/part-NNNNN.parquet``.

    Nothing but row counts and reports comes back to the driver, so the input can exceed the
    memory of the driver and of any one worker. Returns (rows written, merged report).
    """
    now = _now(now)
    parts = map_by_influencer(_features_part, profiles, posts, npartitions=npartitions, args=(as_of, now, include_hashtag_docs, files))
    return write_by_influencer(parts, features_meta(include_hashtag_docs), out, storage_options=storage_options)


# --------------------------------------------------------------------------- scoring


class Scorer(Protocol):
    """What batch scoring needs of a predictor (``serving.predictor.Predictor`` has it)."""

    def score(self, profiles: pd.DataFrame, posts: pd.DataFrame | None = None, as_of: Any = None, *, now: pd.Timestamp | None = None, explain: bool = True, profiles_file: str = "profiles", posts_file: str = "posts") -> Any: ...


def _score_part(profiles: pd.DataFrame, posts: pd.DataFrame | None, predictor: Scorer, as_of: Any, now: pd.Timestamp, explain: bool, files: tuple[str, str]) -> tuple[pd.DataFrame, ValidationReport]:
    scored = predictor.score(profiles, posts, as_of, now=now, explain=explain, profiles_file=files[0], posts_file=files[1])
    return scored.table, scored.report


def score_dask(
    predictor: Scorer,
    profiles: Any,
    posts: Any,
    out: str | Path | None = None,
    *,
    as_of: pd.Timestamp | pd.Series | None = None,
    now: pd.Timestamp | None = None,
    npartitions: int | None = None,
    explain: bool = True,
    files: tuple[str, str] = ("profiles", "posts"),
    storage_options: dict[str, Any] | None = None,
) -> tuple[Any, ValidationReport]:
    """Batch scoring: the fitted predictor's own ``score`` mapped over influencer buckets.

    With ``out``, each worker writes its bucket to ``out/part-NNNNN.parquet`` and the result is
    the number of rows written; without, a persisted Dask DataFrame. Rows are in bucket order,
    unranked (ranking a shortlist is ``engage score`` with the pandas engine).

    With ``as_of`` None and no ``as_of`` column in the profiles, the cutoff is ``now``, read
    once on the driver, so every partition scores at the same instant. (Empty cells of an
    ``as_of`` column still fall back to each partition's clock.)
    """
    now = _now(now)
    if as_of is None and _column(profiles.columns, "as_of") is None:
        as_of = now
    parts = map_by_influencer(_score_part, profiles, posts, npartitions=npartitions, args=(predictor, as_of, now, explain, files))
    meta = _score_meta(predictor, now, explain)
    if out is not None:
        return write_by_influencer(parts, meta, out, storage_options=storage_options)
    return collect(parts, meta)


def _score_meta(predictor: Scorer, now: pd.Timestamp, explain: bool) -> pd.DataFrame:
    """Columns and dtypes of a scored table, from scoring one stand-in profile with no posts."""
    table = predictor.score(pd.DataFrame({"influencer": ["x"], "followers": ["1000"]}), None, now, now=now, explain=explain).table
    return table.iloc[:0]


