"""Bench: the two pieces of `mlci serve` written by hand instead of taken from a library, against that library.

1. Routing: the hand-routed ASGI app (`mlci.serving.app`, a dict lookup per path) against Starlette's router,
   both answering GET /healthz and a v2 model path in-process (no sockets: only what routing and the response
   cost), with the same JSON body.
2. Metrics: recording one request (a counter by route and code, a latency histogram) into mlci's shared slab
   against prometheus_client's multiprocess mode (what a multi-worker server needs from it), in one process.

Each prints microseconds per request for both and the ratio; nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci" / "src"))

from mlci.model.manifest import OutputSpec, ServedModel  # noqa: E402
from mlci.model.schema import Feature, InputSchema  # noqa: E402
from mlci.serving.app import Limits, ServingApp  # noqa: E402
from mlci.serving.metrics import ROUTE_INDEX, Layout, ServerMetrics, shared_slab  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "50000"))
ROUNDS = 5


def model() -> ServedModel:
    schema = InputSchema((Feature("a", "double"), Feature("b", "double")), "columns", "float64")
    return ServedModel(
        Path("."), "bench", "1", "sklearn", "onnx", "model.onnx", "0" * 64, "", "", schema, OutputSpec("p", "values")
    )


def mlci_app() -> Any:
    served = model()
    layout = Layout((), 0, 0)
    metrics = ServerMetrics(layout, shared_slab(1, layout.width), 0, {"name": "bench"}, None, 10)
    app = ServingApp(served, lambda: None, metrics, Limits(), lambda code: None)  # type: ignore[arg-type,return-value]
    app.ready = True
    return app


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def live(request: Any) -> Response:
        return Response(b'{"live":true}', media_type="application/json")

    async def ready(request: Any) -> Response:
        return Response(b'{"ready":true}', media_type="application/json")

    # async endpoints: a plain def would add a thread-pool hop to every request
    return Starlette(routes=[Route("/healthz", live), Route("/v2/models/{name}/ready", ready)])


def per_request(app: Any, path: str) -> float:
    """Microseconds per GET of `path` through the ASGI callable, best of ROUNDS."""
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [], "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8080),
             "client": ("127.0.0.1", 5000), "root_path": ""}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run() -> float:
        await app(dict(scope), receive, send)  # warm
        started = time.perf_counter()
        for _ in range(REQUESTS):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / REQUESTS * 1e6

    best = min(asyncio.run(run()) for _ in range(ROUNDS))
    assert set(statuses) == {200}, f"{path}: statuses {set(statuses)}"
    return best


def timed(record: Callable[[int], None]) -> float:
    """Microseconds per call of `record`, best of ROUNDS."""
    results = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(REQUESTS):
            record(i)
        results.append((time.perf_counter() - started) / REQUESTS * 1e6)
    return min(results)


def slab_recorder() -> Callable[[int], None]:
    layout = Layout(("0", "1"), 0, 0)
    metrics = ServerMetrics(layout, shared_slab(2, layout.width), 0, {"name": "bench"}, None, 10)
    route = ROUTE_INDEX["/invocations"]
    seconds = np.random.default_rng(0).exponential(0.002, size=1024).tolist()
    return lambda i: metrics.record_request(route, 200, seconds[i & 1023])


def multiprocess_recorder(folder: str) -> Callable[[int], None]:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    requests = Counter("mlci_requests_total", "requests", ["route", "code"], registry=registry)
    latency = Histogram(
        "mlci_request_duration_seconds",
        "latency",
        ["route"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    )
    seconds = np.random.default_rng(0).exponential(0.002, size=1024).tolist()

    def record(i: int) -> None:
        requests.labels("/invocations", "200").inc()
        latency.labels("/invocations").observe(seconds[i & 1023])

    return record


def main() -> None:
    ours, theirs = mlci_app(), starlette_app()
    for path in ("/healthz", "/v2/models/bench/ready"):
        mine, peer = per_request(ours, path), per_request(theirs, path)
        print(f"routing GET {path}: mlci {mine:.2f} us, Starlette {peer:.2f} us per request; "
              f"ratio: mlci is {peer / mine:.1f}x faster")  # fmt: skip
    slab = timed(slab_recorder())
    with tempfile.TemporaryDirectory(prefix="bench-prom-") as folder:
        multiprocess = timed(multiprocess_recorder(folder))
    print(f"recording a request: slab {slab:.2f} us, prometheus_client multiprocess {multiprocess:.2f} us; "
          f"ratio: the slab is {multiprocess / slab:.1f}x faster")  # fmt: skip
    print(f"({REQUESTS} requests per round, best of {ROUNDS} rounds)")


if __name__ == "__main__":
    main()
