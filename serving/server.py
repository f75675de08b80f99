"""``engage serve``'s HTTP server: MLflow's scoring app behind the limits a production service sets.

MLflow's scoring server is a FastAPI app (:func:`mlflow.pyfunc.scoring_server.init`: ``/ping``,
``/health``, ``/version``, ``/invocations``) that ``mlflow models serve`` runs with uvicorn.
``engage serve`` runs the same app with uvicorn itself (``uvicorn --factory
serving.server:create_app``), with workers sized to the machine, wrapped in one ASGI middleware
(:class:`LimitsMiddleware`) for ``/invocations``, which adds what MLflow's server lacks:

* **Body size**: a body over ``max_body_bytes`` is refused with 413; its rest is read and
  dropped (up to :func:`drain_limit`, so the client sees the answer, not a broken connection),
  and a body announced larger than that is refused unread. A body not received within
  ``body_timeout`` seconds gets 408 (a slow or stalled client cannot hold a worker).
* **Light and heavy requests**: a body over ``heavy_body_bytes`` is heavy (a long shortlist).
  Each worker scores at most ``heavy_concurrency`` heavy requests at a time, with at most
  ``heavy_queue`` more waiting; a heavy request beyond that is answered 503 with
  ``Retry-After`` at once. Light requests (a few candidates) have their own lane, so they are
  answered while heavy ones run.
* **Time per request**: a request not answered within ``request_timeout`` seconds (queueing
  included) gets 504. Python cannot stop the scoring thread, so its lane stays taken until the
  computation really ends: abandoned work never piles up behind the next requests.
* **text/csv**: the CSV is read as the data contract reads files (text, empty = missing), counts
  are checked to be numbers (400 naming column and rows otherwise) and it is handed to MLflow as
  the equivalent JSON, so both content types give the same answers. (MLflow's own CSV reader
  cannot read this model's schema, whose yes/no and time columns take any type.)
* **Error answers** carry an error code and a message only: MLflow's ``stack_trace`` is logged on
  the server, never sent; server paths in a message are replaced by ``<server>``; MLflow's echo
  of the request data in a message is cut, and messages are capped in length.

Row limits are the model's (:data:`serving.pyfunc.MAX_REQUEST_ROWS`, answered 400).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.limits import ServerLimits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MODEL_ENV = "ENGAGE_SERVE_MODEL"
LIMITS_ENV = "ENGAGE_SERVE_LIMITS"
MAX_MESSAGE_CHARS = 4000
REPO_ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("engage.serve")


# --------------------------------------------------------------------------- error answers


def server_paths(extra: tuple[str, ...] = ()) -> list[str]:
    """Folders of this server that must not appear in answers, longest first."""
    candidates = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        str(REPO_ROOT),
        tempfile.gettempdir(),
        str(Path.home()),
        os.getcwd(),
        *extra,
    }
    return sorted((p for p in candidates if p and p not in ("/", ".")), key=len, reverse=True)


_ECHOED_DATA = re.compile(r"^Failed to predict data '.*?'\. \nError: ", re.DOTALL)


def clean_message(message: str, paths: list[str]) -> str:
    """A message fit for a client: no echo of its request data, no server paths, bounded length."""
    message = _ECHOED_DATA.sub("", message)
    # MLflow quotes the whole body after a JSON error ("Input: ..."): the client has it already.
    message = message.split("\nInput: \n", 1)[0]
    for path in paths:
        message = message.replace(path, "<server>")
    if len(message) > MAX_MESSAGE_CHARS:
        message = (
            message[:MAX_MESSAGE_CHARS]
            + f" ... ({len(message) - MAX_MESSAGE_CHARS} more characters)"
        )
    return message


def clean_error_body(body: bytes, paths: list[str]) -> tuple[bytes, str | None]:
    """An error answer without stack trace or server paths; returns (body, the trace dropped)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        trace = parsed.pop("stack_trace", None)
        answer = {
            "error_code": str(parsed.get("error_code", "BAD_REQUEST")),
            "message": clean_message(str(parsed.get("message", "")), paths),
        }
        return json.dumps(answer).encode(), trace if isinstance(trace, str) else None
    text = body.decode("utf-8", errors="replace")
    return json.dumps(
        {"error_code": "BAD_REQUEST", "message": clean_message(text, paths)}
    ).encode(), None


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


# --------------------------------------------------------------------------- text/csv


class RequestError(ValueError):
    """A request that cannot be used as sent (answered 400 with this message)."""


