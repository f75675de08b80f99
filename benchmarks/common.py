"""What several benchmarks share: a measurement run in a fresh interpreter, and the command that
starts ``engage serve``.

The benchmarks import it as ``benchmarks.common``, once each has put the repository root first
on ``sys.path`` (run as a script, this folder would come first, and its ``features.py`` and
``serving.py`` would shadow the packages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def json_from_child(script: str | Path, args: list[str], what: str) -> Any:
    """Run ``python script *args`` in a fresh interpreter (its peak memory is its own, Python's
    warnings off) and return the JSON it printed on its last line of stdout; a failed child
    raises ``RuntimeError("<what> failed:")`` with its stderr."""
    done = subprocess.run(
        [sys.executable, str(Path(script).resolve()), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def engage_serve_command(model_dir: Path, port: int, *options: str) -> list[str]:
    """``engage serve`` of the model folder ``model_dir`` on ``port``, with more ``options``
    (``--host``, ``--workers``), as a fresh interpreter runs it."""
    command = [sys.executable, "-m", "engage.cli", "serve", "--model", str(model_dir)]
    return [*command, "--port", str(port), *options]
