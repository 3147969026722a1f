"""The model server's HTTP application: a plain ASGI callable, routed by hand for speed.

Scoring runs inline on the event loop: a validated single row scores in tens of microseconds,
far less than a hop to a thread pool would cost. Every response is counted and timed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np

from .. import __version__
from ..model.manifest import ServedModel
from . import invocations, v2
from .dataplane import Batch, RequestError, dumps
from .feedback import parse_feedback, request_key, score, valid_request_id
from .metrics import ROUTE_INDEX, ServerMetrics
from .openapi import describe
from .runtime import Runtime

log = logging.getLogger("mlci.serve")

JSON = b"application/json"
Receive = Callable[[], Awaitable[dict[str, Any]]]
Handler = Callable[[str, bytes, str], tuple[int, bytes, bytes]]
Route = tuple[int, Handler | None, bool]  # the route's index in the metrics, its handler, whether it takes a POST
Send = Callable[[dict[str, Any]], Awaitable[None]]
WARMUP_ROUNDS = 20
GET_OR_HEAD = frozenset({"GET", "HEAD"})
PREDICTING = frozenset({ROUTE_INDEX["/invocations"], ROUTE_INDEX["/v2/models/{name}/infer"]})
ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_body_bytes: int = 16 * 1024 * 1024
    max_rows: int = 10_000


class Disconnected(Exception):
    """The client went away before its body arrived."""


class ServingApp:
    """Serves one packaged model: /invocations, the v2 protocol, health, readiness and metrics."""

    def __init__(
        self,
        model: ServedModel,
        load: Callable[[], Runtime],
        metrics: ServerMetrics,
        limits: Limits,
        on_fatal: Callable[[int], None],
    ) -> None:
        self.model = model
        self._load = load
        self.metrics = metrics
        self.limits = limits
        self._on_fatal = on_fatal
        self.invocations = invocations.InvocationsParser(model.inputs, limits.max_rows)
        self.v2 = v2.V2Parser(model.inputs, limits.max_rows)
        self.runtime: Runtime | None = None
        self.ready = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._openapi = dumps(describe(model))
        self._v2_metadata = dumps(v2.metadata(model))
        self._server_metadata = dumps({"name": "mlci", "version": __version__, "extensions": []})
        # Request ids this worker makes for requests that bring none: a prefix of its own and a counter.
        self._id_prefix, self._ids = os.urandom(6).hex() + "-", itertools.count()
        # The prediction being answered: the client's request id (None when it sent none), then the one used.
        # `answer` sets and reads both around the handler, on the event loop's one thread.
        self._client_id: str | None = None
        self._request_id = ""
        # Path -> (route index for the metrics, handler, whether it takes a POST); the served model's v2 paths join
        # once routed (`_v2_route`), so the next request on them takes one lookup. No other path is kept.
        self._static: dict[str, Route] = {
            "/invocations": (ROUTE_INDEX["/invocations"], self._invocations, True),
            "/feedback": (ROUTE_INDEX["/feedback"], self._feedback, True),
            "/healthz": (ROUTE_INDEX["/healthz"], self._live, False),
            "/readyz": (ROUTE_INDEX["/readyz"], self._ready, False),
            "/ping": (ROUTE_INDEX["/ping"], self._ready, False),
            "/health": (ROUTE_INDEX["/ping"], self._ready, False),
            "/version": (ROUTE_INDEX["/version"], self._version, False),
            "/metrics": (ROUTE_INDEX["/metrics"], self._metrics, False),
            "/openapi.json": (ROUTE_INDEX["/openapi.json"], self._openapi_json, False),
            "/v2": (ROUTE_INDEX["/v2"], self._v2_server, False),
            "/v2/health/live": (ROUTE_INDEX["/v2/health/live"], self._live, False),
            "/v2/health/ready": (ROUTE_INDEX["/v2/health/ready"], self._ready, False),
        }

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        entry = self._static.get(path)
        if entry is None:
            entry = self._v2_route(path)
        body, content_type, request_id = b"", "", None
        if entry[2] and method == "POST" and entry[1] is not None:
            try:
                body, content_type, request_id = await self._body(scope, receive)
            except RequestError as error:
                entry = (entry[0], _refuse(error), True)
            except Disconnected:
                self.metrics.record_request(entry[0], 400, perf_counter() - started)
                return
        status, payload, media, extra = self.answer(entry, method, path, body, content_type, request_id)
        headers = [(b"content-type", media), (b"content-length", b"%d" % len(payload)), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})
        self.metrics.record_request(entry[0], status, perf_counter() - started)

    def answer(
        self, entry: Route, method: str, path: str, body: bytes, content_type: str, request_id: str | None = None
    ) -> tuple[int, bytes, bytes, tuple[tuple[bytes, bytes], ...]]:
        """The response to a request whose body has arrived: status, payload, media type and extra headers.
        Shared by the ASGI app and the protocol's inline path for predictions (`protocol.py`). A prediction's
        response carries its request id in X-Request-Id: the client's `request_id`, else one made here."""
        route, handler, wants_post = entry
        try:
            if handler is None:
                raise RequestError(f"no route {path!r}; see /openapi.json", status=404)
            allowed = method == "POST" if wants_post else method in GET_OR_HEAD
            if not allowed:
                verb = "POST" if wants_post else "GET"
                error = RequestError(f"{method} is not allowed on {path}; use {verb}", 405)
                return *_error(error), ((b"allow", b"POST" if wants_post else b"GET, HEAD"),)
            if route not in PREDICTING:
                return *handler(path, body, content_type), ()
            self._client_id = None if request_id is None else valid_request_id(request_id)
            self._request_id = ""
            answered = handler(path, body, content_type)
            return *answered, ((b"x-request-id", self._request_id.encode("ascii")),)
        except RequestError as error:
            return *_error(error), ()
        except Exception as error:  # a bug or a model failure: report it, never crash the worker
            log.exception("error on %s %s", method, path)
            payload = dumps({"error_code": "INTERNAL_ERROR", "message": f"{type(error).__name__}: {error}"})
            return 500, payload, JSON, ()

    def inline_routes(self) -> dict[bytes, Route]:
        """The prediction routes by raw path (/invocations, and the model's v2 infer paths), which the protocol
        answers inline once their body has arrived."""
        name, version = self.model.name, self.model.version
        paths = ["/invocations", f"/v2/models/{name}/infer", f"/v2/models/{name}/versions/{version}/infer"]
        routes = {}
        for path in paths:
            entry = self._static.get(path) or self._v2_route(path)
            if entry[1] is not None and path.isascii() and "%" not in path and "?" not in path:
                routes[path.encode("ascii")] = entry
        return routes

    async def _body(self, scope: dict[str, Any], receive: Receive) -> tuple[bytes, str, str | None]:
        content_type, request_id = "", None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                self._declared(value)
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        body = message.get("body", b"")
        if message.get("more_body"):
            body = await self._rest(body, receive)
        return body, content_type, request_id

    def _declared(self, value: bytes) -> None:
        """Refuse a body announced larger than the limit before reading it."""
        limit = self.limits.max_body_bytes
        try:
            declared = int(value)
        except ValueError:
            raise RequestError("the Content-Length header is not a number") from None
        if declared > limit:
            raise RequestError(f"the body has {declared} bytes; this server takes at most {limit}", 413)

    async def _rest(self, first: bytes, receive: Receive) -> bytes:
        """The rest of a body that arrives in several messages, up to the limit."""
        limit = self.limits.max_body_bytes
        chunks, size = [first], len(first)
        message: dict[str, Any] = {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(f"the body exceeds {limit} bytes, the most this server takes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not self.ready:
                    self._spawn(self._load_and_warm())
                self._spawn(self._flush_periodically())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def preload(self) -> None:
        """Load and warm the model before serving (for workers sharing a socket: only ready ones accept)."""
        runtime = self._load()
        warm = warmup_batch(self.model)
        for _ in range(WARMUP_ROUNDS):
            runtime.predict(warm)
        self.runtime = runtime
        self.ready = True

    async def _load_and_warm(self) -> None:
        """Load off the event loop, so that /healthz answers meanwhile."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.preload)
        except Exception:
            log.exception("the model failed to load")
            self._on_fatal(3)
            return
        log.info("ready: %s version %s (%s)", self.model.name, self.model.version, self.model.runtime)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.metrics.flush()

    # -- handlers: (path, body, content type) -> (status, payload, media type) -------------------

    def _score(self, batch: Batch, request_id: str) -> np.ndarray:
        """The model's output for a batch, recorded under its request id (rows `<request id>:<row index>`)."""
        assert self.runtime is not None  # the handlers answer 503 before parsing while the model loads
        output = self.runtime.predict(batch)
        self._request_id = request_id
        self.metrics.record_scored(batch, output, request_key(request_id), request_id)
        return output

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def _invocations(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        if self.runtime is None:
            raise RequestError("the model is still loading; retry when /readyz answers 200", status=503)
        batch = self.invocations.parse(body, content_type)
        output = self._score(batch, self._client_id or self._new_id())
        return 200, invocations.response(output), JSON

    def _v2_infer(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        if self.runtime is None:
            raise RequestError("the model is still loading; retry when /v2/health/ready answers 200", status=503)
        batch, body_id = self.v2.parse(body)
        # The rows' ids: the client's X-Request-Id, else the request's own id, else one made here. The response's
        # `id` echoes the request's (the protocol's rule), else the one used.
        used = self._client_id or body_id or self._new_id()
        output = self._score(batch, used)
        return 200, v2.response(self.model, output, body_id or used), JSON

    def _feedback(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        """Ground truth for earlier predictions, by prediction id: counted per outcome, never refused for an id
        this server does not hold (unknown, evicted or older than the window: unmatched)."""
        store = self.metrics.store
        if store is None:
            raise RequestError("this server keeps no predictions for feedback (--feedback-capacity 0)", status=404)
        classes = self.metrics.layout.classes
        feedback = parse_feedback(body, classes, self.limits.max_rows)
        self.metrics.flush()  # this worker's latest predictions into the store
        found, predicted = store.lookup(feedback.keys, time.time())
        figures = score(feedback, found, predicted, classes)
        self.metrics.record_feedback(figures)
        return 200, dumps({k: int(v) if k in ("correct", "wrong", "matched", "unmatched") else v
                           for k, v in figures.items()}), JSON  # fmt: skip

    def _live(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        return 200, b'{"live":true}', JSON

    def _ready(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        if self.ready:
            return 200, b'{"ready":true}', JSON
        return 503, b'{"ready":false}', JSON

    def _version(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        return 200, dumps({"mlci": __version__, "model": self.model.name, "version": self.model.version}), JSON

    def _metrics(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        return 200, self.metrics.exposition(), b"text/plain; version=0.0.4; charset=utf-8"

    def _openapi_json(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        return 200, self._openapi, JSON

    def _v2_server(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        return 200, self._server_metadata, JSON

    def _v2_model(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        return 200, self._v2_metadata, JSON

    def _v2_route(self, path: str) -> Route:
        """Route /v2/models/<name>[/versions/<version>][/infer|/ready]; other paths: no handler. The served model's
        own paths (six at most) are remembered."""
        entry = self._route_v2(path)
        if getattr(entry[1], "__self__", None) is self:
            self._static[path] = entry
        return entry

    def _route_v2(self, path: str) -> Route:
        parts = path.split("/")
        if len(parts) < 4 or parts[:3] != ["", "v2", "models"]:
            return ROUTE_INDEX["other"], None, False
        name, rest = parts[3], parts[4:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        handler: Handler
        if not rest:
            route, handler, post = "/v2/models/{name}", self._v2_model, False
        elif rest == ["infer"]:
            route, handler, post = "/v2/models/{name}/infer", self._v2_infer, True
        elif rest == ["ready"]:
            route, handler, post = "/v2/models/{name}/ready", self._ready, False
        else:
            return ROUTE_INDEX["other"], None, False
        if name != self.model.name:
            handler = self._unknown(f"no model {name!r}; this server serves {self.model.name!r}")
        elif version is not None and version != self.model.version:
            handler = self._unknown(
                f"model {name!r} has no version {version!r}; this server serves version {self.model.version!r}"
            )
        return ROUTE_INDEX[route], handler, post

    @staticmethod
    def _unknown(message: str) -> Callable[[str, bytes, str], tuple[int, bytes, bytes]]:
        def handler(path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
            raise RequestError(message, status=404)

        return handler


def warmup_batch(model: ServedModel) -> Batch:
    """A few rows to run before declaring readiness: baseline edges where known, zeros otherwise."""
    schema = model.inputs
    width = len(schema.features)
    matrix = np.zeros((8, width))
    if model.baseline is not None:
        for i, edges in enumerate(model.baseline.edges):
            if edges:
                matrix[:, i] = np.resize(np.asarray(edges), 8)
    if not schema.numeric:
        columns = {f.name: ["" if f.type == "string" else 0] * 8 for f in schema.features}
        return Batch(None, columns, 8)
    return Batch(matrix.astype(schema.dtype), None, 8)


def _error(error: RequestError) -> tuple[int, bytes, bytes]:
    return (
        error.status,
        dumps({"error_code": ERROR_CODES.get(error.status, "BAD_REQUEST"), "message": error.message}),
        JSON,
    )


def _refuse(error: RequestError) -> Handler:
    """A handler that refuses with `error` (for a body refused before it was read)."""

    def handler(path: str, body: bytes, content_type: str) -> tuple[int, bytes, bytes]:
        raise error

    return handler
