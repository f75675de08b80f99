"""Where models are registered and how a registered one is fetched (features/registry.py): the
MLflow tracking store a command uses, a missing one refused, and a downloaded copy checked
against its signed manifest before anything in it is used.

MLflow's downloader is replaced by a copy of a hand-made model folder here, so these tests need
no trained model; a real registered model goes through the same functions in
tests/serving/test_predictor.py and tests/features/test_artifact.py (``load_model("models:/...")``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from features.artifact import (
    KEY_ENV,
    MANIFEST_FILE,
    MLFLOW_DOWNLOAD_NOTE,
    ArtifactError,
    sign_folder,
)
from features.registry import (
    DEFAULT_TRACKING_URI,
    MODEL_ARTIFACT,
    download_verified,
    engage_folder,
    require_tracking_store,
    resolve_tracking_uri,
)

REF = "models:/engagement@champion"


def test_the_uri_given_wins_then_the_environment_then_the_local_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri("sqlite:///given.db") == "sqlite:///given.db"
    assert resolve_tracking_uri(None) == "http://tracking:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(None) == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_a_missing_local_store_is_refused_and_not_created(tmp_path):
    missing = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(ArtifactError, match=r"no MLflow tracking store at .*nowhere/mlflow\.db"):
        require_tracking_store(f"sqlite:///{missing}")
    assert not missing.parent.exists()


def test_an_existing_local_store_and_a_server_are_accepted(tmp_path):
    store = tmp_path / "mlflow.db"
    store.touch()
    require_tracking_store(f"sqlite:///{store}")
    require_tracking_store("http://engage:token@tracking:5000")  # a server is asked, not checked


# --------------------------------------------------------------------------- a registered copy


def _logged_model(folder: Path, *, artifact: str = MODEL_ARTIFACT) -> Path:
    """A pyfunc model as MLflow stores it: its MLmodel naming the engage folder, and that folder."""
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
        f"    artifacts:\n      {artifact}:\n        path: artifacts/model\n"
        "        uri: /somewhere/models/v1\n"
    )
    (folder / "artifacts" / "model").mkdir(parents=True)
    (folder / "artifacts" / "model" / "model.joblib").write_bytes(b"not unpickled here")
    return folder


@pytest.fixture
def store(tmp_path, monkeypatch) -> dict:
    """A local store that exists, a signing key, and MLflow's downloader copying ``source``."""
    import mlflow

    database = tmp_path / "mlflow.db"
    database.touch()
    monkeypatch.setenv(KEY_ENV, "k" * 32)
    fake: dict = {"uri": f"sqlite:///{database}", "source": None, "asked": []}

    def download_artifacts(artifact_uri, dst_path, tracking_uri):
        fake["asked"].append((artifact_uri, tracking_uri))
        if fake["source"] is None:
            raise RuntimeError("RESOURCE_DOES_NOT_EXIST: http://engage:token@tracking has none")
        target = Path(dst_path) / "model"
        shutil.copytree(fake["source"], target)
        (target / MLFLOW_DOWNLOAD_NOTE).write_text("name: engagement\n")  # as MLflow writes it
        return str(target)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download_artifacts)
    monkeypatch.setattr(mlflow, "set_tracking_uri", lambda uri: None)  # no process-wide change
    return fake


def test_a_signed_copy_is_fetched_checked_and_its_engage_folder_found(store, tmp_path):
    store["source"] = _logged_model(tmp_path / "logged")
    sign_folder(store["source"])
    root = download_verified(REF, store["uri"], tmp_path / "download")
    assert store["asked"] == [(REF, store["uri"])]
    assert not (root / MLFLOW_DOWNLOAD_NOTE).exists()  # the downloader's note is not signed
    assert engage_folder(REF, root) == root / "artifacts" / "model"


@pytest.mark.parametrize(
    "change, message",
    [
        # the logged code or a pickle changed after signing
        ("changed", r"model\.joblib does not match its SHA-256"),
        # a module planted beside the signed files
        ("planted", r"sitecustomize\.py is not covered by the signed manifest"),
        # logged by an engage before models were signed
        ("unsigned", r"models:/engagement@champion: MLflow's copy .* is not signed.*Retrain it\."),
    ],
)
def test_a_copy_that_fails_its_signed_manifest_is_refused(store, tmp_path, change, message):
    store["source"] = _logged_model(tmp_path / "logged")
    sign_folder(store["source"])
    if change == "changed":
        (store["source"] / "artifacts" / "model" / "model.joblib").write_bytes(b"planted")
    elif change == "planted":
        (store["source"] / "sitecustomize.py").write_text("import os\n")
    else:
        (store["source"] / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match=message):
        download_verified(REF, store["uri"], tmp_path / "download")


def test_a_reference_the_store_cannot_fetch_is_refused_without_its_credentials(store, tmp_path):
    with pytest.raises(
        ArtifactError, match=r"^models:/engagement@champion: cannot be fetched"
    ) as e:
        download_verified(REF, store["uri"], tmp_path / "download")
    assert "token" not in str(e.value) and "http://***@tracking" in str(e.value)


def test_a_missing_store_or_key_is_refused_before_anything_is_fetched(store, tmp_path, monkeypatch):
    with pytest.raises(ArtifactError, match="no MLflow tracking store"):
        download_verified(REF, f"sqlite:///{tmp_path / 'none.db'}", tmp_path / "download")
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("ENGAGE_MODEL_KEY_FILE", str(tmp_path / "no.key"))
    with pytest.raises(ArtifactError):
        download_verified(REF, store["uri"], tmp_path / "download")
    assert store["asked"] == []


@pytest.mark.parametrize(
    "model",
    [
        "no MLmodel",  # a folder of something else
        "another artifact",  # a pyfunc model of another project
        "artifact not downloaded",  # its MLmodel names a folder that is not there
    ],
)
def test_a_model_without_an_engage_folder_is_not_an_engage_model(tmp_path, model):
    root = tmp_path / "root"
    if model == "no MLmodel":
        root.mkdir()
    elif model == "another artifact":
        _logged_model(root, artifact="weights")
    else:
        shutil.rmtree(_logged_model(root) / "artifacts")
    with pytest.raises(
        ArtifactError, match=r"^models:/x/1: not an engage model \(no 'engage_model'"
    ):
        engage_folder("models:/x/1", root)
