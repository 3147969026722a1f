"""`mlci release-notes`: what a release tag brings to production, as the notes of its GitHub release.

Against the version production runs (or, once the tag's own version runs there, the one it ran before): the
parameters and data versions that changed between the two certificates, the metric deltas (better or worse, as
the quality gate bounds each metric), the pull requests merged in between, then the certificate's gates, the
model card, and who approved (the staging deploy's reviewers, the production environment's).

`render` is a pure function of those facts; `gather` reads them (the deployment repo, the project's git history,
GitHub's API) and `publish` creates the tag's release, or updates the one there.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MlciError
from ..git import Git
from .github import FORGES, MAX_RELEASE_BODY, OWNER_NAME, GitHub, environment_token, fit_body
from .promotion import certificate_table, staged_release, tagged_commit
from .repo_reader import DeploymentHistory, gate, quality_metrics, section

# One API call per commit of the default branch: the newest this many are looked up.
MAX_LOOKUPS = 200
# With no forge to name pull requests, the newest this many commit subjects are listed.
MAX_SUBJECTS = 50
ABSENT = object()  # a parameter or data file one certificate has and the other lacks


@dataclass(frozen=True)
class PullRequest:
    number: int
    title: str
    author: str
    url: str


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str


@dataclass(frozen=True)
class Approval:
    """Someone who signed off: who, what (a phrase: `approved the deployment to production`), and their words."""

    who: str
    what: str
    comment: str = ""


@dataclass(frozen=True)
class Baseline:
    """The version the release is compared with, and whether production runs it now (else it ran it before)."""

    version: str
    certificate: dict[str, Any]
    running: bool


@dataclass(frozen=True)
class Release:
    """Everything the notes say. `pulls` None: not looked up, `pulls_note` says why."""

    app: str
    tag: str
    version: str
    certificate: dict[str, Any]
    baseline: Baseline | None = None
    baseline_note: str = ""
    commits: tuple[Commit, ...] | None = None  # the default branch's commits since the baseline's, newest first
    pulls: tuple[PullRequest, ...] | None = None
    pulls_note: str = ""
    approvals: tuple[Approval, ...] = ()
    model_card: str | None = None


def flattened(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as `a.b.c` keys; anything else is a leaf."""
    if not isinstance(values, dict):
        return {prefix: values} if prefix else {}
    found: dict[str, Any] = {}
    for key, value in values.items():
        found.update(flattened(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def changed(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) for every key whose value differs, ABSENT where a side lacks it; by key."""
    keys = sorted(set(old) | set(new))
    return [(k, old.get(k, ABSENT), new.get(k, ABSENT)) for k in keys if old.get(k, ABSENT) != new.get(k, ABSENT)]


def parameter_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The params.yaml values that differ between two certificates."""
    return changed(flattened(section(old, "params").get("values")), flattened(section(new, "params").get("values")))


def data_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The data version and each data file's DVC hash that differ between two certificates."""
    versions = changed(
        {"data version": section(old, "data_version").get("id")},
        {"data version": section(new, "data_version").get("id")},
    )
    return versions + changed(section(old, "data"), section(new, "data"))


@dataclass(frozen=True)
class MetricDelta:
    name: str
    old: float | None
    new: float | None
    higher_is_better: bool | None  # None: the quality gate bounds it on neither side

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def verdict(self) -> str:
        delta = self.delta
        if delta is None or self.higher_is_better is None:
            return ""
        if delta == 0:
            return "unchanged"
        return "better" if (delta > 0) == self.higher_is_better else "worse"


def metric_deltas(old: dict[str, Any] | None, new: dict[str, Any]) -> list[MetricDelta]:
    """Each metric the quality gate measured, in either certificate, with its direction from the new gate's bound
    (`>= x`: higher is better; `<= x` alone: lower is)."""
    before, after = quality_metrics(old) if old else {}, quality_metrics(new)
    bounds = (gate(new, "quality") or {}).get("threshold")
    bounds = bounds if isinstance(bounds, dict) else {}
    deltas = []
    for name in dict.fromkeys([*after, *before]):
        bound = str(bounds.get(name, ""))
        higher = True if bound.startswith(">=") else False if bound.startswith("<=") else None
        deltas.append(MetricDelta(name, _number(before.get(name)), _number(after.get(name)), higher))
    return deltas


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _shown(value: Any) -> str:
    """A value as code on one line: JSON for anything but text, `(none)` where a side lacks it."""
    if value is ABSENT:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + " ".join(text.replace("`", "'").split()) + "`"


def _figure(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.4g}" if signed else f"{value:.4g}"


def _inline(text: str) -> str:
    """Text from git or GitHub on one line of a Markdown list or table."""
    return " ".join(text.split()).replace("|", "\\|")


def render(release: Release) -> str:
    """The release notes as Markdown."""
    certificate, baseline = release.certificate, release.baseline
    commit = str(section(certificate, "git").get("commit") or "?")
    lines = [f"# {release.app} {release.tag}", ""]
    if baseline is None:
        lines += [
            f"Version {release.version}, certified at commit `{commit[:12]}`. "
            + (release.baseline_note or "Production runs no certified version yet: nothing to compare with."),
            "",
        ]
    else:
        since = "which production runs now" if baseline.running else "which production ran before it"
        base_commit = str(section(baseline.certificate, "git").get("commit") or "?")
        lines += [
            f"Version {release.version} (commit `{commit[:12]}`), compared with version {baseline.version} (commit "
            f"`{base_commit[:12]}`), {since}.",
            "",
        ]
    lines += _changes(release) + _pulls(release) + _approvals(release)
    lines += ["## Certificate", "", certificate_table(certificate).rstrip(), ""]
    if release.model_card is not None:
        lines += ["## Model card", "", release.model_card.rstrip(), ""]
    return "\n".join(lines)


def _changes(release: Release) -> list[str]:
    baseline = release.baseline
    old = baseline.certificate if baseline else None
    deltas = metric_deltas(old, release.certificate)
    lines = ["## Metrics", ""]
    if deltas:
        lines += ["| metric | before | now | change |", "| --- | --- | --- | --- |"]
        for d in deltas:
            change = _figure(d.delta, signed=True) + (f" ({d.verdict})" if d.verdict else "")
            lines.append(f"| {_inline(d.name)} | {_figure(d.old)} | {_figure(d.new)} | {change} |")
    else:
        lines.append("The certificate records no quality metrics.")
    if baseline is None:
        return [*lines, ""]
    for title, found in (
        ("Parameters", parameter_changes(baseline.certificate, release.certificate)),
        ("Data", data_changes(baseline.certificate, release.certificate)),
    ):
        lines += ["", f"## {title}", ""]
        if not found:
            lines.append(f"No {title.lower()} changed.")
            continue
        lines += [f"- {_shown(key)}: {_shown(a)} → {_shown(b)}" for key, a, b in found]
    return [*lines, ""]


def _pulls(release: Release) -> list[str]:
    if release.baseline is None:
        return []
    lines = ["## Pull requests merged", ""]
    commits = release.commits
    counted = ""
    if commits is not None:
        counted = f"{len(commits)} commit(s) on the default branch since version {release.baseline.version}. "
    if release.pulls is None:
        lines.append(counted + (release.pulls_note or "Pull requests were not looked up."))
        if commits:
            lines.append("")
            lines += [f"- `{c.sha[:12]}` {_inline(c.subject)}" for c in commits[:MAX_SUBJECTS]]
            if len(commits) > MAX_SUBJECTS:
                lines.append(f"- ... and {len(commits) - MAX_SUBJECTS} older")
    elif not release.pulls:
        lines.append(counted + "No pull request was merged in between." + release.pulls_note)
    else:
        lines.append(counted + f"{len(release.pulls)} pull request(s) merged, oldest first." + release.pulls_note)
        lines.append("")
        lines += [f"- #{p.number} {_inline(p.title)} (@{_inline(p.author)}) {p.url}".rstrip() for p in release.pulls]
    return [*lines, ""]


def _approvals(release: Release) -> list[str]:
    lines = ["## Approvals", ""]
    if not release.approvals:
        return [*lines, "Nobody's approval is on record.", ""]
    for approval in release.approvals:
        said = f": “{_inline(approval.comment)}”" if approval.comment.strip() else ""
        lines.append(f"- {_inline(approval.who)} {approval.what}{said}")
    return [*lines, ""]


# The edge: the deployment repo, git and GitHub.


def production_baseline(history: DeploymentHistory, app: str, version: str) -> tuple[Baseline | None, str]:
    """What production runs, or the version it ran before `version` once it runs that; why there is none."""
    path = f"apps/{app}/overlays/production"
    changes = history.changes([path]).get(path, [])
    ran = [d for d in history.at((app, "production", c.commit) for c in changes) if d.version is not None]
    for index, deployed in enumerate(ran):
        if deployed.version == version:
            continue
        if not deployed.verified or deployed.certificate is None:
            where = "runs" if index == 0 else "ran"
            return None, (
                f"Production {where} version {deployed.version}, whose certificate.json {deployed.problem}: "
                "nothing to compare with."
            )
        return Baseline(str(deployed.version), deployed.certificate, running=index == 0), ""
    return None, ""


def history_since(project: Path, base: str, head: str) -> tuple[tuple[Commit, ...] | None, str]:
    """The first-parent commits of `head` that `base` lacks (the merges of a default branch), newest first; None and
    why when `base` is not in the project's history."""
    git = Git(project)
    if not git.succeeds("cat-file", "-e", f"{base}^{{commit}}"):
        return None, (
            f"Commit `{base[:12]}` is not in this checkout's history, so what was merged since is unknown "
            "(check out with fetch-depth: 0)."
        )
    listed = git.run("log", "--first-parent", "--format=%H%x00%s", f"{base}..{head}").stdout
    commits = [Commit(*line.split("\0", 1)) for line in listed.splitlines() if "\0" in line]
    return tuple(commits), ""


def merged_pulls(github: GitHub, commits: tuple[Commit, ...]) -> tuple[tuple[PullRequest, ...], str]:
    """The merged pull requests that brought `commits` (newest first) to the default branch, oldest first; a note
    when only the newest were looked up."""
    looked = commits[:MAX_LOOKUPS]
    found: dict[int, PullRequest] = {}
    for commit in reversed(looked):
        for pull in github.paginate(f"/repos/{github.repository}/commits/{commit.sha}/pulls?per_page=100"):
            if not isinstance(pull, dict) or not pull.get("merged_at") or not isinstance(pull.get("number"), int):
                continue
            user = section(pull, "user")
            found.setdefault(
                pull["number"],
                PullRequest(
                    pull["number"],
                    str(pull.get("title", "")),
                    str(user.get("login", "?")),
                    str(pull.get("html_url", "")),
                ),
            )
    note = "" if len(commits) <= MAX_LOOKUPS else f" Only the newest {MAX_LOOKUPS} commits were looked up."
    return tuple(found.values()), note


def run_approvals(github: GitHub, run_id: str) -> list[Approval]:
    """Who reviewed the workflow run's environment deployments (GitHub's review history of the run)."""
    found = []
    for review in github.paginate(f"/repos/{github.repository}/actions/runs/{run_id}/approvals"):
        if not isinstance(review, dict):
            continue
        user = section(review, "user")
        names = [str(e.get("name")) for e in review.get("environments") or [] if isinstance(e, dict)]
        what = f"{review.get('state', 'reviewed')} the deployment to {', '.join(names) or 'an environment'}"
        found.append(
            Approval(f"@{user.get('login', '?')}", f"{what} (workflow run {run_id})", str(review.get("comment") or ""))
        )
    return found


def gather(
    tag: str,
    repo: str,
    forge: str,
    app: str,
    project: Path,
    project_repo: str | None = None,
    run_id: str | None = None,
    model_card: Path | None = None,
) -> tuple[Release, GitHub | None]:
    """Every fact of the notes: the deployment repo's certificates (the tag's, as staging ran it, and production's),
    the project's commits since, and with forge github the merged pull requests and the run's approvals (GitHub's
    client for the project's repo comes back, to publish with)."""
    if forge not in FORGES:
        raise MlciError(f"--forge {forge!r} is not one of {', '.join(FORGES)}")
    if run_id is not None and not run_id.isdigit():
        raise MlciError(f"--run-id {run_id!r} is not a workflow run's number")
    commit = tagged_commit(tag, project)
    card = None
    if model_card is not None:
        try:
            card = model_card.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise MlciError(f"--model-card {model_card} is unreadable: {error}") from None
    github = None
    if forge == "github":
        project_repo = project_repo or os.environ.get("GITHUB_REPOSITORY", "")
        if not OWNER_NAME.fullmatch(project_repo):
            raise MlciError(f"--project-repo {project_repo!r} is not owner/name (give it, or set GITHUB_REPOSITORY)")
        github = GitHub.from_environment(project_repo)
    # The deployment repo is another repository: the project's token cannot read it when it is private.
    token = os.environ.get("DEPLOYMENT_REPO_TOKEN") or (environment_token() if github else None)
    with tempfile.TemporaryDirectory(prefix="mlci-release-notes-") as scratch:
        history = DeploymentHistory.clone(repo, Path(scratch), token)
        staged = staged_release(history, app, tag, commit, repo)
        version = str(staged.release.version)
        if card is None and staged.release.model_card_bytes is not None:  # the card that staging ran it with
            card = staged.release.model_card_bytes.decode("utf-8", errors="replace")
        baseline, baseline_note = production_baseline(history, app, version)
    approvals = [
        Approval(
            _name(who),
            f"approved the staging deploy of version {version} (deployment repo `{staged.change.commit[:12]}`)",
        )
        for who in staged.change.approvers
    ]
    if not approvals:
        approvals.append(
            Approval(
                _name(staged.change.author),
                f"merged the staging deploy of version {version} (deployment repo `{staged.change.commit[:12]}`)",
            )
        )
    commits, pulls, pulls_note = None, None, ""
    if baseline is not None:
        base = str(section(baseline.certificate, "git").get("commit") or "")
        commits, pulls_note = history_since(project, base, commit) if base else (None, "")
        if github is None:
            pulls_note = pulls_note or "Pull requests were not looked up (--forge none); the commits:"
        elif commits is not None:
            pulls, pulls_note = merged_pulls(github, commits)
    if github is not None and run_id:
        approvals += run_approvals(github, run_id)
    certificate = staged.release.certificate or {}
    release = Release(
        app, tag, version, certificate, baseline, baseline_note, commits, pulls, pulls_note, tuple(approvals), card
    )
    return release, github


def _name(author: str) -> str:
    return author.split(" <")[0] or author


def publish(github: GitHub, tag: str, title: str, notes: str) -> tuple[str, dict[str, Any]]:
    """Create the tag's GitHub release with `notes`, or update the one there (a rerun); the action and the release."""
    body = fit_body("", notes, MAX_RELEASE_BODY)
    found, _ = github.request("GET", f"/repos/{github.repository}/releases/tags/{tag}", missing_ok=True)
    if isinstance(found, dict) and "id" in found:
        release, _ = github.request(
            "PATCH", f"/repos/{github.repository}/releases/{found['id']}", {"name": title, "body": body}
        )
        return "updated", release
    release, _ = github.request(
        "POST", f"/repos/{github.repository}/releases", {"tag_name": tag, "name": title, "body": body}
    )
    return "created", release


@dataclass(frozen=True)
class Published:
    notes: str
    release: Release
    action: str  # created, updated, or written (no forge)
    url: str | None


def release_notes(
    tag: str,
    repo: str,
    forge: str,
    app: str,
    project: Path,
    write: Callable[[str], None],
    project_repo: str | None = None,
    run_id: str | None = None,
    model_card: Path | None = None,
) -> Published:
    """Gather, render, `write` the notes, then (forge github) create or update the tag's release with them."""
    release, github = gather(tag, repo, forge, app, project, project_repo, run_id, model_card)
    notes = render(release)
    write(notes)
    if github is None:
        return Published(notes, release, "written", None)
    action, published = publish(github, tag, f"{app} {tag}", notes)
    return Published(notes, release, action, str((published or {}).get("html_url") or "") or None)
