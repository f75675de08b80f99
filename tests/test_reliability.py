"""Reliability: artifact integrity, interrupted saves, concurrent runs, serving, secrets.

Heavy tests carry ``@pytest.mark.reliability`` (``make reliability`` runs them with ``-s`` and
prints their figures). The input fuzzers are in tests/test_fuzz_inputs.py.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from features.artifact import (
    LEGACY_MANIFEST,
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    load_artifact,
    model_key,
    resolve_model_dir,
    save_artifact,
    sha256_of,
    sign_folder,
)

REPO = Path(__file__).resolve().parents[1]


def figure(line: str) -> None:
    """Printed with -s (``make reliability``)."""
    print(f"\n[reliability] {line}", flush=True)


# Fuzzed bad input (files, tables, arguments, requests) through the CLI, the Python API and
# REST: tests/fuzzing.py lists the kinds, tests/test_fuzz_inputs.py runs them.


# --------------------------------------------------------------------------- artifact integrity


class _Trap:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _recompute_manifest(folder: Path) -> None:
    """What an attacker who can write the folder does: every digest recomputed, the HMAC kept."""
    signed = json.loads((folder / MANIFEST_FILE).read_text())
    signed["files"] = {n: sha256_of(folder / n) for n in signed["files"] if (folder / n).is_file()}
    (folder / MANIFEST_FILE).write_text(json.dumps(signed))


REGISTERED = {"registered_model": "engagement", "model_version": "1"}  # as training records it


def _trapped_model(models_dir: Path, marker: Path) -> Path:
    folder = save_artifact(
        {"weights": list(range(1000))}, models_dir, {"note": "test"}, registry=REGISTERED
    )
    (folder / MODEL_FILE).write_bytes(pickle.dumps(_Trap(marker)))
    return folder


def _tamper(folder: Path, how: str, rng: random.Random) -> None:
    key = model_key()
    if how == "byte_changed":  # the pickle swapped for the trap, the manifest untouched
        return
    if how == "recomputed_manifest":  # the old attack: digests recomputed to match the trap
        _recompute_manifest(folder)
        return
    if how == "legacy_sha256_manifest":  # signed manifest replaced by the old, unkeyed format
        (folder / MANIFEST_FILE).unlink()
        (folder / LEGACY_MANIFEST).write_text(
            "".join(f"{sha256_of(folder / n)}  {n}\n" for n in (MODEL_FILE, METADATA_FILE))
        )
        return
    if how == "signed_with_another_key":
        sign_folder(folder, b"an attacker's own key, 32+ characters long")
        return
    if how == "planted_extra_file":  # signed by the key holder, then a module dropped beside it
        sign_folder(folder, key)
        (folder / "sitecustomize.py").write_text("import os\n")
        return
    if how == "hmac_removed":
        signed = json.loads((folder / MANIFEST_FILE).read_text())
        del signed["hmac"]
        (folder / MANIFEST_FILE).write_text(json.dumps(signed))
        return
    # From here on the key holder signed the trap, and something else is wrong.
    sign_folder(folder, key)
    if how == "byte_changed_metadata":
        data = bytearray((folder / METADATA_FILE).read_bytes())
        i = rng.randrange(len(data))
        data[i] = (data[i] + 1) % 256
        (folder / METADATA_FILE).write_bytes(bytes(data))
    elif how == "missing_manifest":
        (folder / MANIFEST_FILE).unlink()
    elif how == "missing_model":
        (folder / MODEL_FILE).unlink()
    elif how == "missing_metadata":
        (folder / METADATA_FILE).unlink()
    elif how == "manifest_omits_model":
        (folder / MODEL_FILE).rename(folder.parent / "aside.joblib")
        sign_folder(folder, key)
        (folder.parent / "aside.joblib").rename(folder / MODEL_FILE)
    elif how in ("other_sklearn", "other_python", "no_versions"):
        meta = json.loads((folder / METADATA_FILE).read_text())
        if how == "other_sklearn":
            meta["library_versions"]["scikit-learn"] = "0.24.2"
        elif how == "other_python":
            meta["library_versions"]["python"] = "3.8.10"
        else:
            del meta["library_versions"]
        (folder / METADATA_FILE).write_text(json.dumps(meta))
        sign_folder(folder, key)


TAMPERINGS = [
    "byte_changed",
    "recomputed_manifest",
    "legacy_sha256_manifest",
    "signed_with_another_key",
    "planted_extra_file",
    "hmac_removed",
    "byte_changed_metadata",
    "missing_manifest",
    "missing_model",
    "missing_metadata",
    "manifest_omits_model",
    "other_sklearn",
    "other_python",
    "no_versions",
]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_tampered_artifact_is_refused_before_unpickling(tmp_path, how):
    from serving import load_model

    marker = tmp_path / "UNPICKLED"
    folder = _trapped_model(tmp_path / "models", marker)
    _tamper(folder, how, random.Random(how))
    with pytest.raises(ArtifactError, match=str(folder.name)):
        load_artifact(folder)
    with pytest.raises(ArtifactError):
        load_model(folder)
    with pytest.raises(ArtifactError):
        load_model("latest", models_dir=tmp_path / "models")
    assert not marker.exists(), f"{how}: the pickle was unpickled before the artifact was refused"


@pytest.mark.parametrize("offset_seed", range(8))
def test_one_byte_changed_anywhere_in_a_real_pickle_is_refused(tmp_path, offset_seed):
    folder = save_artifact({"weights": np.arange(5000)}, tmp_path / "models", {})
    data = bytearray((folder / MODEL_FILE).read_bytes())
    i = random.Random(offset_seed).randrange(len(data))
    data[i] ^= 0x01
    (folder / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_artifact(folder)


@pytest.mark.parametrize("how", ["truncated", "not_a_pickle", "empty"])
def test_a_signed_but_damaged_pickle_is_an_artifact_error_not_a_traceback(tmp_path, how):
    """Damaged before it was signed (a disk error, an interrupted copy that was then signed):
    the signature matches, unpickling fails, and that is a clear ArtifactError (exit 2)."""
    folder = save_artifact({"weights": np.arange(50_000)}, tmp_path / "models", {})
    data = (folder / MODEL_FILE).read_bytes()
    damaged = {"truncated": data[: len(data) // 3], "not_a_pickle": b"<html>", "empty": b""}[how]
    (folder / MODEL_FILE).write_bytes(damaged)
    sign_folder(folder, model_key())
    with pytest.raises(
        ArtifactError, match=r"model\.joblib matches its signature but cannot be unpickled"
    ):
        load_artifact(folder)


def test_a_signed_folder_of_something_else_is_not_served(tmp_path, capsys):
    """A pickle signed with the key that is not an engage model fails at load, with exit 2,
    not on the first request (score) or in a server that dies as it starts (serve)."""
    from engage.cli import EXIT_BAD_INPUT, main
    from serving import load_model

    folder = save_artifact({"weights": [1, 2]}, tmp_path / "models", {}, registry=REGISTERED)
    with pytest.raises(ArtifactError, match=r"model\.joblib holds a dict, not an engage model"):
        load_model(folder)
    assert main(["serve", "--model", str(folder), "--port", "0"]) == EXIT_BAD_INPUT
    assert "not an engage model" in capsys.readouterr().err


def test_the_trap_does_fire_when_the_key_holder_signed_it(tmp_path):
    """Control: signed with the right key the trap is
    unpickled, so the tests above are not vacuous."""
    marker = tmp_path / "UNPICKLED"
    folder = _trapped_model(tmp_path / "models", marker)
    sign_folder(folder, model_key())
    load_artifact(folder)
    assert marker.exists()


# --------------------------------------------------------------------------- interrupted saves

_SAVER = textwrap.dedent(
    """
    import sys, numpy as np
    from pathlib import Path
    from features.artifact import save_artifact
    big = {"weights": np.random.default_rng(0).random(%d)}
    print("saving", flush=True)
    save_artifact(
        big, Path(sys.argv[1]), {"note": "big"}, registry={"registered_model": "engagement"}
    )
    print("saved", flush=True)
    """
)


def _start_saver(models_dir: Path, n: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _SAVER % n, str(models_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.reliability
def test_sigkill_during_save_leaves_the_previous_model_loadable(tmp_path):
    models_dir = tmp_path / "models"
    previous = save_artifact(
        {"weights": [1, 2, 3]}, models_dir, {"note": "previous"}, registry=REGISTERED
    )
    n = 25_000_000  # ~200 MB of float64: a save long enough to be killed in the middle
    calibrate = _start_saver(tmp_path / "calibration", n)
    assert calibrate.stdout is not None and calibrate.stdout.readline().strip() == "saving"
    start = time.monotonic()
    calibrate.wait(timeout=300)
    save_seconds = time.monotonic() - start
    rng = random.Random(0)
    outcomes = Counter()
    kills = 6
    for _ in range(kills):
        process = _start_saver(models_dir, n)
        assert process.stdout is not None and process.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0, save_seconds * 1.1))
        process.kill()
        process.wait()
        latest = resolve_model_dir("latest", models_dir)
        model = load_artifact(latest)  # a complete folder: verifies and loads
        outcomes["killed_before_rename" if latest == previous else "completed_before_kill"] += 1
        if latest != previous:
            assert model["weights"].shape == (n,)
            previous = latest
    leftovers = [p.name for p in models_dir.iterdir() if p.name.startswith(".tmp-")]
    figure(
        f"interrupted saves: {kills} SIGKILLs at random moments of a {save_seconds:.1f} s save; "
        f"{dict(outcomes)}; 'latest' always complete and loadable; "
        f"{len(leftovers)} staging folder(s) left behind (ignored)"
    )


# --------------------------------------------------------------------------- concurrent runs

_TRAINER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.model_fixtures import load_small_data, train_small
    data_dir, folder = Path(sys.argv[1]), Path(sys.argv[2])
    result = train_small(folder, load_small_data(data_dir), num_boost_round=60, n_topics=3)
    print("RESULT", result.model_dir, flush=True)
    """
)


