"""`mlci deploy-pr`: propose a certified model to the deployment repo as a pull request.

The proposal writes only `apps/<project>/` (base from the project's deploy/, one overlay per environment that
pins the serving image by digest, the certificate beside it) on the branch `deploy/<project>/<env>`. A push
that loses a race is retried on the fresh tip, so concurrent proposals never overwrite each other's commits
and the last one's content is what the branch holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import certificate as certificates
from .errors import MlciError
from .github import OWNER_NAME, GitHub, fit_body, forge_client

ENVIRONMENTS = ("staging", "production")
IMAGE_BY_DIGEST = re.compile(r"(?P<name>[a-z0-9][a-z0-9._/:-]*[a-z0-9])@(?P<digest>sha256:[0-9a-f]{64})")
PROJECT = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")
COMMIT = re.compile(r"[0-9a-f]{40,64}|unknown")
PUSH_ATTEMPTS = 8


@dataclass(frozen=True)
class DeployProposal:
    """What one deploy PR proposes: a project's certified model, by image digest, for one environment."""

    project: str
    env: str
    image_name: str
    digest: str
    certificate: dict[str, Any]
    certificate_bytes: bytes
    report: str
    base: dict[str, bytes] = field(repr=False)
    # promote and rollback name their own PRs; a rollback proposes on its own branch.
    headline: str | None = None
    kind: str = "deploy"
    command: str = "deploy-pr"

    def __post_init__(self) -> None:
        """Every value the overlay carries is checked here: they are written into YAML, and promote and rollback
        take them from the deployment repo, where anyone with push access could have put anything."""
        checks = (
            ("project", self.project, PROJECT),
            ("environment", self.env, PROJECT),
            ("image", f"{self.image_name}@{self.digest}", IMAGE_BY_DIGEST),
            ("model version", self.version, VERSION),
            ("commit", self._commit, COMMIT),
        )
        for what, value, pattern in checks:
            if not pattern.fullmatch(value):
                raise MlciError(f"the {what} {value!r} cannot be deployed: it does not match {pattern.pattern}")

    @property
    def _commit(self) -> str:
        git = self.certificate.get("git")
        return str((git.get("commit") if isinstance(git, dict) else None) or "unknown")

    @property
    def branch(self) -> str:
        return f"{self.kind}/{self.project}/{self.env}"

    @property
    def version(self) -> str:
        model = self.certificate.get("model")
        return str(model.get("version") if isinstance(model, dict) else None)

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.certificate_bytes).hexdigest()

    @property
    def title(self) -> str:
        return self.headline or f"Deploy {self.project} version {self.version} to {self.env}"

    def overlay(self, certificate_sha256: str | None = None) -> str:
        """The environment's kustomization: the base, the image pinned by digest, and where it came from."""
        commit = self._commit
        certificate_sha256 = certificate_sha256 or self.certificate_sha256
        return (
            f"# Written by mlci deploy-pr for {self.project} in {self.env}: change the project, not this file.\n"
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"namespace: {self.project}-{self.env}\n"
            "resources:\n"
            "  - ../../base\n"
            "images:\n"
            f"  - name: {self.image_name}\n"
            f"    digest: {self.digest}\n"
            "commonAnnotations:\n"
            f'  mlci.dev/commit: "{commit}"\n'
            f'  mlci.dev/model-version: "{self.version}"\n'
            f'  mlci.dev/certificate-sha256: "{certificate_sha256}"\n'
        )

    def files(self) -> dict[str, bytes]:
        """Every file the proposal owns, by path in the deployment repo."""
        app = f"apps/{self.project}"
        owned = {f"{app}/base/{name}": data for name, data in self.base.items()}
        owned[f"{app}/overlays/{self.env}/kustomization.yaml"] = self.overlay().encode()
        owned[f"{app}/overlays/{self.env}/certificate.json"] = self.certificate_bytes
        return owned

    def body(self) -> str:
        """The pull request's body: what is deployed, then the certification report."""
        head = (
            f"Proposed by `mlci {self.command}`: {self.title}.\n\n"
            f"| image | certificate sha256 | commit |\n| --- | --- | --- |\n"
            f"| `{self.image_name}@{self.digest}` | `{self.certificate_sha256}` | "
            f"`{self._commit}` |\n\n"
        )
        return fit_body(head, self.report)


