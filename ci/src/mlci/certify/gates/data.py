"""Gate data: the project's Great Expectations suite holds on the training data (the project's own check)."""

from __future__ import annotations

from . import GateResult


def verdict(command: str, exit_code: int, output: str) -> GateResult:
    """The check command exits 0 when the suite holds, 1 when it does not, anything else when it cannot run."""
    last = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "")
    if exit_code == 0:
        return GateResult("data", "pass", "suite holds", command, last or "the suite holds on the training data")
    if exit_code == 1:
        return GateResult("data", "fail", last, command, last or "the suite fails on the training data")
    return GateResult("data", "error", exit_code, command, f"the check exited {exit_code}: {last}")
