"""Gate champion: the candidate is not worse than the model behind the champion alias, beyond a tolerance."""

from __future__ import annotations

from . import GateResult


def verdict(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    tolerance: dict[str, float],
    higher_is_better: dict[str, bool],
    alias: str,
) -> GateResult:
    """Pass when, for every compared metric, the candidate loses at most its tolerance to the model behind
    `alias`; the measured values are keyed `candidate` and the alias."""
    if champion is None:
        return GateResult("champion", "pass", candidate, tolerance, f"no '{alias}' yet: nothing to beat")
    worse = []
    for name, allowed in tolerance.items():
        if name not in candidate or name not in champion:
            return GateResult("champion", "error", candidate, tolerance, f"{name} is missing from a model's metrics")
        loss = (
            champion[name] - candidate[name] if higher_is_better.get(name, True) else candidate[name] - champion[name]
        )
        if loss > allowed:
            worse.append(f"{name} {candidate[name]:.4g} vs {champion[name]:.4g} (tolerance {allowed:g})")
    measured = {
        "candidate": {k: candidate.get(k) for k in tolerance},
        alias: {k: champion.get(k) for k in tolerance},
    }
    if worse:
        return GateResult("champion", "fail", measured, tolerance, f"worse than '{alias}': " + "; ".join(worse))
    return GateResult("champion", "pass", measured, tolerance, f"not worse than '{alias}' beyond tolerance")