def proposal(
    env: str, image: str, certificate_path: Path, model: Path, deploy_dir: Path, report_path: Path | None
) -> DeployProposal:
    """Check everything that can be checked before touching any repository; the proposal, or why not."""
    if env not in ENVIRONMENTS:
        raise MlciError(f"--env {env!r} is not one of {', '.join(ENVIRONMENTS)}")
    pinned = IMAGE_BY_DIGEST.fullmatch(image)
    if pinned is None:
        raise MlciError(f"--image {image!r} is not pinned by digest (name@sha256:<64 hex digits>)")
    certificates.verify(certificate_path, model)  # raises with the reason when it does not verify
    certificate_bytes = certificate_path.read_bytes()
    certificate = json.loads(certificate_bytes)
    project = str(certificate["model"]["name"])
    if not PROJECT.fullmatch(project):
        raise MlciError(f"the certified model's name {project!r} cannot name a folder apps/<project>/")
    if not deploy_dir.is_dir():
        raise MlciError(f"{deploy_dir} is missing: the project's kustomize base (deploy/) is what gets deployed")
    base = {
        str(path.relative_to(deploy_dir)): path.read_bytes() for path in sorted(deploy_dir.rglob("*")) if path.is_file()
    }
    if "kustomization.yaml" not in base:
        raise MlciError(f"{deploy_dir} has no kustomization.yaml")
    if not any(f"image: {pinned['name']}".encode() in data for data in base.values()):
        raise MlciError(f"{deploy_dir} runs no container image {pinned['name']}: the overlay could not pin it")
    report_path = report_path or certificate_path.with_name("report.md")
    report = report_path.read_text() if report_path.is_file() else "(no certification report was found)\n"
    return DeployProposal(project, env, pinned["name"], pinned["digest"], certificate, certificate_bytes, report, base)


@dataclass(frozen=True)
class Pushed:
    """The branch as pushed: its commit, and whether the proposal changed anything."""

    commit: str
    changed: bool
    attempts: int


