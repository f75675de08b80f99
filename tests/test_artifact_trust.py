"""Trust in saved models: the signing key, what ``latest`` means, MLflow's copy, signals, secrets.

The tampering table (planted pickles, recomputed manifests, ...) is in test_reliability.py;
this module covers the key, the registry-backed ``latest``, the verification of MLflow's logged
copy before its code runs, SIGTERM/SIGINT during training and credentials in tracking URIs.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from features.artifact import (
    KEY_ENV,
    KEY_FILE_ENV,
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    key_id,
    load_artifact,
    model_key,
    redact,
    resolve_model_dir,
    save_artifact,
    stage_artifact,
    verify_folder,
)
from tests.serving_fixtures import ServingModel, serving_model
from training.signals import StopSignals, TrainingInterrupted

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    return serving_model(tmp_path_factory)


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


# --------------------------------------------------------------------------- signals


def test_sigterm_raises_training_interrupted_and_waits_inside_hold():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals() as signals:
        with pytest.raises(
            TrainingInterrupted, match="stopped by SIGTERM: no model saved"
        ) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once; never reached
        assert caught.value.exit_code == 128 + signal.SIGTERM
        steps = []
        with (
            pytest.raises(TrainingInterrupted, match="after the model was saved and registered"),
            signals.hold(),
        ):
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("finished the step")
        assert steps == ["finished the step"]
    assert (
        signal.getsignal(signal.SIGTERM),
        signal.getsignal(signal.SIGINT),
    ) == before  # handlers given back


def _stage_real_model(trained, models: Path):
    return stage_artifact(
        load_artifact(trained.model_dir),
        models,
        json.loads((trained.model_dir / METADATA_FILE).read_text()),
    )


def _log(staged, uri: str, small_data, signals: StopSignals):
    from features.contract import validate
    from serving.schema import input_example
    from training.tracking import log_run

    clean = validate(
        small_data.profiles.head(50),
        small_data.posts[
            small_data.posts["influencer"].isin(small_data.profiles["influencer"].head(50))
        ],
    )
    return log_run(
        uri=uri,
        experiment="engage",
        registered_model="engagement",
        params={"seed": 0},
        datasets=[],
        metrics={"model": {"mae_log_er": 0.5}},
        plots=[],
        staged=staged,
        example=input_example(clean.profiles, clean.posts),
        holdout_score=0.5,
        promote=False,
        champion_gate=lambda _dir, _name: None,
        hold=signals.hold,
    )


@pytest.mark.parametrize("moment", ["log_metrics", "log_model", "register_model"])
def test_a_signal_during_mlflow_logging_fails_cleanly_or_finishes(
    trained, small_data, tmp_path, monkeypatch, moment
):
    """SIGTERM sent to this process at one MLflow step: before registration the run ends FAILED with
    nothing registered or published; during registration the step completes, then it stops."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    models = tmp_path / "models"
    staged = _stage_real_model(trained, models)
    module = mlflow.pyfunc if moment == "log_model" else mlflow
    real = getattr(module, moment)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, moment, signalled)
    with StopSignals() as signals, pytest.raises(TrainingInterrupted) as caught:
        try:
            _log(staged, uri, small_data, signals)
        finally:
            staged.discard()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("engage").experiment_id])
    versions = (
        client.search_model_versions("name='engagement'")
        if client.search_registered_models()
        else []
    )
    published = [p for p in models.iterdir()]
    if moment == "register_model":
        assert caught.value.committed
        assert [r.info.status for r in runs] == ["FINISHED"] and len(versions) == 1
        assert [p.name for p in published] == [staged.final.name]
        assert resolve_model_dir("latest", models) == staged.final
    else:
        assert not caught.value.committed
        assert [r.info.status for r in runs] == ["FAILED"]
        assert versions == [] and published == []  # nothing registered, no folder, no staging left


_TRAIN_CLI = textwrap.dedent(
    """
    import sys
    from engage.cli import main
    sys.exit(main(["train", "--profiles", sys.argv[1], "--posts", sys.argv[2],
                   "--models-dir", sys.argv[3], "--tracking-uri", sys.argv[4], "--folds", "2"]))
    """
)


@pytest.mark.reliability
def test_sigterm_at_random_moments_of_engage_train(tmp_path):
    """`engage train` in a subprocess, SIGTERM at spread moments: every run ends FINISHED or
    FAILED (never RUNNING), every registered version has its published folder, every folder is
    registered, no staging folder is left, and the exit status says SIGTERM."""
    from mlflow import MlflowClient

    from tests.model_fixtures import write_small_data

    data = write_small_data(tmp_path / "data", n_influencers=400)
    models, uri = tmp_path / "models", f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        sys.executable,
        "-c",
        _TRAIN_CLI,
        str(data.profiles_path),
        str(data.posts_path),
        str(models),
        uri,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    first = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    seconds = time.monotonic() - start
    codes = []
    for fraction in (0.3, 0.6, 0.8, 0.9, 0.95, 1.0):
        process = subprocess.Popen(
            args,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(fraction * seconds)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=300)
        codes.append(process.returncode)
        # 0: it had finished; 143: stopped cleanly; -15: still importing, before training began
        assert process.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM), err[-2000:]
        assert "Traceback" not in err, err[-2000:]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("engage").experiment_id])
    versions = client.search_model_versions("name='engagement'")
    folders = {p.name for p in models.iterdir() if not p.name.startswith(".")}
    staging = [p.name for p in models.iterdir() if p.name.startswith(".tmp-")]
    print(
        f"\n[reliability] SIGTERM during `engage train` ({seconds:.0f} s runs) at "
        f"30-100 %: exit codes {codes}; runs {sorted(r.info.status for r in runs)}; "
        f"{len(versions)} versions, {len(folders)} folders, {len(staging)} staging left"
    )
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED"}
    assert {Path(v.tags["local_path"]).name for v in versions} == folders
    assert sum(r.info.status == "FINISHED" for r in runs) == len(versions)
    assert not staging
    for folder in folders:
        verify_folder(models / folder)


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


