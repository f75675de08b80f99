"""Python API for other services: load a saved model and score raw candidate tables."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from features.artifact import ArtifactError, load_artifact, resolve_model_dir, resolve_tracking_uri

MLFLOW_SCHEMES = ("models:/", "runs:/")


class Predictor:
    """A loaded, verified engage model."""

    def __init__(self, model: Any, path: Path):
        self.model = model
        self.path = path
        self.metadata = getattr(model, "metadata", {})

    def predict(self, profiles: pd.DataFrame, posts: pd.DataFrame | None, as_of: pd.Timestamp | pd.Series | None = None) -> pd.DataFrame:
        return self.model.predict(profiles, posts, as_of)

    def predict_for_rest(self, profiles: pd.DataFrame, posts: pd.DataFrame | None) -> pd.DataFrame:
        return self.predict(profiles, posts)


def _download_mlflow_model(uri: str, tracking_uri: str | None) -> Path:
    """Fetch a registered model's files from the tracking store into a temporary folder."""
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    target = Path(tempfile.mkdtemp(prefix="engage-model-"))
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target))
    except Exception as exc:  # MLflow raises several types for unknown names, aliases and runs
        raise ArtifactError(f"{uri}: cannot be fetched from {resolve_tracking_uri(tracking_uri)}: {exc}") from exc
    folder = Path(local) / "artifacts" / "engage_model"
    if not folder.is_dir():
        raise ArtifactError(f"{uri}: not an engage model (no artifacts/engage_model folder)")
    return folder


def load_model(ref: str | Path, models_dir: Path = Path("models"), tracking_uri: str | None = None) -> Predictor:
    """Load ``models/<version>``, ``latest`` or an MLflow URI (``models:/engagement@champion``).

    The folder's manifest and library versions are checked before anything is unpickled.
    """
    if str(ref).startswith(MLFLOW_SCHEMES):
        path = _download_mlflow_model(str(ref), tracking_uri)
    else:
        path = resolve_model_dir(ref, models_dir)
    return Predictor(load_artifact(path), path)


__all__ = ["ArtifactError", "Predictor", "load_model"]
