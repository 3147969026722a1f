"""uvicorn's httptools protocol with two guards a model server needs in front of slow or many clients.

- A read deadline: a request (headers and body) must arrive within `read_timeout` seconds of its first byte (or
  of the connection, for one that sends nothing); a client that stalls gets a 408 and its connection is closed.
  uvicorn itself waits for a half-sent request forever.
- A connection limit: beyond `max_connections` open connections (per worker), a new one gets a 503 with
  Retry-After and is closed before anything is read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
    """HttpToolsProtocol with a per-request read deadline and a cap on open connections (set by `guarded`)."""

    read_timeout: float = 10.0
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(TOO_MANY)
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first bytes of a request: its clock starts
            self._arm()
        super().data_received(data)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.transport.write(TIMED_OUT)
        self.transport.close()


def guarded(read_timeout: float, max_connections: int) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's `http=` with these limits."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"read_timeout": float(read_timeout), "max_connections": int(max_connections)},
    )
