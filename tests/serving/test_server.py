"""``engage serve``'s limits (serving/server.py): body size, read timeout, light and heavy lanes,
time limit, text/csv and error answers without stack traces or server paths.

The lanes and limits are driven through the ASGI interface with a stand-in scoring app whose
work ends when the test says so (events, not clocks); text/csv and error answers go through
MLflow's real scoring app with the small trained model (in process, Starlette's test client).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.server import (
    LimitsMiddleware,
    RequestError,
    ServerLimits,
    build_app,
    clean_message,
    csv_to_json,
)
from tests.serving_fixtures import ServingModel, shortlist

NUMERIC = {"followers", "likes", "comments"}


SMALL = json.dumps({"dataframe_split": {"columns": ["influencer"], "data": [["a"]]}}).encode()


HEAVY = b" " * 2048  # over the heavy threshold the tests set (1 KB)


class StandIn:
    """A scoring app that answers 200 once ``release`` is set; counts the calls that finished."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.finished = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        message = await receive()
        self.started += 1
        if len(message["body"]) > 1024:
            await self.release.wait()
        self.finished += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"predictions": []}'})


async def call(
    app: Any,
    body: bytes,
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
    stall: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """One POST /invocations through the ASGI interface; ``chunks`` streams the body without a
    Content-Length; ``stall`` never sends the end of the body."""
    sent = {"content-type": "application/json"} | (
        {"content-length": str(len(body))} if chunks is None else {}
    )
    sent |= headers or {}
    scope = {
        "type": "http",
        "path": "/invocations",
        "method": "POST",
        "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
    }
    parts = list(chunks if chunks is not None else [body])
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict:
        if parts:
            part = parts.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(parts) or stall}
        await asyncio.Event().wait()  # a client that sends nothing more
        return {}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["headers"], answer["body"]


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds: requests reach their lane after a thread hop,
    so a fixed sleep would race it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not condition():
        assert loop.time() < end, "the condition did not hold in time"
        await asyncio.sleep(0.005)


def limits(**overrides: Any) -> ServerLimits:
    values = {
        "max_body_bytes": 10_000,
        "heavy_body_bytes": 1024,
        "request_timeout": 30.0,
        "body_timeout": 30.0,
        "heavy_queue": 0,
    } | overrides
    return ServerLimits(**values)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# --------------------------------------------------------------------------- body size and time


def test_a_body_over_the_limit_is_413_whether_announced_or_streamed():
    async def scenario() -> None:
        inner = StandIn()
        app = LimitsMiddleware(inner, limits(), NUMERIC, paths=[])
        status, headers, body = await call(app, b"x" * 10_001)  # read and dropped, then refused
        assert (
            status == 413
            and "over" in json.loads(body)["message"]
            and headers["connection"] == "close"
        )
        status, _, _ = await call(
            app, b"", chunks=[b"x" * 6000, b"x" * 6000]
        )  # streamed, no length
        assert status == 413
        status, _, _ = await call(
            app, b"x", headers={"content-length": str(2**40)}
        )  # refused unread
        assert status == 413
        assert inner.started == 0
        assert (await call(app, SMALL))[0] == 200

    run(scenario())


def test_a_body_that_does_not_arrive_in_time_is_408():
    async def scenario() -> None:
        app = LimitsMiddleware(StandIn(), limits(body_timeout=0.05), NUMERIC, paths=[])
        status, _, body = await call(app, b"", chunks=[b'{"dataframe'], stall=True)
        assert status == 408 and "not received within" in json.loads(body)["message"]

    run(scenario())


def test_light_requests_are_answered_while_a_heavy_one_runs_and_extra_heavy_ones_get_503():
    async def scenario() -> None:
        inner = StandIn()
        app = LimitsMiddleware(inner, limits(heavy_queue=1), NUMERIC, paths=[])
        first = asyncio.create_task(call(app, HEAVY))
        await until(lambda: inner.started == 1)  # heavy bodies are checked in a thread first
        queued = asyncio.create_task(call(app, HEAVY))
        await until(lambda: "heavy" in app.lanes and app.lanes["heavy"].waiting == 1)
        status, headers, body = await call(app, HEAVY)  # one running, one waiting: full
        assert (
            status == 503
            and int(headers["retry-after"]) >= 1
            and "busy" in json.loads(body)["message"]
        )
        for _ in range(3):  # the light lane is free
            assert (await call(app, SMALL))[0] == 200
        assert not first.done() and not queued.done()
        inner.release.set()
        assert (await first)[0] == 200 and (await queued)[0] == 200

    run(scenario())


