"""Reading the deployment repo: what each app runs in each environment, since when, and whether the certificate
beside it still is the one that was deployed.

The repo is cloned bare (no work tree: every file is read from git's objects, many at a time through one
`git cat-file --batch`), so reading 1,000 apps costs one clone and a handful of git processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..certify.certificate import SCHEMA_VERSION
from ..errors import MlciError
from ..git import Git
from .proposal import IMAGE_BY_DIGEST, PROJECT
from .repo_writer import repo_url

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ANNOTATION = "mlci.dev/"
OBJECT_HEADER = re.compile(rb"[0-9a-f]{40,64} (?P<kind>[a-z]+) (?P<size>\d+)")


@dataclass(frozen=True)
class Deployed:
    """One app's overlay for one environment at one commit of the deployment repo, read and checked."""

    app: str
    env: str
    commit: str
    image: str | None
    digest: str | None
    version: str | None
    certificate: dict[str, Any] | None
    certificate_bytes: bytes | None
    problem: str | None
    attestation_bytes: bytes | None = None  # attestation.json beside the certificate, when the overlay has one
    model_card_bytes: bytes | None = None  # model-card.md beside the certificate, when the overlay has one
    shadow_version: str | None = None  # the previous version that runs as production's shadow (mlci promote)

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
    certificate must be the very bytes the overlay pinned by sha256, of this app and version, and a pass.
    Nothing in either file can make this raise: whatever is wrong becomes the problem."""
    image = digest = version = pinned = shadow = None
    problem = None
    try:
        overlay = yaml.load(kustomization, Loader=_Loader) if kustomization is not None else None
        if kustomization is None:
            problem = "has no kustomization.yaml beside it"
        elif not isinstance(overlay, dict):
            problem = "sits beside a kustomization.yaml that is not a mapping"
        else:
            images = overlay.get("images")
            first = images[0] if isinstance(images, list) and images and isinstance(images[0], dict) else {}
            image, digest = _text(first.get("name")), _text(first.get("digest"))
            annotations = overlay.get("commonAnnotations")
            annotations = annotations if isinstance(annotations, dict) else {}
            version = _text(annotations.get(f"{ANNOTATION}model-version"))
            pinned = _text(annotations.get(f"{ANNOTATION}certificate-sha256"))
            shadow = _text(annotations.get(f"{ANNOTATION}shadow-version"))
            if image is None or digest is None or not IMAGE_BY_DIGEST.fullmatch(f"{image}@{digest}"):
                problem = "sits beside a kustomization.yaml that pins no image by digest"
            elif version is None:
                problem = "sits beside a kustomization.yaml that names no model version"
    except Exception as error:  # noqa: BLE001 (YAML of any shape: the problem is reported, never raised)
        first_line = (str(error).splitlines() or [repr(error)])[0]
        problem = f"sits beside a malformed kustomization.yaml ({first_line})"
    parsed: dict[str, Any] | None = None
    if certificate is None:
        problem = problem or "is missing"
    else:
        try:
            loaded = json.loads(certificate)
            parsed = loaded if isinstance(loaded, dict) else None
            if parsed is None:
                problem = problem or "is not a JSON object"
        except (ValueError, RecursionError) as error:
            problem = problem or f"is malformed JSON ({error})"
    if problem is None and parsed is not None:
        problem = _certificate_problem(parsed, certificate or b"", pinned, version, app)
    return Deployed(app, env, commit, image, digest, version, parsed, certificate, problem, shadow_version=shadow)


def _text(value: Any) -> str | None:
    """A scalar of a YAML or JSON document as text (None when absent or not a scalar)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def section(document: Any, key: str) -> dict[str, Any]:
    """document[key] when both are mappings, else an empty one: certificates are read, never trusted."""
    value = document.get(key) if isinstance(document, dict) else None
    return value if isinstance(value, dict) else {}


def gate(certificate: Any, name: str) -> dict[str, Any] | None:
    """The certificate's result of the gate `name`, when it records one."""
    gates = certificate.get("gates") if isinstance(certificate, dict) else None
    for result in gates if isinstance(gates, list) else []:
        if isinstance(result, dict) and result.get("gate") == name:
            return result
    return None


