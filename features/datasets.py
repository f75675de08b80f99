"""Parquet datasets: a file, a folder, a glob or an fsspec URL read as one table.

Both engines read Parquet through :func:`read_parquet_any`, the pandas engine by way of
:func:`features.contract.read_table`, the Dask engine by way of
:func:`features.distributed.read_any`; files come in the same order for both, so both number
rows alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from features.errors import DataError

ENGINES = ("pandas", "dask")
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_dataset_path(path: str | Path) -> bool:
    """True for what only :func:`read_parquet_any` reads: a URL, a glob or a folder."""
    text = str(path)
    return "://" in text or any(ch in text for ch in "*?[") or Path(text).is_dir()


def _natural_key(text: str) -> list[Any]:
    """Sort key putting ``part-2`` before ``part-10``:
    Dask's file order, so both engines number rows alike."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def parquet_files(
    path: str | Path, storage_options: dict[str, Any] | None = None
) -> tuple[Any, list[str]]:
    """The fsspec filesystem and the Parquet files that a file, folder, glob or URL names.

    Files come in Dask's order (natural sort of the paths), the order in which both engines
    read them and number their rows.
    """
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(str(path), storage_options=storage_options or {})
    files: list[str] = []
    for item in paths:
        if fs.isdir(item):
            # Names starting with '.' or '_' (files or folders: staging folders, _SUCCESS) are
            # not data, as for pyarrow's and Spark's readers.
            base = str(item).rstrip("/")
            files += sorted(
                f
                for f in fs.find(item)
                if f.lower().endswith(PARQUET_SUFFIXES)
                and not any(
                    part.startswith((".", "_")) for part in f[len(base) :].strip("/").split("/")
                )
            )
        else:
            files.append(item)
    if not files:
        raise DataError(f"{path}: no Parquet files found")
    return fs, sorted(files, key=_natural_key)


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
            return dd.read_parquet(
                str(path),
                columns=list(columns) if columns else None,
                storage_options=storage_options,
                split_row_groups="infer",
                blocksize=blocksize,
            )
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot be read as Parquet: {exc}") from exc
    import pyarrow.dataset as ds

    fs, files = parquet_files(path, storage_options)
    try:
        table = ds.dataset(files, filesystem=fs, format="parquet").to_table(
            columns=list(columns) if columns else None
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet: {exc}") from exc
    return table.to_pandas()