def git_environment(url: str, token: str | None) -> dict[str, str]:
    """git's environment for `url`: no prompts, and the token as an HTTP header (never in argv or a URL)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token and url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        index = int(env.get("GIT_CONFIG_COUNT") or 0)  # after any configuration the caller passes this way
        env.update(
            {
                "GIT_CONFIG_COUNT": str(index + 1),
                f"GIT_CONFIG_KEY_{index}": "http.extraHeader",
                f"GIT_CONFIG_VALUE_{index}": f"Authorization: Basic {basic}",
            }
        )
    return env


class DeploymentRepo:
    """A clone of the deployment repo in a scratch folder; git runs with the token in its environment only."""

    def __init__(self, url: str, scratch: Path, token: str | None, path: Path | None = None) -> None:
        self.url, self.path = url, path or scratch / "repo"
        self.env = git_environment(url, token)

    def git(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.path, env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and done.returncode != 0:
            command = next((a for a in args if not a.startswith("-") and "=" not in a), "")
            raise MlciError(f"git {command} failed for the deployment repo: {done.stderr.strip()[-500:]}")
        return done

    def clone(self) -> str:
        """Clone; the default branch's name."""
        self.git("clone", "--quiet", "--no-tags", "--", self.url, str(self.path), cwd=self.path.parent)
        head = self.git("symbolic-ref", "--short", "refs/remotes/origin/HEAD", check=False).stdout.strip()
        if head:
            return head.removeprefix("origin/")
        branches = self.git("branch", "--remotes", "--format=%(refname:short)").stdout.split()
        if "origin/main" in branches or not branches:
            return "main"
        return branches[0].removeprefix("origin/")

    def propose(self, proposal: DeployProposal, default_branch: str, identity: tuple[str, str]) -> Pushed:
        """Commit the proposal's files on its branch and push, retrying on the fresh tip when a push loses."""
        name, email = identity
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            self.git("fetch", "--quiet", "--prune", "origin")
            remote = f"origin/{proposal.branch}"
            exists = self._has(remote)
            start = (
                remote if exists else (f"origin/{default_branch}" if self._has(f"origin/{default_branch}") else None)
            )
            if start:
                self.git("checkout", "--quiet", "-B", proposal.branch, start)
            else:  # an empty repository: the proposal starts its history
                self.git("checkout", "--quiet", "--orphan", proposal.branch)
            self._write(proposal)
            self.git("add", "--all", f"apps/{proposal.project}")
            changed = self.git("diff", "--cached", "--quiet", check=False).returncode != 0
            if changed:
                message = f"{proposal.title}\n\nImage {proposal.image_name}@{proposal.digest}\n"
                message += f"Certificate sha256 {proposal.certificate_sha256}\n"
                self.git("-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "--quiet", "-m", message)
            elif exists:
                return Pushed(self.git("rev-parse", "HEAD").stdout.strip(), False, attempt)
            pushed = self.git("push", "--quiet", "origin", f"HEAD:refs/heads/{proposal.branch}", check=False)
            if pushed.returncode == 0:
                return Pushed(self.git("rev-parse", "HEAD").stdout.strip(), changed, attempt)
            if not re.search(r"non-fast-forward|fetch first|rejected|stale info|cannot lock ref", pushed.stderr):
                raise MlciError(f"git push to the deployment repo failed: {pushed.stderr.strip()[-500:]}")
        raise MlciError(f"the branch {proposal.branch} kept moving: gave up after {PUSH_ATTEMPTS} pushes")

    def _has(self, ref: str) -> bool:
        return self.git("rev-parse", "--verify", "--quiet", ref, check=False).returncode == 0

    def _write(self, proposal: DeployProposal) -> None:
        app = self.path / "apps" / proposal.project
        shutil.rmtree(app / "base", ignore_errors=True)  # a file dropped from deploy/ leaves the base too
        for relative, data in proposal.files().items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


@dataclass(frozen=True)
class Outcome:
    """What deploy-pr did: the branch push, and the pull request when a forge was asked for."""

    branch: str
    pushed: Pushed
    pull_request: dict[str, Any] | None
    action: str


def open_or_update(github: GitHub, proposal: DeployProposal, base_branch: str) -> tuple[str, dict[str, Any]]:
    """The open pull request of the proposal's branch, updated; or a new one. Never two."""
    owner = github.repository.split("/")[0]
    found = github.paginate(f"/repos/{github.repository}/pulls?state=open&head={owner}:{proposal.branch}&per_page=100")
    if found:
        number = found[0]["number"]
        pull, _ = github.request(
            "PATCH", f"/repos/{github.repository}/pulls/{number}", {"title": proposal.title, "body": proposal.body()}
        )
        return "updated", pull
    pull, _ = github.request(
        "POST",
        f"/repos/{github.repository}/pulls",
        {"title": proposal.title, "head": proposal.branch, "base": base_branch, "body": proposal.body()},
    )
    return "opened", pull


def repo_url(repo: str) -> str:
    """A git URL from --repo: a URL or path as given, or owner/name on the GitHub server of the run."""
    if OWNER_NAME.fullmatch(repo) and not Path(repo).exists():
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{repo}.git"
    return repo


def deploy_pr(proposed: DeployProposal, repo: str, forge: str, log: Callable[[str], None] = print) -> Outcome:
    """Push the proposal's branch to the deployment repo, then open or update its pull request (forge github)."""
    github, token = forge_client(forge, repo)
    identity = (
        os.environ.get("MLCI_GIT_NAME", "mlci deploy-pr"),
        os.environ.get("MLCI_GIT_EMAIL", "mlci-deploy-pr@users.noreply.github.com"),
    )
    with tempfile.TemporaryDirectory(prefix="mlci-deploy-") as scratch:
        clone = DeploymentRepo(repo_url(repo), Path(scratch), token)
        default_branch = clone.clone()
        pushed = clone.propose(proposed, default_branch, identity)
    log(
        f"deploy-pr: {proposed.branch} at {pushed.commit[:12]}"
        + (" (pushed)" if pushed.changed else " (already up to date)")
        + (f" after {pushed.attempts} attempts" if pushed.attempts > 1 else "")
    )
    if github is None:
        return Outcome(proposed.branch, pushed, None, "pushed")
    action, pull = open_or_update(github, proposed, default_branch)
    return Outcome(proposed.branch, pushed, pull, action)