def csv_to_json(body: bytes, numeric_columns: set[str]) -> bytes:
    """A CSV request -> the equivalent ``dataframe_split`` JSON body.

    Read as :func:`features.contract.read_table` reads CSV files (every cell text, empty =
    missing); the columns the schema declares as numbers must hold numbers, named by row
    (1-based data rows) if not.
    """
    from features.contract import describe_duplicate_columns, duplicate_columns, other_separator
    from serving.schema import dataframe_split

    try:
        text = body.decode("utf-8-sig")  # Excel's CSV export starts with a byte-order mark
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"the CSV is not valid UTF-8 text (byte {exc.start}: {exc.reason}); send it as UTF-8"
        ) from None
    try:
        # The header as sent (pandas renames a repeated name "likes.1"), to check it as files are.
        header = pd.read_csv(
            io.StringIO(text), header=None, nrows=1, dtype=str, keep_default_na=False
        )
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise RequestError("the CSV is empty (no header row)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise RequestError(f"the CSV cannot be parsed: {exc}") from None
    names = header.iloc[0].tolist() if len(header) else []
    repeated = duplicate_columns(names)
    if repeated:
        raise RequestError(f"the CSV request: {describe_duplicate_columns(repeated)}")
    separated = other_separator(names)
    if separated:
        raise RequestError(f"the CSV request: {separated}")
    problems = []
    for column in frame.columns:
        if column not in numeric_columns:
            continue
        cells = frame[column].str.strip()
        numbers = pd.to_numeric(cells, errors="coerce")
        bad = (numbers.isna() & cells.notna() & (cells != "")).to_numpy(dtype=bool)
        if bad.any():
            rows = (np.flatnonzero(bad) + 1).tolist()
            shown = ", ".join(map(str, rows[:8])) + (
                f" (first 8 of {len(rows)})" if len(rows) > 8 else ""
            )
            problems.append(f"column '{column}', rows {shown}: not a number")
        frame[column] = numbers.astype("float64")
    if problems:
        raise RequestError("the CSV request cannot be used:\n  " + "\n  ".join(problems))
    return json.dumps(dataframe_split(frame)).encode()


def repeated_json_key(body: bytes) -> str | None:
    """The first key named twice in one JSON object of ``body`` (``{"likes": 1, "likes": 2}``:
    the parser keeps the last and the client meant one of them), else None. Malformed JSON is
    left to MLflow's own answer."""
    found: list[str] = []

    def check(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if not found:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)
        return dict(pairs)

    try:
        json.loads(body, object_pairs_hook=check)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


# --------------------------------------------------------------------------- the middleware


class Lane:
    """At most ``running`` requests at a time and at most ``queue`` waiting (None: unbounded)."""

    def __init__(self, running: int, queue: int | None) -> None:
        self.slots = asyncio.Semaphore(running)
        self.queue = queue
        self.waiting = 0

    def full(self) -> bool:
        return self.queue is not None and self.slots.locked() and self.waiting >= self.queue


class LimitsMiddleware:
    """Body size, read timeout, light/heavy lanes, time
    limit, CSV and clean errors for ``/invocations``."""

    def __init__(
        self,
        app: ASGIApp,
        limits: ServerLimits,
        numeric_columns: set[str],
        paths: list[str] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.numeric_columns = numeric_columns
        self.paths = server_paths() if paths is None else paths
        self.lanes: dict[str, Lane] = {}

    def lane(self, kind: str) -> Lane:
        # Created on first use, inside the worker's event loop.
        if kind not in self.lanes:
            if kind == "heavy":
                self.lanes[kind] = Lane(self.limits.heavy_concurrency, self.limits.heavy_queue)
            else:
                self.lanes[kind] = Lane(self.limits.light_concurrency, None)
        return self.lanes[kind]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.request_timeout
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > drain_limit(limits):
            await respond(
                send, 413, error_body("REQUEST_LIMIT_EXCEEDED", self._too_large()), close=True
            )
            return
        try:
            body = await asyncio.wait_for(
                read_body(receive, limits.max_body_bytes, drain_limit(limits)),
                timeout=limits.body_timeout,
            )
        except BodyTooLarge:
            await respond(
                send, 413, error_body("REQUEST_LIMIT_EXCEEDED", self._too_large()), close=True
            )
            return
        except TimeoutError:
            await respond(
                send,
                408,
                error_body(
                    "REQUEST_TIMEOUT",
                    f"the request body was not received within {limits.body_timeout:g} s",
                ),
                close=True,
            )
            return
        except ClientGone:
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        kind = "heavy" if len(body) > limits.heavy_body_bytes else "light"
        if content_type.split(";")[0].strip().lower() == "text/csv":
            try:
                forwarded = csv_to_json(body, self.numeric_columns)
            except RequestError as exc:
                await respond(
                    send, 400, error_body("BAD_REQUEST", clean_message(str(exc), self.paths))
                )
                return
            content_type = "application/json"
        else:
            forwarded = body
            # A heavy body is parsed off the event loop, so light requests are not held up.
            repeated = (
                repeated_json_key(body)
                if kind == "light"
                else await asyncio.to_thread(repeated_json_key, body)
            )
            if repeated is not None:
                message = (
                    f"the JSON request names '{repeated[:80]}' twice in one object; a JSON "
                    "parser keeps only the last, so which value was meant is unknowable: send "
                    "each key once"
                )
                await respond(send, 400, error_body("BAD_REQUEST", message))
                return

        lane = self.lane(kind)
        if lane.full():
            retry = max(1, round(limits.request_timeout / 4))
            message = (
                f"the server is busy with {self.limits.heavy_concurrency + lane.waiting} "
                f"long requests (over {limits.heavy_body_bytes // 1024} "
                f"KB); retry in {retry} s, or split the shortlist"
            )
            await respond(
                send,
                503,
                error_body("TEMPORARILY_UNAVAILABLE", message),
                extra=[(b"retry-after", str(retry).encode())],
            )
            return
        lane.waiting += 1
        try:
            await asyncio.wait_for(lane.slots.acquire(), timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            await respond(
                send,
                503,
                error_body(
                    "TEMPORARILY_UNAVAILABLE",
                    f"the server was busy for {limits.request_timeout:g} s; retry later",
                ),
                extra=[(b"retry-after", b"5")],
            )
            return
        finally:
            lane.waiting -= 1
        inner = _inner_scope(scope, content_type, len(forwarded))
        task = asyncio.ensure_future(collect(self.app, inner, forwarded, receive))
        # The slot is released when the work ends, even if the answer was a 504 long before.
        task.add_done_callback(lambda _: lane.slots.release())
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            task.add_done_callback(_log_late)
            await respond(
                send,
                504,
                error_body(
                    "DEADLINE_EXCEEDED",
                    f"scoring took longer than {limits.request_timeout:g} "
                    "s; send fewer candidates per request",
                ),
            )
            return
        try:
            status, response_headers, payload = task.result()
        except Exception:
            incident = uuid.uuid4().hex[:12]
            logger.exception("request %s failed", incident)
            await respond(
                send,
                500,
                error_body(
                    "INTERNAL_ERROR",
                    f"the server failed on this request (incident {incident} in the server log)",
                ),
            )
            return
        if status >= 400:
            payload, trace = clean_error_body(payload, self.paths)
            if trace:
                logger.warning("request answered %s; the server-side trace:\n%s", status, trace)
            response_headers = [(b"content-type", b"application/json")]
        await respond(send, status, payload, headers=response_headers)

    def _too_large(self) -> str:
        return (
            f"the request body is over {self.limits.max_body_bytes / 2**20:g} MB; "
            "send fewer candidates per request (or use `engage score` for batches)"
        )


def _log_late(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is None:
        logger.warning("a request answered 504 finished later with status %s", task.result()[0])


def _inner_scope(scope: Scope, content_type: str, length: int) -> Scope:
    headers = [
        (k, v)
        for k, v in scope.get("headers", [])
        if k.lower() not in (b"content-type", b"content-length")
    ]
    headers += [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(length).encode()),
    ]
    return {**scope, "headers": headers}


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def drain_limit(limits: ServerLimits) -> int:
    """Bytes of a too-large body read and dropped before answering 413: a client still sending
    its body would see a broken connection instead of the answer. Beyond this, the connection
    is closed at once."""
    return max(4 * limits.max_body_bytes, 64 * 2**20)


async def read_body(receive: Receive, limit: int, drain: int) -> bytes:
    """The whole body; over ``limit`` bytes, the rest is read and dropped (up to ``drain``
    bytes in all), then :class:`BodyTooLarge` is raised."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > drain or not message.get("more_body", False):
            raise BodyTooLarge
        else:
            chunks.clear()
        if not message.get("more_body", False):
            return b"".join(chunks)


async def collect(
    app: ASGIApp, scope: Scope, body: bytes, receive: Receive
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` on a buffered body; returns its status, headers and whole answer."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # blocks until the client goes away, as a real receive does

    status = 500
    headers: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []

    async def keep(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, replay, keep)
    return status, headers, b"".join(parts)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
) -> None:
    headers = [
        (k, v)
        for k, v in (headers or [(b"content-type", b"application/json")])
        if k.lower() != b"content-length"
    ]
    headers += [(b"content-length", str(len(body)).encode()), *(extra or [])]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --------------------------------------------------------------------------- the app


def build_app(
    model: Any, limits: ServerLimits | None = None, paths: list[str] | None = None
) -> ASGIApp:
    """MLflow's scoring app for a loaded pyfunc ``model``, behind :class:`LimitsMiddleware`."""
    from mlflow.pyfunc import scoring_server

    from serving.schema import REST_COLUMNS

    numeric = {
        name for name, dtype, _ in REST_COLUMNS if dtype is not None and dtype.name == "double"
    }
    return LimitsMiddleware(scoring_server.init(model), limits or ServerLimits(), numeric, paths)


def create_app() -> ASGIApp:
    """uvicorn's factory (``--factory serving.server:create_app``): one call per worker process.

    The model URI and the limits come from the environment ``engage serve`` sets.
    """
    from mlflow.pyfunc import scoring_server

    uri = os.environ[MODEL_ENV]
    logging.basicConfig(level=logging.INFO)
    model = scoring_server.load_model_with_mlflow_config(uri)
    paths = server_paths((uri,) if os.path.isabs(uri) else ())
    return build_app(model, ServerLimits.from_env(os.environ.get(LIMITS_ENV)), paths)
