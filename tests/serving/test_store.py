"""Which MLflow tracking store a command uses (serving/store.py), and a missing one refused."""

from __future__ import annotations

import pytest

from features.artifact import ArtifactError
from serving.store import DEFAULT_TRACKING_URI, require_tracking_store, resolve_tracking_uri


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
