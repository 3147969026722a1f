"""Gate quality: every metric threshold of certification.yaml holds on the held-out set."""

from __future__ import annotations

from typing import Any

from . import GateResult


def bound_text(bound: Any) -> str:
    parts = []
    if bound.min is not None:
        parts.append(f">= {bound.min:g}")
    if bound.max is not None:
        parts.append(f"<= {bound.max:g}")
    return " and ".join(parts)


def verdict(metrics: dict[str, float], thresholds: dict[str, Any]) -> GateResult:
    """Pass when every thresholded metric is present and within its bounds."""
    missing = [name for name in thresholds if name not in metrics]
    if missing:
        return GateResult("quality", "error", metrics, {}, f"metrics.json lacks {', '.join(missing)}")
    broken = []
    for name, bound in thresholds.items():
        value = metrics[name]
        if (bound.min is not None and value < bound.min) or (bound.max is not None and value > bound.max):
            broken.append(f"{name} {value:.4g} (needs {bound_text(bound)})")
    measured = {name: metrics[name] for name in thresholds}
    limits = {name: bound_text(bound) for name, bound in thresholds.items()}
    if broken:
        return GateResult("quality", "fail", measured, limits, "; ".join(broken))
    return GateResult("quality", "pass", measured, limits, f"{len(thresholds)} metric(s) within their thresholds")
