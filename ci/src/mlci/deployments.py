"""Reading the deployment repo: what each app runs in each environment, since when, and whether the certificate
beside it still is the one that was deployed.

The repo is cloned bare (no work tree: every file is read from git's objects, many at a time through one
`git cat-file --batch`), so reading 1,000 apps costs one clone and a handful of git processes.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .certificate import SCHEMA_VERSION
from .deploy_pr import DeploymentRepo, DeployProposal, repo_url
from .errors import MlciError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ANNOTATION = "mlci.dev/"


@dataclass(frozen=True)
class Deployed:
    """One app's overlay for one environment at one commit of the deployment repo, read and checked."""

    app: str
    env: str
    commit: str
    image: str | None
    digest: str | None
    version: str | None
    pinned_sha256: str | None
    certificate: dict[str, Any] | None
    certificate_bytes: bytes | None
    problem: str | None

    @property
    def verified(self) -> bool:
        return self.problem is None

    @property
    def overlay(self) -> str:
        return f"apps/{self.app}/overlays/{self.env}"

    def refuse_unless_verified(self, doing: str) -> None:
        if self.problem is not None:
            raise MlciError(f"{doing}: {self.overlay}/certificate.json at {self.commit[:12]} {self.problem}")


def read_deployed(app: str, env: str, commit: str, kustomization: bytes | None, certificate: bytes | None) -> Deployed:
    """The overlay's pins and its certificate, with what is wrong with them (None when it verifies): the
    certificate must be the very bytes the overlay pinned by sha256, of the same version, and a pass."""
    image = digest = version = pinned = None
    problem = None
    written = _as_written(app, env, kustomization)
    overlay: Any
    try:
        if written is not None:
            overlay = written
        else:
            overlay = yaml.load(kustomization, Loader=_Loader) if kustomization is not None else None
        if kustomization is None:
            problem = "has no kustomization.yaml beside it"
        elif not isinstance(overlay, dict):
            problem = "sits beside a kustomization.yaml that is not a mapping"
        else:
            images = overlay.get("images") or [{}]
            image, digest = images[0].get("name"), images[0].get("digest")
            annotations = overlay.get("commonAnnotations") or {}
            version = annotations.get(f"{ANNOTATION}model-version")
            pinned = annotations.get(f"{ANNOTATION}certificate-sha256")
    except (yaml.YAMLError, AttributeError, IndexError, TypeError) as error:
        problem = f"sits beside a malformed kustomization.yaml ({str(error).splitlines()[0]})"
    parsed: dict[str, Any] | None = None
    if certificate is None:
        problem = problem or "is missing"
    else:
        try:
            loaded = json.loads(certificate)
            parsed = loaded if isinstance(loaded, dict) else None
        except ValueError as error:
            problem = problem or f"is malformed JSON ({error})"
        if parsed is None:
            problem = problem or "is not a JSON object"
    if problem is None and parsed is not None:
        problem = _certificate_problem(parsed, certificate or b"", pinned, version)
    return Deployed(app, env, commit, image, digest, version, pinned, parsed, certificate, problem)


_WRITTEN = re.compile(
    rb"  - name: (?P<name>\S+)\n    digest: (?P<digest>sha256:[0-9a-f]{64})\n"
    rb'commonAnnotations:\n  mlci.dev/commit: "(?P<commit>[^"\n]*)"\n'
    rb'  mlci.dev/model-version: "(?P<version>[^"\n]*)"\n'
    rb'  mlci.dev/certificate-sha256: "(?P<sha>[0-9a-f]{64})"\n\Z'
)


