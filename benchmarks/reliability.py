"""Serving under load: many concurrent clients against ``engage serve`` on 127.0.0.1.

Two measurements, on a small trained model:

* **The load table** (``main``): for 1, 4 and 8 clients, light requests only (one candidate with
  its posts) and a mix (one request in four heavy: a shortlist near the row cap, ~19,000 rows),
  then a burst of 8 heavy clients beside one light one. Each row runs ``--seconds``; clients
  send back to back and honour ``Retry-After`` on 503. Printed: answers per second, p50/p99
  latency of light and heavy requests, and every answer that was not a 200 by kind. Then
  malformed and oversized requests, and whether the server still answers. ``--server mlflow``
  runs the same table against ``mlflow models serve`` with its defaults (what ``engage serve``
  ran before its limits), ``--server both`` runs both.
* ``run_load`` (the ``reliability`` test): ``--requests`` small requests from ``--clients``
  threads, errors, p50/p99 and the server's peak memory (RSS of the server and every process it
  spawned, sampled every 50 ms).

Usage::

    python benchmarks/reliability.py [--model models/<version>] [--seconds 20] \\
        [--server engage|mlflow|both]

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

from benchmarks.common import engage_serve_command  # noqa: E402

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
            f"serving under load: {self.requests} requests from "
            f"{self.clients} clients in {self.seconds:.1f} s "
            f"({self.requests / max(self.seconds, 1e-9):.0f}/s): "
            f"{self.ok} ok, {self.errors} errors; "
            f"latency p50 {np.percentile(lat, 50):.1f} ms, p99 "
            f"{np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms; "
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
        conn.request(
            "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
        )
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
        bodies.append(
            json.dumps(dataframe_split(to_rest_rows(chosen.assign(as_of=AS_OF), posts))).encode()
        )
    return bodies


def bad_bodies(good: bytes) -> dict[str, bytes]:
    parsed = json.loads(good)
    columns = parsed["dataframe_split"]["columns"]
    no_followers = {
        "dataframe_split": {
            "columns": [c for c in columns if c != "followers"],
            "data": [
                [v for c, v in zip(columns, row, strict=True) if c != "followers"]
                for row in parsed["dataframe_split"]["data"]
            ],
        }
    }
    return {
        "not_json": b"{this is not json",
        "empty_body": b"",
        "wrong_shape": json.dumps({"rows": [1, 2, 3]}).encode(),
        "missing_column": json.dumps(no_followers).encode(),
        "wrong_type": json.dumps(
            {"dataframe_split": {"columns": ["influencer", "followers"], "data": [["a", "many"]]}}
        ).encode(),
        "binary_garbage": bytes(range(256)) * 64,
        # ~30 MB of one string value: refused (schema/validation), not crashing the server.
        "oversized": json.dumps(
            {
                "dataframe_split": {
                    "columns": ["influencer", "followers"],
                    "data": [["x" * 1000, "1"]] * 30000,
                }
            }
        ).encode(),
    }


def run_load(
    model_dir: Path,
    data: Any,
    *,
    requests: int = 2000,
    clients: int = 8,
    log_path: Path | None = None,
) -> LoadResult:
    from serving.rest import stop_process_group

    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    server, port = start_server("engage", model_dir, None, log)
    result = LoadResult(requests=requests, clients=clients)
    try:
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


# --------------------------------------------------------------------------- the load table

HEAVY_ROWS = 19_000  # near serving.pyfunc.MAX_REQUEST_ROWS (20,000)
CLIENT_TIMEOUT = 120.0
MAX_BACKOFF = 2.0


def load_bodies(seed: int = 1) -> tuple[list[bytes], bytes, int]:
    """Light bodies (one synthetic candidate with its posts each) and one heavy body: whole
    candidates up to :data:`HEAVY_ROWS` rows. Returns (light, heavy, candidates in heavy)."""
    from engage.cli import embedded_posts, embedded_profiles
    from features.contract import load_and_validate
    from features.synth import fit_synth_params, generate
    from serving.schema import dataframe_split, to_rest_rows

    reference = load_and_validate(embedded_profiles(), embedded_posts())
    profiles, posts = generate(
        fit_synth_params(reference.profiles, reference.posts), n_influencers=15_000, seed=seed
    )
    rows = to_rest_rows(profiles.assign(as_of=AS_OF), posts)
    first_row = rows.groupby("influencer", sort=False).cumcount() == 0
    starts = np.flatnonzero(first_row.to_numpy())
    end = int(starts[starts <= HEAVY_ROWS].max())  # cut at a candidate's first row
    heavy = rows.iloc[:end]
    with_posts = rows[rows["post_id"].notna()]
    names = with_posts["influencer"].drop_duplicates().head(32)
    light = [
        json.dumps(dataframe_split(rows[rows["influencer"] == name])).encode() for name in names
    ]
    return light, json.dumps(dataframe_split(heavy)).encode(), int(heavy["influencer"].nunique())


@dataclass
class MixRow:
    scenario: str
    clients: int
    seconds: float = 0.0
    light_ms: list[float] = field(default_factory=list)
    heavy_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def answered_ok(self) -> int:
        return sum(n for kind, n in self.outcomes.items() if kind.endswith(" 200"))

    def errors(self) -> str:
        bad = {kind: n for kind, n in sorted(self.outcomes.items()) if not kind.endswith(" 200")}
        return ", ".join(f"{kind}: {n}" for kind, n in bad.items()) or "none"


def _post_kind(port: int, body: bytes, timeout: float = CLIENT_TIMEOUT) -> tuple[str, float | None]:
    """POST a body; returns the outcome (HTTP status or the client-side error) and Retry-After."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            conn.request(
                "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            retry = response.getheader("Retry-After")
            return str(response.status), float(retry) if retry and retry.replace(
                ".", "", 1
            ).isdigit() else None
        finally:
            conn.close()
    except TimeoutError:
        return "client timeout", None
    except OSError as exc:
        return type(exc).__name__, None


