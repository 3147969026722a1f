"""The deployment repo written: a clone in a scratch folder, a proposal committed on its branch and pushed.

A push that loses a race is retried on the fresh tip, so concurrent proposals never overwrite each other's
commits and the last one's content is what the branch holds.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import MlciError
from ..files import write_atomic
from ..git import Git
from .github import OWNER_NAME
from .proposal import DeployProposal

PUSH_ATTEMPTS = 8


@dataclass(frozen=True)
class Pushed:
    """The branch as pushed: its commit, and whether the proposal changed anything."""

    commit: str
    changed: bool
    attempts: int


class DeploymentRepo:
    """A clone of the deployment repo in a scratch folder; git runs with the token in its environment only."""

    def __init__(self, url: str, scratch: Path, token: str | None) -> None:
        self.url, self.path = url, scratch / "repo"
        self.git = Git(self.path, url, token, "the deployment repo")

    def clone(self) -> str:
        """Clone; the default branch's name."""
        self.git.run("clone", "--quiet", "--no-tags", "--", self.url, str(self.path), cwd=self.path.parent)
        head = self.git.run("symbolic-ref", "--short", "refs/remotes/origin/HEAD", check=False).stdout.strip()
        if head:
            return head.removeprefix("origin/")
        branches = self.git.run("branch", "--remotes", "--format=%(refname:short)").stdout.split()
        if "origin/main" in branches or not branches:
            return "main"
        return branches[0].removeprefix("origin/")

    def propose(self, proposal: DeployProposal, default_branch: str, identity: tuple[str, str]) -> Pushed:
        """Commit the proposal's files on its branch and push, retrying on the fresh tip when a push loses."""
        name, email = identity
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            self.git.run("fetch", "--quiet", "--prune", "origin")
            remote = f"origin/{proposal.branch}"
            exists = self._has(remote)
            start = (
                remote if exists else (f"origin/{default_branch}" if self._has(f"origin/{default_branch}") else None)
            )
            if start:
                self.git.run("checkout", "--quiet", "-B", proposal.branch, start)
            else:  # an empty repository: the proposal starts its history
                self.git.run("checkout", "--quiet", "--orphan", proposal.branch)
            self._write(proposal)
            self.git.run("add", "--all", f"apps/{proposal.project}")
            changed = self.git.run("diff", "--cached", "--quiet", check=False).returncode != 0
            if changed:
                message = f"{proposal.title}\n\nImage {proposal.image_name}@{proposal.digest}\n"
                message += f"Certificate sha256 {proposal.certificate_sha256}\n"
                self.git.run("-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "--quiet", "-m", message)
            elif exists:
                return Pushed(self.git.run("rev-parse", "HEAD").stdout.strip(), False, attempt)
            pushed = self.git.run("push", "--quiet", "origin", f"HEAD:refs/heads/{proposal.branch}", check=False)
            if pushed.returncode == 0:
                return Pushed(self.git.run("rev-parse", "HEAD").stdout.strip(), changed, attempt)
            if not re.search(r"non-fast-forward|fetch first|rejected|stale info|cannot lock ref", pushed.stderr):
                raise MlciError(f"git push to the deployment repo failed: {pushed.stderr.strip()[-500:]}")
        raise MlciError(f"the branch {proposal.branch} kept moving: gave up after {PUSH_ATTEMPTS} pushes")

    def _has(self, ref: str) -> bool:
        return self.git.succeeds("rev-parse", "--verify", "--quiet", ref)

    def _write(self, proposal: DeployProposal) -> None:
        app = self.path / "apps" / proposal.project
        # A file dropped from deploy/ leaves this environment's base too; the other environment's is not touched.
        shutil.rmtree(app / "bases" / proposal.env, ignore_errors=True)
        # A version without a card leaves none of the version before it beside its certificate.
        (app / "overlays" / proposal.env / "model-card.md").unlink(missing_ok=True)
        for relative, data in proposal.files().items():
            write_atomic(self.path / relative, data)


def repo_url(repo: str) -> str:
    """A git URL from --repo: a URL or path as given, or owner/name on the GitHub server of the run."""
    if OWNER_NAME.fullmatch(repo) and not Path(repo).exists():
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{repo}.git"
    return repo