def _as_written(app: str, env: str, kustomization: bytes | None) -> dict[str, Any] | None:
    """The overlay's fields without a YAML parser when its bytes are exactly what DeployProposal writes (the
    common case, and 1,000s of them per status); None for anything else, which YAML then reads."""
    found = _WRITTEN.search(kustomization) if kustomization else None
    if found is None:
        return None
    fields = {key: value.decode() for key, value in found.groupdict().items()}
    certificate = {"model": {"version": fields["version"]}, "git": {"commit": fields["commit"]}}
    expected = DeployProposal(app, env, fields["name"], fields["digest"], certificate, b"", "", {}).overlay(
        certificate_sha256=fields["sha"]
    )
    if expected.encode() != kustomization:
        return None
    return {
        "images": [{"name": fields["name"], "digest": fields["digest"]}],
        "commonAnnotations": {
            f"{ANNOTATION}model-version": fields["version"],
            f"{ANNOTATION}certificate-sha256": fields["sha"],
        },
    }


def _certificate_problem(
    certificate: dict[str, Any], raw: bytes, pinned: str | None, version: str | None
) -> str | None:
    actual = hashlib.sha256(raw).hexdigest()
    if not pinned:
        return "is not pinned: the overlay records no certificate sha256"
    if actual != pinned:
        return f"has sha256 {actual}, but the overlay pinned {pinned}: it was changed after it was deployed"
    if certificate.get("schema_version") != SCHEMA_VERSION:
        return f"is not a certificate of schema version {SCHEMA_VERSION}"
    if certificate.get("verdict") != "pass":
        return f"records the verdict {certificate.get('verdict')!r}, not 'pass'"
    certified = str((certificate.get("model") or {}).get("version"))
    if version is not None and certified != str(version):
        return f"certifies version {certified}, but the overlay deploys version {version}"
    return None


@dataclass(frozen=True)
class Change:
    """A commit of the default branch (first parent) that changed an overlay: a merge of its PR, usually."""

    commit: str
    date: str
    author: str
    approvers: tuple[str, ...]
    subject: str


