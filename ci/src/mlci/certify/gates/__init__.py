"""The certification gates: each a pure verdict on measured values, plus the code that measures them.

A verdict is `pass`, `fail` or `error` (the gate could not run), with the measured value, the threshold
and a one-line reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "error"]


@dataclass(frozen=True)
class GateResult:
    gate: str
    status: Status
    measured: Any
    threshold: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error(gate: str, reason: str) -> GateResult:
    return GateResult(gate, "error", None, None, reason)
