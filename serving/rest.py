"""REST serving with MLflow's scoring server: build the pyfunc model for a folder and run it.

``engage serve`` runs ``mlflow models serve -m <model> --env-manager local``. For an MLflow
reference (``models:/engagement@champion``) the registered model is downloaded, checked against
its signed manifest, and that local copy is served. For a local
``models/<version>`` folder a pyfunc model is saved in a temporary folder with
``mlflow.pyfunc.save_model(python_model=<serving/pyfunc.py>, artifacts={"engage_model": folder})``,
the same way training logs it, so the served code is this checkout's and the folder is verified
(manifest, library versions) before the server starts.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from features.artifact import resolve_model_dir, resolve_tracking_uri, verify_artifact
from serving.predictor import MLFLOW_SCHEMES, download_verified

REPO_ROOT = Path(__file__).resolve().parents[1]


def pyfunc_code_path() -> Path:
    spec = importlib.util.find_spec("serving.pyfunc")
    if spec is None or spec.origin is None:
        raise RuntimeError("serving.pyfunc not found; is engage installed?")
    return Path(spec.origin)


def build_pyfunc_model(model_dir: Path, dst: Path) -> Path:
    """Save an MLflow pyfunc model for a verified ``models/<version>`` folder under ``dst``."""
    import mlflow

    from serving.schema import input_signature

    verify_artifact(model_dir)
    target = Path(dst) / "pyfunc"
    mlflow.pyfunc.save_model(
        path=str(target),
        python_model=str(pyfunc_code_path()),
        artifacts={"engage_model": str(Path(model_dir).resolve())},
        signature=input_signature(),
    )
    return target


def model_uri_for(ref: str, models_dir: Path, workdir: Path, tracking_uri: str | None = None) -> str:
    """What to pass to ``mlflow models serve -m``: a local, verified copy of an MLflow model (its
    logged code checked against the signed manifest before the server imports it), or a pyfunc
    built for the folder."""
    if ref.startswith(MLFLOW_SCHEMES):
        return str(download_verified(ref, tracking_uri, Path(workdir) / "registered"))
    return str(build_pyfunc_model(resolve_model_dir(ref, models_dir), workdir))


def serve_command(model_uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-p", str(port), "-h", host]


def serve_env(tracking_uri: str | None) -> dict[str, str]:
    """The server's environment: the tracking store for models:/ URIs, this checkout importable,
    and this interpreter's scripts folder first on PATH (MLflow starts ``uvicorn`` by name)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), *filter(None, [env.get("PATH")])])
    env["MLFLOW_TRACKING_URI"] = resolve_tracking_uri(tracking_uri)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_ping(url: str, timeout: float = 120.0, process: subprocess.Popen | None = None) -> float:
    """Poll ``<url>/ping`` until it answers 200; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering /ping")
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