class DeploymentHistory:
    """A bare clone of the deployment repo and the questions asked of it."""

    def __init__(self, repo: DeploymentRepo, default_branch: str) -> None:
        self.repo, self.default_branch = repo, default_branch
        self.head = f"refs/heads/{default_branch}"

    @classmethod
    def clone(cls, repo: str, scratch: Path, token: str | None) -> DeploymentHistory:
        clone = DeploymentRepo(repo_url(repo), scratch, token)
        clone.git("clone", "--quiet", "--bare", "--no-tags", clone.url, str(clone.path), cwd=scratch)
        head = clone.git("symbolic-ref", "--short", "HEAD", check=False).stdout.strip() or "main"
        branches = clone.git("for-each-ref", "--format=%(refname:short)", "refs/heads").stdout.split()
        if head not in branches and branches:
            head = "main" if "main" in branches else branches[0]
        return cls(clone, head)

    @property
    def empty(self) -> bool:
        return self.repo.git("rev-parse", "--verify", "--quiet", self.head, check=False).returncode != 0

    def read(self, specs: Iterable[str]) -> dict[str, bytes | None]:
        """Many `<commit>:<path>` blobs through one git process; None for those that do not exist."""
        specs = list(specs)
        if not specs:
            return {}
        done = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.repo.path,
            input="".join(f"{spec}\n" for spec in specs).encode(),
            capture_output=True,
            check=True,
        )
        out, position = done.stdout, 0
        found: dict[str, bytes | None] = {}
        for spec in specs:
            end = out.index(b"\n", position)
            header = out[position:end].split()
            position = end + 1
            if len(header) == 3 and header[1] == b"blob":
                size = int(header[2])
                found[spec] = out[position : position + size]
                position += size + 1
            else:
                found[spec] = None  # "<spec> missing", or a tree
        return found

    def overlays(self) -> list[tuple[str, str]]:
        """Every (app, env) with an overlay folder on the default branch, from one tree listing."""
        if self.empty:
            return []
        listed = self.repo.git("ls-tree", "-r", "-d", "--name-only", self.head, "--", "apps").stdout.split("\n")
        pairs = set()
        for path in listed:
            parts = path.split("/")
            if len(parts) == 4 and parts[0] == "apps" and parts[2] == "overlays":
                pairs.add((parts[1], parts[3]))
        return sorted(pairs)

    def current(self, pairs: Iterable[tuple[str, str]], ref: str | None = None) -> list[Deployed]:
        """What each (app, env) deploys at `ref` (the default branch's tip by default)."""
        ref = ref or self.head
        commit = self.repo.git("rev-parse", ref).stdout.strip()
        return self.at(((app, env, commit) for app, env in pairs))

    def at(self, where: Iterable[tuple[str, str, str]]) -> list[Deployed]:
        """Each (app, env, commit) read and checked."""
        where = list(where)
        specs = []
        for app, env, commit in where:
            folder = f"{commit}:apps/{app}/overlays/{env}"
            specs += [f"{folder}/kustomization.yaml", f"{folder}/certificate.json"]
        blobs = self.read(specs)
        return [
            read_deployed(
                app,
                env,
                commit,
                blobs[f"{commit}:apps/{app}/overlays/{env}/kustomization.yaml"],
                blobs[f"{commit}:apps/{app}/overlays/{env}/certificate.json"],
            )
            for app, env, commit in where
        ]

    def changes(self, paths: Iterable[str] | None = None) -> dict[str, list[Change]]:
        """For each overlay folder, the default branch's commits that changed it, newest first (first parent:
        the merge of a PR, not the PR's own commits). One `git log` for every overlay at once."""
        if self.empty:
            return {}
        separator = "\x1e"
        fields = "%H%x1f%cI%x1f%an <%ae>%x1f%(trailers:key=Approved-by,valueonly,separator=%x1d)%x1f%s"
        args = ["log", "--first-parent", "--diff-merges=first-parent", "--name-only", "--no-renames"]
        args += [f"--format={separator}{fields}", self.head]
        # Named folders are literal pathspecs; every overlay is a filter here (a glob pathspec is slower).
        args += ["--", *paths] if paths is not None else []
        log = self.repo.git(*args).stdout
        found: dict[str, list[Change]] = {}
        for entry in log.split(separator)[1:]:
            head, _, names = entry.partition("\n")
            commit, date, author, approvers, subject = head.split("\x1f", 4)
            change = Change(
                commit, date, author, tuple(a.strip() for a in approvers.split("\x1d") if a.strip()), subject
            )
            folders = {"/".join(name.split("/")[:4]) for name in names.split("\n") if name.count("/") >= 4}
            for folder in folders:
                if folder.split("/")[2:3] == ["overlays"]:
                    found.setdefault(folder, []).append(change)
        return found

    def unmerged_branches(self) -> dict[str, list[str]]:
        """Proposal branches (deploy/<app>/<env>, rollback/<app>/<env>) with commits the default branch lacks:
        the open deploy PRs, as git sees them. By overlay folder."""
        if self.empty:
            return {}
        listed = self.repo.git(
            "branch", "--no-merged", self.head, "--format=%(refname:short)", "--list", "deploy/*", "rollback/*"
        ).stdout.split()
        found: dict[str, list[str]] = {}
        for branch in listed:
            parts = branch.split("/")
            if len(parts) == 3:
                found.setdefault(f"apps/{parts[1]}/overlays/{parts[2]}", []).append(branch)
        return found

    def base_at(self, app: str, commit: str) -> dict[str, bytes]:
        """apps/<app>/base/ as it was at `commit`: the kustomize base that the overlay deployed then."""
        listed = self.repo.git("ls-tree", "-r", "--name-only", commit, "--", f"apps/{app}/base/").stdout.split("\n")
        paths = [path for path in listed if path]
        blobs = self.read(f"{commit}:{path}" for path in paths)
        prefix = f"apps/{app}/base/"
        return {path.removeprefix(prefix): blobs[f"{commit}:{path}"] or b"" for path in paths}
