"""Gate serving: p99 latency and throughput of the packaged model's server under load meet the SLOs."""

from __future__ import annotations

from . import GateResult


def verdict(requests_per_s: float, p99_ms: float, errors: int, slo_p99_ms: float, slo_rps: float) -> GateResult:
    measured = {"requests_per_s": round(requests_per_s, 1), "p99_ms": round(p99_ms, 3), "errors": errors}
    threshold = {"p99_ms": slo_p99_ms, "min_requests_per_s": slo_rps}
    problems = []
    if errors:
        problems.append(f"{errors} request(s) failed under load")
    if p99_ms > slo_p99_ms:
        problems.append(f"p99 {p99_ms:.2f} ms > {slo_p99_ms:g} ms")
    if requests_per_s < slo_rps:
        problems.append(f"{requests_per_s:.0f} requests/s < {slo_rps:g}")
    if problems:
        return GateResult("serving", "fail", measured, threshold, "; ".join(problems))
    return GateResult("serving", "pass", measured, threshold, f"p99 {p99_ms:.2f} ms at {requests_per_s:.0f} requests/s")