def test_a_request_over_its_time_is_504_and_its_work_keeps_the_slot_until_it_ends():
    async def scenario() -> None:
        inner = StandIn()
        app = LimitsMiddleware(inner, limits(request_timeout=0.2), NUMERIC, paths=[])
        status, _, body = await call(app, HEAVY)
        assert status == 504 and "longer than 0.2 s" in json.loads(body)["message"]
        # The abandoned scoring still runs: a new heavy request waits (and gives up), not piles on.
        assert (await call(app, HEAVY))[0] == 503
        assert (inner.started, inner.finished) == (1, 0)
        inner.release.set()
        await asyncio.sleep(0.01)
        assert inner.finished == 1
        assert (await call(app, HEAVY))[0] == 200  # the slot is free again

    run(scenario())


# --------------------------------------------------------------------------- error answers


def test_error_answers_drop_stack_traces_server_paths_and_echoed_data(tmp_path):
    async def scenario() -> None:
        async def failing(scope: dict, receive: Callable, send: Callable) -> None:
            await receive()
            detail = {
                "error_code": "BAD_REQUEST",
                "message": "Failed to predict data '   influencer\n0  secret'. "
                f"\nError: bad value in {tmp_path}/model/pyfunc.py",
                "stack_trace": "Traceback (most recent call last):\n  "
                f'File "{tmp_path}/x.py", line 1',
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(detail).encode()})

        async def crashing(scope: dict, receive: Callable, send: Callable) -> None:
            raise RuntimeError(f"boom in {tmp_path}")

        status, _, body = await call(
            LimitsMiddleware(failing, limits(), NUMERIC, paths=[str(tmp_path)]), SMALL
        )
        answer = json.loads(body)
        assert status == 400 and set(answer) == {"error_code", "message"}
        assert answer["message"] == "bad value in <server>/model/pyfunc.py"
        status, _, body = await call(
            LimitsMiddleware(crashing, limits(), NUMERIC, paths=[str(tmp_path)]), SMALL
        )
        assert (
            status == 500
            and "incident" in json.loads(body)["message"]
            and str(tmp_path) not in body.decode()
        )

    run(scenario())


def test_clean_message_caps_long_messages_and_cuts_mlflows_echo_of_the_body():
    assert (
        clean_message("Ensure that input is a valid JSON formatted string.\nInput: \n{secret", [])
        == "Ensure that input is a valid JSON formatted string."
    )
    assert len(clean_message("x" * 100_000, [])) < 4100


# --------------------------------------------------------------------------- text/csv


def test_csv_to_json_reads_like_the_contract_and_names_bad_numbers():
    body = csv_to_json(b"influencer,followers,likes,verified\nana,5000,12,false\nben,,,\n", NUMERIC)
    split = json.loads(body)["dataframe_split"]
    assert split["columns"] == ["influencer", "followers", "likes", "verified"]
    assert split["data"] == [["ana", 5000.0, 12.0, "false"], ["ben", None, None, None]]
    # Excel's "CSV UTF-8" starts with a byte-order mark: not part of the first column's name.
    assert json.loads(csv_to_json(b"\xef\xbb\xbfinfluencer,followers\nana,1\n", NUMERIC))[
        "dataframe_split"
    ]["columns"] == ["influencer", "followers"]


@pytest.mark.parametrize(
    "body, match",
    [
        (
            b"influencer,followers\nana,many\nben,1\ncara,1e\n",
            r"column 'followers', rows 1, 3: not a number",
        ),  # text counts
        (b"", "empty"),  # no header
        (b"influencer,followers\n\xff\xfe,1\n", "not valid UTF-8"),  # not UTF-8
        (b'influencer,followers\n"ana,1\n', "cannot be parsed"),  # unclosed quote
        (b"influencer, influencer\na,b\n", "more than once"),  # one column twice, once with a space
        (
            b"influencer,likes,likes\na,1,2\n",
            "more than once",
        ),  # pandas would rename the second 'likes.1'
    ],
)
def test_csv_to_json_refuses_what_it_cannot_read(body, match):
    with pytest.raises(RequestError, match=match):
        csv_to_json(body, NUMERIC)


# --------------------------------------------------------------------------- MLflow's real app


