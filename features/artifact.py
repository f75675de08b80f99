"""The saved form of a fitted :class:`~features.pipeline.EngagementModel`, written and read safely.

A model folder ``models/<version>/`` holds ``model.joblib``, ``metadata.json`` and
``MANIFEST.sha256`` (one ``<sha256>  <file>`` line per file). Saving writes everything into a
hidden temporary folder and renames it into place only when complete, so an interrupted save
never leaves a folder that looks finished. Loading verifies the manifest and the recorded
library versions *before* unpickling anything, because unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import joblib

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "MANIFEST.sha256"
# Layout of the pickled model, raised whenever a saved model would be read differently by this
# code: 2 = the booster adds to its starting level (``shrunk_log_er``, its init_score). A model
# of format 1 would unpickle fine and then predict without that level: silently wrong.
MODEL_FORMAT = 2
# Libraries whose objects are inside the pickle: a different version may unpickle wrongly.
PINNED_LIBRARIES = ("scikit-learn", "lightgbm", "pandas", "numpy", "scipy", "joblib")


# MLflow tracking store used when none is named (a local SQLite file in the working folder).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(explicit: str | None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else the local SQLite default."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


class ArtifactError(RuntimeError):
    """A model folder that is missing, incomplete, tampered with or from other library versions."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PINNED_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_version() -> str:
    """Sortable by time, unique across concurrent runs: 20261126T013000123456Z-1a2b3c."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


def save_artifact(model: Any, models_dir: Path, metadata: dict[str, Any], version_name: str | None = None) -> Path:
    """Write the model folder atomically and return its final path."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    version_name = version_name or new_version()
    final = models_dir / version_name
    staging = models_dir / f".tmp-{version_name}"
    staging.mkdir()
    try:
        joblib.dump(model, staging / MODEL_FILE)
        meta = {
            **metadata,
            "version": version_name,
            "model_format": MODEL_FORMAT,
            "library_versions": library_versions(),
        }
        (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
        lines = [f"{sha256_of(staging / name)}  {name}" for name in (MODEL_FILE, METADATA_FILE)]
        (staging / MANIFEST_FILE).write_text("\n".join(lines) + "\n")
        for name in (MODEL_FILE, METADATA_FILE, MANIFEST_FILE):
            _fsync(staging / name)
        os.rename(staging, final)  # atomic on one filesystem: the folder appears complete or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def complete_versions(models_dir: Path) -> list[Path]:
    """Finished model folders, oldest first (temporary and manifest-less folders are skipped)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    found = [p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def resolve_model_dir(ref: str | Path, models_dir: Path = Path("models")) -> Path:
    """A model folder path, or ``latest`` (the newest complete folder under ``models_dir``)."""
    if str(ref) == "latest":
        versions = complete_versions(models_dir)
        if not versions:
            raise ArtifactError(f"no saved model under {models_dir}; run `engage train` first")
        return versions[-1]
    path = Path(ref)
    if not path.is_dir() and (Path(models_dir) / str(ref)).is_dir():
        path = Path(models_dir) / str(ref)
    if not path.is_dir():
        raise ArtifactError(f"{ref}: no such model folder")
    return path


def verify_artifact(path: Path, *, check_versions: bool = True) -> dict[str, Any]:
    """Check the manifest and library versions; return the metadata. Nothing is unpickled."""
    path = Path(path)
    manifest = path / MANIFEST_FILE
    if not manifest.is_file():
        raise ArtifactError(f"{path}: {MANIFEST_FILE} is missing; the folder is incomplete or not a model")
    expected: dict[str, str] = {}
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        expected[name.strip()] = digest.strip()
    for required in (MODEL_FILE, METADATA_FILE):
        if required not in expected:
            raise ArtifactError(f"{path}: the manifest does not list {required}")
    for name, digest in expected.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path}: {name} is missing")
        actual = sha256_of(file)
        if actual != digest:
            raise ArtifactError(f"{path}: {name} does not match its SHA-256 in the manifest (expected {digest[:12]}..., found {actual[:12]}...); the file was changed or corrupted")
    metadata = json.loads((path / METADATA_FILE).read_text())
    saved_format = metadata.get("model_format", 1)
    if saved_format != MODEL_FORMAT:
        raise ArtifactError(
            f"{path}: saved by another engage (model format {saved_format}, this one reads "
            f"{MODEL_FORMAT}), refusing to load a model it would read differently. Retrain it."
        )
    if check_versions:
        recorded = metadata.get("library_versions", {})
        current = library_versions()
        # Python patch releases do not change pickles; compare major.minor only.
        recorded_py = ".".join(str(recorded.get("python", "")).split(".")[:2])
        current_py = ".".join(current["python"].split(".")[:2])
        diffs = [f"python {recorded_py} (saved) vs {current_py} (here)"] if recorded_py != current_py else []
        diffs += [f"{lib} {recorded.get(lib)} (saved) vs {current[lib]} (here)" for lib in PINNED_LIBRARIES if recorded.get(lib) != current[lib]]
        if diffs:
            raise ArtifactError(f"{path}: saved with other library versions, refusing to unpickle: " + "; ".join(diffs) + ". Retrain, or install the saved versions.")
    return metadata


def load_artifact(path: Path, *, check_versions: bool = True) -> Any:
    """Verify, then unpickle the fitted model; attaches the metadata as ``model.metadata``."""
    metadata = verify_artifact(path, check_versions=check_versions)
    model = joblib.load(Path(path) / MODEL_FILE)
    if hasattr(model, "metadata"):
        model.metadata = {**getattr(model, "metadata", {}), **metadata}
    return model
