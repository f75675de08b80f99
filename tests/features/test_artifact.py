"""Saved models (features/artifact.py): signing, verification, ``latest``, MLflow's copy.

The tampering table (planted pickles, recomputed manifests, ...) is in test_reliability.py;
this module covers the round trip, the key, the registry-backed ``latest``, half-written
folders, and the verification of MLflow's logged copy before its code runs.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
from pathlib import Path

import pytest

from features.artifact import (
    KEY_ENV,
    KEY_FILE_ENV,
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    MODEL_FORMAT,
    ArtifactError,
    complete_versions,
    key_id,
    load_artifact,
    model_key,
    redact,
    resolve_model_dir,
    save_artifact,
    sign_folder,
    stage_artifact,
    verify_folder,
)
from tests.serving_fixtures import ServingModel

REGISTERED = {"registered_model": "engagement", "model_version": "1"}


class _Trap:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def no_key(tmp_path, monkeypatch):
    """A machine with no key: no environment variable, an empty config folder."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "engage" / "model.key"


# --------------------------------------------------------------------------- the key


def test_first_save_creates_a_private_key_file_and_says_so_once(no_key, tmp_path, capsys):
    first = save_artifact({"w": 1}, tmp_path / "models", {})
    assert no_key.is_file() and (no_key.stat().st_mode & 0o777) == 0o600
    assert len(no_key.read_text().strip()) == 64  # 32 random bytes as hex
    assert f"created the model signing key {no_key}" in capsys.readouterr().err
    second = save_artifact({"w": 2}, tmp_path / "models", {})
    assert "created" not in capsys.readouterr().err
    assert load_artifact(first) == {"w": 1} and load_artifact(second) == {"w": 2}


def test_loading_without_a_key_says_how_to_set_one(no_key, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k" * 40)
    folder = save_artifact({"w": 1}, tmp_path / "models", {})
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(
        ArtifactError,
        match=rf"no model signing key: {no_key} does not exist.*set {KEY_ENV}.*{KEY_FILE_ENV}",
    ):
        load_artifact(folder)
    assert not no_key.exists()  # loading never makes a key: it could verify nothing


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        # a key file others can read: refused, as ssh refuses such a private key
        (
            lambda path, mp: (path.write_text("a" * 64), path.chmod(0o644)),
            r"accessible to other users \(mode 0644\).*chmod 600",
        ),
        # too short to be a secret
        (lambda path, mp: mp.setenv(KEY_ENV, "short"), r"5 characters, at least 32"),
        # a named key file that does not exist is not silently created elsewhere
        (
            lambda path, mp: mp.setenv(KEY_FILE_ENV, str(path.parent / "missing.key")),
            r"missing\.key does not exist",
        ),
    ],
)
def test_unusable_keys_are_refused_with_the_fix(no_key, tmp_path, monkeypatch, setup, message):
    no_key.parent.mkdir(parents=True)
    setup(no_key, monkeypatch)
    with pytest.raises(ArtifactError, match=message):
        model_key(create=True)


def test_a_model_signed_with_another_key_is_refused_before_unpickling(tmp_path, monkeypatch):
    marker = tmp_path / "UNPICKLED"
    monkeypatch.setenv(KEY_ENV, "the other machine's key, 40 characters.")
    other = key_id(model_key())
    folder = save_artifact(_Trap(marker), tmp_path / "models", {}, registry=REGISTERED)
    monkeypatch.setenv(KEY_ENV, "this machine's own key, 40 characters...")
    with pytest.raises(
        ArtifactError,
        match=rf"signed with another key \(key id {other}; yours is {key_id(model_key())}\)",
    ):
        load_artifact(folder)
    with pytest.raises(ArtifactError, match="signed with another key"):
        resolve_model_dir("latest", tmp_path / "models")
    assert not marker.exists()


def test_a_planted_pickle_with_recomputed_digests_is_refused_before_it_runs(tmp_path):
    """The attack a bare checksum cannot stop: the pickle replaced and its SHA-256 recomputed."""
    from features.artifact import sha256_of

    marker = tmp_path / "UNPICKLED"
    folder = save_artifact({"w": 1}, tmp_path / "models", {}, registry=REGISTERED)
    (folder / MODEL_FILE).write_bytes(pickle.dumps(_Trap(marker)))
    signed = json.loads((folder / MANIFEST_FILE).read_text())
    signed["files"][MODEL_FILE] = sha256_of(folder / MODEL_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(signed))
    with pytest.raises(ArtifactError, match="signature of MANIFEST.json does not match"):
        load_artifact(folder)
    assert not marker.exists()


def test_a_pickle_swapped_between_the_check_and_the_load_is_never_unpickled(tmp_path, monkeypatch):
    import features.artifact as artifact

    marker = tmp_path / "UNPICKLED"
    folder = save_artifact({"w": 1}, tmp_path / "models", {}, registry=REGISTERED)
    checked = artifact._verify_artifact

    def check_then_swap(path, check_versions):
        result = checked(path, check_versions)
        (path / MODEL_FILE).write_bytes(
            pickle.dumps(_Trap(marker))
        )  # the race an attacker would win
        return result

    monkeypatch.setattr(artifact, "_verify_artifact", check_then_swap)
    with pytest.raises(ArtifactError, match="changed while it was being loaded"):
        load_artifact(folder)
    assert not marker.exists()


