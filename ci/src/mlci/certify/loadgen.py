"""A small HTTP/1.1 load generator for the serving gate, in two modes.

- Closed loop (`drive`): a fixed number of keep-alive connections, one request in flight each, as fast as the
  server answers. It measures saturation; its latencies hide a stall, since no request is sent while every
  connection waits (coordinated omission).
- Open loop (`offer`): requests sent at a fixed rate whatever the server does, each timed from the moment it
  was due to be sent, so a stall counts against every request that should have gone out during it.
"""

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


def _request(url: str, body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return host, port, request


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """Send one request and read its response: the status, and whether the server keeps the connection open."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length, keep = 0, True
    for line in head.split(b"\r\n")[1:]:
        lowered = line.lower()
        if lowered.startswith(b"content-length:"):
            length = int(line[15:])
        elif lowered.startswith(b"connection:") and b"close" in lowered:
            keep = False
    await reader.readexactly(length)
    return int(head[9:12]), keep


async def _connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, keep = await _exchange(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                errors.append(0)  # the connection broke mid-request
                keep = False
            else:
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors.append(status)
            if not keep:  # the server closed the connection: open another, as a client would
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


def drive(url: str, body: bytes, seconds: float, connections: int) -> LoadResult:
    """Closed loop: POST `body` (JSON) to `url` over `connections` connections for `seconds`."""
    host, port, request = _request(url, body)
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


@dataclass(frozen=True)
class OfferedLoad(LoadResult):
    """An open-loop run: what `LoadResult` holds, latencies timed from each request's due time."""

    rate: float = 0.0  # requests per second offered
    late_ms: float = 0.0  # how far behind its schedule the generator itself fell at worst

    @property
    def requests_per_s(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0


async def _offer(
    host: str, port: int, request: bytes, rate: float, seconds: float, connections: int, timeout: float
) -> tuple[list[float], list[int], float]:
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    errors: list[int] = []
    late = 0.0

    async def one(due: float) -> None:
        nonlocal opened
        if idle.empty() and opened < connections:  # every connection is busy: open one more, as clients do
            opened += 1
            try:
                idle.put_nowait(await asyncio.open_connection(host, port))
            except OSError:
                opened -= 1
                errors.append(0)
                return
        reader, writer = await idle.get()
        try:
            status, keep = await asyncio.wait_for(_exchange(reader, writer, request), timeout)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            errors.append(0)
            keep = False
        else:
            latencies.append((time.perf_counter() - due) * 1000)
            if status != 200:
                errors.append(status)
        if keep:
            idle.put_nowait((reader, writer))
        else:
            writer.close()
            opened -= 1

    started = time.perf_counter()
    tasks = []
    for i in range(max(1, round(rate * seconds))):
        due = started + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        late = max(late, time.perf_counter() - due)
        tasks.append(asyncio.ensure_future(one(due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait()[1].close()
    return latencies, errors, late * 1000


def offer(
    url: str, body: bytes, rate: float, seconds: float, connections: int = 256, timeout: float = 10.0
) -> OfferedLoad:
    """Open loop: POST `body` to `url` at `rate` requests per second for `seconds`, whatever the answers take
    (on up to `connections` connections, opened as the requests in flight need them). Each latency runs from
    the moment its request was due, so a stall delays every request due during it; a request not answered
    within `timeout` seconds is an error."""
    host, port, request = _request(url, body)
    latencies, errors, late_ms = asyncio.run(_offer(host, port, request, rate, seconds, connections, timeout))
    return OfferedLoad(len(latencies) + errors.count(0), len(errors), seconds, latencies, rate, late_ms)
