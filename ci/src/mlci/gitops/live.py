"""Live quality per environment, from Prometheus: what `POST /feedback` counted over the last window, for the
serving pods (job `<app>-stable`) and for the shadow (job `<app>-shadow`, deploy/deployment-shadow.yaml), in the
environment's namespace `<app>-<env>` as the overlays set it.

A classifier's live accuracy (correct over correct and wrong); a regression's live RMSE (the squared error sum
over the matched rows); with the number of labelled rows behind each, as each counter grew over the window (a
counter reset inside one series, a server restarted in the same pod, undercounts). Nothing labelled: no figure.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from typing import Any

from ..errors import MlciError

ROLES = (("serving", "stable"), ("shadow", "shadow"))


def query(prometheus: str, expr: str, timeout: float = 30) -> list[tuple[dict[str, str], float]]:
    """An instant query's vector: each series' labels and value."""
    url = f"{prometheus.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        raise MlciError(f"Prometheus at {prometheus} refused the query {expr!r}: HTTP {error.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        raise MlciError(f"Prometheus at {prometheus} did not answer its query API: {error}") from None
    try:
        if answer.get("status") != "success" or answer["data"]["resultType"] != "vector":
            raise ValueError(answer.get("error") or answer["data"]["resultType"])
        result = answer["data"]["result"]
        return [({str(k): str(v) for k, v in s["metric"].items()}, float(s["value"][1])) for s in result]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise MlciError(
            f"Prometheus at {prometheus} answered the query API with something unexpected ({error})"
        ) from None


def grown(metric: str, where: str, window: str) -> str:
    """How much each series of a counter grew over the window: its largest value less its smallest. Unlike
    increase(), which extrapolates a young series to the window's start (a pod a minute old shows a quarter more
    rows than it got), this counts what was counted, and a new pod's series starts from its own first sample."""
    return f"max_over_time({metric}{{{where}}}[{window}]) - min_over_time({metric}{{{where}}}[{window}])"


def live_quality(prometheus: str, app: str, env: str, window: str = "1h") -> dict[str, dict[str, Any]]:
    """{"serving": {...}, "shadow": {...}}: each role's live accuracy or RMSE and its labelled rows, where any."""
    where = f'namespace="{app}-{env}", job=~"{app}-(stable|shadow)"'
    counts: dict[str, dict[str, float]] = defaultdict(dict)
    totals = f"sum by (job, outcome) ({grown('mlci_feedback_total', where, window)})"
    for labels, value in query(prometheus, totals):
        counts[labels.get("job", "")][labels.get("outcome", "")] = value
    squares = {
        labels.get("job", ""): value
        for labels, value in query(
            prometheus, f"sum by (job) ({grown('mlci_feedback_squared_error_total', where, window)})"
        )
    }
    found: dict[str, dict[str, Any]] = {}
    for role, suffix in ROLES:
        job = f"{app}-{suffix}"
        seen = counts.get(job, {})
        labelled = seen.get("correct", 0.0) + seen.get("wrong", 0.0)
        if labelled > 0:
            found[role] = {"accuracy": seen.get("correct", 0.0) / labelled, "labelled": round(labelled)}
        elif seen.get("matched", 0.0) > 0 and job in squares:
            found[role] = {"rmse": math.sqrt(squares[job] / seen["matched"]), "labelled": round(seen["matched"])}
    return found


def shown(live: dict[str, dict[str, Any]] | None) -> str:
    """The status table's cell: `accuracy 0.931 (1200 rows); shadow 0.945 (1180 rows)`, or `-`."""
    if not live:
        return "-"
    parts = []
    for role, figures in live.items():
        measure = "accuracy" if "accuracy" in figures else "rmse"
        prefix = "" if role == "serving" else f"{role} "
        parts.append(f"{prefix}{measure} {figures[measure]:.3f} ({figures['labelled']} rows)")
    return "; ".join(parts)