def run_mix(
    port: int,
    scenario: str,
    heavy_shares: list[float],
    light: list[bytes],
    heavy: bytes,
    seconds: float,
    seed: int = 0,
) -> MixRow:
    """One client thread per entry of ``heavy_shares``
    (its share of heavy requests), for ``seconds``."""
    row = MixRow(scenario, len(heavy_shares))
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int, share: float) -> None:
        rng = np.random.default_rng(seed + index)
        while time.perf_counter() < stop_at:
            kind = "heavy" if rng.random() < share else "light"
            body = heavy if kind == "heavy" else light[int(rng.integers(len(light)))]
            start = time.perf_counter()
            outcome, retry = _post_kind(port, body)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                row.outcomes[f"{kind} {outcome}"] += 1
                if outcome == "200":
                    (row.heavy_ms if kind == "heavy" else row.light_ms).append(elapsed)
            if outcome == "503":
                time.sleep(min(retry or 1.0, MAX_BACKOFF))  # a polite client honours Retry-After

    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=client, args=(i, share)) for i, share in enumerate(heavy_shares)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row.seconds = time.perf_counter() - t0
    return row


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):,.0f}" if values else "-"


def load_table(rows: list[MixRow]) -> str:
    header = [
        "scenario",
        "clients",
        "ok/s",
        "light n",
        "light p50 ms",
        "light p99 ms",
        "heavy n",
        "heavy p50 ms",
        "heavy p99 ms",
        "not 200, by kind",
    ]
    lines = [header]
    for r in rows:
        lines.append([
            r.scenario, str(r.clients), f"{r.answered_ok / max(r.seconds, 1e-9):.1f}",
            str(len(r.light_ms)), _pct(r.light_ms, 50), _pct(r.light_ms, 99),
            str(len(r.heavy_ms)), _pct(r.heavy_ms, 50), _pct(r.heavy_ms, 99), r.errors(),
        ])  # fmt: skip
    out = ["| " + " | ".join(line) + " |" for line in lines]
    out.insert(1, "|" + "|".join("---" for _ in header) + "|")
    return "\n".join(out)


def scenarios(client_counts: list[int], light_only: bool = False) -> list[tuple[str, list[float]]]:
    """(name, heavy share of each client) for the table."""
    table = [(f"light only, {c}", [0.0] * c) for c in client_counts]
    if not light_only:
        table += [(f"mixed (1 in 4 heavy), {c}", [0.25] * c) for c in client_counts]
        table.append(("heavy burst: 8 heavy + 1 light", [1.0] * 8 + [0.0]))
    return table


