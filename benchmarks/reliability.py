"""Serving under load: many concurrent clients against ``engage serve`` on 127.0.0.1.

Starts the MLflow scoring server on a small trained model, sends ``--requests`` scoring requests
from ``--clients`` threads, then malformed and oversized requests, and checks that the server
still answers. Prints the number of errors, p50/p99 latency and the server's peak memory (RSS of
the server and every process it spawned, sampled every 50 ms).

Usage: ``python benchmarks/reliability.py [--model models/<version>] [--requests 2000] [--clients 8]``
(without ``--model`` a small model is trained in a temporary folder first, about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this folder would come first on sys.path and benchmarks/serving.py would
# shadow the ``serving`` package: put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import psutil  # noqa: E402

HOST = "127.0.0.1"  # loopback only
AS_OF = "2019-06-01T00:00:00Z"


@dataclass
class LoadResult:
    requests: int
    clients: int
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    bad_statuses: dict[str, int] = field(default_factory=dict)
    alive_after_bad: bool = False

    def summary(self) -> str:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return (
            f"serving under load: {self.requests} requests from {self.clients} clients in {self.seconds:.1f} s "
            f"({self.requests / max(self.seconds, 1e-9):.0f}/s): {self.ok} ok, {self.errors} errors; "
            f"latency p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms; "
            f"server RSS idle {self.idle_rss_mb:.0f} MB, peak {self.peak_rss_mb:.0f} MB; "
            f"bad requests -> {self.bad_statuses}; still serving afterwards: {self.alive_after_bad}"
        )


def _tree_rss(process: psutil.Process) -> float:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker may exit between listing and reading
            total += p.memory_info().rss
    return total / 2**20


def _post(port: int, body: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def request_bodies(data: Any, n: int = 16) -> list[bytes]:
    """Distinct valid request bodies: 1 to 3 candidates each, with their posts."""
    from serving.schema import dataframe_split, to_rest_rows

    profiles = data.profiles
    has_posts = profiles["influencer"].isin(data.posts["influencer"])
    pool = profiles[has_posts].head(48).reset_index(drop=True)
    bodies = []
    for i in range(n):
        chosen = pool.iloc[[(3 * i + k) % len(pool) for k in range(1 + i % 3)]]
        posts = data.posts[data.posts["influencer"].isin(chosen["influencer"])]
        bodies.append(json.dumps(dataframe_split(to_rest_rows(chosen.assign(as_of=AS_OF), posts))).encode())
    return bodies


def bad_bodies(good: bytes) -> dict[str, bytes]:
    parsed = json.loads(good)
    columns = parsed["dataframe_split"]["columns"]
    no_followers = {"dataframe_split": {"columns": [c for c in columns if c != "followers"], "data": [[v for c, v in zip(columns, row, strict=True) if c != "followers"] for row in parsed["dataframe_split"]["data"]]}}
    return {
        "not_json": b"{this is not json",
        "empty_body": b"",
        "wrong_shape": json.dumps({"rows": [1, 2, 3]}).encode(),
        "missing_column": json.dumps(no_followers).encode(),
        "wrong_type": json.dumps({"dataframe_split": {"columns": ["influencer", "followers"], "data": [["a", "many"]]}}).encode(),
        "binary_garbage": bytes(range(256)) * 64,
        # ~30 MB of one string value: refused (schema/validation), not crashing the server.
        "oversized": json.dumps({"dataframe_split": {"columns": ["influencer", "followers"], "data": [["x" * 1000, "1"]] * 30000}}).encode(),
    }


def run_load(model_dir: Path, data: Any, *, requests: int = 2000, clients: int = 8, log_path: Path | None = None) -> LoadResult:
    from serving.rest import free_port, stop_process_group, wait_for_ping

    port = free_port(HOST)
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "engage.cli", "serve", "--model", str(model_dir), "--port", str(port), "--host", HOST],
        cwd=_HERE.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result = LoadResult(requests=requests, clients=clients)
    try:
        wait_for_ping(f"http://{HOST}:{port}", timeout=180, process=server)
        bodies = request_bodies(data)
        for body in bodies[:4]:  # warm up every worker's model load
            _post(port, body)
        tree = psutil.Process(server.pid)
        result.idle_rss_mb = _tree_rss(tree)
        stop = threading.Event()
        peak = [result.idle_rss_mb]

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(tree))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lock = threading.Lock()
        counter = iter(range(requests))

        def client() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status, payload = _post(port, bodies[i % len(bodies)])
                    good = status == 200 and "predictions" in json.loads(payload)
                    problem = None if good else f"HTTP {status}: {payload[:200]!r}"
                except Exception as exc:  # any client-side failure counts as an error
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    result.latencies_ms.append(elapsed)
                    if problem is None:
                        result.ok += 1
                    else:
                        result.errors += 1
                        if len(result.error_samples) < 5:
                            result.error_samples.append(problem)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result.seconds = time.perf_counter() - t0
        statuses: Counter[str] = Counter()
        for name, body in bad_bodies(bodies[0]).items():
            try:
                status, _ = _post(port, body)
                statuses[name] = status
            except Exception as exc:
                statuses[name] = -1
                result.error_samples.append(f"{name}: {type(exc).__name__}: {exc}")
        result.bad_statuses = dict(statuses)
        status, payload = _post(port, bodies[0])
        result.alive_after_bad = status == 200 and server.poll() is None
        stop.set()
        sampler.join()
        result.peak_rss_mb = peak[0]
    finally:
        stop_process_group(server)
        if log_path:
            log.close()  # type: ignore[union-attr]
    return result


def main(argv: list[str] | None = None) -> int:
    from tests.model_fixtures import train_small, write_small_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a models/<version> folder (default: train a small one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="engage-reliability-") as tmp:
        folder = Path(tmp)
        data = write_small_data(folder / "data", n_influencers=1000)
        model_dir = args.model
        if model_dir is None:
            print("training a small model for the load test...", flush=True)
            model_dir = train_small(folder, data, num_boost_round=80).model_dir
        result = run_load(model_dir, data, requests=args.requests, clients=args.clients, log_path=folder / "server.log")
        print(result.summary())
        for sample in result.error_samples:
            print("  error:", sample)
        failed = result.errors or not result.alive_after_bad or any(not 400 <= s < 500 for s in result.bad_statuses.values())
        if failed:
            print("server log tail:\n" + (folder / "server.log").read_text()[-3000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