@pytest.mark.reliability
def test_four_concurrent_trainings_all_finish_with_distinct_versions(tmp_path):
    from mlflow import MlflowClient

    from serving import load_model
    from tests.model_fixtures import write_small_data

    write_small_data(tmp_path / "data", n_influencers=600)
    folder = tmp_path / "shared"
    folder.mkdir()
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TRAINER, str(tmp_path / "data"), str(folder)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    seconds = time.monotonic() - start
    failures = [
        (p.returncode, err[-2000:])
        for p, (_, err) in zip(procs, outputs, strict=True)
        if p.returncode != 0
    ]
    figure(
        f"concurrent trainings: 4 started at once, {4 - len(failures)} "
        f"finished, {len(failures)} failed, {seconds:.0f} s"
    )
    assert not failures, failures
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("engage")
    runs = client.search_runs([experiment.experiment_id])
    versions = client.search_model_versions("name='engagement'")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    dirs = {v.tags["local_path"] for v in versions}
    assert len(dirs) == 4 and all(Path(d).is_dir() for d in dirs)
    for d in dirs:
        load_model(d)
    aliases = client.get_registered_model("engagement").aliases
    assert "champion" in aliases
    for alias, version in aliases.items():
        assert str(version) in {str(v.version) for v in versions}
        load_model(f"models:/engagement@{alias}", tracking_uri=uri)
    figure(
        f"concurrent trainings: {len(runs)} runs recorded, versions "
        f"{sorted(int(v.version) for v in versions)}, aliases {dict(aliases)} all load"
    )


