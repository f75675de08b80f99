"""Naming the model a command used (serving/identity.py): ``engagement v3 @champion``."""

from __future__ import annotations

import json
from types import SimpleNamespace

from features.artifact import REGISTRY_FILE
from serving.identity import ModelIdentity, identify


def test_the_label_says_version_and_aliases_and_when_they_were_read():
    assert ModelIdentity("engagement", "3", ["champion"]).label == "engagement v3 @champion"
    assert (
        ModelIdentity("engagement", "3", ["challenger"], aliases_now=False).label
        == "engagement v3 @challenger at registration"
    )
    assert ModelIdentity("engagement", "4").label == "engagement v4 (no alias)"
    unregistered = ModelIdentity(None, None, folder_version="20261202T010000Z-abc123")
    assert unregistered.label == "model 20261202T010000Z-abc123 (not registered)"


def _folder(tmp_path, registry: dict | None) -> SimpleNamespace:
    folder = tmp_path / "20261202T010000Z-abc123"
    folder.mkdir()
    if registry is not None:
        (folder / REGISTRY_FILE).write_text(json.dumps(registry))
    return SimpleNamespace(path=folder, version=folder.name)


def test_a_folder_saved_without_registration_is_named_by_its_own_version(tmp_path):
    predictor = _folder(tmp_path, registry=None)
    identity = identify(predictor.path, predictor)
    assert identity.registered_model is None and identity.folder_version == predictor.version


def test_a_folder_whose_store_is_gone_reports_its_alias_at_registration(tmp_path):
    registry = {"registered_model": "engagement", "model_version": 3, "alias": "challenger"}
    predictor = _folder(tmp_path, registry)
    missing = f"sqlite:///{tmp_path / 'gone' / 'mlflow.db'}"
    identity = identify(predictor.path, predictor, tracking_uri=missing)
    assert identity.label == "engagement v3 @challenger at registration"
    assert not (tmp_path / "gone").exists()  # no empty store created to ask


def test_a_trained_model_is_named_with_the_aliases_its_version_holds_now(trained):
    from mlflow import MlflowClient

    from serving import load_model

    store = f"sqlite:///{trained.model_dir.parent.parent / 'mlflow.db'}"
    predictor = load_model(trained.model_dir)
    identity = identify(trained.model_dir, predictor, tracking_uri=store)
    version = str(trained.tracking["model_version"])
    assert (identity.registered_model, identity.version) == ("engagement", version)
    assert identity.aliases_now and identity.folder_version == trained.model_dir.name
    client = MlflowClient(tracking_uri=store)
    client.set_registered_model_alias("engagement", "reviewed", version)
    try:
        by_reference = identify(f"models:/engagement/{version}", predictor, tracking_uri=store)
        assert "reviewed" in by_reference.aliases and by_reference.aliases_now
        assert by_reference.label.startswith(f"engagement v{version} @")
    finally:
        client.delete_registered_model_alias("engagement", "reviewed")
