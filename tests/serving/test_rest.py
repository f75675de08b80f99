"""REST (serving/rest.py): ``engage serve`` runs MLflow's scoring server; answers match the
Python API; bad input is a 4xx."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engage.serve_commands import SERVE_PORT
from serving import Predictor, load_model
from serving.predictor import OUTPUT_COLUMNS, STATUS_COLD, STATUS_OK
from serving.rest import free_port, stop_process_group, wait_for_ping
from serving.schema import dataframe_split, to_rest_rows
from tests.serving_fixtures import ServingModel, shortlist

REPO = Path(__file__).resolve().parents[2]


# A fixed cutoff in the data's past, so "now" cannot differ between the server and the test.
AS_OF = "2019-06-01T00:00:00Z"


@pytest.fixture(scope="module")
def server(served: ServingModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("rest") / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        # Two workers and a small body limit, so the limits are what a client meets.
        [
            sys.executable,
            "-m",
            "engage.cli",
            "serve",
            "--model",
            str(served.model_dir),
            "--port",
            str(port),
            "--workers",
            "2",
            "--max-body-mb",
            "1",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the finally below stops uvicorn too
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_ping(url, timeout=120, process=process)
        except (RuntimeError, TimeoutError) as exc:
            log.flush()
            pytest.fail(f"{exc}; server log:\n{log_path.read_text()[-3000:]}")
        yield url
    finally:
        stop_process_group(process)
        log.close()


def post(url: str, body: object) -> tuple[int, object]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def predictions(answer: object) -> pd.DataFrame:
    assert isinstance(answer, dict) and "predictions" in answer, answer
    return pd.DataFrame(answer["predictions"])


@pytest.fixture(scope="module")
def predictor(served: ServingModel) -> Predictor:
    return load_model(served.model_dir)


def test_rest_answers_like_the_python_api_and_refuses_bad_input(server, served, predictor):
    profiles, posts = shortlist(served.data)
    rows = to_rest_rows(profiles.assign(as_of=AS_OF), posts)

    status, answer = post(server, dataframe_split(rows))
    assert status == 200, answer
    got = predictions(answer)
    expected = predictor.predict(profiles.assign(as_of=AS_OF), posts)
    assert got["influencer"].tolist() == expected["influencer"].tolist()
    np.testing.assert_allclose(
        got["predicted_er"].astype(float), expected["predicted_er"], rtol=1e-9
    )
    assert got["status"].tolist() == expected["status"].tolist()
    assert got["reasons"].tolist() == expected["reasons"].tolist()

    # A required column missing: a 4xx with a message naming it.
    status, answer = post(server, dataframe_split(rows.drop(columns="followers")))
    assert 400 <= status < 500 and "followers" in answer["message"]
    # Post rows without likes: the contract's own report, with the request's rows.
    status, answer = post(server, dataframe_split(rows.drop(columns="likes")))
    assert 400 <= status < 500 and "column 'likes': required column is missing" in answer["message"]
    # Non-numeric likes: counts take any type in the signature (integers and floats both), so the
    # data contract refuses it, naming the column.
    bad = rows.copy()
    bad["likes"] = bad["likes"].astype(object)
    bad.loc[bad["likes"].notna().idxmax(), "likes"] = "lots"
    status, answer = post(server, dataframe_split(bad))
    assert 400 <= status < 500 and "likes" in answer["message"]
    # Not a table at all.
    status, answer = post(server, {"dataframe_split": {"columns": ["influencer"], "rows": []}})
    assert 400 <= status < 500 and answer.get("message")

    # Still serving after the errors.
    status, answer = post(server, dataframe_split(rows))
    assert status == 200
    np.testing.assert_allclose(
        predictions(answer)["predicted_er"].astype(float), expected["predicted_er"], rtol=1e-9
    )


def test_rest_takes_cold_start_only_requests_and_optional_columns(server, served, predictor):
    profiles, posts = shortlist(served.data)
    # Profile columns only (no post columns at all): every candidate is a cold start.
    status, answer = post(
        server, dataframe_split(profiles[["influencer", "followers", "category"]])
    )
    assert status == 200, answer
    assert (predictions(answer)["status"] == STATUS_COLD).all()
    # Optional columns outside any example (shares) reach the model instead of being dropped.
    rows = to_rest_rows(profiles.assign(as_of=AS_OF), posts.assign(shares="5000"))
    status, answer = post(server, dataframe_split(rows))
    assert status == 200, answer
    expected = predictor.predict(profiles.assign(as_of=AS_OF), posts.assign(shares="5000"))
    np.testing.assert_allclose(
        predictions(answer)["predicted_er"].astype(float), expected["predicted_er"], rtol=1e-9
    )
    without = predictor.predict(profiles.assign(as_of=AS_OF), posts)
    assert not np.allclose(expected["predicted_er"], without["predicted_er"])


def send(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_rest_takes_text_csv_and_keeps_server_internals_out_of_errors(server, served, predictor):
    profiles, posts = shortlist(served.data)
    rows = to_rest_rows(profiles.assign(as_of=AS_OF), posts)
    status, answer = send(server, rows.to_csv(index=False).encode(), "text/csv")
    assert status == 200, answer
    expected = predictor.predict(profiles.assign(as_of=AS_OF), posts)
    np.testing.assert_allclose(
        predictions(answer)["predicted_er"].astype(float), expected["predicted_er"], rtol=1e-9
    )

    status, answer = send(server, b"{not json" + b"x" * 5000, "application/json")
    assert status == 400 and set(answer) == {"error_code", "message"}
    assert (
        "Traceback" not in answer["message"]
        and str(REPO) not in answer["message"]
        and "xxxxx" not in answer["message"]
    )
    status, answer = send(server, b"x" * (2**20 + 1), "application/json")  # --max-body-mb 1
    assert status == 413 and "over 1 MB" in answer["message"]
    status, _ = post(server, dataframe_split(rows))
    assert status == 200


def readme_curl_example() -> list[str]:
    """The README's ``curl ... /invocations`` example, split as a shell would split it."""
    import shlex

    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    examples = [b for b in blocks if b.lstrip().startswith("curl") and "/invocations" in b]
    assert len(examples) == 1, "README should hold one curl example for /invocations"
    return shlex.split(examples[0])