# --------------------------------------------------------------------------- what latest means


def test_latest_is_the_newest_registered_model_by_recorded_time_not_by_folder_name(tmp_path):
    models = tmp_path / "models"
    old = save_artifact(
        {"w": "old"}, models, {}, "20990101T000000000000Z-late-name", registry=REGISTERED
    )
    new = save_artifact(
        {"w": "new"}, models, {}, "20000101T000000000000Z-early-name", registry=REGISTERED
    )
    assert resolve_model_dir("latest", models) == new  # trained later, though its name sorts first
    # Saved after both but never registered (what a training killed during MLflow logging could
    # leave, were folders published before registration): never latest.
    save_artifact({"w": "unregistered"}, models, {}, "20991231T000000000000Z-zzz")
    # A copy of the old model under a name that sorts last: its signed version is not its name.
    shutil.copytree(old, models / "20991231T235959999999Z-zzz-copy")
    assert resolve_model_dir("latest", models) == new
    assert load_artifact(resolve_model_dir("latest", models)) == {"w": "new"}


def test_latest_says_why_nothing_qualifies(tmp_path):
    models = tmp_path / "models"
    save_artifact({"w": 1}, models, {})
    legacy = models / "20200101T000000000000Z-old"
    legacy.mkdir()
    (legacy / "MANIFEST.sha256").write_text("0" * 64 + "  model.joblib\n")
    with pytest.raises(
        ArtifactError,
        match=r"no saved model under .* that training registered \(1 saved without "
        r"registration; 1 saved before models were signed \(retrain\)\)",
    ):
        resolve_model_dir("latest", models)


def test_a_model_saved_before_signing_is_refused_with_retrain_it(tmp_path):
    folder = tmp_path / "models" / "20261126T013000123456Z-1a2b3c"
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(pickle.dumps({"w": 1}))
    (folder / METADATA_FILE).write_text("{}")
    (folder / "MANIFEST.sha256").write_text("")
    with pytest.raises(ArtifactError, match=r"before models were signed.*Retrain it\."):
        load_artifact(folder)


def test_an_interrupted_or_failed_publish_leaves_nothing_that_looks_finished(tmp_path):
    models = tmp_path / "models"
    staged = stage_artifact({"w": 1}, models, {})
    assert staged.folder.parent.name.startswith(".") and not staged.final.exists()
    verify_folder(staged.folder)  # complete and signed while staged (MLflow logs this copy)
    staged.discard()
    assert list(models.iterdir()) == []


# --------------------------------------------------------------------------- MLflow's copy


