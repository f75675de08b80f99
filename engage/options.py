"""The options several ``engage`` commands share, defined once as ``Annotated`` types.

A command takes ``profiles: Profiles = None`` and gets the option with its name, type, check and
help; the defaults stay in the command's signature, where Typer shows them in ``--help``. The
parsers here refuse a bad value with Typer's usage error (exit 2, naming the option).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

# --------------------------------------------------------------------------- value types


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A parser: an integer >= ``minimum`` (and <= ``maximum``); anything else is a usage
    error naming the option (exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise typer.BadParameter(f"{value} is too small; use {minimum} or more")
        if maximum is not None and value > maximum:
            raise typer.BadParameter(f"{value} is too large; use {maximum} or less")
        return value

    return parse


def port_number(text: str) -> int:
    """A parser: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a port number (0 to 65535)") from None
    if not 0 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not a port number; use 0 to 65535")
    return value


def data_path(text: str | Path) -> Path | str:
    """A local path, or a URL kept as text (``Path`` would turn ``s3://b/k`` into ``s3:/b/k``)."""
    if isinstance(text, Path) or "://" in text:
        return text
    return Path(text)


# numpy's and LightGBM's seeds are unsigned 32-bit: anything else was a ValueError traceback.
seed_number = whole_number(0, 2**32 - 1)

# --------------------------------------------------------------------------- data

_TABLE = "CSV, CSV.gz or Parquet; Parquet also as a folder, glob or URL"
Profiles = Annotated[
    Any,
    typer.Option(
        parser=data_path,
        metavar="<path>",
        help=f"Profiles table ({_TABLE}). Left out, and --posts too: the embedded data.",
    ),
]
Posts = Annotated[
    Any,
    typer.Option(
        parser=data_path,
        metavar="<path>",
        help=f"Posts table ({_TABLE}). Left out, and --profiles too: the embedded data.",
    ),
]
Rejects = Annotated[
    Path | None,
    typer.Option(help="Write the rows set aside, with their reasons, to this CSV."),
]
Campaigns = Annotated[
    Path | None,
    typer.Option(help="Campaign results table: one example per campaign post."),
]
AsOf = Annotated[
    str | None,
    typer.Option(
        help="Cutoff time (ISO 8601): only posts strictly before it count. "
        "Left out: now, or the profiles' as_of column.",
    ),
]

# --------------------------------------------------------------------------- models, tracking

MODEL_HELP = (
    "models/<version> folder, 'latest' (the newest model training registered, "
    "by training time), or an MLflow URI like models:/engagement@champion."
)
ModelsDir = Annotated[
    Path, typer.Option(help="Where model folders are (for 'latest' and version names).")
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI. Left out: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
        "in the working folder.",
    ),
]
MetricsOut = Annotated[Path | None, typer.Option(help="Write every metric as JSON here.")]
Seed = Annotated[
    int, typer.Option(parser=seed_number, metavar="<int>", help="Random seed, 0 to 2**32 - 1.")
]

# --------------------------------------------------------------------------- engines

# features.datasets.ENGINES, spelled out for the type checker (a test keeps them the same).
Engine = Annotated[
    Literal["pandas", "dask"],
    typer.Option(
        help="pandas: in memory, one process; dask: partitioned by influencer, on a cluster.",
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        metavar="<address>",
        help="With --engine dask: the scheduler of an existing cluster (tcp://host:8786). "
        "Left out: a local cluster sized to this machine.",
    ),
]
Partitions = Annotated[
    int | None,
    typer.Option(
        parser=whole_number(1),
        metavar="<n>",
        help="With --engine dask: influencer buckets. Left out: as many as the input's partitions.",
    ),
]
