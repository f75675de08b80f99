"""What data scientists read about a run in MLflow (training/tracking.py): names, groups,
failed runs, campaigns, and tracking addresses whose credentials are stored nowhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.artifact import load_artifact, redact
from features.contract import validate
from serving.schema import package_model
from tests.model_fixtures import SmallData
from tests.training_fixtures import tracking_store, training_metrics
from training.tracking import EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT, metric_groups

REPO = Path(__file__).resolve().parents[2]


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
        package=package_model,
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


def test_metrics_are_grouped_by_evaluation_for_the_mlflow_ui():
    names = metric_groups(training_metrics())
    assert names["cv/model.mae_log_er"] == 0.5
    assert names["cv/baselines.ridge.spearman"] == 0.6
    assert names["cv/with_history/ridge.mae_log_er"] == 0.39
    assert names["time_holdout/model.mae_log_er"] == 0.6
    assert names["forward/model.spearman"] == 0.88 and names["forward/mae_gain"] == 0.09
    assert {name.split("/")[0] for name in names} == {"cv", "time_holdout", "forward"}
    assert all(
        np.isfinite(value) for value in names.values()
    )  # NaN figures (empty subsets) are not logged


@pytest.mark.parametrize("package", ["missing", None])
def test_training_without_a_packager_is_a_type_error_before_any_work(tmp_path, package):
    """Training does not know how a model is served: the caller says it (engage passes
    serving.schema.package_model), and forgetting it fails at once, never after the fit."""
    from tests.model_fixtures import fast_config
    from training.distributed import run_training_dask
    from training.tracking import log_run
    from training.train import run_training

    config = fast_config(tmp_path)
    given = {} if package == "missing" else {"package": package}
    with pytest.raises(TypeError, match="package"):
        run_training(None, {}, config, **given)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="package"):
        run_training_dask("profiles", "posts", config, client=None, **given)
    logged = {
        "uri": config.tracking_uri,
        "experiment": "engage",
        "registered_model": "engagement",
        "params": {},
        "datasets": [],
        "metrics": {},
        "plots": [],
        "staged": None,
        "profiles": None,
        "posts": None,
        "holdout_score": 0.5,
        "promote": False,
        "champion_gate": lambda _dir, _name: None,
    }
    with pytest.raises(TypeError, match="package"):
        log_run(**logged, **given)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "models").exists()


# --------------------------------------------------------------------------- a real run in MLflow


def test_the_run_reads_well_in_the_mlflow_ui(trained, tmp_path):
    from mlflow import MlflowClient

    uri, _ = tracking_store(trained)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("engage")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT == "custom_model_development"
    run = client.get_run(trained.tracking["run_id"])
    assert re.fullmatch(r"instagram posts \d{4}-\d\d-\d\d \d\d:\d\d UTC", run.info.run_name)
    groups = {name.split("/")[0] for name in run.data.metrics}
    assert groups == {"cv", "time_holdout", "forward"}, sorted(run.data.metrics)[:20]
    assert (
        "cv/model.mae_log_er" in run.data.metrics
        and "time_holdout/model.mae_log_er" in run.data.metrics
    )
    # The run spans the training: started before the model was fitted and saved.
    meta = json.loads((trained.model_dir / "metadata.json").read_text())
    saved = datetime.fromisoformat(meta["trained_at"]).timestamp() * 1000
    assert run.info.start_time < saved - 1000 and run.info.end_time > saved
    assert run.info.status == "FINISHED"
    version = client.get_model_version("engagement", trained.tracking["model_version"])
    assert (
        "grouped CV: model MAE" in version.description
        and f"{trained.metrics['model']['mae_log_er']:.3f}" in version.description
    )
    assert version.tags["alias_reason"] == trained.tracking["alias_reason"]
    # Logged as serving's packager says: its code, the engage folder, signature, input example.
    from mlflow.models import Model

    from features.registry import MODEL_ARTIFACT, download_verified
    from serving.schema import input_signature

    ref = f"models:/engagement/{version.version}"
    logged_model = Model.load(str(download_verified(ref, uri, tmp_path / "logged")))
    assert logged_model.signature == input_signature()
    assert logged_model.saved_input_example_info is not None
    assert MODEL_ARTIFACT in logged_model.flavors["python_function"]["artifacts"]
    assert isinstance(trained.metrics["warnings"], list)
    logged = json.loads(
        Path(client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))).read_text()
    )
    assert logged["warnings"] == trained.metrics["warnings"]


def test_a_run_that_fails_during_the_evaluations_is_in_mlflow_as_failed(
    small_data: SmallData, tmp_path, monkeypatch
):
    """The run starts before the evaluations: a failure in cross-validation leaves a FAILED run
    that shows what it was given, and no model."""
    from mlflow import MlflowClient

    from tests.model_fixtures import fast_config
    from training import train as train_module

    def broken(*args, **kwargs):
        raise RuntimeError("fold 1 ran out of memory")

    monkeypatch.setattr(train_module, "cross_validate", broken)
    config = fast_config(tmp_path)
    clean = validate(
        small_data.profiles.head(300),
        small_data.posts[
            small_data.posts["influencer"].isin(small_data.profiles["influencer"].head(300))
        ],
    )
    with pytest.raises(RuntimeError, match="out of memory"):
        train_module.run_training(
            clean,
            {"profiles": small_data.profiles_path, "posts": small_data.posts_path},
            config,
            package=package_model,
            progress=lambda _: None,
        )
    client = MlflowClient(tracking_uri=config.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("engage").experiment_id])
    assert run.info.status == "FAILED" and run.info.run_name.startswith("instagram posts ")
    assert run.data.params["data_fingerprint"] and run.data.params["n_examples"]
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"profiles", "posts"}
    assert not (tmp_path / "models").exists() or not [
        p for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")
    ]


def _campaigns(data: SmallData, folder: Path) -> Path:
    """Campaign results: each creator's latest two posts
    that have an earlier one, as a campaigns table."""
    posts = data.posts.assign(
        t=pd.to_datetime(data.posts["posted_at"], utc=True, format="ISO8601")
    ).sort_values(["influencer", "t"])
    posts = posts[posts.groupby("influencer").cumcount() >= 1]
    latest = posts.groupby("influencer").tail(2)
    table = latest.rename(columns={"post_id": "campaign_id"})[
        ["influencer", "campaign_id", "posted_at", "likes", "comments"]
    ]
    path = folder / "campaigns.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_campaigns_run_is_visible_as_one(small_data: SmallData, trained, tmp_path):
    from mlflow import MlflowClient

    from features.contract import read_table
    from tests.model_fixtures import fast_config
    from training.train import file_fingerprint, run_training

    campaigns = _campaigns(small_data, tmp_path)
    config = fast_config(tmp_path)
    result = run_training(
        validate(small_data.profiles, small_data.posts),
        {"profiles": small_data.profiles_path, "posts": small_data.posts_path},
        config,
        package=package_model,
        campaigns_path=campaigns,
        progress=lambda _: None,
    )
    meta = json.loads((result.model_dir / "metadata.json").read_text())
    posts_only = json.loads((trained.model_dir / "metadata.json").read_text())
    fingerprint = file_fingerprint([campaigns])
    assert meta["training_mode"] == "campaigns" and meta["inputs"]["campaigns"] == {
        "path": str(campaigns),
        "fingerprint": fingerprint,
        "rows": len(read_table(campaigns)),
    }
    assert (
        meta["data_fingerprint"] != posts_only["data_fingerprint"]
    )  # same profiles and posts, plus campaigns
    client = MlflowClient(tracking_uri=config.tracking_uri)
    run = client.get_run(result.tracking["run_id"])
    assert (
        run.data.params["training_mode"] == "campaigns"
        and run.data.params["campaigns_fingerprint"] == fingerprint
    )
    assert (
        run.data.params["campaigns"] == str(campaigns)
        and run.data.params["data_fingerprint"] == meta["data_fingerprint"]
    )
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert (
        set(inputs) == {"profiles", "posts", "campaigns"}
        and inputs["campaigns"].digest == fingerprint[:8]
    )
    assert run.data.tags["data.campaigns.fingerprint"] == fingerprint
    assert " campaigns " in run.info.run_name
    assert "forward" not in result.metrics  # the forward protocol is for post histories
