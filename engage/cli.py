"""The ``engage`` command: thin subcommands that parse arguments and call library functions.

Exit status: 0 on success, 2 when the input breaks the data contract or a file cannot be read
(the report on stderr names file, column and rows), 1 on any other failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from features.artifact import ArtifactError
from features.contract import DataError, DataValidationError, ValidatedData, load_and_validate
from features.outputs import OutputError, atomic_output, console_text, neutralise_formulas

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
    parser.add_argument("--profiles", type=data_path, help="profiles table (CSV, CSV.gz or Parquet; Parquet also as a folder, glob or URL); default: the embedded data")
    parser.add_argument("--posts", type=data_path, help="posts table (CSV, CSV.gz or Parquet; Parquet also as a folder, glob or URL); default: the embedded data")


def resolve_data_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The profiles/posts paths to use: both given, or neither (the embedded data)."""
    if args.profiles is None and args.posts is None:
        return embedded_profiles(), embedded_posts()
    if args.profiles is None:
        raise UsageError("--posts was given without --profiles; pass both, or neither for the embedded data")
    return args.profiles, args.posts


def load_inputs(args: argparse.Namespace) -> ValidatedData:
    profiles, posts = resolve_data_paths(args)
    data = load_and_validate(profiles, posts)
    if getattr(args, "rejects", None):
        write_table(data.report.rejects_frame(), args.rejects)
    if data.report.handled:
        print(console_text(data.report.format(), keep_newlines=True), file=sys.stderr)
    return data


def parse_time(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--as-of: cannot parse '{text}' as a time (use ISO 8601, e.g. 2019-05-01)") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


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
    data = load_inputs(args)
    table = feature_table(data.profiles, data.posts, parse_time(args.as_of))
    table = table.drop(columns=["hashtag_doc"]) if not args.keep_hashtag_docs else table
    write_table(table, args.out)
    print(f"wrote {len(table)} rows x {table.shape[1]} columns to {args.out}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from features.contract import load_and_validate as _load
    from features.synth import fit_synth_params, generate, write_synthetic

    reference = _load(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    profiles, posts = generate(params, n_influencers=args.influencers, seed=args.seed)
    paths = write_synthetic(profiles, posts, args.out_dir, file_format=args.format)
    print(f"wrote {len(profiles)} profiles and {len(posts)} posts: {', '.join(str(p) for p in paths)}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from engage.scale_commands import add_engine_arguments

    parser = argparse.ArgumentParser(prog="engage", description="Predict an influencer's next-post engagement, with an honest interval.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check profiles and posts against the data contract and print the report")
    add_data_arguments(p)
    p.add_argument("--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("features", help="compute point-in-time features, one row per influencer")
    add_data_arguments(p)
    p.add_argument("--as-of", help="cutoff time: only posts strictly before it count (default: now, or the profiles' as_of column)")
    p.add_argument("--out", type=Path, required=True, help="output table (.csv, .csv.gz or .parquet); with --engine dask a folder of Parquet parts")
    p.add_argument("--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV")
    p.add_argument("--keep-hashtag-docs", action="store_true", help="keep the hashtag_doc text column (bag of tags)")
    add_engine_arguments(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("synth", help="write synthetic profiles and posts fitted on the embedded data (for scale tests only)")
    p.add_argument("--influencers", type=int, required=True, help="number of influencers")
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


if __name__ == "__main__":
    sys.exit(main())
