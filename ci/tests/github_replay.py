"""A local HTTP server that answers with recorded GitHub REST responses and keeps the requests it got."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "recorded" / "github"


def recorded(name: str, **changes: Any) -> Any:
    """A recorded response body; `changes` replace top-level fields (or every item's, for a list)."""
    body = json.loads((RECORDED / f"{name}.json").read_text())
    items = body if isinstance(body, list) else [body]
    for item in items:
        item.update(copy.deepcopy(changes))
    return body


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@contextmanager
def replay(routes: dict[tuple[str, str], Reply]) -> Iterator[tuple[str, list[Received]]]:
    """Serve `routes` ((method, path with query) -> reply) on 127.0.0.1; yields the API URL and the requests.

    A request with no route gets a 404 like GitHub's, so a wrong path fails the test that made it.
    """
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            received.append(
                Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
            )
            reply = routes.get((self.command, self.path), Reply(404, {"message": "Not Found"}))
            data = b"" if reply.status == 204 else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value.replace("{api}", api))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, received
    finally:
        server.shutdown()
        server.server_close()
