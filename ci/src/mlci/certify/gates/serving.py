"""Gate serving: the packaged model's server meets its latency SLO at its throughput SLO, and has room to spare.

The SLO is measured open-loop: requests arrive at `min_requests_per_s` whatever the server does, and each
latency runs from the moment its request was due, so a stall shows in the p99. The closed-loop saturation
figure (as many requests as the connections carry) is reported beside it and must reach the rate too.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import GateResult


@dataclass(frozen=True)
class Measured:
    """What the serving gate measured: at the offered rate (open loop), and at saturation (closed loop)."""

    offered_per_s: float
    requests_per_s: float  # answered with 200 per second, at the offered rate
    p99_ms: float  # from each request's due time
    errors: int
    saturation_per_s: float
    saturation_p99_ms: float
    generator_late_ms: float = 0.0  # how far the load generator itself fell behind its schedule


def verdict(seen: Measured, slo_p99_ms: float, slo_rps: float) -> GateResult:
    measured = {
        "offered_per_s": round(seen.offered_per_s, 1),
        "requests_per_s": round(seen.requests_per_s, 1),
        "p99_ms": round(seen.p99_ms, 3),
        "errors": seen.errors,
        "saturation_requests_per_s": round(seen.saturation_per_s, 1),
        "saturation_p99_ms": round(seen.saturation_p99_ms, 3),
    }
    threshold = {"p99_ms": slo_p99_ms, "min_requests_per_s": slo_rps}
    at = f"at {seen.offered_per_s:.0f} requests/s offered"
    problems = []
    if seen.errors:
        problems.append(f"{seen.errors} request(s) failed under load")
    if seen.p99_ms > slo_p99_ms:
        problems.append(f"p99 {seen.p99_ms:.2f} ms > {slo_p99_ms:g} ms {at}")
    if seen.saturation_per_s < slo_rps:
        problems.append(f"saturates at {seen.saturation_per_s:.0f} requests/s < {slo_rps:g}")
    if problems:
        late = seen.generator_late_ms
        if late > slo_p99_ms / 2:  # the generator could not keep its own schedule: say so, it may be the cause
            problems.append(f"(the load generator fell {late:.0f} ms behind its schedule)")
        return GateResult("serving", "fail", measured, threshold, "; ".join(problems))
    reason = (
        f"p99 {seen.p99_ms:.2f} ms {at} (open loop); saturates at {seen.saturation_per_s:.0f} requests/s "
        f"with p99 {seen.saturation_p99_ms:.2f} ms (closed loop)"
    )
    return GateResult("serving", "pass", measured, threshold, reason)
