"""The model card of a certified version (model-card.md beside the certificate): what the pipeline knows about it
(model and framework, parameters, training data and its contract, metrics with the champion's, gates, serving
figures, signature), then the sections the team writes once (intended use, limitations, owners), from a file of
the project that every card includes as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import write_atomic
from ..model.manifest import ServedModel
from . import report, summary
from .summary import ICONS, cell, figure, plain

FILE = report.MODEL_CARD


def _table(head: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    return [f"| {head[0]} | {head[1]} |", "| --- | --- |", *(f"| {cell(k)} | {cell(v)} |" for k, v in rows)]


def _flat(values: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested parameters as dotted names and plain values (no Python repr)."""
    if isinstance(values, Mapping):
        return [pair for key, value in values.items() for pair in _flat(value, f"{prefix}{key}.")]
    return [(prefix.removesuffix("."), plain(values))]


def _model(certificate: Mapping[str, Any], served: ServedModel, params: Mapping[str, Any]) -> list[str]:
    model = certificate.get("model", {})
    image = (certificate.get("image") or {}).get("digest")
    rows = [
        ("name", str(model.get("name", served.name))),
        ("version", str(model.get("version", served.version))),
        ("framework", f"{served.flavor} (MLflow flavor)"),
        ("task", str(params.get("task", "-"))),
        ("served by", f"{served.runtime} runtime, artifact `{served.artifact}`"),
        ("artifact sha256", f"`{model.get('sha256', served.sha256)}`"),
        ("trained at", str(model.get("trained_at") or "-")),
        ("commit", f"`{(certificate.get('git') or {}).get('commit') or '-'}`"),
        ("environment image", f"`{image}`" if image else "not recorded"),
    ]
    return ["## Model", "", *_table(("property", "value"), rows), ""]


