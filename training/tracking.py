"""MLflow tracking: one run per training, the model
registered, and the champion alias moved honestly.

The tracking URI is an argument (default: ``sqlite:///mlflow.db`` in the working folder, or
``MLFLOW_TRACKING_URI``: :func:`features.registry.resolve_tracking_uri`); nothing is set at
import time. How the saved model is packaged as an MLflow model (the code that serves it, its
signature and input example) is serving's business, not training's: :func:`log_run` is given it
as a :data:`ModelPackager`, which the ``engage`` command takes from serving.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.artifact import (
    MANIFEST_FILE,
    MLFLOW_DOWNLOAD_NOTE,
    ArtifactError,
    StagedArtifact,
    redact,
    sign_folder,
)
from features.registry import DEFAULT_TRACKING_URI
from training.gate import GateResult

CHAMPION, CHALLENGER = "champion", "challenger"
# MLflow's UI opens an experiment in the view its kind tag names; without it, MLflow 3 guesses and
# can open a training experiment as a GenAI one (traces, prompts). Values from mlflow's own UI.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT = "custom_model_development"
# Evaluations whose metrics get their own group in the MLflow UI (it groups by the text before "/").
EVALUATION_GROUPS = ("time_holdout", "forward")

# How a saved model folder becomes an MLflow model: ``package(model_dir, profiles, posts)``
# returns the keyword arguments of ``mlflow.pyfunc.log_model`` (the code that serves the model,
# its artifacts, signature and input example; the example drawn from the validated ``profiles``
# and ``posts``). engage passes serving's, :func:`serving.schema.package_model`.
ModelPackager = Callable[[Path, pd.DataFrame, pd.DataFrame], dict[str, Any]]


def require_packager(package: object) -> None:
    """Refuse a missing packager at once, rather than after the training it would package."""
    if not callable(package):
        raise TypeError(
            "package must be a ModelPackager, how the saved model is logged to MLflow "
            f"(engage passes serving.schema.package_model), not {package!r}"
        )


def flatten_metrics(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"model": {"mae_log_er": 0.5}} -> {"model.mae_log_er":
    0.5}; non-finite values are skipped."""
    flat: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "."))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            flat[name.replace("@", "_")] = float(value)
    return flat


def metric_groups(metrics: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names grouped by evaluation: ``cv/model.mae_log_er``,
    ``cv/with_history/model.spearman``, ``time_holdout/model.mae_log_er``, ``forward/mae_gain``."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if key in EVALUATION_GROUPS and isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{key}/"))
        elif key == "subsets" and isinstance(value, dict):
            for subset, rows in value.items():
                flat.update(flatten_metrics(rows, f"cv/{subset}/"))
        else:
            flat.update(flatten_metrics({key: value}, "cv/"))
    return flat


def version_description(metrics: dict[str, Any], data: str) -> str:
    """A registered version's description: what it was trained on and its headline metrics."""

    def pair(block: dict[str, Any] | None) -> str:
        if not block or "mae_log_er" not in block:
            return "n/a"
        return f"MAE {block['mae_log_er']:.3f} / Spearman {block.get('spearman', float('nan')):.3f}"

    lines = [
        f"Trained on {data}; {metrics.get('n_examples', '?')} "
        "examples. Metrics on log ER (MAE / Spearman):"
    ]
    cv = metrics.get("model", {})
    lines.append(
        f"- grouped CV: model {pair(cv)}, 80 % coverage "
        f"{cv.get('coverage_80', float('nan')):.3f}; persistence "
        f"{pair(metrics.get('baselines', {}).get('persistence'))}"
    )
    holdout = metrics.get("time_holdout") or {}
    if "model" in holdout:
        lines.append(
            f"- time holdout: model {pair(holdout['model'])}; persistence "
            f"{pair(holdout.get('baselines', {}).get('persistence'))}"
        )
    forward = metrics.get("forward") or {}
    if "model" in forward:
        lines.append(
            f"- forward protocol ({forward.get('n_creators')} creators): model "
            f"{pair(forward['model'])}; persistence {pair(forward.get('persistence'))}"
        )
    warnings = metrics.get("warnings") or []
    lines.append(
        f"- {len(warnings)} quality warning(s)"
        + (": " + "; ".join(warnings[:5]) if warnings else "")
    )
    return "\n".join(lines)


def run_name(platforms: list[str], campaigns: bool, started: datetime) -> str:
    """A run name a person can read in the MLflow UI: ``instagram posts 2026-12-02 00:41 UTC``."""
    return (
        f"{'+'.join(platforms) or 'engage'} "
        f"{'campaigns' if campaigns else 'posts'} {started:%Y-%m-%d %H:%M} UTC"
    )