def test_the_readme_curl_example_works_as_written(server):
    """The README's copy-paste example, sent as written (only the port is this test's server's)."""
    args = readme_curl_example()
    url = next(a for a in args if a.startswith("http://"))
    assert (
        url == f"http://127.0.0.1:{SERVE_PORT}/invocations"
    )  # where `engage serve` listens by default
    body = args[args.index("-d") + 1]
    headers = dict(h.split(": ", 1) for h in (args[i + 1] for i, a in enumerate(args) if a == "-H"))
    target = url.replace(f"127.0.0.1:{SERVE_PORT}", server.removeprefix("http://"))
    if shutil.which("curl"):
        command = [a if a != url else target for a in args]
        answer = json.loads(
            subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
        )
    else:  # no curl on this machine: the same request from Python
        request = urllib.request.Request(target, data=body.encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    got = predictions(answer)
    sent = json.loads(body)["dataframe_split"]
    assert got["influencer"].tolist() == list(dict.fromkeys(row[0] for row in sent["data"]))
    assert list(got.columns) == list(OUTPUT_COLUMNS)
    assert got["status"].tolist() == [STATUS_OK, STATUS_COLD]  # as the README says
    assert got["predicted_er"].notna().all() and (got["er_low"] <= got["er_high"]).all()


def test_the_readme_documents_every_output_column():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## For other services") :]
    section = section[: section.index("\n## ", 5)]
    first_cells = re.findall(r"^\| (`[^|]+)\|", section, re.M)  # a table row's first cell: `a`, `b`
    names = {name for cell in first_cells for name in re.findall(r"`([a-z0-9_]+)`", cell)}
    assert set(OUTPUT_COLUMNS) <= names, (
        f"README 'For other services' lacks: {sorted(set(OUTPUT_COLUMNS) - names)}"
    )
    assert "load_model" in section and "predict(" in section
