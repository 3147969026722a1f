"""How a gate's result reads to a person: the measured value against its bound, in words and numbers at a sensible
precision, and the change against the champion with its direction.

The certificate keeps the machine-readable values that the deploy path reads; this module only renders them, for
the report and the model card, with no Python repr anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ICONS = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error"}
SIGNS = {">=": "≥", "<=": "≤"}
BOUND = re.compile(r"(>=|<=)\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")
# A decimal number standing on its own: not part of a version (3.10.1), an address or a name.
DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?(?!\w|\.\d)")
# The summary the project's data check prints last: "(455 rows, 31 columns, 98 checks passed)".
DATA_SUMMARY = re.compile(
    r"(?P<rows>[\d,]+) rows(?:, (?P<columns>[\d,]+) columns)?(?:, (?P<checks>[\d,]+) checks passed)?"
)


@dataclass(frozen=True)
class Context:
    """What a gate's rendering needs besides its result: the metrics, their bounds (as certification.yaml's
    `>= 0.9` text), the champion's metrics and version, which way each metric is better, the data contract."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    thresholds: Mapping[str, str] = field(default_factory=dict)
    champion: Mapping[str, float] | None = None
    champion_version: str | None = None
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    contract: Mapping[str, Any] | None = None  # params.yaml's `validate` section, when the project has one


@dataclass(frozen=True)
class GateRow:
    gate: str
    verdict: str
    measured: list[str]  # the measured values against their bounds, a line each
    champion: list[str]  # the change against the champion, a line each (empty: nothing to compare)
    reason: str


def figure(value: Any, digits: int = 3) -> str:
    """A number at `digits` significant digits (0.956, 1.23, 312), whole and with thousands separated from
    10**digits on (14,089); integers whole."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return plain(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞" if value < 0 else "not a number"
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    return f"{value:,.0f}" if "e+" in text or abs(value) >= 10**digits else text


def tidy(text: str) -> str:
    """Free text (a gate's reason, a check's output) with every decimal of more than 4 significant digits
    shortened to 3."""
    return DECIMAL.sub(lambda m: figure(float(m[0])) if significant(m[0]) > 4 else m[0], text)


def significant(number: str) -> int:
    """How many significant digits a decimal number's text shows ("0.0500": 3, "100.00": 5)."""
    mantissa = number.lstrip("-").lower().split("e")[0].replace(",", "")
    return len(mantissa.replace(".", "").lstrip("0")) or 1


def plain(value: Any) -> str:
    """Any measured value in words: mappings as `name value` pairs, numbers at 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return figure(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {plain(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(plain(item) for item in value)
    return tidy(str(value))


def bound_text(text: str) -> str:
    """certification.yaml's `>= 0.9 and <= 1` as `≥ 0.9 and ≤ 1`."""
    return BOUND.sub(lambda m: f"{SIGNS[m[1]]} {figure(float(m[2]), 4)}", text)


def _against(name: str, value: float, limits: str) -> str:
    """`accuracy 0.956 ≥ 0.9`, or `accuracy 0.85, needs ≥ 0.9` when the bound is broken."""
    bounds = [(op, float(number)) for op, number in BOUND.findall(limits)]
    broken = [(op, b) for op, b in bounds if (op == ">=" and value < b) or (op == "<=" and value > b)]
    shown = [b for _, b in broken or bounds]
    digits = 4 if any(figure(value) == figure(b, 4) and value != b for b in shown) else 3
    measured = f"{name} {figure(value, digits)}"
    if broken:
        op, limit = broken[0]
        return f"{measured}, needs {SIGNS[op]} {figure(limit, 4)}"
    if len(bounds) == 2 and {op for op, _ in bounds} == {">=", "<="}:
        low, high = sorted(b for _, b in bounds)
        return f"{figure(low, 4)} ≤ {measured} ≤ {figure(high, 4)}"
    if bounds:
        op, limit = bounds[0]
        return f"{measured} {SIGNS[op]} {figure(limit, 4)}"
    return measured


