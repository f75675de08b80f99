"""The MLflow tracking store: where training logs runs and registers models, and where serving
finds a registered model (``models:/engagement@champion``).

It lives on the serving side because both use it and ``serving`` never imports ``training``;
``features`` knows nothing of MLflow. Nothing is set at import time: the URI is resolved when a
command needs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from features.artifact import ArtifactError, redact

# MLflow tracking store used when none is named (a local SQLite file in the working folder).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(explicit: str | None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else the local SQLite default."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def require_tracking_store(uri: str) -> None:
    """Refuse a local SQLite store that does not exist: MLflow would create an empty one (and
    its folder) just to report that the model is not there."""
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.is_file():
            raise ArtifactError(
                f"no MLflow tracking store at {database} ({redact(uri)}): the file does not exist. "
                "Train a model first, run from the folder "
                "that holds mlflow.db, or pass --tracking-uri"
            )