def _ensure_experiment(uri: str, experiment: str) -> None:
    """Create the experiment if needed (artifacts beside
    a SQLite store) and mark it a training one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    try:
        if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(experiment) is None:
            # Artifacts next to the tracking database; MLflow's
            # default is ./mlruns in the working folder.
            artifacts = Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts"
            with contextlib.suppress(MlflowException):  # created meanwhile by a concurrent run
                mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
        found = mlflow.set_experiment(experiment)
    except MlflowException as exc:
        # A store MLflow refuses (a plain folder, which it no longer writes by default; a
        # database it cannot open) is the user's to fix, before any training is done.
        raise ArtifactError(
            f"MLflow tracking store {redact(uri)} cannot be used: {redact(exc.message)} "
            f"(the default is {DEFAULT_TRACKING_URI}; pass --tracking-uri sqlite:///PATH)"
        ) from exc
    if found.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_EXPERIMENT:
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT)


class TrainingRun:
    """The MLflow run of one training, started before the evaluations so it spans the whole run.

    Entering starts the run (named, in an experiment marked as a model-training one) and logs the
    parameters and input datasets, so a run that fails shows what it was given; leaving on an
    exception (a signal included) ends it ``FAILED``. :func:`log_run` logs the results into it and
    ends it.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        name: str,
        params: dict[str, Any],
        datasets: list[dict[str, Any]],
    ):
        self.uri, self.experiment, self.name = uri, experiment, name
        self.params, self.datasets = params, datasets
        self.run_id: str | None = None

    def __enter__(self) -> TrainingRun:
        import mlflow

        with store_lock(self.uri):
            _ensure_experiment(self.uri, self.experiment)
            self.run_id = mlflow.start_run(run_name=self.name).info.run_id
            try:
                _log_inputs(self.params, self.datasets)
            except BaseException:
                mlflow.end_run("FAILED")
                raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:  # log_run did not end it
            with store_lock(self.uri), _no_printed_url(self.uri):
                mlflow.end_run("FAILED" if exc_type is not None else "FINISHED")


def _log_inputs(params: dict[str, Any], datasets: list[dict[str, Any]]) -> None:
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    mlflow.log_params({k: v for k, v in params.items() if v is not None})
    for info in datasets:
        info = dict(info)
        frame, sample = info.pop("frame"), info.pop("sample", None)
        if frame is not None:
            dataset = from_pandas(
                frame, source=info["path"], name=info["name"], digest=str(info["fingerprint"])[:8]
            )
        else:
            dataset = _sampled_dataset(info, sample)
        mlflow.log_input(dataset, context="training")
        mlflow.set_tags({f"data.{info['name']}.{k}": v for k, v in info.items() if k != "name"})


