"""REST serving with MLflow's scoring server: build the pyfunc model for a folder and run it.

``engage serve`` runs MLflow's scoring app (the one ``mlflow models serve`` runs) with uvicorn,
behind the limits of :mod:`serving.server`, with ``--workers`` processes (default: one per CPU).
For an MLflow reference (``models:/engagement@champion``) the registered model is downloaded,
checked against its signed manifest, and that local copy is served. For a local
``models/<version>`` folder a pyfunc model is saved in a temporary folder with
``mlflow.pyfunc.save_model(python_model=<serving/pyfunc.py>, artifacts={"engage_model": folder})``,
the same way training logs it, so the served code is this checkout's and the folder is verified
(manifest, library versions) before the server starts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from features.artifact import resolve_model_dir, verify_artifact
from features.registry import download_verified, engage_folder, resolve_tracking_uri
from serving.limits import ServerLimits, machine_cpus
from serving.predictor import MLFLOW_SCHEMES, load_engage_model
from serving.server import LIMITS_ENV, MODEL_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_pyfunc_model(model_dir: Path, dst: Path) -> Path:
    """Save an MLflow pyfunc model for a verified ``models/<version>`` folder under ``dst``."""
    import mlflow

    from serving.schema import pyfunc_model

    verify_artifact(model_dir)
    target = Path(dst) / "pyfunc"
    mlflow.pyfunc.save_model(path=str(target), **pyfunc_model(Path(model_dir).resolve()))
    return target


def model_uri_for(
    ref: str, models_dir: Path, workdir: Path, tracking_uri: str | None = None
) -> str:
    """What to pass to ``mlflow models serve -m``: a local, verified copy of an MLflow model (its
    logged code checked against the signed manifest before the server imports it), or a pyfunc
    built for the folder."""
    # The model is loaded once here too: one that is signed but cannot be unpickled, or is not
    # an engage model, is refused with exit 2 rather than by a server that dies as it starts.
    if ref.startswith(MLFLOW_SCHEMES):
        root = download_verified(ref, tracking_uri, Path(workdir) / "registered")
        load_engage_model(engage_folder(ref, root), ref)
        return str(root)
    folder = resolve_model_dir(ref, models_dir)
    load_engage_model(folder, str(folder))
    return str(build_pyfunc_model(folder, workdir))


# Connections (and their buffered bodies) one worker holds at once; uvicorn answers 503 beyond.
CONNECTIONS_PER_WORKER = 32
KEEP_ALIVE_SECONDS = 5


def serve_command(port: int, host: str = "127.0.0.1", workers: int = 1) -> list[str]:
    """uvicorn running :func:`serving.server.create_app` in ``workers`` processes."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", "serving.server:create_app",
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--limit-concurrency", str(CONNECTIONS_PER_WORKER),
        "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
        "--no-server-header", "--no-access-log",
    ]  # fmt: skip


def serve_env(
    tracking_uri: str | None,
    model_uri: str = "",
    limits: ServerLimits | None = None,
    workers: int = 1,
) -> dict[str, str]:
    """The server's environment: the model and limits for :func:`serving.server.create_app`, the
    tracking store for models:/ URIs and this checkout importable."""
    limits = limits or ServerLimits()
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = resolve_tracking_uri(tracking_uri)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env[MODEL_ENV] = model_uri
    env[LIMITS_ENV] = limits.to_env()
    # serving.server keeps the time limit (and the slot of
    # abandoned work); MLflow's own must not fire first.
    env["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"] = str(int(limits.request_timeout * 10) + 60)
    # One worker per CPU: each scores on one thread, rather than every worker's LightGBM and
    # BLAS using every core at once.
    env.setdefault("OMP_NUM_THREADS", str(max(1, machine_cpus() // max(1, workers))))
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_ping(
    url: str, timeout: float = 120.0, process: subprocess.Popen | None = None
) -> float:
    """Poll ``<url>/ping`` until it answers 200; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the server exited with status {process.returncode} before answering /ping"
            )
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/ping did not answer within {timeout:.0f} s")


def stop_process_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a server started with ``start_new_session=True`` and everything it spawned."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass
