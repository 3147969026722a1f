"""`mlci status`: every app and environment of the deployment repo, with what an auditor asks of each.

How many model workstreams are live, what each runs (version, image digest, certificate verdict, commit), when
it was trained and its data last refreshed, champion and challenger metrics and whether the challenger was
evaluated against the champion, open proposals, the last promotion and who approved it, and where the logs
are, and whether its image's attestation verifies against the repo's trust.yaml (`verified (signed by ...)`, or
what is wrong), the shadow production keeps of its previous version, and (with --prometheus) each
environment's usage (requests per second and p99 latency over 5 minutes, rows predicted over a day) and live
quality from feedback, the shadow's beside it. A missing or malformed certificate or attestation is reported on
its row; it never stops the rest.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import MlciError
from ..trust import attestation
from ..trust.policy import TRUST_FILE, TrustPolicy
from ..trust.policy import load as load_trust
from .github import GitHub, forge_client
from .live import live_quality, shown, usage, usage_cells
from .repo_reader import Change, Deployed, DeploymentHistory, gate, quality_metrics, section

FORMATS = ("table", "json", "markdown")
RECENT_DAYS = 30
STALE_DATA_DAYS = 90


def _age_days(when: Any, now: datetime) -> float | None:
    if not isinstance(when, str) or not when:
        return None
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round((now - moment).total_seconds() / 86400, 1)


def _scalar(value: Any) -> str | int | float | None:
    """A certificate's value as JSON and a table can show it: a string or a number; anything else as text."""
    if value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool)):
        return value
    return str(value)


def trust_at_head(history: DeploymentHistory) -> TrustPolicy | str:
    """The deployment repo's trust.yaml on its default branch, or why there is none to check against."""
    if history.empty:
        return "the deployment repo is empty"
    data = history.read([f"{history.head}:{TRUST_FILE}"])[f"{history.head}:{TRUST_FILE}"]
    if data is None:
        return f"the deployment repo has no {TRUST_FILE}"
    with tempfile.TemporaryDirectory(prefix="mlci-trust-") as scratch:
        path = Path(scratch) / TRUST_FILE
        path.write_bytes(data)
        try:
            return load_trust(path)
        except MlciError as error:
            return str(error).replace(str(path), TRUST_FILE)


def attestation_state(deployed: Deployed, trust: TrustPolicy | str) -> str:
    """`verified (signed by ...)`, or what is wrong: unsigned, an untrusted signer, another digest, another
    certificate."""
    if deployed.attestation_bytes is None:
        return "unsigned: no attestation.json beside the certificate"
    if isinstance(trust, str):
        return f"not verified: {trust}"
    if deployed.digest is None or deployed.certificate_bytes is None:
        return "not verified: the overlay pins no image digest or certificate"
    try:
        envelope = attestation.decode(deployed.attestation_bytes, "attestation.json")
        return str(attestation.verify(envelope, trust, deployed.digest, deployed.certificate_bytes))
    except attestation.AttestationError as refusal:
        return f"not verified: {refusal}"


def environment_row(
    deployed: Deployed,
    changes: list[Change],
    proposals: list[str],
    now: datetime,
    trust: TrustPolicy | str = "no trust.yaml was read",
) -> dict[str, Any]:
    """One (app, env): what it runs and everything known about it."""
    certificate = deployed.certificate or {}
    model, data = section(certificate, "model"), section(certificate, "data_version")
    champion = gate(certificate, "champion")
    last = changes[0] if changes else None
    return {
        "env": deployed.env,
        "version": deployed.version,
        "image": f"{deployed.image}@{deployed.digest}" if deployed.image and deployed.digest else None,
        "certificate": "verified" if deployed.verified else f"not verified: certificate.json {deployed.problem}",
        "attestation": attestation_state(deployed, trust),
        "verdict": _scalar(certificate.get("verdict")),
        "commit": _scalar(section(certificate, "git").get("commit")),
        "certified_at": _scalar(certificate.get("created_at")),
        "trained_at": _scalar(model.get("trained_at")),
        "trained_days_ago": _age_days(model.get("trained_at"), now),
        "data_version": _scalar(data.get("id")),
        "data_since": _scalar(data.get("since")),
        "data_age_days": _age_days(data.get("since"), now),
        "metrics": quality_metrics(certificate),
        "champion_gate": {"status": _scalar(champion.get("status")), "reason": _scalar(champion.get("reason"))}
        if champion
        else None,
        "last_change": None
        if last is None
        else {
            "date": last.date,
            "commit": last.commit,
            "subject": last.subject,
            "merged_by": last.author,
            "approved_by": list(last.approvers),
        },
        "open_proposals": proposals,
        "logs": _scalar(section(certificate, "run").get("url")),
        "shadow_version": deployed.shadow_version,
        "usage": None,  # filled from Prometheus with --prometheus: requests_per_second, p99_seconds, predictions_1d
        "live_quality": None,  # filled from Prometheus with --prometheus
    }


def collect(
    history: DeploymentHistory,
    repo: str,
    github: GitHub | None = None,
    now: datetime | None = None,
    prometheus: str | None = None,
) -> dict[str, Any]:
    """The whole status as one JSON-ready mapping; with `prometheus`, each environment's usage (requests per second,
    p99 latency, rows predicted over a day) and live quality too."""
    now = now or datetime.now(UTC)
    pairs = history.overlays()
    deployed = history.current(pairs)
    changes = history.changes()
    proposals = history.unmerged_branches()
    trust = trust_at_head(history)
    if github is not None:
        for pull in github.paginate(f"/repos/{github.repository}/pulls?state=open&per_page=100"):
            ref = str((pull.get("head") or {}).get("ref", ""))
            parts = ref.split("/")
            if len(parts) == 3 and parts[0] in ("deploy", "rollback"):
                listed = proposals.setdefault(f"apps/{parts[1]}/overlays/{parts[2]}", [])
                listed[:] = [branch for branch in listed if branch != ref]
                listed.append(f"#{pull.get('number')} {ref}")
    served = usage(prometheus, pairs) if prometheus else {}
    apps: dict[str, dict[str, Any]] = {}
    for item in deployed:
        row = environment_row(item, changes.get(item.overlay, []), proposals.get(item.overlay, []), now, trust)
        if prometheus:
            row["usage"] = served.get((item.app, item.env))
            row["live_quality"] = live_quality(prometheus, item.app, item.env)
        apps.setdefault(item.app, {"app": item.app, "environments": []})["environments"].append(row)
    for entry in apps.values():
        by_env = {row["env"]: row for row in entry["environments"]}
        production, staging = by_env.get("production"), by_env.get("staging")
        entry["champion"] = _standing(production)
        # a challenger challenges a champion: staging running another, certified, version than production
        challenging = (
            staging is not None
            and production is not None
            and staging["certificate"] == "verified"
            and staging["version"] != production["version"]
        )
        entry["challenger"] = _standing(staging) if challenging else None
        entry["challenger_evaluated"] = (staging or {}).get("champion_gate")
    rows = [row for entry in apps.values() for row in entry["environments"]]
    live = [entry for entry in apps.values() if any(r["certificate"] == "verified" for r in entry["environments"])]
    return {
        "repo": repo,
        "default_branch": history.default_branch,
        "generated_at": now.isoformat(timespec="seconds"),
        "summary": {
            "apps": len(apps),
            "live": len(live),
            "deployments": len(rows),
            "not_verified": sum(1 for r in rows if r["certificate"] != "verified"),
            "retrained_within_days": {
                "days": RECENT_DAYS,
                "count": sum(
                    1 for r in rows if r["trained_days_ago"] is not None and r["trained_days_ago"] <= RECENT_DAYS
                ),
            },
            "data_older_than_days": {
                "days": STALE_DATA_DAYS,
                "count": sum(
                    1 for r in rows if r["data_age_days"] is not None and r["data_age_days"] > STALE_DATA_DAYS
                ),
            },
            "open_proposals": sum(len(r["open_proposals"]) for r in rows),
            "challengers_evaluated": sum(
                1 for e in apps.values() if e["challenger"] and (e["challenger_evaluated"] or {}).get("status")
            ),
            "challengers": sum(1 for e in apps.values() if e["challenger"]),
        },
        "apps": list(apps.values()),
    }


def _standing(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"env": row["env"], "version": row["version"], "metrics": row["metrics"]}


Cell = Callable[[dict[str, Any], dict[str, Any]], Any]
COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("app", lambda e, r: e["app"]),
    ("env", lambda e, r: r["env"]),
    ("version", lambda e, r: r["version"] or "?"),
    ("certificate", lambda e, r: "verified" if r["certificate"] == "verified" else "NOT VERIFIED"),
    ("attestation", lambda e, r: _attested(r["attestation"])),
    ("trained", lambda e, r: _days(r["trained_days_ago"])),
    ("data", lambda e, r: f"{r['data_version'] or '?'} ({_days(r['data_age_days'])})"),
    ("metrics", lambda e, r: ", ".join(f"{k}={_number(v)}" for k, v in list(r["metrics"].items())[:3]) or "-"),
    ("vs champion", lambda e, r: (r["champion_gate"] or {}).get("status") or "-"),
    ("last change", lambda e, r: (r["last_change"] or {}).get("date", "-")[:10]),
    (
        "approved by",
        lambda e, r: (
            ", ".join(_name(a) for a in (r["last_change"] or {}).get("approved_by") or [])
            or (f"merged by {_name(r['last_change']['merged_by'])}" if r["last_change"] else "-")
        ),
    ),
    ("open PRs", lambda e, r: ", ".join(r["open_proposals"]) or "-"),
    ("shadow", lambda e, r: r["shadow_version"] or "-"),
    ("req/s", lambda e, r: usage_cells(r["usage"])[0]),
    ("p99", lambda e, r: usage_cells(r["usage"])[1]),
    ("served 1d", lambda e, r: usage_cells(r["usage"])[2]),
    ("live quality", lambda e, r: shown(r["live_quality"])),
)


def _attested(state: str) -> str:
    """The table's cell: `verified (signed by ...)` as it is, else the kind of problem in capitals."""
    if state.startswith("verified"):
        return state
    return "UNSIGNED" if state.startswith("unsigned") else "NOT VERIFIED"


def _days(days: float | None) -> str:
    return "?" if days is None else f"{days:.0f}d ago" if days >= 1 else "today"


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _name(author: str | None) -> str:
    return author.split(" <")[0] if author else "-"


def _cells(status: dict[str, Any]) -> list[list[str]]:
    return [[str(cell(entry, row)) for _, cell in COLUMNS] for entry in status["apps"] for row in entry["environments"]]


def _problems(status: dict[str, Any]) -> list[str]:
    found = []
    for entry in status["apps"]:
        for row in entry["environments"]:
            where = f"{entry['app']}/{row['env']}"
            if row["certificate"] != "verified":
                found.append(f"{where}: {row['certificate'].removeprefix('not verified: ')}")
            if not row["attestation"].startswith("verified"):
                found.append(f"{where}: attestation {row['attestation'].removeprefix('not verified: ')}")
    return found


def _summary_line(status: dict[str, Any]) -> str:
    s = status["summary"]
    return (
        f"{s['live']} of {s['apps']} apps live ({s['deployments']} deployments, {s['not_verified']} not verified); "
        f"{s['retrained_within_days']['count']} retrained within {RECENT_DAYS} days; "
        f"{s['data_older_than_days']['count']} on data older than {STALE_DATA_DAYS} days; "
        f"{s['challengers_evaluated']} of {s['challengers']} challengers evaluated against the champion; "
        f"{s['open_proposals']} open proposals"
    )


def render(status: dict[str, Any], form: str) -> str:
    """The status as a plain table, JSON or Markdown."""
    if form == "json":
        return json.dumps(status, indent=2, sort_keys=False) + "\n"
    headers = [name for name, _ in COLUMNS]
    rows = _cells(status)
    problems = _problems(status)
    if form == "markdown":
        lines = [f"# Deployments in {status['repo']}", "", _summary_line(status) + ".", ""]
        lines += ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        if problems:
            lines += ["", "## Not verified", ""] + [f"- {problem}" for problem in problems]
        logs = [f"- {e['app']}/{r['env']}: {r['logs']}" for e in status["apps"] for r in e["environments"] if r["logs"]]
        if logs:
            lines += ["", "## Logs of the certifying runs", ""] + logs
        return "\n".join(lines) + "\n"
    if form != "table":
        raise MlciError(f"--format {form!r} is not one of {', '.join(FORMATS)}")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += ["", _summary_line(status)]
    lines += [f"not verified: {problem}" for problem in problems]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StatusRun:
    status: dict[str, Any]
    text: str


def status(repo: str, forge: str, form: str, prometheus: str | None = None) -> StatusRun:
    """Clone the deployment repo (bare), read it, render it; usage and live quality from `prometheus` when given."""
    if form not in FORMATS:
        raise MlciError(f"--format {form!r} is not one of {', '.join(FORMATS)}")
    github, token = forge_client(forge, repo)
    with tempfile.TemporaryDirectory(prefix="mlci-status-") as scratch:
        history = DeploymentHistory.clone(repo, Path(scratch), token)
        found = collect(history, repo, github, prometheus=prometheus)
    return StatusRun(found, render(found, form))
