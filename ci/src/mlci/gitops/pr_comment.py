"""`mlci pr-comment`: one comment per pull request and topic, created once and then edited in place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MlciError
from .github import GitHub, fit_body


@dataclass(frozen=True)
class PostedComment:
    """What was done (created or updated) and where the comment lives."""

    action: str
    comment_id: int
    url: str


def marker(topic: str) -> str:
    """The hidden line that identifies mlci's comment on `topic` among all the pull request's comments."""
    return f"<!-- mlci:{topic} -->"


def comment_body(report: str, topic: str) -> str:
    """The report under its marker, cut to GitHub's size limit with a note that says so."""
    return fit_body(marker(topic) + "\n", report)


def upsert(github: GitHub, pull_request: int, report: str, topic: str = "certification") -> PostedComment:
    """Edit the pull request's comment on `topic` if there is one, else create it: never two of them."""
    body = comment_body(report, topic)
    comments = github.paginate(f"/repos/{github.repository}/issues/{pull_request}/comments?per_page=100")
    ours = [c for c in comments if isinstance(c, dict) and marker(topic) in str(c.get("body", ""))]
    if ours:
        posted, _ = github.request(
            "PATCH", f"/repos/{github.repository}/issues/comments/{ours[0]['id']}", {"body": body}
        )
        action = "updated"
    else:
        posted, _ = github.request("POST", f"/repos/{github.repository}/issues/{pull_request}/comments", {"body": body})
        action = "created"
    if not isinstance(posted, dict) or "id" not in posted:
        raise MlciError("GitHub API: the comment response has no id")
    return PostedComment(action, int(posted["id"]), str(posted.get("html_url", "")))


def post_report(report_path: Path, pull_request: int, repository: str | None, topic: str) -> PostedComment:
    """Read the report and put it on the pull request, with the client set up from the environment."""
    if pull_request < 1:
        raise MlciError(f"--pr {pull_request} is not a pull request number")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", topic):
        raise MlciError(f"--topic {topic!r} must be lower-case letters, digits and '-'")
    try:
        report = report_path.read_text()
    except OSError as error:
        raise MlciError(f"cannot read the report {report_path}: {error.strerror}") from None
    return upsert(GitHub.from_environment(repository), pull_request, report, topic)
