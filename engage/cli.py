"""The ``engage`` command: thin subcommands that parse arguments and call library functions.

This module is the entry point: it builds the parser from the command modules
(:mod:`engage.commands`, :mod:`engage.serve_commands`, :mod:`engage.scale_commands`), which
share :mod:`engage.common`; none of them imports this one.

Exit status: 0 on success; 2 for anything the user can fix: input that breaks the data contract
or cannot be read (the report on stderr names file, column and rows), an argument out of range,
an output path that cannot be written, a model folder that cannot be loaded; 1 on any other
failure (a bug: the traceback is for us).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from engage.commands import register_promote, register_train
from engage.common import (
    EXIT_BAD_INPUT,
    SEED,
    TABLE_SUFFIXES,
    UsageError,
    add_data_arguments,
    add_engine_arguments,
    check_output_file,
    check_output_folder,
    check_outputs_are_not_inputs,
    embedded_posts,
    embedded_profiles,
    int_at_least,
    load_inputs,
    parse_time,
    resolve_data_paths,
    uses_dask,
    write_table,
)
from engage.scale_commands import cmd_features_dask
from engage.serve_commands import register_serving
from features.artifact import ArtifactError
from features.contract import DataError, DataValidationError, load_and_validate
from features.outputs import OutputError, console_text

# --------------------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace) -> int:
    check_output_file(args.rejects, "--rejects", TABLE_SUFFIXES)
    profiles, posts = resolve_data_paths(args)
    try:
        data = load_and_validate(profiles, posts)
    except DataValidationError as exc:
        if args.rejects:
            write_table(exc.report.rejects_frame(), args.rejects)
        raise
    print(console_text(data.report.format(), keep_newlines=True))
    if args.rejects:
        write_table(data.report.rejects_frame(), args.rejects)
        print(f"rejected rows with reasons written to {args.rejects}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from features.aggregate import feature_table

    if uses_dask(args):
        return cmd_features_dask(args)
    check_output_file(args.out, "--out", TABLE_SUFFIXES)
    check_output_file(args.rejects, "--rejects", TABLE_SUFFIXES)
    as_of = parse_time(args.as_of)
    data = load_inputs(args)
    table = feature_table(data.profiles, data.posts, as_of)
    table = table.drop(columns=["hashtag_doc"]) if not args.keep_hashtag_docs else table
    write_table(table, args.out)
    print(f"wrote {len(table)} rows x {table.shape[1]} columns to {args.out}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from features.contract import load_and_validate as _load
    from features.synth import fit_synth_params, generate, write_synthetic

    check_output_folder(args.out_dir, "--out-dir")
    reference = _load(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    profiles, posts = generate(params, n_influencers=args.influencers, seed=args.seed)
    paths = write_synthetic(profiles, posts, args.out_dir, file_format=args.format)
    print(
        f"wrote {len(profiles)} profiles and {len(posts)} posts: {', '.join(str(p) for p in paths)}"
    )
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engage",
        description="Predict an influencer's next-post engagement, with an honest interval.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "validate", help="check profiles and posts against the data contract and print the report"
    )
    add_data_arguments(p)
    p.add_argument(
        "--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV"
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("features", help="compute point-in-time features, one row per influencer")
    add_data_arguments(p)
    p.add_argument(
        "--as-of",
        help="cutoff time: only posts strictly before it count "
        "(default: now, or the profiles' as_of column)",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output table (.csv, .csv.gz or .parquet); "
        "with --engine dask a folder of Parquet parts",
    )
    p.add_argument(
        "--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV"
    )
    p.add_argument(
        "--keep-hashtag-docs",
        action="store_true",
        help="keep the hashtag_doc text column (bag of tags)",
    )
    add_engine_arguments(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser(
        "synth",
        help="write synthetic profiles and posts fitted on the embedded data "
        "(for scale tests only)",
    )
    p.add_argument(
        "--influencers", type=int_at_least(1), required=True, help="number of influencers"
    )
    p.add_argument("--out-dir", type=Path, required=True, help="folder for profiles and posts")
    p.add_argument("--seed", type=SEED, default=0, help="random seed, 0 to 2**32 - 1")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.set_defaults(func=cmd_synth)

    for register in (register_train, register_promote, register_serving):
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_outputs_are_not_inputs(args)
        return int(args.func(args) or 0)
    except (DataValidationError, DataError, UsageError, ArtifactError, OutputError) as exc:
        # Messages quote the input's own values (handles, categories): never raw to a terminal.
        print(f"engage {args.command}: {console_text(exc, keep_newlines=True)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # A file that cannot be read or written past the checks above (disk full, permissions
        # changed, a network filesystem gone): the user's to fix, and the message says which file.
        print(
            f"engage {args.command}: cannot read or write a "
            f"file: {console_text(exc, keep_newlines=True)}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