@pytest.fixture(scope="module")
def client(served: ServingModel, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import mlflow
    from starlette.testclient import TestClient

    from serving.rest import build_pyfunc_model

    pyfunc = build_pyfunc_model(served.model_dir, tmp_path_factory.mktemp("pyfunc"))
    app = build_app(mlflow.pyfunc.load_model(str(pyfunc)), ServerLimits(max_body_bytes=2**20))
    with TestClient(app) as test_client:
        yield test_client


def rest_rows(served: ServingModel) -> pd.DataFrame:
    from serving.schema import to_rest_rows

    profiles, posts = shortlist(served.data, n_with_posts=4, n_without=2)
    return to_rest_rows(profiles.assign(as_of="2019-06-01T00:00:00Z"), posts)


def test_text_csv_answers_as_json_does(client, served):
    from serving.schema import dataframe_split

    rows = rest_rows(served)
    by_json = client.post(
        "/invocations",
        content=json.dumps(dataframe_split(rows)),
        headers={"Content-Type": "application/json"},
    )
    by_csv = client.post(
        "/invocations",
        content=rows.to_csv(index=False),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert by_json.status_code == 200 and by_csv.status_code == 200, by_csv.text
    assert by_csv.json() == by_json.json()
    assert len(by_csv.json()["predictions"]) == 6


def test_a_request_carries_each_candidates_planned_post(client, served):
    from serving.schema import dataframe_split

    rows = rest_rows(served)
    first = rows["influencer"].iloc[0]
    # A sponsored video for the first candidate (on each of its rows), a KPI for everyone.
    rows["post_type"] = np.where(rows["influencer"] == first, "video", None)
    rows["sponsored"] = np.where(rows["influencer"] == first, "true", None)
    rows["target_engagements"] = "500"
    answers = []
    for body, content_type in (
        (json.dumps(dataframe_split(rows)), "application/json"),
        (rows.to_csv(index=False), "text/csv"),
    ):
        answer = client.post("/invocations", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 200, answer.text
        answers.append(answer.json()["predictions"])
    assert answers[0] == answers[1]
    by_name = {row["influencer"]: row for row in answers[0]}
    assert by_name[first]["planned_post"].startswith("video, sponsored")
    assert all(row["target_engagements"] == 500 for row in answers[0])
    assert all(0 <= row["p_reach"] <= 1 for row in answers[0] if row["predicted_er"] is not None)
    bad = rows.assign(post_type="vidoe")
    refused = client.post(
        "/invocations",
        content=json.dumps(dataframe_split(bad)),
        headers={"Content-Type": "application/json"},
    )
    assert refused.status_code == 400
    assert "column 'post_type', rows 1, 2" in refused.json()["message"]


def server_leaks(text: str) -> list[str]:
    """Signs of server internals in an answer."""
    import sys

    return [
        sign
        for sign in (
            "Traceback",
            "stack_trace",
            'File "',
            sys.prefix,
            str(Path(__file__).resolve().parents[2]),
        )
        if sign in text
    ]


@pytest.mark.parametrize(
    "body",
    [
        b'{"dataframe_records": [{"influencer": "a", "followers": 10, "followers": 99999}]}',
        b'{"dataframe_split": {"columns": ["influencer", "followers"], "data": [["a", 10]]},'
        b' "dataframe_split": {"columns": ["influencer", "followers"], "data": [["a", 9]]}}',
    ],
)
def test_a_json_key_named_twice_is_refused_not_last_one_wins(client, body):
    answer = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert "names 'followers' twice" in message or "names 'dataframe_split' twice" in message
    assert client.get("/ping").status_code == 200


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"{this is not json", "application/json", 400),  # MLflow echoes the body and adds a trace
        (b"", "application/json", 400),  # empty body
        (json.dumps({"rows": [1, 2]}).encode(), "application/json", 400),  # not an MLflow shape
        (
            json.dumps(
                {
                    "dataframe_split": {
                        "columns": ["influencer", "followers"],
                        "data": [["a", "many"]],
                    }
                }
            ).encode(),
            "application/json",
            400,
        ),  # schema
        (bytes(range(256)) * 8, "application/json", 400),  # binary garbage
        (b"influencer,followers\na,many\n", "text/csv", 400),  # CSV count not a number
        (
            b"\x00\x01parquet?",
            "application/vnd.apache.parquet",
            400,
        ),  # MLflow's parquet reader, with a trace
        (b"a,b\n1,2\n", "text/plain", 415),  # unsupported type
        (b"x" * (2**20 + 1), "application/json", 413),  # over the body limit
    ],
)
def test_bad_requests_get_a_4xx_without_server_internals(client, body, content_type, status):
    answer = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert not server_leaks(answer.text), answer.text
    assert set(answer.json()) == {"error_code", "message"} and answer.json()["message"]
    assert len(answer.text) < 5000
    assert client.get("/ping").status_code == 200
