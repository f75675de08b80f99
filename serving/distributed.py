"""Batch scoring on Dask: a fitted predictor's own ``score`` mapped over influencer buckets.

The buckets, reading and writing are :mod:`features.distributed`'s; what is here is the
serving side: what a predictor must offer (:class:`Scorer`), the per-bucket step after scoring
(``finish``, fee columns say) and :func:`score_dask`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from features.contract import ValidationReport
from features.distributed import (
    PartsProgress,
    bucket_count,
    collect,
    column_named,
    map_by_influencer,
    split_by_bucket,
    utc_now,
    write_by_influencer,
)

# --------------------------------------------------------------------------- scoring


class Scorer(Protocol):
    """What batch scoring needs of a predictor (``serving.predictor.Predictor`` has it)."""

    def score(
        self,
        profiles: pd.DataFrame,
        posts: pd.DataFrame | None = None,
        as_of: Any = None,
        *,
        shortlist: Sequence[str] | None = None,
        now: pd.Timestamp | None = None,
        explain: bool = True,
        profiles_file: str = "profiles",
        posts_file: str = "posts",
    ) -> Any: ...


# A per-bucket step after scoring (e.g. ``serving.planner``
# adding fee columns): scored table in, table out.
Finish = Callable[[pd.DataFrame], pd.DataFrame]


def _score_part(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    predictor: Scorer,
    as_of: Any,
    now: pd.Timestamp,
    explain: bool,
    files: tuple[str, str],
    finish: Finish | None,
    shortlist: list[str] | None,
) -> tuple[pd.DataFrame, ValidationReport]:
    scored = predictor.score(
        profiles,
        posts,
        as_of,
        shortlist=shortlist,
        now=now,
        explain=explain,
        profiles_file=files[0],
        posts_file=files[1],
    )
    return (finish(scored.table) if finish is not None else scored.table), scored.report


def _shortlist_parts(
    shortlist: Sequence[str] | None, npartitions: int
) -> list[tuple[list[str] | None]]:
    """The shortlist cut by bucket: each bucket gets only its own names, so a name without a
    profile gets its one "no profile" row in its own bucket, not one in every bucket."""
    if shortlist is None:
        return [(None,)] * npartitions
    names = pd.DataFrame({"influencer": pd.Series(list(shortlist), dtype="string").str.strip()})
    names = names[names["influencer"].notna() & (names["influencer"] != "")].drop_duplicates()
    return [
        (part["influencer"].astype(str).tolist(),) for part in split_by_bucket(names, npartitions)
    ]


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
    shortlist: Sequence[str] | None = None,
    finish: Finish | None = None,
    progress: PartsProgress | None = None,
) -> tuple[Any, ValidationReport]:
    """Batch scoring: the fitted predictor's own ``score`` mapped over influencer buckets.

    With ``out``, each worker writes its bucket to ``out/part-NNNNN.parquet`` and the result is
    the number of rows written; without, a persisted Dask DataFrame. Rows are in bucket order,
    unranked (ranking is ``engage score`` with the pandas engine).

    ``shortlist`` scores only these names, as the predictor's ``shortlist`` does (names without
    a profile get a ``no profile`` row); it is cut by bucket on the driver. ``finish`` runs on
    each bucket's scored table on its worker (adding fee columns, say); it must work on any
    subset of the rows and give the same columns for each. ``progress(done, total)`` counts
    the buckets scored (:func:`features.distributed.wait_counted`).

    With ``as_of`` None and no ``as_of`` column in the profiles, the cutoff is ``now``, read
    once on the driver, so every partition scores at the same instant. (Empty cells of an
    ``as_of`` column still fall back to each partition's clock.)
    """
    now = utc_now(now)
    if as_of is None and column_named(profiles.columns, "as_of") is None:
        as_of = now
    n = bucket_count(profiles, posts, npartitions)
    parts = map_by_influencer(
        _score_part,
        profiles,
        posts,
        npartitions=n,
        args=(predictor, as_of, now, explain, files, finish),
        part_args=_shortlist_parts(shortlist, n),
    )
    meta = _score_meta(predictor, now, explain, finish)
    if out is not None:
        return write_by_influencer(
            parts, meta, out, storage_options=storage_options, files=files, progress=progress
        )
    return collect(parts, meta, files, progress)


def _score_meta(
    predictor: Scorer, now: pd.Timestamp, explain: bool, finish: Finish | None = None
) -> pd.DataFrame:
    """Columns and dtypes of a scored table, from scoring one stand-in profile with no posts."""
    table = predictor.score(
        pd.DataFrame({"influencer": ["x"], "followers": ["1000"]}),
        None,
        now,
        now=now,
        explain=explain,
    ).table
    return (finish(table) if finish is not None else table).iloc[:0]