def _sampled_dataset(info: dict[str, Any], sample: pd.DataFrame) -> Any:
    """An MLflow dataset for an input of which the driver holds only ``sample`` (Dask training).

    A pandas dataset would profile the sample (its row count, its digest) as if it were the
    input; this one has the sample's schema and the input files' fingerprint as digest. The rows
    and date range of the whole input are in the run's ``data.<name>.*`` tags.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.models import infer_signature

    # mlflow declares Dataset.profile abstract without ABCMeta; MetaDataset is built this way
    # in mlflow itself.
    return MetaDataset(  # type: ignore[abstract]
        resolve_dataset_source(info["path"]),
        name=info["name"],
        digest=str(info["fingerprint"])[:8],
        schema=infer_signature(sample).inputs,
    )


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise runs that share one SQLite store.

    Concurrent processes otherwise race in MLflow's table creation ("table ... already exists",
    "duplicate column name") and in the champion/challenger decision.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock_path = Path(uri.removeprefix("sqlite:///")).resolve().with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def log_run(**kwargs: Any) -> dict[str, Any]:
    """:func:`_log_run` under a lock on the tracking store (see :func:`store_lock`)."""
    with store_lock(kwargs["uri"]), _no_printed_url(kwargs["uri"]):
        return _log_run(**kwargs)


@contextlib.contextmanager
def _no_printed_url(uri: str) -> Iterator[None]:
    """Keep MLflow from printing "View run ... at:
    <tracking URI>" when the URI holds credentials."""
    if redact(uri) == uri:
        yield
        return
    name = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    previous = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _log_run(
    *,
    uri: str,
    experiment: str,
    registered_model: str,
    params: dict[str, Any],
    datasets: list[dict[str, Any]],
    metrics: dict[str, Any],
    plots: list[Path],
    staged: StagedArtifact,
    package: ModelPackager,
    profiles: pd.DataFrame,
    posts: pd.DataFrame,
    holdout_score: float,
    promote: bool,
    champion_gate: Callable[[Path, str], GateResult | None],
    description: str = "",
    hold: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> dict[str, Any]:
    """Log everything about one run, register the staged model, publish it and set its alias.

    The model is logged as ``package(staged.folder, profiles, posts)`` says (a
    :data:`ModelPackager`; ``profiles`` and ``posts`` are validated rows for its input example).

    ``champion_gate(model_dir, name)`` compares this run's holdout model with the current
    champion on holdout examples of creators the champion did not train on
    (:func:`training.gate.compare_on_unseen`; None if the champion cannot be loaded); the new
    version becomes champion only if it wins, or if ``promote`` is set. Logged into the active
    run (:class:`TrainingRun`) if there is one, else into a new run.

    Until the model is logged, any failure (a signal included: see :mod:`training.signals`) ends
    the run ``FAILED`` with nothing registered. Registering, publishing the folder and setting
    the alias then run under ``hold()`` (signals wait) and are undone together if one fails.
    """
    import mlflow
    from mlflow import MlflowClient

    require_packager(package)
    active = mlflow.active_run()
    if active is None:  # called on its own (tests, tools): a run of its own
        _ensure_experiment(uri, experiment)
        run = mlflow.start_run()
    else:
        run = active
    client = MlflowClient(tracking_uri=uri)  # after the URI is set: the registry follows it
    try:
        if active is None:
            _log_inputs(params, datasets)
        mlflow.log_metrics(metric_groups(metrics))
        mlflow.log_dict(json.loads(json.dumps(metrics, default=str)), "metrics.json")
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        info = mlflow.pyfunc.log_model(name="model", **package(staged.folder, profiles, posts))
        sign_logged_model(client, info.model_id, info.model_uri, staged.key)
        decision, reason = _decide_alias(client, registered_model, promote, champion_gate)
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    with hold():
        version = None
        try:
            version = mlflow.register_model(info.model_uri, registered_model)
            client.set_model_version_tag(
                registered_model, version.version, "local_path", str(staged.final.resolve())
            )
            client.set_model_version_tag(
                registered_model, version.version, "holdout_mae_log_er", f"{holdout_score:.6f}"
            )
            facts = {
                "run_id": run.info.run_id,
                "model_version": version.version,
                "alias": decision,
                "alias_reason": reason,
                "model_uri": info.model_uri,
            }
            registry = {
                "registered_model": registered_model,
                **facts,
                "tracking_uri": redact(uri),
                "registered_at": datetime.now(UTC).isoformat(),
            }
            staged.publish(registry)
            # Last: once the alias has moved, a rollback could no longer give it back.
            client.set_registered_model_alias(registered_model, decision, version.version)
        except BaseException:
            staged.unpublish()
            if version is not None:
                with contextlib.suppress(Exception):
                    client.delete_model_version(registered_model, version.version)
            mlflow.end_run("FAILED")
            raise
        with contextlib.suppress(
            Exception
        ):  # the model is registered and in place: the tags are extras
            mlflow.set_tags(
                {"alias": decision, "alias_reason": reason, "model_dir": str(staged.final)}
            )
            client.set_model_version_tag(registered_model, version.version, "alias_reason", reason)
            if description:
                client.update_model_version(
                    registered_model,
                    version.version,
                    description=f"{description}\nAlias at registration: @{decision} ({reason}).",
                )
        mlflow.end_run("FINISHED")
    return facts


def sign_logged_model(client: Any, model_id: str, model_uri: str, key: bytes) -> None:
    """Sign MLflow's copy of a model: a ``MANIFEST.json`` over every file of the logged model.

    Serving from ``models:/...`` downloads the model, checks this manifest, and only then lets
    MLflow import the logged ``pyfunc.py`` (see :func:`features.registry.download_verified`).
    """
    import mlflow

    with tempfile.TemporaryDirectory(prefix="engage-sign-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        (local / MLFLOW_DOWNLOAD_NOTE).unlink(missing_ok=True)
        sign_folder(local, key)
        client.log_model_artifact(model_id, str(local / MANIFEST_FILE))


def _decide_alias(
    client: Any, name: str, promote: bool, champion_gate: Callable[[Path, str], GateResult | None]
) -> tuple[str, str]:
    if promote:
        return CHAMPION, "promoted with --promote"
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # no champion yet (MLflow raises a RESOURCE_DOES_NOT_EXIST error)
        return CHAMPION, "first model: no champion yet"
    champion = f"champion v{current.version}"
    local = Path(current.tags.get("local_path", ""))
    result = champion_gate(local, champion) if local.is_dir() else None
    if result is None:  # a champion that cannot be loaded cannot defend its title
        return CHAMPION, f"{champion} could not be loaded from {local} to compare"
    if not result.compared:
        return (
            CHALLENGER,
            f"{result.reason}; the champion stays (`engage promote VERSION` moves it)",
        )
    return (CHAMPION if result.wins else CHALLENGER), f"time holdout {result.reason}"