def change(name: str, candidate: float, champion: float, higher_is_better: bool) -> str:
    """`accuracy +0.0061 ▲ better`: the candidate's change from the champion, its direction and what it means."""
    delta = candidate - champion
    if delta == 0:
        return f"{name} unchanged"
    better = (delta > 0) == higher_is_better
    arrow = "▲" if delta > 0 else "▼"
    return f"{name} {'+' if delta > 0 else '-'}{figure(abs(delta), 2)} {arrow} {'better' if better else 'worse'}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _data(gate: Mapping[str, Any], context: Context) -> list[str]:
    """The contract in figures (rows, columns, checks passed), not the command that checked it."""
    contract = context.contract or {}
    columns = contract.get("columns")
    wanted = []
    if isinstance(contract.get("min_rows"), int):
        wanted.append(f"≥ {contract['min_rows']:,} rows")
    if isinstance(columns, Mapping):
        wanted.append(f"{len(columns)} feature columns and the target")
    bound = "data contract" + (f" ({', '.join(wanted)})" if wanted else "")
    found = DATA_SUMMARY.search(str(gate.get("reason", "")))
    if gate.get("status") == "pass":
        if found is None:
            return [f"the {bound} holds"]
        parts = [f"{found['rows']} rows"]
        parts += [f"{found['columns']} columns"] if found["columns"] else []
        parts += [f"{found['checks']} checks passed"] if found["checks"] else []
        return [", ".join(parts), f"the {bound} holds"]
    return [f"the {bound} fails (the reason below names the check)"]


def _quality(gate: Mapping[str, Any], context: Context) -> list[str]:
    limits = _mapping(gate.get("threshold"))
    return [_against(name, value, str(limits.get(name, ""))) for name, value in _numbers(gate.get("measured")).items()]


def _champion(gate: Mapping[str, Any], context: Context) -> list[str]:
    tolerance = _numbers(gate.get("threshold"))
    allowed = ", ".join(f"{name} {figure(t, 4)}" for name, t in tolerance.items())
    measured = gate.get("measured")
    others = [k for k in measured if k != "candidate"] if isinstance(measured, Mapping) else []
    if not isinstance(measured, Mapping) or "candidate" not in measured or len(others) != 1:
        return [f"no champion yet: nothing to beat (tolerance {allowed})"]
    candidate, champion = _numbers(measured["candidate"]), _numbers(measured[others[0]])
    lines = []
    for name, allowance in tolerance.items():
        if name not in candidate or name not in champion:
            lines.append(f"{name}: missing from a model's metrics")
            continue
        mine, theirs = candidate[name], champion[name]
        loss = theirs - mine if context.higher_is_better.get(name, True) else mine - theirs
        head = f"{name} {figure(mine)} vs {figure(theirs)}"
        if loss <= 0:
            lines.append(f"{head}: not worse (tolerance {figure(allowance, 4)})")
        else:
            where = "within" if loss <= allowance else "beyond"
            lines.append(f"{head}: {figure(loss, 2)} worse, {where} the tolerance {figure(allowance, 4)}")
    return lines


def _rate(per_s: float) -> str:
    return f"{figure(per_s)} req/s"


def _serving(gate: Mapping[str, Any], context: Context) -> list[str]:
    seen, slo = _numbers(gate.get("measured")), _numbers(gate.get("threshold"))
    lines = []
    if "p99_ms" in seen and "p99_ms" in slo:
        p99, bound = seen["p99_ms"], slo["p99_ms"]
        at = f" at {_rate(seen['offered_per_s'])}" if "offered_per_s" in seen else ""
        if p99 <= bound:
            lines.append(f"p99 {figure(p99)} ms ≤ {figure(bound, 4)} ms{at}")
        else:
            lines.append(f"p99 {figure(p99)} ms > {figure(bound, 4)} ms{at}: over its bound")
    if "saturation_requests_per_s" in seen and "min_requests_per_s" in slo:
        most, least = seen["saturation_requests_per_s"], slo["min_requests_per_s"]
        if least <= 0:
            lines.append(f"saturates at {_rate(most)} (no throughput bound)")
        elif most >= least:
            lines.append(f"saturates at {_rate(most)} ≥ {_rate(least)}")
        else:
            lines.append(f"saturates at {_rate(most)} < {_rate(least)}, under its bound")
    if seen.get("errors"):
        lines.append(f"{figure(int(seen['errors']))} failed requests, bound 0")
    return lines or [plain(gate.get("measured"))]


