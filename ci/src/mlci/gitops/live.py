"""Live figures per environment, from Prometheus, for the serving pods (job `<app>-stable`) in the environment's
namespace `<app>-<env>` as the overlays set it.

Usage: requests per second to the prediction routes and their p99 latency over the last 5 minutes, and the rows
predicted over the last day.

Live quality: what `POST /feedback` counted over the last window, for the serving pods and for the shadow (job
`<app>-shadow`, deploy/deployment-shadow.yaml). A classifier's live accuracy (correct over correct and wrong); a
regression's live RMSE (the squared error sum over the matched rows); with the number of labelled rows behind
each.

Counts are as each counter grew over the window (a counter reset inside one series, a server restarted in the
same pod, undercounts). Nothing counted: no figure.
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
# The routes that predict, as the PrometheusRule's alerts select them (serving/metrics.py's PREDICTION_ROUTES).
PREDICTION_ROUTES = "/invocations|/v2/models/.*/infer"
USAGE = ("requests_per_second", "p99_seconds", "predictions_1d")


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


def usage(prometheus: str, pairs: list[tuple[str, str]], window: str = "5m") -> dict[tuple[str, str], dict[str, Any]]:
    """For each (app, env): its serving pods' requests per second to the prediction routes and their p99 latency
    over `window`, and the rows they predicted over the last day (None where Prometheus has no figure). Three
    queries, whatever the number of environments."""
    where = 'job=~".+-stable"'
    routes = f'{where}, route=~"{PREDICTION_ROUTES}"'
    by = "namespace, job"
    queries = {
        "requests_per_second": f"sum by ({by}) (rate(mlci_requests_total{{{routes}}}[{window}]))",
        "p99_seconds": f"histogram_quantile(0.99, sum by ({by}, le) "
        f"(rate(mlci_request_duration_seconds_bucket{{{routes}}}[{window}])))",
        # classes count rows by predicted class; a regression counts them in its predicted-value histogram
        "predictions_1d": f"sum by ({by}) ({grown('mlci_predictions_total', where, '1d')}) "
        f"or sum by ({by}) ({grown('mlci_prediction_value_count', where, '1d')})",
    }
    wanted = {(f"{app}-{env}", f"{app}-stable"): (app, env) for app, env in pairs}
    found: dict[tuple[str, str], dict[str, Any]] = {pair: dict.fromkeys(USAGE) for pair in pairs}
    for figure, expr in queries.items():
        for labels, value in query(prometheus, expr):
            pair = wanted.get((labels.get("namespace", ""), labels.get("job", "")))
            if pair is not None and not math.isnan(value):
                found[pair][figure] = round(value) if figure == "predictions_1d" else value
    return found


def usage_cells(figures: dict[str, Any] | None) -> tuple[str, str, str]:
    """The status table's cells: requests per second, p99 latency and the rows predicted over a day, or `-`."""
    figures = figures or {}
    rate, p99, served = (figures.get(name) for name in USAGE)
    return (
        "-" if rate is None else f"{rate:.2f}" if rate < 100 else f"{rate:,.0f}",
        "-" if p99 is None else f"{p99 * 1000:.3g} ms" if p99 < 1 else f"{p99:.3g} s",
        "-" if served is None else f"{served:,}",
    )


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