def _logged_model_folder(served: ServingModel) -> Path:
    """Where the artifact store keeps the champion's logged model (its MLmodel, pyfunc.py, ...)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=served.tracking_uri, registry_uri=served.tracking_uri)
    version = client.get_model_version_by_alias("engagement", "champion")
    model = client.get_logged_model(version.model_id or version.source.removeprefix("models:/"))
    return Path(model.artifact_location.removeprefix("file://"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Temporary folders of this test only (others on the machine use the system's)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_mlflow_copy_is_signed_and_loads_without_leaving_a_copy(served, private_tmp):
    from serving import load_model

    logged = _logged_model_folder(served)
    files = verify_folder(logged)  # every file of MLflow's copy, the logged code included
    assert (
        "pyfunc.py" in files
        and "MLmodel" in files
        and any(n.endswith(f"/{MODEL_FILE}") for n in files)
    )
    predictor = load_model("models:/engagement@champion", tracking_uri=served.tracking_uri)
    assert predictor.version == served.model_dir.name
    assert list(private_tmp.iterdir()) == [], (
        "the temporary copy of the registered model was left behind"
    )


@pytest.mark.parametrize("target", ["pyfunc.py", "MLmodel", "engage pickle", "extra module"])
def test_a_changed_file_in_mlflows_copy_is_refused_before_its_code_runs(
    served, tmp_path, private_tmp, target
):
    from serving import load_model
    from serving.rest import model_uri_for

    logged = _logged_model_folder(served)
    marker = tmp_path / "RAN"
    backup = tmp_path / "backup"
    shutil.copytree(logged, backup)
    try:
        if target == "pyfunc.py":  # the logged serving code, which `mlflow models serve` imports
            code = logged / "pyfunc.py"
            code.write_text(
                f"from pathlib import Path\nPath({str(marker)!r}).touch()\n" + code.read_text()
            )
        elif target == "MLmodel":  # the loader MLflow would run
            text = (logged / "MLmodel").read_text()
            (logged / "MLmodel").write_text(
                text.replace("mlflow.pyfunc.loaders.code_model", "evil.loader")
            )
        elif target == "engage pickle":  # the inner model folder, its own digests recomputed
            inner = next(p.parent for p in logged.rglob(MODEL_FILE))
            (inner / MODEL_FILE).write_bytes(pickle.dumps(_Trap(marker)))
        else:
            (logged / "sitecustomize.py").write_text(
                f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
            )
        with pytest.raises(
            ArtifactError, match="does not match its SHA-256|not covered by the signed manifest"
        ):
            load_model("models:/engagement@champion", tracking_uri=served.tracking_uri)
        with pytest.raises(ArtifactError):  # what `engage serve --model models:/...` serves from
            model_uri_for(
                "models:/engagement@champion",
                served.model_dir.parent,
                tmp_path / "serve",
                served.tracking_uri,
            )
        assert not marker.exists()
        assert list(private_tmp.iterdir()) == []
    finally:
        shutil.rmtree(logged)
        shutil.copytree(backup, logged)


def test_engage_serve_gets_a_verified_local_copy(served, tmp_path):
    from serving.rest import model_uri_for

    uri = model_uri_for(
        "models:/engagement@champion", served.model_dir.parent, tmp_path, served.tracking_uri
    )
    assert Path(uri).is_dir() and Path(uri).is_relative_to(
        tmp_path
    )  # served from here, not refetched
    verify_folder(Path(uri))


def test_a_failed_lookup_creates_no_tracking_store(tmp_path, private_tmp):
    from serving import load_model

    missing = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(
        ArtifactError, match=r"no MLflow tracking store at .*nowhere/mlflow\.db.*does not exist"
    ):
        load_model("models:/engagement@champion", tracking_uri=f"sqlite:///{missing}")
    assert not missing.parent.exists()
    assert list(private_tmp.iterdir()) == []


def test_an_unknown_name_is_refused_and_cleaned_up(served, private_tmp):
    from serving import load_model

    with pytest.raises(ArtifactError, match="cannot be fetched"):
        load_model("models:/no-such-model@champion", tracking_uri=served.tracking_uri)
    assert list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:token@host:5000/path", "http://***@host:5000/path"),
        ("https://token@mlflow.example.com", "https://***@mlflow.example.com"),
        ("postgresql+psycopg2://u:p%40ss@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
        (
            "cannot reach http://a:b@h/ and https://c:d@i/",
            "cannot reach http://***@h/ and https://***@i/",
        ),
        (
            "sqlite:///home/me@work/mlflow.db",
            "sqlite:///home/me@work/mlflow.db",
        ),  # a path, no credentials
        ("http://host:5000", "http://host:5000"),
        (None, None),
    ],
)
def test_credentials_in_uris_are_redacted(text, expected):
    assert redact(text) == expected


# --------------------------------------------------------------------------- artifacts


class _Thing:
    metadata: dict = {}


def test_artifact_round_trip_and_tamper_detection(tmp_path):
    folder = save_artifact(
        _Thing(), tmp_path, {"note": "x"}, registry={"registered_model": "engagement"}
    )
    assert resolve_model_dir("latest", tmp_path) == folder
    assert isinstance(load_artifact(folder), _Thing)
    data = bytearray((folder / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    (folder / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_artifact(folder)


def test_artifact_from_other_library_versions_is_refused_before_unpickling(tmp_path):
    folder = save_artifact(_Thing(), tmp_path, {})
    meta = json.loads((folder / "metadata.json").read_text())
    meta["library_versions"]["lightgbm"] = "0.0.1"
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "model.joblib").write_bytes(b"not a pickle: must never be read")
    sign_folder(folder)  # signed by the key holder, so only the version check can catch it
    with pytest.raises(ArtifactError, match=r"lightgbm 0\.0\.1 \(saved\)"):
        load_artifact(folder)


@pytest.mark.parametrize(
    ("edit", "saved"),
    [
        (lambda meta: meta.pop("model_format"), 1),  # saved before the format was recorded
        (lambda meta: meta.update(model_format=99), 99),  # saved by a newer engage
    ],
)
def test_artifact_of_another_model_format_is_refused_before_unpickling(tmp_path, edit, saved):
    folder = save_artifact(_Thing(), tmp_path, {})
    meta = json.loads((folder / "metadata.json").read_text())
    edit(meta)
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "model.joblib").write_bytes(b"not a pickle: must never be read")
    sign_folder(folder)
    with pytest.raises(
        ArtifactError, match=rf"model format {saved}, this one reads {MODEL_FORMAT}.*Retrain"
    ):
        load_artifact(folder)


def test_missing_manifest_and_half_written_folders_are_never_latest(tmp_path):
    good = save_artifact(_Thing(), tmp_path, {})
    (tmp_path / ".tmp-99999999T000000Z-abc").mkdir()  # an interrupted save
    newer_without_manifest = tmp_path / "99999999T000000Z-zzz"
    newer_without_manifest.mkdir()
    assert complete_versions(tmp_path) == [good]
    with pytest.raises(ArtifactError, match="MANIFEST.json is missing"):
        load_artifact(newer_without_manifest)


def test_a_failing_save_leaves_nothing_behind(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_artifact(Unpicklable(), tmp_path, {})
    assert list(tmp_path.iterdir()) == []