def _robustness(gate: Mapping[str, Any], context: Context) -> list[str]:
    measured = _mapping(gate.get("measured"))
    cases, wrong = measured.get("cases"), measured.get("not_4xx")
    wrong = wrong if isinstance(wrong, Mapping) else {}
    lines = []
    if isinstance(cases, int):
        line = f"{cases - len(wrong)} of {cases} bad requests got a 4xx (bound: every one)"
        shown = ", ".join(f"{case}: {status}" for case, status in list(wrong.items())[:3])
        lines.append(line + (f"; not: {shown}" + (", …" if len(wrong) > 3 else "") if wrong else ""))
    if "alive_after" in measured:
        lines.append("the server stayed up" if measured["alive_after"] else "the server died")
    return lines or [plain(measured)]


def _parity(gate: Mapping[str, Any], context: Context) -> list[str]:
    seen, tolerance = _numbers(gate.get("measured")), gate.get("threshold")
    if "max_diff" not in seen or not isinstance(tolerance, int | float):
        return [plain(gate.get("measured"))]
    rows = f" over {int(seen['rows']):,} rows" if "rows" in seen else ""
    sign = "≤" if seen["max_diff"] <= tolerance else ">"
    return [f"largest difference {figure(seen['max_diff'], 2)} {sign} {figure(float(tolerance), 4)}{rows}"]


def _reproducibility(gate: Mapping[str, Any], context: Context) -> list[str]:
    measured = _mapping(gate.get("measured"))
    clean, committed = measured.get("dvc_status_clean"), measured.get("dvc_lock_committed")
    return [
        "dvc status clean (bound: clean)" if clean else "dvc status not clean (bound: clean)",
        "dvc.lock committed" if committed else "dvc.lock not committed",
    ]


RENDERERS: dict[str, Callable[[Mapping[str, Any], Context], list[str]]] = {
    "data": _data,
    "quality": _quality,
    "champion": _champion,
    "serving": _serving,
    "robustness": _robustness,
    "parity": _parity,
    "reproducibility": _reproducibility,
}


def _against_champion(gate: Mapping[str, Any], context: Context) -> list[str]:
    name = gate.get("gate")
    if context.champion is None:
        return ["no champion yet"] if name in ("quality", "champion") else []
    if name == "champion":
        measured = gate.get("measured")
        alias = (
            next((str(k).strip("'") for k in measured if k != "candidate"), "champion")
            if isinstance(measured, Mapping)
            else "champion"
        )
        return [f"{alias}: version {context.champion_version}" if context.champion_version else alias]
    if name != "quality":
        return []
    return [
        change(metric, value, context.champion[metric], context.higher_is_better.get(metric, True))
        for metric, value in _numbers(gate.get("measured")).items()
        if metric in context.champion
    ]


def row(gate: Mapping[str, Any], context: Context) -> GateRow:
    """One gate as the report and the model card show it."""
    name, status = str(gate.get("gate")), str(gate.get("status"))
    # One line of the gate's reason, with `>=` as `≥`; a check's listing marker ("  - ") dropped.
    reason = re.sub(r"^[-*]\s+", "", bound_text(tidy(str(gate.get("reason", "")))).strip())
    if status == "error":
        measured = ["could not run (the reason below says why)"]
    else:
        render = RENDERERS.get(name)
        measured = (
            render(gate, context)
            if render
            else [f"{plain(gate.get('measured'))}, bound {plain(gate.get('threshold'))}"]
        )
    return GateRow(name, ICONS.get(status, status), measured, _against_champion(gate, context), reason)


def cell(text: str) -> str:
    """Text made safe for one Markdown table cell."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ").strip()


def cell_lines(lines: list[str]) -> str:
    """Lines in one table cell, one under the other; `-` for none."""
    return "<br>".join(cell(line) for line in lines) if lines else "-"
