"""Gate robustness: malformed, missing, wrong-typed and out-of-range requests get a 4xx; the server stays up."""

from __future__ import annotations

from . import GateResult


def verdict(answers: dict[str, int], alive_after: bool) -> GateResult:
    """`answers`: the status each bad request got (0 when the connection failed)."""
    wrong = {case: status for case, status in answers.items() if not 400 <= status < 500}
    measured = {"cases": len(answers), "not_4xx": wrong, "alive_after": alive_after}
    if not alive_after:
        return GateResult("robustness", "fail", measured, "4xx for every case", "the server died under bad requests")
    if wrong:
        shown = ", ".join(f"{case}: {status}" for case, status in list(wrong.items())[:5])
        return GateResult(
            "robustness", "fail", measured, "4xx for every case", f"{len(wrong)} case(s) not 4xx ({shown})"
        )
    return GateResult(
        "robustness", "pass", measured, "4xx for every case", f"all {len(answers)} bad requests got a 4xx"
    )
