"""uvicorn's httptools protocol with two guards a model server needs in front of slow or many clients.

- A read deadline: a request (headers and body) must arrive within `read_timeout` seconds of its first byte (or
  of the connection, for one that sends nothing); a client that stalls gets a 408 and its connection is closed.
  uvicorn itself waits for a half-sent request forever.
- A connection limit: beyond `max_connections` open connections (per worker), a new one gets a 503 with
  Retry-After and is closed before anything is read.

And one shortcut: a prediction (a POST to /invocations or the model's v2 infer path, with a Content-Length
within the limit) is answered inline, in the parser's callback, once its body has arrived: the same
`ServingApp.answer` the ASGI app calls, written to the transport in one piece, without the ASGI task, the
receive and send messages and the header checks uvicorn spends on each request (more than the model's
own scoring, for a single row: bench/serve_limit.py measures both ways). Anything else (other routes,
`Expect: 100-continue`, a chunked body, a request pipelined behind one still running, a client that is not
reading its responses) takes uvicorn's path to the ASGI app, unchanged.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

if TYPE_CHECKING:
    from .app import Route, ServingApp

RETRY_AFTER_S = 1


def _response(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\nconnection: close\r\n" + extra + b"\r\n" + body
    )  # fmt: skip


TIMED_OUT = _response(b"408 Request Timeout", b'{"error_code":"REQUEST_TIMEOUT","message":"the request did not '
                      b'arrive in time"}')  # fmt: skip
TOO_MANY = _response(b"503 Service Unavailable", b'{"error_code":"UNAVAILABLE","message":"too many connections; '
                     b'retry"}', b"retry-after: %d\r\n" % RETRY_AFTER_S)  # fmt: skip


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a per-request read deadline and a cap on open connections (set by `guarded`).

    A request costs two attribute writes: its arrival time is noted on its first bytes and cleared when it is
    complete. One timer per worker sweeps the open connections a few times per read timeout and answers 408 to
    those whose request is overdue (a timer per request would cost more than the rest of this guard).
    """

    read_timeout: float = 10.0
    max_connections: int = 1000
    serving: ServingApp | None = None  # answers predictions inline (`guarded`)
    inline: dict[bytes, Route] = {}  # noqa: RUF012 (set per class by `guarded`)
    max_body_bytes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._since: float | None = None  # when the request now arriving began (or the connection opened)
        # The prediction now arriving, when it is answered inline: its route, content type, start and request id
        # (X-Request-Id, if the client sent one); its body.
        self._inline: tuple[Route, str, float, str | None] | None = None
        self._chunks: list[bytes] = []
        self._draining = False  # the server is stopping: answer the request arriving, then close
        self._unsent = 0  # inline answers made but not yet written

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(TOO_MANY)
            transport.close()
            return
        self._since = self.loop.time()
        _Sweeper.watch(self.connections, self.loop, self.read_timeout)

    def data_received(self, data: bytes) -> None:
        if self._since is None:  # the first bytes of a request: its clock starts
            self._since = self.loop.time()
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._unset_keepalive_if_required()  # a request pipelined behind an inline answer: not idle
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        entry = self.inline.get(self.url) if self.serving is not None else None
        if entry is None or not self._inline_ok():
            super().on_headers_complete()
            return
        content_type, length, request_id = "", -1, None
        for name, value in self.headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
        if not 0 <= length <= self.max_body_bytes:  # chunked, malformed or too large: the ASGI app words it
            super().on_headers_complete()
            return
        self._inline, self._chunks = (entry, content_type, perf_counter(), request_id), []

    def shutdown(self) -> None:
        """A graceful stop: a prediction still arriving (or answered, not yet written) is answered, then its
        connection closed."""
        if self._inline is None and not self._unsent:
            super().shutdown()
        else:
            self._draining = True

    def _inline_ok(self) -> bool:
        return (
            self.parser.get_method() == b"POST"
            and not self.expect_100_continue
            and not self.parser.should_upgrade()
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
        )

    def on_body(self, body: bytes) -> None:
        if self._inline is None:
            super().on_body(body)
        else:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._since = None
        if self._inline is None:
            super().on_message_complete()
            return
        (route, handler, post), content_type, started, request_id = self._inline
        self._inline = None
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks = []
        serving = self.serving
        assert serving is not None
        path = self.url.decode("ascii")
        status, payload, media, extra = serving.answer(
            (route, handler, post), "POST", path, body, content_type, request_id
        )
        keep_alive = not self._draining and self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"content-type: %s\r\ncontent-length: %d\r\n" % (media, len(payload)))
        for name, value in extra:
            head += (name, b": ", value, b"\r\n")
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", payload)
        serving.metrics.record_request(route, status, perf_counter() - started)
        # Written once the loop has read what else arrived (as uvicorn's own path does, from a task): writing here,
        # inside the read, measured a third fewer requests per second under load.
        self._unsent += 1
        self.loop.call_soon(self._send, b"".join(head), keep_alive)

    def _send(self, response: bytes, keep_alive: bool) -> None:
        self._unsent -= 1
        if self.transport.is_closing():
            return
        self.transport.write(response)
        stopping = self._draining and not self._unsent and self._inline is None
        if not keep_alive or stopping:
            self.transport.close()
        else:
            self.on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._since = None
        super().connection_lost(exc)

    def overdue(self, now: float) -> bool:
        return self._since is not None and now - self._since >= self.read_timeout

    def time_out(self) -> None:
        self._since = None
        if not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
            self.transport.close()


class _Sweeper:
    """Answers 408 to the connections whose request is overdue, every quarter of the read timeout (at most a
    second apart), while there are connections to watch: one timer per worker, none for an idle one."""

    running: dict[int, _Sweeper] = {}

    def __init__(self, connections: set[Any], loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.connections, self.loop = connections, loop
        self.interval = min(1.0, timeout / 4)

    @classmethod
    def watch(cls, connections: set[Any], loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        if id(connections) not in cls.running:
            sweeper = cls.running[id(connections)] = cls(connections, loop, timeout)
            loop.call_later(sweeper.interval, sweeper.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for protocol in [p for p in self.connections if isinstance(p, GuardedHttpProtocol) and p.overdue(now)]:
            protocol.time_out()
        if self.connections:
            self.loop.call_later(self.interval, self.sweep)
        else:
            del self.running[id(self.connections)]


def guarded(read_timeout: float, max_connections: int, serving: ServingApp | None = None) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's `http=` with these limits; with `serving`, predictions are answered inline."""
    attributes: dict[str, Any] = {"read_timeout": float(read_timeout), "max_connections": int(max_connections)}
    if serving is not None:
        attributes |= {
            "serving": serving,
            "inline": serving.inline_routes(),
            "max_body_bytes": serving.limits.max_body_bytes,
        }
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), attributes)
