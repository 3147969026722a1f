"""Retraining: what starts it and what it yields.

`mlci retrain-trigger` runs beside the model in the cluster (a CronJob of the project's deploy/ base): it asks
Prometheus for the drift alert of its own namespace and, once per activation of that alert, sends the project
repository a `repository_dispatch` event, which starts the retraining workflow.

`mlci retrain-pr` ends a retraining run: the pipeline ran on fresh data and was certified; its new dvc.lock
(the outputs themselves are in the DVC remote already) goes on a branch `retrain/...` as one pull request whose
body is the certification report. Merging it deploys the retrained model through the usual path. When nothing
changed, nothing is proposed.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import MlciError
from ..git import Git
from .github import OWNER_NAME, GitHub, fit_body, forge_client
from .repo_writer import repo_url


@dataclass(frozen=True)
class Firing:
    """One firing alert of a rule: its labels, and by when Prometheus saw it firing at the latest (active since
    activeAt, firing after the rule's hold, seen at the group's next evaluation)."""

    alert: str
    labels: dict[str, str]
    active_at: datetime
    seen_by: float
    value: str


def firing_alerts(prometheus: str, alert: str, namespace: str, timeout: float = 30) -> list[Firing]:
    """The firing alerts named `alert` in `namespace`, from Prometheus's rules API."""
    url = f"{prometheus.rstrip('/')}/api/v1/rules?" + urllib.parse.urlencode({"type": "alert"})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            answer = json.load(response)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        raise MlciError(f"Prometheus at {prometheus} did not answer its rules API: {error}") from None
    try:
        if answer.get("status") != "success":
            raise ValueError(answer.get("error") or answer.get("status"))
        found = []
        for group in answer["data"]["groups"]:
            interval = float(group.get("interval") or 0)
            for rule in group["rules"]:
                if rule.get("type") != "alerting" or rule.get("name") != alert:
                    continue
                for active in rule.get("alerts") or []:
                    labels = {str(k): str(v) for k, v in (active.get("labels") or {}).items()}
                    if active.get("state") != "firing" or labels.get("namespace") != namespace:
                        continue
                    since = datetime.fromisoformat(str(active["activeAt"]).replace("Z", "+00:00"))
                    seen_by = since.timestamp() + float(rule.get("duration") or 0) + interval
                    found.append(Firing(alert, labels, since, seen_by, str(active.get("value"))))
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise MlciError(
            f"Prometheus at {prometheus} answered its rules API with something unexpected ({error})"
        ) from None
    return found


def retrain_trigger(
    prometheus: str,
    namespace: str,
    repo: str,
    alert: str,
    event: str,
    every_seconds: float,
    dry_run: bool,
    at: datetime | None = None,
    log: Callable[[str], None] = print,
) -> list[Firing]:
    """Dispatch `event` once for each firing alert that is new to this run: runs are scheduled every
    `every_seconds` from the epoch (cron's */15 is every 900 s), and the run of the slot that started last,
    however late it starts, takes the alerts Prometheus saw firing by that slot and not by the one before."""
    if not OWNER_NAME.fullmatch(repo):
        raise MlciError(f"--repo {repo!r} is not owner/name")
    if every_seconds <= 0:
        raise MlciError(f"--every {every_seconds} must be a positive number of seconds")
    at = at or datetime.now(UTC)
    slot = math.floor(at.timestamp() / every_seconds) * every_seconds
    firing = firing_alerts(prometheus, alert, namespace)
    fresh = [f for f in firing if slot - every_seconds < f.seen_by <= slot]
    for old in (f for f in firing if f not in fresh):
        when = "dispatched before" if old.seen_by <= slot - every_seconds else "the next run's to dispatch"
        log(f"retrain-trigger: {alert} {_shown(old.labels)} fires since {old.active_at.isoformat()}: {when}")
    if fresh and not dry_run:
        github = GitHub.from_environment(repo)
        for alert_firing in fresh:
            payload = {
                "reason": f"{alert} in {namespace}",
                "alert": alert,
                "labels": alert_firing.labels,
                "active_at": alert_firing.active_at.isoformat(),
                "value": alert_firing.value,
            }
            github.request("POST", f"/repos/{repo}/dispatches", {"event_type": event, "client_payload": payload})
    for alert_firing in fresh:
        verb = "would dispatch" if dry_run else "dispatched"
        log(f"retrain-trigger: {alert} {_shown(alert_firing.labels)} fires: {verb} {event} to {repo}")
    return fresh


def _shown(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname") + "}"


@dataclass(frozen=True)
class Proposed:
    branch: str | None
    pull_request: dict[str, Any] | None
    message: str


def retrain_pr(
    project: Path,
    repo: str,
    forge: str,
    reason: str,
    report: Path,
    base: str,
    paths: tuple[str, ...] = ("dvc.lock",),
    log: Callable[[str], None] = print,
) -> Proposed:
    """Commit the retrained dvc.lock on a new branch, push it, and open its pull request (forge github)."""
    github, token = forge_client(forge, repo)
    git = Git(project, repo_url(repo), token, "the project's repository")  # git in the project's checkout
    missing = [path for path in paths if not (project / path).is_file()]
    if missing:
        raise MlciError(f"{', '.join(missing)} missing in {project}: run the pipeline (make repro) first")
    changed = git.run("status", "--porcelain", "--", *paths).stdout.strip()
    if not changed:
        return Proposed(None, None, f"retrain-pr: {', '.join(paths)} unchanged: retraining changed no data or model")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = os.environ.get("GITHUB_RUN_ID")
    branch = f"retrain/{stamp}" + (f"-{run_id}" if run_id else "")
    title = f"Retrain: {reason}"
    name = os.environ.get("MLCI_GIT_NAME", "mlci retrain-pr")
    email = os.environ.get("MLCI_GIT_EMAIL", "mlci-retrain-pr@users.noreply.github.com")
    git.run("checkout", "--quiet", "-b", branch)
    git.run("add", "--", *paths)
    identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    git.run(*identity, "commit", "--quiet", "-m", f"{title}\n", "--", *paths)  # these paths alone
    pushed = git.run("push", "--quiet", git.url, f"HEAD:refs/heads/{branch}", check=False)
    if pushed.returncode != 0:
        raise MlciError(f"git push of {branch} failed: {pushed.stderr.strip()[-500:]}")
    log(f"retrain-pr: pushed {branch}")
    if github is None:
        return Proposed(branch, None, f"retrain-pr: pushed {branch} (no forge: open the pull request yourself)")
    text = report.read_text() if report.is_file() else "(no certification report was found)\n"
    body = fit_body(f"Retrained by `mlci retrain-pr`: {reason}.\n\n", text)
    pull, _ = github.request(
        "POST", f"/repos/{repo}/pulls", {"title": title, "head": branch, "base": base, "body": body}
    )
    return Proposed(branch, pull, f"retrain-pr: opened pull request #{pull.get('number')} {pull.get('html_url', '')}")
