"""A small HTTP/1.1 load generator (keep-alive connections, one request in flight each) for the serving gate."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("inf")


async def _connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            closing = False
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    lowered = line.lower()
                    if lowered.startswith(b"content-length:"):
                        length = int(line[15:])
                    elif lowered.startswith(b"connection:") and b"close" in lowered:
                        closing = True
                await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                errors.append(0)  # the connection broke mid-request
                closing = True
            else:
                latencies.append((time.perf_counter() - started) * 1000)
                if head[9:12] != b"200":
                    errors.append(int(head[9:12]))
            if closing:  # the server closed the connection: open another, as a client would
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


def drive(url: str, body: bytes, seconds: float, connections: int) -> LoadResult:
    """POST `body` (JSON) to `url` over `connections` connections for `seconds`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[int] = []

    async def run() -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(_connection(host, port, request, deadline, latencies, errors) for _ in range(connections))
        )
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return LoadResult(len(latencies), len(errors), elapsed, latencies)