def _parameters(certificate: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    digest = (certificate.get("params") or {}).get("sha256")
    head = "## Parameters" + (f" (params.yaml, sha256 `{digest[:12]}`)" if digest else "")
    train = params.get("train")
    if not isinstance(train, Mapping):
        return [head, "", "params.yaml has no `train` section.", ""]
    rows = _flat(train) + [(k, plain(params[k])) for k in ("seed",) if k in params]
    return [head, "", *_table(("parameter", "value"), rows), ""]


def _share(value: Any) -> str:
    """A share of rows as a percentage: 0.2 as 20%."""
    return f"{figure(float(value) * 100)}%" if isinstance(value, int | float) else plain(value)


def _column(spec: Any) -> tuple[str, str, str]:
    """A contract column as (type, allowed values, share of rows that may miss it)."""
    if isinstance(spec, list):  # the `[min, max]` shorthand: a number no row may miss
        spec = {"type": "number", "range": spec}
    if not isinstance(spec, Mapping):
        return "-", plain(spec), "-"
    missing = _share(spec.get("max_null_share", 0.0))
    if spec.get("type", "number") == "category":
        return "category", plain(spec.get("values")), missing
    low, high = (list(spec.get("range") or []) + [None, None])[:2]
    return "number", f"{plain(low)} to {plain(high)}", missing


def _data(certificate: Mapping[str, Any], contract: Mapping[str, Any] | None) -> list[str]:
    version = certificate.get("data_version") or {}
    lines = ["## Training data", ""]
    if version.get("id"):
        lines += [f"Data version `{version['id']}`, in the repository since {version.get('since') or '-'}.", ""]
    hashes = certificate.get("data") or {}
    if hashes:
        lines += [*_table(("file (DVC)", "md5"), [(path, f"`{md5}`") for path, md5 in hashes.items()]), ""]
    if not contract:
        return lines + ["The project's params.yaml has no data contract (`validate`).", ""]
    target = contract.get("target") or {}
    if isinstance(target, Mapping) and "range" in target:
        label = f"a number from {plain(target['range'][0])} to {plain(target['range'][1])}"
    elif isinstance(target, Mapping):
        classes = plain(target.get("classes")) if target.get("classes") else "the classes seen in training"
        share = target.get("min_class_fraction")
        label = f"one of {classes}" + (f", each class at least {_share(share)} of the rows" if share else "")
    else:
        label = plain(target)
    columns = contract.get("columns") if isinstance(contract.get("columns"), Mapping) else {}
    rules = [
        f"at least {plain(contract.get('min_rows'))} rows",
        f"the label: {label}",
        f"duplicate rows at most {_share(contract.get('max_duplicate_share', 0.01))} of them",
        f"test rows also in training at most {_share(contract.get('max_train_test_overlap', 0.01))} of the test set",
        f"no feature predicts the label alone as well as {figure(float(contract.get('leakage_bound', 0.99)))}",
    ]
    lines += ["The data contract (params.yaml `validate`, checked by the data gate): " + "; ".join(rules) + ".", ""]
    if columns:
        rows = [
            f"| {cell(str(name))} | {' | '.join(cell(part) for part in _column(spec))} |"
            for name, spec in columns.items()
        ]
        lines += [
            "<details><summary>" + f"{len(columns)} feature columns</summary>",
            "",
            "| column | type | allowed | may miss |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            "</details>",
            "",
        ]
    return lines


def _serving(certificate: Mapping[str, Any]) -> list[str]:
    gates = {g.get("gate"): g for g in certificate.get("gates", []) if isinstance(g, Mapping)}
    lines = ["## Serving", ""]
    serving = gates.get("serving")
    seen = serving.get("measured") if serving else None
    slo = serving.get("threshold") if serving else None
    if not isinstance(seen, Mapping) or not isinstance(slo, Mapping):
        return lines + ["The serving gate did not measure this version.", ""]
    rows = [
        (
            "p99 latency",
            f"{figure(seen.get('p99_ms'))} ms at {figure(seen.get('offered_per_s'))} req/s offered",
            f"≤ {figure(slo.get('p99_ms'), 4)} ms",
        ),
        ("answered", f"{figure(seen.get('requests_per_s'))} req/s", "-"),
        (
            "saturation",
            f"{figure(seen.get('saturation_requests_per_s'))} req/s, p99 {figure(seen.get('saturation_p99_ms'))} ms",
            f"≥ {figure(slo.get('min_requests_per_s'), 4)} req/s",
        ),
        ("failed requests", plain(seen.get("errors")), "0"),
    ]
    lines += [
        "| figure | measured | SLO |",
        "| --- | --- | --- |",
        *(f"| {a} | {cell(b)} | {cell(c)} |" for a, b, c in rows),
    ]
    robustness = gates.get("robustness")
    if robustness:
        shown = summary.row(robustness, summary.Context())
        lines += ["", "Robustness: " + "; ".join(shown.measured) + "."]
    return lines + [""]


def _signature(served: ServedModel) -> list[str]:
    features = served.inputs.features
    output = served.output
    said = f"{output.kind} `{output.name}`" + (f", classes {plain(list(output.classes))}" if output.classes else "")
    lines = [
        "## Signature",
        "",
        f"Input: {len(features)} features as {served.inputs.layout} ({served.inputs.dtype}). Output: {said}.",
        "",
        f"<details><summary>{len(features)} input features</summary>",
        "",
        "| feature | type | required |",
        "| --- | --- | --- |",
        *(f"| {cell(f.name)} | {f.type} | {'yes' if f.required else 'no'} |" for f in features),
        "",
        "</details>",
        "",
    ]
    return lines


def render(
    certificate: Mapping[str, Any],
    served: ServedModel,
    context: summary.Context,
    team: str | None,
    team_source: str | None,
) -> str:
    """The model card's Markdown; `team` (the team's sections, from `team_source`) is included as it is."""
    model = certificate.get("model", {})
    values = (certificate.get("params") or {}).get("values")
    params = values if isinstance(values, Mapping) else {}
    lines = [
        f"# Model card: {model.get('name', served.name)} version {model.get('version', served.version)}",
        "",
        f"Certification: {ICONS.get(str(certificate.get('verdict')), certificate.get('verdict'))}, "
        f"{certificate.get('created_at', '-')}. Written by `mlci certify` from what the pipeline knows; the team's "
        "own sections follow it.",
        "",
        *_model(certificate, served, params),
        *_parameters(certificate, params),
        *_data(certificate, context.contract),
        "## Metrics (held-out set)",
        "",
        *report.metrics_table(context),
        "",
        "## Certification gates",
        "",
        *report.gates_table(certificate, context),
        "",
        *_serving(certificate),
        *_signature(served),
    ]
    run = certificate.get("run") or {}
    tools = certificate.get("tools") or {}
    if tools:
        lines += ["## Provenance", ""]
        if run.get("url"):
            lines += [
                f"Certified by [this run]({run['url']})"
                + (f", started by {run['actor']}" if run.get("actor") else "")
                + ".",
                "",
            ]
        lines += [*_table(("tool", "version"), [(k, str(v)) for k, v in tools.items()]), ""]
    lines += ["---", ""]
    if team is None:
        lines += ["No team-written sections: name the file that holds them in certification.yaml (`model_card`).", ""]
    else:
        lines += [f"*The sections below are the team's, from `{team_source}`.*", "", team.strip(), ""]
    return "\n".join(lines)


def write(
    out: Path,
    certificate: Mapping[str, Any],
    served: ServedModel,
    context: summary.Context,
    team: str | None = None,
    team_source: str | None = None,
) -> Path:
    """model-card.md in `out`; its path."""
    path = out / FILE
    write_atomic(path, render(certificate, served, context, team, team_source))
    return path
