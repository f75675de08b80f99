"""``engage validate``, ``features`` and ``synth``: the data contract, features, synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from engage.common import (
    TABLE_SUFFIXES,
    arguments,
    check_output_file,
    check_output_folder,
    embedded_posts,
    embedded_profiles,
    load_inputs,
    parse_time,
    resolve_data_paths,
    uses_dask,
    write_table,
)
from engage.options import (
    AsOf,
    Engine,
    Partitions,
    Posts,
    Profiles,
    Rejects,
    Scheduler,
    Seed,
    whole_number,
)
from engage.scale_commands import cmd_features_dask

app = typer.Typer()


@app.command()
def validate(profiles: Profiles = None, posts: Posts = None, rejects: Rejects = None) -> int:
    """Check profiles and posts against the data contract and print the report."""
    args = arguments(locals())
    from features.contract import DataValidationError, load_and_validate
    from features.outputs import console_text

    check_output_file(args.rejects, "--rejects", TABLE_SUFFIXES)
    profiles_path, posts_path = resolve_data_paths(args)
    try:
        data = load_and_validate(profiles_path, posts_path)
    except DataValidationError as exc:
        if args.rejects:
            write_table(exc.report.rejects_frame(), args.rejects)
        raise
    print(console_text(data.report.format(), keep_newlines=True))
    if args.rejects:
        write_table(data.report.rejects_frame(), args.rejects)
        print(f"rejected rows with reasons written to {args.rejects}")
    return 0


@app.command()
def features(
    out: Annotated[
        Path,
        typer.Option(
            help="Output table (.csv, .csv.gz or .parquet); with --engine dask a folder of "
            "Parquet parts.",
        ),
    ],
    profiles: Profiles = None,
    posts: Posts = None,
    as_of: AsOf = None,
    rejects: Rejects = None,
    keep_hashtag_docs: Annotated[
        bool,
        typer.Option("--keep-hashtag-docs", help="Keep the hashtag_doc text column (bag of tags)."),
    ] = False,
    engine: Engine = "pandas",
    scheduler: Scheduler = None,
    partitions: Partitions = None,
) -> int:
    """Compute point-in-time features, one row per influencer."""
    args = arguments(locals())  # first: the parameters only
    from features.aggregate import feature_table

    if uses_dask(args):
        return cmd_features_dask(args)
    check_output_file(args.out, "--out", TABLE_SUFFIXES)
    check_output_file(args.rejects, "--rejects", TABLE_SUFFIXES)
    cutoff = parse_time(args.as_of)
    data = load_inputs(args)
    table = feature_table(data.profiles, data.posts, cutoff)
    table = table.drop(columns=["hashtag_doc"]) if not args.keep_hashtag_docs else table
    write_table(table, args.out)
    print(f"wrote {len(table)} rows x {table.shape[1]} columns to {args.out}")
    return 0


@app.command()
def synth(
    influencers: Annotated[
        int, typer.Option(parser=whole_number(1), metavar="<int>", help="Number of influencers.")
    ],
    out_dir: Annotated[Path, typer.Option(help="Folder for profiles and posts.")],
    seed: Seed = 0,
    file_format: Annotated[
        Literal["parquet", "csv"],
        typer.Option("--format", help="File type."),
    ] = "parquet",
) -> int:
    """Write synthetic profiles and posts fitted on the embedded data (for scale tests only)."""
    args = arguments(locals())
    from features.contract import load_and_validate
    from features.synth import fit_synth_params, generate, write_synthetic

    check_output_folder(args.out_dir, "--out-dir")
    reference = load_and_validate(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    frames = generate(params, n_influencers=args.influencers, seed=args.seed)
    paths = write_synthetic(*frames, args.out_dir, file_format=args.file_format)
    print(
        f"wrote {len(frames[0])} profiles and {len(frames[1])} posts: "
        f"{', '.join(str(p) for p in paths)}"
    )
    return 0