def start_server(
    server: str, model_dir: Path, workdir: Path | None, log: Any, workers: int | None = None
) -> tuple[subprocess.Popen, int]:
    """``engage serve`` (its limits and default workers), or ``mlflow models serve`` with its own
    defaults on the same pyfunc model (what ``engage serve`` ran before), in a pyfunc folder
    under ``workdir``; answering ``/ping``, or stopped."""
    import os

    from serving.rest import (
        REPO_ROOT,
        build_pyfunc_model,
        free_port,
        stop_process_group,
        wait_for_ping,
    )

    port = free_port(HOST)
    if server == "engage":
        workers_option = ["--workers", str(workers)] if workers else []
        command = engage_serve_command(model_dir, port, "--host", HOST, *workers_option)
        env = None
    else:
        pyfunc = build_pyfunc_model(
            model_dir, Path(tempfile.mkdtemp(prefix="mlflow_pyfunc", dir=workdir))
        )
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(pyfunc),
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            HOST,
        ]
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join(
            [str(Path(sys.executable).parent), env.get("PATH", "")]
        )  # MLflow starts uvicorn by name
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        command,
        cwd=_HERE.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    try:
        wait_for_ping(f"http://{HOST}:{port}", timeout=180, process=process)
    except BaseException:
        stop_process_group(process)
        raise
    return process, port


def measure_server(
    server: str,
    model_dir: Path,
    folder: Path,
    light: list[bytes],
    heavy: bytes,
    seconds: float,
    client_counts: list[int],
    workers: int | None,
    light_only: bool = False,
) -> tuple[list[MixRow], dict[str, str], bool]:
    from serving.rest import stop_process_group

    log_path = folder / f"server-{server}.log"
    with open(log_path, "w") as log:
        process, port = start_server(server, model_dir, folder, log, workers)
        try:
            for body in light[:4] + [heavy]:  # warm up: every worker's first call loads lazily
                _post_kind(port, body)
            rows = []
            for name, shares in scenarios(client_counts, light_only):
                rows.append(run_mix(port, name, shares, light, heavy, seconds))
                print(
                    f"  {server}: {name}: {rows[-1].answered_ok} ok, errors {rows[-1].errors()}",
                    flush=True,
                )
                time.sleep(2.0)  # let abandoned work finish before the next row
            bad = {}
            for name, body in bad_bodies(light[0]).items():
                outcome, _ = _post_kind(port, body)
                bad[name] = outcome
            alive = _post_kind(port, light[0])[0] == "200" and process.poll() is None
        finally:
            stop_process_group(process)
    return rows, bad, alive


def main(argv: list[str] | None = None) -> int:
    from serving.limits import machine_cpus
    from tests.model_fixtures import train_small, write_small_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="a models/<version> folder (default: train a small one)"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="duration of each row of the table"
    )
    parser.add_argument("--clients", default="1,4,8", help="client counts, comma-separated")
    parser.add_argument("--server", choices=["engage", "mlflow", "both"], default="engage")
    parser.add_argument(
        "--workers", type=int, help="engage serve --workers (default: its own, one per CPU)"
    )
    parser.add_argument(
        "--light-only",
        action="store_true",
        help="only the light rows (a quick comparison of servers)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each server this many times, alternating (machine noise)",
    )
    args = parser.parse_args(argv)
    client_counts = [int(c) for c in args.clients.split(",")]
    failed = False
    with tempfile.TemporaryDirectory(prefix="engage-reliability-") as tmp:
        folder = Path(tmp)
        model_dir = args.model
        if model_dir is None:
            print("training a small model for the load test...", flush=True)
            data = write_small_data(folder / "data", n_influencers=1000)
            model_dir = train_small(folder, data, num_boost_round=80).model_dir
        light, heavy, n_heavy = load_bodies()
        print(
            f"light request: 1 candidate, {len(light[0]) / 1024:.1f} "
            f"KB; heavy request: {n_heavy} candidates, "
            f"~{HEAVY_ROWS:,} rows, {len(heavy) / 2**20:.1f} MB; "
            f"{args.seconds:g} s per row; this machine: {machine_cpus()} CPUs",
            flush=True,
        )
        for server in (
            ["engage", "mlflow"] if args.server == "both" else [args.server]
        ) * args.repeat:
            rows, bad, alive = measure_server(
                server,
                model_dir,
                folder,
                light,
                heavy,
                args.seconds,
                client_counts,
                args.workers,
                args.light_only,
            )
            title = (
                "engage serve (its limits, default workers)"
                if server == "engage"
                else "mlflow models serve (its defaults)"
            )
            print(f"\n{title}:")
            print(load_table(rows))
            print(f"bad requests -> {bad}; still serving afterwards: {alive}")
            if server == "engage":
                light_errors = sum(
                    n
                    for r in rows
                    for kind, n in r.outcomes.items()
                    if kind.startswith("light") and not kind.endswith(" 200")
                )
                bad_ok = all(
                    outcome.isdigit() and 400 <= int(outcome) < 500 for outcome in bad.values()
                )
                failed = failed or light_errors > 0 or not alive or not bad_ok
                if failed:
                    print("server log tail:\n" + (folder / "server-engage.log").read_text()[-3000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
