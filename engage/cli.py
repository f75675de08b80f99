"""The ``engage`` command: thin subcommands that parse arguments and call library functions.

Exit status: 0 on success; 2 for anything the user can fix: input that breaks the data contract
or cannot be read (the report on stderr names file, column and rows), an argument out of range,
an output path that cannot be written, a model folder that cannot be loaded; 1 on any other
failure (a bug: the traceback is for us).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from features.artifact import ArtifactError
from features.contract import (
    DataError,
    DataValidationError,
    ValidatedData,
    check_cutoff,
    load_and_validate,
)
from features.contract import parse_time as parse_iso_time
from features.outputs import (
    OutputError,
    atomic_output,
    console_text,
    existing_mode,
    neutralise_formulas,
    read_only_message,
)

# The embedded default data set ships with the source tree (see data/README.md).
EMBEDDED_DATA = Path(__file__).resolve().parents[1] / "data" / "instagram"
EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """A command-line argument that cannot be used (reported with exit status 2)."""


def embedded_profiles() -> Path:
    return EMBEDDED_DATA / "profiles.csv.gz"


def embedded_posts() -> Path:
    return EMBEDDED_DATA / "posts.csv.gz"


def data_path(text: str) -> Path | str:
    """A local path, or a URL kept as text (``Path`` would turn ``s3://b/k`` into ``s3:/b/k``)."""
    return text if "://" in text else Path(text)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profiles",
        type=data_path,
        help="profiles table (CSV, CSV.gz or Parquet; Parquet also "
        "as a folder, glob or URL); default: the embedded data",
    )
    parser.add_argument(
        "--posts",
        type=data_path,
        help="posts table (CSV, CSV.gz or Parquet; Parquet also "
        "as a folder, glob or URL); default: the embedded data",
    )


def resolve_data_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The profiles/posts paths to use: both given, or neither (the embedded data)."""
    if args.profiles is None and args.posts is None:
        return embedded_profiles(), embedded_posts()
    if args.profiles is None:
        raise UsageError(
            "--posts was given without --profiles; pass both, or neither for the embedded data"
        )
    return args.profiles, args.posts


def load_inputs(args: argparse.Namespace) -> ValidatedData:
    profiles, posts = resolve_data_paths(args)
    data = load_and_validate(profiles, posts)
    if getattr(args, "rejects", None):
        write_table(data.report.rejects_frame(), args.rejects)
    if data.report.handled:
        print(console_text(data.report.format(), keep_newlines=True), file=sys.stderr)
    return data


def parse_time(text: str | None, option: str = "--as-of") -> pd.Timestamp | None:
    """A cutoff given on the command line: ISO 8601 (as the data contract reads times), in UTC,
    between the first plausible post and now (:func:`features.contract.check_cutoff`)."""
    if text is None:
        return None
    try:
        return check_cutoff(parse_iso_time(text, option), option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------- argument checks


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (argparse reports anything else, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small; use {minimum} or more")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in its messages
    return parse


TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def check_output_file(
    path: Path | str | None, option: str, suffixes: tuple[str, ...] | None = None
) -> None:
    """Refuse, before any work, an output file that could not be written: a folder's name, a
    path under a file, a folder without write permission, or (with ``suffixes``) an ending
    that is not one of them. URLs are left to their filesystem."""
    if path is None or "://" in str(path):
        return
    path = Path(path)
    if suffixes is not None and not path.name.lower().endswith(suffixes):
        raise UsageError(f"{option} {path}: unknown output type; use {', '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    mode = existing_mode(path)
    if mode is not None and not mode & 0o222:
        raise UsageError(f"{option} {read_only_message(path)}")
    _check_writable_parent(path, option)


def check_output_folder(path: Path | str | None, option: str) -> None:
    """Like :func:`check_output_file`, for an output that is a folder (models, synthetic data)."""
    if path is None or "://" in str(path):
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, not a folder; give a folder name")
    _check_writable_parent(path, option)


def _check_writable_parent(path: Path, option: str) -> None:
    # The nearest existing folder above must be a folder we may write in (it gets the new ones).
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(
                    f"{option} {path}: {parent} is a file, not a folder; choose another path"
                )
            target = path if path.exists() else parent
            if not os.access(target, os.W_OK):
                raise UsageError(f"{option} {path}: no permission to write in {target}")
            return


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV, CSV.gz or Parquet by the file ending, creating the parent folder.

    Atomic (a failed write leaves the previous file); CSV text cells cannot run as formulas.
    """
    name = Path(path).name.lower()
    with atomic_output(path) as temp:
        if name.endswith((".parquet", ".pq")):
            frame.to_parquet(temp, index=False)
        else:
            neutralise_formulas(frame).to_csv(temp, index=False)


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
    from engage.scale_commands import cmd_features_dask, uses_dask
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
    from engage.scale_commands import add_engine_arguments

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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.set_defaults(func=cmd_synth)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Later modules (train, evaluate, score, serve) register their subcommands here.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _register_optional_commands() -> None:
    from engage import commands

    EXTRA_COMMANDS[:] = commands.REGISTRARS


def main(argv: Sequence[str] | None = None) -> int:
    _register_optional_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