SECRET = "sekrit-Hunter2"


def test_tracking_uri_credentials_reach_no_param_metadata_pickle_or_message(
    small_data, tmp_path, monkeypatch
):
    """Training against ``http://engage:<token>@...``:
    the token is used to connect and nowhere else.

    The store behind the address is a local SQLite file here (see the reliability test for a real
    server); everything training prints, logs as params and saves is searched for the token.
    """
    from training import train as train_module

    secret_uri = f"http://engage:{SECRET}@127.0.0.1:9/"
    local_store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real_log_run, real_run = train_module.log_run, train_module.TrainingRun
    seen = {}

    class TrainingRun(real_run):  # the run starts (and logs its params) before training
        def __init__(self, uri, experiment, name, params, datasets):
            seen["uri"], seen["params"] = uri, params
            super().__init__(local_store, experiment, name, params, datasets)

    def log_run(**kwargs):
        seen["log_uri"] = kwargs["uri"]
        return real_log_run(**{**kwargs, "uri": local_store})

    monkeypatch.setattr(train_module, "TrainingRun", TrainingRun)
    monkeypatch.setattr(train_module, "log_run", log_run)
    messages: list[str] = []
    from features.contract import validate
    from tests.model_fixtures import fast_config

    config = fast_config(tmp_path, tracking_uri=secret_uri, num_boost_round=30, n_topics=3)
    clean = validate(
        small_data.profiles.head(600),
        small_data.posts[
            small_data.posts["influencer"].isin(small_data.profiles["influencer"].head(600))
        ],
    )
    result = train_module.run_training(
        clean,
        {"profiles": small_data.profiles_path, "posts": small_data.posts_path},
        config,
        progress=messages.append,
    )
    assert seen["uri"] == seen["log_uri"] == secret_uri  # used to connect
    assert SECRET not in json.dumps(seen["params"], default=str) and "***@127.0.0.1" in str(
        seen["params"]["tracking_uri"]
    )
    assert not [m for m in messages if SECRET in m] and any(
        "http://***@127.0.0.1:9/" in m for m in messages
    )
    for path in result.model_dir.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name
    assert SECRET not in json.dumps(load_artifact(result.model_dir).metadata, default=str)
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []


@pytest.mark.reliability
def test_a_tracking_server_uri_with_credentials_is_used_but_stored_nowhere(tmp_path):
    """`engage train` and `engage score` against a real MLflow server addressed as
    ``http://engage:<token>@host:port``: the token appears in no output and in no file the
    server, the artifact store or the model folder holds."""
    import urllib.request

    from serving.rest import free_port, stop_process_group
    from tests.model_fixtures import write_small_data

    data = write_small_data(tmp_path / "data", n_influencers=400)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={
            **os.environ,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        },
    )
    try:
        base = f"http://127.0.0.1:{port}"
        start = time.monotonic()
        while time.monotonic() - start < 120:  # the tracking server answers /health, not /ping
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        uri = f"http://engage:{SECRET}@127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        train = subprocess.run(
            [
                sys.executable,
                "-m",
                "engage.cli",
                "train",
                "--profiles",
                str(data.profiles_path),
                "--posts",
                str(data.posts_path),
                "--models-dir",
                str(tmp_path / "models"),
                "--tracking-uri",
                uri,
                "--folds",
                "2",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert train.returncode == 0, train.stderr[-3000:]
        score = subprocess.run(
            [
                sys.executable,
                "-m",
                "engage.cli",
                "score",
                "--model",
                "models:/engagement@champion",
                "--tracking-uri",
                uri,
                "--profiles",
                str(data.profiles_path),
                "--posts",
                str(data.posts_path),
                "--out",
                str(tmp_path / "scores.csv"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert score.returncode == 0, score.stderr[-3000:]
        output = train.stdout + train.stderr + score.stdout + score.stderr
        assert SECRET not in output and "http://***@127.0.0.1" in output
        leaked = [
            str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()
        ]
        scanned = sum(1 for p in tmp_path.rglob("*") if p.is_file())
        print(
            "\n[reliability] secrets: trained and scored through "
            f"{redact(uri)}; {scanned} files scanned (server db, artifact "
            f"store, model folder), {len(leaked)} contain the token"
        )
        assert leaked == []
    finally:
        stop_process_group(server)
