"""GitHub's REST API, the few calls mlci makes: a token from the environment that never reaches output."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MlciError

API_VERSION = "2022-11-28"
DEFAULT_API = "https://api.github.com"
OWNER_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
FORGES = ("github", "none")
# GitHub refuses comment and pull request bodies longer than this, and release notes longer than the second.
MAX_BODY = 65_536
MAX_RELEASE_BODY = 125_000


def fit_body(head: str, report: str, limit: int = MAX_BODY) -> str:
    """`head` then `report`, the report cut to GitHub's body limit with a note that says so."""
    if len(head) + len(report) <= limit:
        return head + report
    note = "\n\n_The report was cut to fit; the whole report is in the run's artifacts._\n"
    return head + report[: limit - len(head) - len(note)] + note


def environment_token() -> str | None:
    """GITHUB_TOKEN, or the contents of the file GITHUB_TOKEN_FILE names (a mounted secret: Kubernetes prefers
    files to variables for secrets); None when neither is set."""
    token = os.environ.get("GITHUB_TOKEN", "")
    token_file = os.environ.get("GITHUB_TOKEN_FILE", "")
    if not token and token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as error:
            raise MlciError(f"GITHUB_TOKEN_FILE {token_file} is unreadable: {error.strerror}") from None
    return token or None


@dataclass(frozen=True)
class GitHub:
    """A client for one repository (`owner/name`) at `api` with `token`."""

    repository: str
    token: str
    api: str = DEFAULT_API
    timeout: float = 30.0

    @classmethod
    def from_environment(cls, repository: str | None = None) -> GitHub:
        """The client that GitHub Actions sets up: GITHUB_TOKEN, GITHUB_REPOSITORY and GITHUB_API_URL."""
        token = environment_token()
        if not token:
            raise MlciError("GITHUB_TOKEN is not set (nor GITHUB_TOKEN_FILE): the GitHub API needs a token")
        repository = repository or os.environ.get("GITHUB_REPOSITORY", "")
        if not OWNER_NAME.fullmatch(repository):
            raise MlciError(f"repository {repository!r} is not owner/name (give --repo or set GITHUB_REPOSITORY)")
        return cls(repository, token, os.environ.get("GITHUB_API_URL", DEFAULT_API).rstrip("/"))

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, missing_ok: bool = False
    ) -> tuple[Any, dict[str, str]]:
        """One call: the decoded JSON and the response headers; a clear MlciError on any failure (with
        `missing_ok`, a 404 is None and no headers instead)."""
        url = path if path.startswith(("http://", "https://")) else f"{self.api}{path}"
        request = urllib.request.Request(
            url,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "mlci",
                **({} if body is None else {"Content-Type": "application/json"}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            if missing_ok and error.code == 404:
                return None, {}
            raise MlciError(f"GitHub API {method} {_shown(url)}: {error.code} {_message(error.read())}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise MlciError(f"GitHub API {method} {_shown(url)}: cannot connect ({reason})") from None
        try:
            return (json.loads(raw) if raw else None), headers
        except json.JSONDecodeError:
            raise MlciError(f"GitHub API {method} {_shown(url)}: the response is not JSON") from None

    def paginate(self, path: str) -> list[Any]:
        """Every item of a listing, following the Link header's rel="next"."""
        items: list[Any] = []
        next_url: str | None = path
        while next_url is not None:
            page, headers = self.request("GET", next_url)
            if not isinstance(page, list):
                raise MlciError(f"GitHub API GET {_shown(next_url)}: expected a list")
            items += page
            found = re.search(r'<([^>]+)>;\s*rel="next"', headers.get("link", ""))
            next_url = found.group(1) if found else None
        return items


def _shown(url: str) -> str:
    """A URL as printed: without its query string, which could carry anything."""
    return url.split("?", 1)[0]


def _message(raw: bytes) -> str:
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "(no JSON message)"
    message = document.get("message", "") if isinstance(document, dict) else ""
    return str(message)[:300] or "(no message)"


def forge_client(forge: str, repo: str) -> tuple[GitHub | None, str | None]:
    """What --forge gives a command: GitHub's API client for the owner/name in --repo and the token git uses
    too (both from the environment), or neither for --forge none."""
    if forge not in FORGES:
        raise MlciError(f"--forge {forge!r} is not one of {', '.join(FORGES)}")
    if forge == "none":
        return None, None
    if not OWNER_NAME.fullmatch(repo):
        raise MlciError(f"--forge github needs --repo as owner/name, not {repo!r}")
    github = GitHub.from_environment(repo)
    return github, github.token