def quality_metrics(certificate: Any) -> dict[str, Any]:
    """What the quality gate measured on the held-out set: each metric's number (or text)."""
    quality = gate(certificate, "quality")
    measured = quality.get("measured") if quality else None
    if not isinstance(measured, dict):
        return {}
    return {str(k): v for k, v in measured.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _certificate_problem(
    certificate: dict[str, Any], raw: bytes, pinned: str | None, version: str | None, app: str
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
    model = section(certificate, "model")
    if str(model.get("name")) != app:
        return f"certifies the model {model.get('name')!r}, not {app!r}"
    certified = _text(model.get("version"))
    if certified != version:
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

    def __init__(self, git: Git, default_branch: str) -> None:
        self.git, self.default_branch = git, default_branch
        self.head = f"refs/heads/{default_branch}"

    @classmethod
    def clone(cls, repo: str, scratch: Path, token: str | None) -> DeploymentHistory:
        url = repo_url(repo)
        git = Git(scratch / "repo", url, token, "the deployment repo")
        git.run("clone", "--quiet", "--bare", "--no-tags", "--", url, str(git.cwd), cwd=scratch)
        head = git.value("symbolic-ref", "--short", "HEAD") or "main"
        branches = git.run("for-each-ref", "--format=%(refname:short)", "refs/heads").stdout.split()
        if head not in branches and branches:
            head = "main" if "main" in branches else branches[0]
        return cls(git, head)

    @property
    def empty(self) -> bool:
        return not self.git.succeeds("rev-parse", "--verify", "--quiet", self.head)

    def read(self, specs: Iterable[str]) -> dict[str, bytes | None]:
        """Many `<commit>:<path>` blobs through one git process; None for those that do not exist."""
        specs = list(specs)
        if not specs:
            return {}
        out, position = self.git.cat_file(specs), 0
        found: dict[str, bytes | None] = {}
        for spec in specs:
            end = out.index(b"\n", position)
            header = out[position:end]
            position = end + 1
            found_object = OBJECT_HEADER.fullmatch(header)
            if found_object is None:  # "<spec> missing" or "<spec> ambiguous": nothing follows
                found[spec] = None
                continue
            size = int(found_object["size"])
            body = out[position : position + size]
            position += size + 1  # every object's contents follow its header, blob or not
            found[spec] = body if found_object["kind"] == b"blob" else None
        return found

    def overlays(self) -> list[tuple[str, str]]:
        """Every (app, env) with an overlay folder on the default branch, from one tree listing (names that no
        mlci command writes are left out)."""
        if self.empty:
            return []
        listed = self.git.run("ls-tree", "-r", "-d", "-z", "--name-only", self.head, "--", "apps").stdout
        pairs = set()
        for path in listed.split("\0"):
            parts = path.split("/")
            named = len(parts) == 4 and parts[0] == "apps" and parts[2] == "overlays"
            if named and PROJECT.fullmatch(parts[1]) and PROJECT.fullmatch(parts[3]):
                pairs.add((parts[1], parts[3]))
        return sorted(pairs)

    def current(self, pairs: Iterable[tuple[str, str]]) -> list[Deployed]:
        """What each (app, env) deploys at the default branch's tip."""
        pairs = list(pairs)
        if not pairs:
            return []
        commit = self.git.run("rev-parse", self.head).stdout.strip()
        return self.at(((app, env, commit) for app, env in pairs))

    def at(self, where: Iterable[tuple[str, str, str]]) -> list[Deployed]:
        """Each (app, env, commit) read and checked."""
        where = list(where)
        specs = []
        for app, env, commit in where:
            folder = f"{commit}:apps/{app}/overlays/{env}"
            specs += [f"{folder}/{name}" for name in ("kustomization.yaml", "certificate.json", "attestation.json",
                                                      "model-card.md")]  # fmt: skip
        blobs = self.read(specs)
        return [
            dataclasses.replace(
                read_deployed(
                    app,
                    env,
                    commit,
                    blobs[f"{commit}:apps/{app}/overlays/{env}/kustomization.yaml"],
                    blobs[f"{commit}:apps/{app}/overlays/{env}/certificate.json"],
                ),
                attestation_bytes=blobs[f"{commit}:apps/{app}/overlays/{env}/attestation.json"],
                model_card_bytes=blobs[f"{commit}:apps/{app}/overlays/{env}/model-card.md"],
            )
            for app, env, commit in where
        ]

    def changes(self, paths: Iterable[str] | None = None) -> dict[str, list[Change]]:
        """For each overlay folder, the default branch's commits that changed it, newest first (first parent:
        the merge of a PR, not the PR's own commits). One `git log` for every overlay at once."""
        if self.empty:
            return {}
        # -z: every field and file name ends in a NUL, which no name or message holds. A record starts with an
        # empty field (a file name is never empty); approvers are joined by the unit separator in their field.
        trailers = "%(trailers:key=Approved-by,valueonly,unfold,separator=%x1f)"
        args = ["--literal-pathspecs", "-c", "core.quotePath=false", "log", "-z", "--first-parent"]
        args += ["--diff-merges=first-parent", "--name-only", "--no-renames"]
        args += [f"--format=%x00%H%x00%cI%x00%an <%ae>%x00{trailers}%x00%s", self.head]
        # Named folders are literal pathspecs; every overlay is a filter here (a pathspec glob is slower).
        args += ["--", *paths] if paths is not None else []
        fields = self.git.run(*args).stdout.split("\0")
        found: dict[str, list[Change]] = {}
        at = 0
        while at + 5 < len(fields):
            commit, date, author, approvers, subject = fields[at + 1 : at + 6]
            names_end = next((i for i in range(at + 6, len(fields)) if fields[i] == ""), len(fields))
            if fields[at] != "" or not re.fullmatch(r"[0-9a-f]{40,64}", commit):
                at = next((i for i in range(at + 1, len(fields)) if fields[i] == ""), len(fields))
                continue  # not a record git wrote: on to the next record's start
            approved = tuple(a.strip() for a in approvers.split("\x1f") if a.strip())
            change = Change(commit, date, author, approved, subject)
            names = [name.lstrip("\n") for name in fields[at + 6 : names_end]]
            folders = {"/".join(name.split("/")[:4]) for name in names if name.count("/") >= 4}
            for folder in folders:
                if folder.split("/")[2:3] == ["overlays"]:
                    found.setdefault(folder, []).append(change)
            at = names_end
        return found

    def unmerged_branches(self) -> dict[str, list[str]]:
        """Proposal branches (deploy/<app>/<env>, rollback/<app>/<env>) with commits the default branch lacks:
        the open deploy PRs, as git sees them. By overlay folder."""
        if self.empty:
            return {}
        listed = self.git.run(
            "branch", "--no-merged", self.head, "--format=%(refname:short)", "--list", "deploy/*", "rollback/*"
        ).stdout.split()
        found: dict[str, list[str]] = {}
        for branch in listed:
            parts = branch.split("/")
            if len(parts) == 3:
                found.setdefault(f"apps/{parts[1]}/overlays/{parts[2]}", []).append(branch)
        return found

    def base_at(self, app: str, env: str, commit: str) -> dict[str, bytes]:
        """apps/<app>/bases/<env>/ as it was at `commit`: the kustomize base that env's overlay deployed then (in a
        repo written before each environment had its own base, the shared apps/<app>/base/)."""
        for prefix in (f"apps/{app}/bases/{env}/", f"apps/{app}/base/"):
            listed = self.git.run("--literal-pathspecs", "ls-tree", "-r", "-z", "--name-only", commit, "--",
                                  prefix).stdout  # fmt: skip
            paths = [path for path in listed.split("\0") if path]
            if paths:
                break
        blobs = self.read(f"{commit}:{path}" for path in paths)
        base = {}
        for path in paths:
            data = blobs[f"{commit}:{path}"]
            if data is None or "\n" in path:
                raise MlciError(f"{path} at {commit[:12]} of the deployment repo cannot be read back as a file")
            base[path.removeprefix(prefix)] = data
        return base
