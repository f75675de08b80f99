"""``--engine dask`` for ``engage features``, ``train`` and ``score``: thin over the Dask engine.

The pandas engine stays the default; these functions run only when ``--engine dask`` is given.
Outputs of the Dask engine are folders of Parquet parts (``part-00000.parquet``, ...), one per
influencer bucket, written by the workers: they may be larger than the driver's memory.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

from engage.common import UsageError, parse_time, resolve_data_paths, write_table
from engage.console import progress_bars


def _inputs(args: SimpleNamespace) -> tuple[Any, Any, tuple[str, str]]:
    from features.distributed import read_any

    profiles_path, posts_path = resolve_data_paths(args)
    if posts_path is None:
        raise UsageError("--engine dask needs --posts")
    profiles = read_any(profiles_path, engine="dask")
    posts = read_any(posts_path, engine="dask")
    return profiles, posts, (str(profiles_path), str(posts_path))


def _check_folder_output(args: SimpleNamespace) -> None:

    if str(args.out).lower().endswith((".csv", ".gz", ".xlsx", ".html", ".parquet", ".pq")):
        raise UsageError(
            f"--out {args.out}: the Dask engine writes a "
            "folder of Parquet parts; give a folder name"
        )


def _report(report: Any, args: SimpleNamespace) -> None:
    from features.outputs import console_text

    if getattr(args, "rejects", None):
        write_table(report.rejects_frame(), args.rejects)
    if report.handled:
        print(console_text(report.format(), keep_newlines=True), file=sys.stderr)


def cmd_features_dask(args: SimpleNamespace) -> int:
    from features.distributed import dask_client, write_features_dask

    _check_folder_output(args)
    as_of = parse_time(args.as_of)
    with dask_client(args.scheduler) as _client, progress_bars() as bars:
        profiles, posts, files = _inputs(args)
        n, report = write_features_dask(
            profiles,
            posts,
            str(args.out),
            as_of=as_of,
            npartitions=args.partitions,
            include_hashtag_docs=args.keep_hashtag_docs,
            files=files,
            progress=bars.counter("Dask parts written"),
        )
    _report(report, args)
    print(
        f"wrote {n} rows to {args.out}/part-*.parquet (Dask engine, one part per influencer bucket)"
    )
    return 0


def train_on_dask(args: SimpleNamespace, config: Any, progress: Any = None) -> Any:
    """``run_training_dask`` on the cluster of ``--scheduler`` (or a local one); ``progress``:
    its step messages and counts (:class:`training.train.ProgressPrinter`)."""
    from features.distributed import dask_client
    from serving.schema import package_model
    from training.distributed import run_training_dask

    profiles_path, posts_path = resolve_data_paths(args)
    if posts_path is None:
        raise UsageError("--engine dask needs --posts")
    with dask_client(args.scheduler) as client:
        return run_training_dask(
            profiles_path,
            posts_path,
            config,
            client=client,
            package=package_model,  # serving's MLflow packaging: training never imports serving
            campaigns_path=args.campaigns,
            npartitions=args.partitions,
            progress=progress,
        )


def cmd_score_dask(args: SimpleNamespace) -> int:
    """Score on the cluster; ``--fees`` and ``--shortlist`` as in the pandas engine, but unranked.

    The fee table and the shortlist are small: read and checked on the driver, then the
    shortlist is cut by influencer bucket and the fee columns are added by each worker to its
    bucket (:func:`serving.planner.add_fee_columns`). Ranking needs every row in one place, so
    the output stays unranked parts.
    """
    from functools import partial

    from features.distributed import dask_client
    from features.outputs import console_text
    from serving.distributed import score_dask
    from serving.planner import (
        PLAN_COLUMNS,
        add_fee_columns,
        read_candidates,
        read_planned_posts,
    )
    from serving.predictor import load_model

    _check_folder_output(args)
    # What the pandas engine adds per candidate the Dask engine does not: refused, not ignored.
    for option in ("post_type", "sponsored", "target_engagements", "rank_by"):
        if getattr(args, option, None):
            raise UsageError(
                f"--{option.replace('_', '-')} is not available with --engine dask (its parts "
                "are unranked and carry no p_reach); score the shortlist with the pandas engine"
            )
    if args.shortlist and read_planned_posts(args.shortlist) is not None:
        raise UsageError(
            f"--shortlist {args.shortlist}: its {'/'.join(PLAN_COLUMNS)} columns are not "
            "available with --engine dask; score the shortlist with the pandas engine"
        )
    fees, shortlist = read_candidates(args.fees, args.shortlist)  # as the pandas engine reads them
    predictor = load_model(args.model, models_dir=args.models_dir, tracking_uri=args.tracking_uri)
    as_of = parse_time(args.as_of)
    finish = partial(add_fee_columns, fees=fees) if fees is not None else None
    with dask_client(args.scheduler) as _client, progress_bars() as bars:
        profiles, posts, files = _inputs(args)
        n, report = score_dask(
            predictor,
            profiles,
            posts,
            str(args.out),
            as_of=as_of,
            npartitions=args.partitions,
            files=files,
            shortlist=shortlist,
            finish=finish,
            progress=bars.counter("Dask parts scored and written"),
        )
    _report(report, args)
    for note in fees.notes if fees is not None else []:
        print(f"note: {console_text(note)}")
    added = "; with fee, currency and cost_per_engagement columns" if fees is not None else ""
    print(
        f"model {predictor.version}: wrote {n} scored rows to {args.out}/part-*.parquet "
        f"(Dask engine, unranked{added}; rank with the pandas engine or your query engine)"
    )
    return 0
