"""What the ``engage`` subcommands share: the default data, the checks on arguments and output
paths, and the table writer (the options themselves are in :mod:`engage.options`).

Every command module builds on this one (and nothing here imports a command module), so the
imports run one way: :mod:`engage.cli` -> the command modules -> this module.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from features.contract import ValidatedData

# The library (pandas and all) is imported inside the helpers, when a command runs: the
# commands' modules are imported for every ``engage --help``, which needs none of it.

# The embedded default data set ships with the source tree (see data/README.md).
EMBEDDED_DATA = Path(__file__).resolve().parents[1] / "data" / "instagram"
EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """A command-line argument that cannot be used (reported with exit status 2)."""


def embedded_profiles() -> Path:
    return EMBEDDED_DATA / "profiles.csv.gz"


def embedded_posts() -> Path:
    return EMBEDDED_DATA / "posts.csv.gz"


def arguments(values: dict[str, Any]) -> SimpleNamespace:
    """A command's parameters as one object the shared helpers read (``args.profiles``, ...),
    after the check that runs before any work: no output may replace an input."""
    args = SimpleNamespace(**values)
    check_outputs_are_not_inputs(args)
    return args


def resolve_data_paths(args: SimpleNamespace) -> tuple[Path, Path | None]:
    """The profiles/posts paths to use: both given, or neither (the embedded data)."""
    if args.profiles is None and args.posts is None:
        return embedded_profiles(), embedded_posts()
    if args.profiles is None:
        raise UsageError(
            "--posts was given without --profiles; pass both, or neither for the embedded data"
        )
    return args.profiles, args.posts


def load_inputs(args: SimpleNamespace) -> ValidatedData:
    from features.contract import load_and_validate
    from features.outputs import console_text

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
    from features.contract import check_cutoff
    from features.contract import parse_time as parse_iso_time

    try:
        return check_cutoff(parse_iso_time(text, option), option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------- output checks


TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def check_output_file(
    path: Path | str | None, option: str, suffixes: tuple[str, ...] | None = None
) -> None:
    """Refuse, before any work, an output file that could not be written: a folder's name, a
    path under a file, a folder without write permission, or (with ``suffixes``) an ending
    that is not one of them. URLs are left to their filesystem."""
    if path is None or "://" in str(path):
        return
    from features.outputs import existing_mode, read_only_message

    path = Path(path)
    if suffixes is not None and not path.name.lower().endswith(suffixes):
        raise UsageError(f"{option} {path}: unknown output type; use {', '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    mode = existing_mode(path)
    if mode is not None and not mode & 0o222:
        raise UsageError(f"{option} {read_only_message(path)}")
    _check_writable_parent(path, option)


# Options naming files a command reads, and files or folders it writes (parameter names).
INPUT_OPTIONS = ("profiles", "posts", "fees", "shortlist", "campaigns")
OUTPUT_OPTIONS = ("out", "rejects", "metrics_out", "out_dir")


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)  # also through links and other spellings
    except OSError:
        pass
    return a.absolute().resolve() == b.absolute().resolve()


def check_outputs_are_not_inputs(args: SimpleNamespace) -> None:
    """Refuse, before any work, an output that is one of the command's inputs (it would be
    replaced by the output: the input lost), or the same file as another output."""
    named: list[tuple[str, Path]] = []
    for dest in INPUT_OPTIONS:
        value = getattr(args, dest, None)
        if value is not None and "://" not in str(value):
            named.append((dest, Path(value)))
    if "profiles" in vars(args) and args.profiles is None and args.posts is None:
        named += [("profiles", embedded_profiles()), ("posts", embedded_posts())]
    seen: list[tuple[str, Path]] = []
    for dest in OUTPUT_OPTIONS:
        value = getattr(args, dest, None)
        if value is None or "://" in str(value):
            continue
        path = Path(value)
        for other, other_path in named:
            if _same_path(path, other_path):
                what = (
                    "the embedded data" if args.profiles is None else f"the {_option(other)} input"
                )
                raise UsageError(
                    f"{_option(dest)} {path}: is {what}; writing it would replace that input. "
                    "Choose another name"
                )
        for other, other_path in seen:
            if _same_path(path, other_path):
                raise UsageError(
                    f"{_option(dest)} {path}: is also {_option(other)}; one would replace the "
                    "other. Choose two names"
                )
        seen.append((dest, path))


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
    from features.outputs import atomic_output, neutralise_formulas

    name = Path(path).name.lower()
    with atomic_output(path) as temp:
        if name.endswith((".parquet", ".pq")):
            frame.to_parquet(temp, index=False)
        else:
            neutralise_formulas(frame).to_csv(temp, index=False)


# --------------------------------------------------------------------------- engines


def uses_dask(args: SimpleNamespace) -> bool:
    """True for ``--engine dask``; a Dask-only option with the pandas engine is a usage error."""
    if getattr(args, "engine", "pandas") == "dask":
        return True
    for option in ("scheduler", "partitions"):
        if getattr(args, option, None) is not None:
            raise UsageError(f"--{option} needs --engine dask")
    return False
