"""The serving and robustness gates trip on a real server process that is slow, or that answers 500.

The p99 bound (100 ms) sits well below the latency the faulty server injects (300 ms per answer, 500 ms
pauses) and far above what mlci serve takes for one row at 10 requests/s on a loaded machine: the verdicts
come from the faults, not from how busy the machine is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlci.certify import config
from mlci.certify import run as certify
from mlci.certify.process import ServerProcess, free_port

CONFIG = """
gates:
  data: {command: "true"}
  quality: {thresholds: {accuracy: {min: 0.9}}}
  champion: {tolerance: {accuracy: 0.01}}
  serving: {seconds: 3, connections: 4, p99_ms: 100, min_requests_per_s: 10}
"""


@pytest.fixture
def settings(tmp_path: Path) -> config.Certification:
    path = tmp_path / "certification.yaml"
    path.write_text(CONFIG)
    return config.load(path)


def faulty(mode: str, tmp_path: Path) -> ServerProcess:
    port = free_port()
    script = Path(__file__).parents[1] / "faulty_server.py"
    return ServerProcess(
        [sys.executable, str(script), mode, str(port)], f"http://127.0.0.1:{port}/readyz", tmp_path / f"{mode}.log"
    ).start(timeout=30)


def test_a_server_that_answers_500_to_bad_input_fails_robustness(settings, forest_package, tmp_path):
    with faulty("500", tmp_path) as server:
        result = certify._robustness(settings, forest_package, tmp_path, server, certify.Measurements())
    assert result.status == "fail"
    assert result.measured["cases"] >= 20 and "invalid JSON: 500" in result.reason


def test_a_slow_server_fails_serving(settings, forest_package, tmp_path):
    with faulty("slow", tmp_path) as server:
        result = certify._serving(settings, forest_package, tmp_path, server, certify.Measurements())
    assert result.status == "fail" and "p99" in result.reason and "> 100 ms" in result.reason


def test_a_server_that_cannot_carry_the_rate_fails_on_saturation_without_an_open_loop(
    settings, forest_package, tmp_path
):
    """Below the rate at saturation the gate has failed already: no open loop piles up requests behind it."""
    gate = settings.gates.serving.model_copy(update={"min_requests_per_s": 100_000})
    demanding = settings.model_copy(update={"gates": settings.gates.model_copy(update={"serving": gate})})
    seen = certify.Measurements()
    with faulty("slow", tmp_path) as server:
        result = certify._serving(demanding, forest_package, tmp_path, server, seen)
    assert result.status == "fail" and "saturates at" in result.reason and "< 100000" in result.reason
    assert result.measured["p99_ms"] == result.measured["saturation_p99_ms"]
    # The latencies are the closed loop's: an open loop would have offered 300,000 requests.
    saturated = result.measured["saturation_requests_per_s"] * certify.SATURATION_SECONDS
    assert 0 < len(seen.latencies_ms) <= saturated + gate.connections


def test_a_server_that_stalls_fails_serving_though_its_closed_loop_p99_looks_fine(settings, forest_package, tmp_path):
    """500 ms pauses every 2 seconds: a closed loop sends nothing while its 4 connections wait, so few of its
    requests see the pause; at a fixed arrival rate, every request due during it waits, and the p99 shows it."""
    with faulty("stall", tmp_path) as server:
        result = certify._serving(settings, forest_package, tmp_path, server, certify.Measurements())
    assert result.status == "fail", result.reason
    assert result.measured["saturation_p99_ms"] < 100 < result.measured["p99_ms"], result.measured
    assert "p99" in result.reason and "> 100 ms at 10 requests/s offered" in result.reason


def test_mlci_serve_passes_both(settings, forest_package, tmp_path):
    server = certify._start(forest_package, tmp_path)
    try:
        seen = certify.Measurements()
        assert certify._serving(settings, forest_package, tmp_path, server, seen).status == "pass"
        assert len(seen.latencies_ms) == 30  # 10 requests/s offered for 3 s, each timed
        robust = certify._robustness(settings, forest_package, tmp_path, server, seen)
        assert robust.status == "pass", robust.reason
        assert robust.measured["cases"] >= 20
    finally:
        server.stop()
