"""Where saved models are logged and registered (the MLflow tracking store), and how a registered
version is fetched and its signed files checked.

This is the transport of the artifact :mod:`features.artifact` signs, verifies and loads:
training logs and registers a model in the store :func:`resolve_tracking_uri` names, serving and
``engage promote`` fetch a registered version with :func:`download_verified` and find the engage
model folder inside it with :func:`engage_folder`. Both sides import it from here, so neither
imports the other. MLflow is imported inside the functions that use it; nothing happens at
import time (no URI set, no store created).
"""

from __future__ import annotations

import os
from pathlib import Path

from features.artifact import (
    MANIFEST_FILE,
    MLFLOW_DOWNLOAD_NOTE,
    ArtifactError,
    model_key,
    redact,
    verify_folder,
)

# MLflow tracking store used when none is named (a local SQLite file in the working folder).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# The artifact of a logged pyfunc model that is the engage model folder (``models/<version>``).
MODEL_ARTIFACT = "engage_model"


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


def download_verified(uri: str, tracking_uri: str | None, dst: Path) -> Path:
    """Fetch a registered model's files into ``dst`` and check them against their signed manifest.

    Every file of MLflow's copy (its ``MLmodel``, the logged ``pyfunc.py``, the engage model
    folder) is checked before any of it is imported or unpickled. Returns the model's root folder.
    """
    import mlflow

    store = resolve_tracking_uri(tracking_uri)
    require_tracking_store(store)
    key = model_key()  # a missing key is reported before anything is fetched
    # MLflow resolves a registered name with the process-wide registry URI (which follows the
    # tracking URI) whatever store is passed to download_artifacts.
    mlflow.set_tracking_uri(store)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=store
        )
    except Exception as exc:  # MLflow raises several types for unknown names, aliases and runs
        raise ArtifactError(
            f"{uri}: cannot be fetched from {redact(store)}: {redact(str(exc))}"
        ) from None
    root = Path(local)
    (root / MLFLOW_DOWNLOAD_NOTE).unlink(missing_ok=True)
    if not (root / MANIFEST_FILE).is_file() and (root / "MLmodel").is_file():
        raise ArtifactError(
            f"{uri}: MLflow's copy of this model is not signed (logged by an "
            "engage before models were signed); refusing to load it. Retrain it."
        )
    verify_folder(root, key)
    return root


def _engage_artifact(model_root: Path) -> Path | None:
    """The :data:`MODEL_ARTIFACT` folder of a downloaded pyfunc model (named in its MLmodel)."""
    from mlflow.models import Model

    try:
        flavor = Model.load(str(model_root)).flavors.get("python_function", {})
    except Exception:  # no or unreadable MLmodel: not a model this code can serve
        return None
    entry = (flavor.get("artifacts") or {}).get(MODEL_ARTIFACT)
    path = entry.get("path") if isinstance(entry, dict) else entry
    return model_root / str(path) if path else None


def engage_folder(uri: str, model_root: Path) -> Path:
    """The engage model folder inside a downloaded, verified MLflow model."""
    folder = _engage_artifact(model_root)
    if folder is None or not folder.is_dir():
        raise ArtifactError(
            f"{uri}: not an engage model (no '{MODEL_ARTIFACT}' artifact in its MLmodel)"
        )
    return folder
