"""Gate parity: the served artifact predicts what the trained model predicts, within the tolerance."""

from __future__ import annotations

from ...packaging.parity import ParityResult
from . import GateResult


def verdict(result: ParityResult) -> GateResult:
    measured = {"rows": result.rows, "max_diff": result.max_diff}
    return GateResult("parity", "pass" if result.passed else "fail", measured, result.tolerance, result.reason)
