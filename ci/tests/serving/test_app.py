"""The ASGI application in process: readiness waits for the model, and a failing model is a 500."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import numpy as np

from mlci.serving.app import Limits, ServingApp
from mlci.serving.dataplane import Batch
from mlci.serving.metrics import Layout, ServerMetrics, shared_slab


class Gate:
    """A runtime whose loading waits until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def load(self) -> Any:
        self.opened.wait(10)
        return self

    def predict(self, batch: Batch) -> np.ndarray:
        if batch.matrix is not None and np.any(batch.matrix > 1e6):
            raise RuntimeError("the model broke")
        return np.tile([0.25, 0.75], (batch.rows, 1))


async def call(app: ServingApp, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-type", b"application/json")]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def lifespan_startup(app: ServingApp) -> None:
    messages = iter([{"type": "lifespan.startup"}])
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        try:
            return next(messages)
        except StopIteration:
            await asyncio.Event().wait()  # the server never shuts down during this test
            raise

    async def send(message: dict[str, Any]) -> None:
        done.set()

    asyncio.ensure_future(app(scope={"type": "lifespan"}, receive=receive, send=send))
    await done.wait()


def test_ready_only_once_loaded_and_warmed_and_a_model_failure_is_a_500(forest_package):
    gate = Gate()
    layout = Layout(("malignant", "benign"), 0, 0)
    metrics = ServerMetrics(layout, shared_slab(1, layout.width), 0, {"name": "m"}, None, 10)
    fatal: list[int] = []
    app = ServingApp(forest_package, gate.load, metrics, Limits(), fatal.append)
    row = json.dumps({"inputs": [[1.0] * 30]}).encode()

    async def scenario() -> None:
        await lifespan_startup(app)
        assert (await call(app, "GET", "/healthz"))[0] == 200
        assert (await call(app, "GET", "/readyz"))[0] == 503
        assert (await call(app, "GET", "/v2/health/ready"))[0] == 503
        status, body = await call(app, "POST", "/invocations", row)
        assert status == 503 and "still loading" in body["message"]
        gate.opened.set()
        for _ in range(200):
            if app.ready:
                break
            await asyncio.sleep(0.01)
        assert (await call(app, "GET", "/readyz"))[0] == 200
        status, body = await call(app, "POST", "/invocations", row)
        assert status == 200 and body["predictions"] == [[0.25, 0.75]]
        status, body = await call(app, "POST", "/invocations", json.dumps({"inputs": [[1e7] * 30]}).encode())
        assert status == 500 and body["error_code"] == "INTERNAL_ERROR" and "the model broke" in body["message"]
        assert (await call(app, "GET", "/healthz"))[0] == 200  # the worker is still up

    asyncio.run(scenario())
    assert fatal == []
