"""Fuzz every operation of the server's OpenAPI description with schemathesis: no request gets a 5xx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Server


def _counts(server: Server) -> dict[str, float]:
    return {k: v for k, v in server.metrics().items() if k.startswith("mlci_requests_total")}


def test_schemathesis_finds_no_server_error(server: Server, tmp_path):
    before = _counts(server)  # the fixture's readiness polling may have met a 503 while the model loaded
    schemathesis = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--seed",
            "20261121",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    _, spec = server.get("/openapi.json")
    operations = sum(len(methods) for methods in json.loads(spec)["paths"].values())
    assert operations == 13 and f"Tested: {operations}" in done.stdout  # /feedback among them
    after = _counts(server)
    new = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert {k: v for k, v in new.items() if 'code="5' in k} == {}  # the server counted no 5xx either
    assert sum(new.values()) > 500  # the fuzzer really sent traffic
    assert any('code="200"' in k for k in new) and any('code="400"' in k for k in new)