# --------------------------------------------------------------------------- serving under load


@pytest.mark.reliability
def test_serving_under_load(tmp_path_factory):
    import importlib.util

    from tests.serving_fixtures import serving_model

    # Loaded by path: benchmarks/ on sys.path would shadow
    # the serving package with benchmarks/serving.py.
    spec = importlib.util.spec_from_file_location(
        "engage_reliability_bench", REPO / "benchmarks" / "reliability.py"
    )
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    run_load = bench.run_load

    served = serving_model(tmp_path_factory)
    result = run_load(served.model_dir, served.data, requests=2000, clients=8)
    figure(result.summary())
    assert result.errors == 0, result.error_samples
    assert result.ok == 2000
    assert all(400 <= s < 500 for s in result.bad_statuses.values()), result.bad_statuses
    assert result.alive_after_bad


# --------------------------------------------------------------------------- secrets and paths

_TRAIN_AND_SCORE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from serving import load_model
    from tests.model_fixtures import load_small_data, train_small
    data_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = load_small_data(data_dir)
    profiles, posts = data.profiles, data.posts
    result = train_small(out, data, num_boost_round=40, n_topics=3)
    predictor = load_model("latest", models_dir=out / "models")
    first = profiles.head(20)
    their_posts = posts[posts["influencer"].isin(first["influencer"])]
    predictor.predict(first, their_posts).to_csv(out / "scores.csv", index=False)
    """
)

SECRET = "sekrit-Hunter2"


def _files(root: Path, skip: tuple[str, ...] = ()) -> set[Path]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        found.update(Path(dirpath) / f for f in filenames)
    return found


@pytest.mark.reliability
def test_train_and_score_write_only_where_told_and_log_no_secrets(tmp_path):
    from tests.model_fixtures import write_small_data

    data_dir, out, cwd, home = (
        tmp_path / "data",
        tmp_path / "out",
        tmp_path / "cwd",
        tmp_path / "home",
    )
    write_small_data(data_dir, n_influencers=400)
    for d in (out, cwd, home):
        d.mkdir()
    skip = (
        ".git",
        ".venv",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
    )
    repo_before = _files(REPO, skip)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "MLFLOW_TRACKING_PASSWORD": SECRET,
        # Overridden by the explicit sqlite URI.
        "MLFLOW_TRACKING_URI": f"http://engage:{SECRET}@127.0.0.1:9/",
    }
    done = subprocess.run(
        [sys.executable, "-c", _TRAIN_AND_SCORE, str(data_dir), str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stdout + done.stderr
    # Nothing in the working folder, nothing in $HOME beyond caches, nothing new in the repo.
    stray_cwd = sorted(str(p.relative_to(cwd)) for p in _files(cwd))
    stray_home = sorted(
        str(p.relative_to(home))
        for p in _files(home)
        if not str(p.relative_to(home)).startswith((".cache", ".config/matplotlib", ".matplotlib"))
    )
    # Other engineers edit the repo concurrently: count only what a run would create.
    repo_new = sorted(
        str(p.relative_to(REPO))
        for p in _files(REPO, skip) - repo_before
        if p.relative_to(REPO).parts[0]
        in ("mlruns", "mlartifacts", "models", "mlflow.db", "build", "outputs")
    )
    figure(
        f"paths: {len(_files(out))} files written under the named folder; stray: "
        f"cwd={stray_cwd[:5]} ({len(stray_cwd)}), home={stray_home[:5]}, repo={repo_new[:5]}"
    )
    assert not stray_cwd and not stray_home and not repo_new
    # No secret in anything logged: the tracking database and every artifact file.
    leaked = [str(p) for p in _files(out) | _files(cwd) if SECRET.encode() in p.read_bytes()]
    figure(
        f"secrets: scanned {len(_files(out))} files (tracking db, "
        f"artifacts, model folders) for the secret: {len(leaked)} contain it"
    )
    assert not leaked


@pytest.mark.reliability
def test_sigkill_during_training_keeps_latest_and_champion_loadable(tmp_path):
    """A real training run (train_small, --promote)
    killed at a random moment: the champion alias and
    ``latest`` still point at complete models."""
    from mlflow import MlflowClient

    from serving import load_model
    from tests.model_fixtures import write_small_data

    write_small_data(tmp_path / "data", n_influencers=600)
    folder = tmp_path / "shared"
    folder.mkdir()
    args = [
        sys.executable,
        "-c",
        _TRAINER.replace("n_topics=3)", "n_topics=3, promote=True)"),
        str(tmp_path / "data"),
        str(folder),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    first = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    train_seconds = time.monotonic() - start
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    champion_before = client.get_model_version_by_alias("engagement", "champion").version
    moment = (
        random.Random(1).uniform(0.5, 1.0) * train_seconds
    )  # the later half: features, fitting, saving, logging
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(moment)
    finished_first = process.poll() is not None
    process.kill()
    process.wait()
    latest = resolve_model_dir("latest", folder / "models")
    load_model(latest)
    champion = client.get_model_version_by_alias("engagement", "champion")
    load_model("models:/engagement@champion", tracking_uri=uri)
    versions = client.search_model_versions("name='engagement'")
    staging = [p.name for p in (folder / "models").iterdir() if p.name.startswith(".")]
    figure(
        f"killed training: SIGKILL at {moment:.0f} s of a "
        f"{train_seconds:.0f} s run (finished first: {finished_first}); "
        f"champion v{champion_before} -> v{champion.version}; "
        f"{len(versions)} registered versions; latest={latest.name} loads; "
        f"{len(staging)} staging folder(s) left"
    )
    assert champion.version == champion_before or Path(champion.tags["local_path"]).is_dir()
