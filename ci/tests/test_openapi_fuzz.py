"""Fuzz every operation of the server's OpenAPI description with schemathesis: no request gets a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Server


def test_schemathesis_finds_no_server_error(server: Server, tmp_path):
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
    assert "Tested: 12" in done.stdout
    metrics = server.metrics()
    server_errors = {k: v for k, v in metrics.items() if k.startswith("mlci_requests_total") and 'code="5' in k and v}
    assert server_errors == {}
    fuzzed = sum(v for k, v in metrics.items() if k.startswith("mlci_requests_total"))
    assert fuzzed > 500  # the fuzzer really sent traffic
