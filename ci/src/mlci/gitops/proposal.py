"""What a deploy PR proposes: one project's certified model, by image digest, for one environment.

The proposal owns only `apps/<project>/` of the deployment repo: one base per environment (the project's deploy/,
in `bases/<env>/`) and one overlay per environment that pins the serving image by digest, with the certificate
and its attestation beside it. Every value it
writes into the overlay is checked here first.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..certify import certificate as certificates
from ..errors import MlciError
from .github import fit_body

ENVIRONMENTS = ("staging", "production")
IMAGE_BY_DIGEST = re.compile(r"(?P<name>[a-z0-9][a-z0-9._/:-]*[a-z0-9])@(?P<digest>sha256:[0-9a-f]{64})")
PROJECT = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")
COMMIT = re.compile(r"[0-9a-f]{40,64}|unknown")


@dataclass(frozen=True)
class Shadow:
    """The previous stable version, kept running beside production on a mirror of its traffic (deploy/'s
    deployment-shadow.yaml): its image by digest and its model version."""

    image_name: str
    digest: str
    version: str


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
    # The signed attestation of the image and certificate (attestation.json); deploy_pr verifies it against the
    # deployment repo's trust.yaml before it proposes anything.
    attestation: bytes | None = field(default=None, repr=False)
    # The model card (model-card.md beside the certificate), when certify wrote one: it travels with the PR.
    model_card: bytes | None = field(default=None, repr=False)
    # Production only: the version production ran before, as the shadow (promote sets it; a rollback drops it).
    shadow: Shadow | None = None

    def __post_init__(self) -> None:
        """Every value the overlay carries is checked here: they are written into YAML, and promote and rollback
        take them from the deployment repo, where anyone with push access could have put anything."""
        checks = [
            ("project", self.project, PROJECT),
            ("environment", self.env, PROJECT),
            ("image", f"{self.image_name}@{self.digest}", IMAGE_BY_DIGEST),
            ("model version", self.version, VERSION),
            ("commit", self._commit, COMMIT),
        ]
        if self.shadow is not None:
            checks += [
                ("shadow image", f"{self.shadow.image_name}@{self.shadow.digest}", IMAGE_BY_DIGEST),
                ("shadow model version", self.shadow.version, VERSION),
            ]
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
            f"  - ../../bases/{self.env}\n"
            "images:\n"
            f"  - name: {self.image_name}\n"
            f"    digest: {self.digest}\n" + self._shadow_images() + "commonAnnotations:\n"
            f'  mlci.dev/commit: "{commit}"\n'
            f'  mlci.dev/model-version: "{self.version}"\n'
            f'  mlci.dev/certificate-sha256: "{certificate_sha256}"\n' + self._shadow_patches()
        )

    def _shadow_images(self) -> str:
        """The shadow Deployment's placeholder image (`<image>-shadow`), pinned by digest in every environment: to
        the previous version's where a shadow runs, else to this one's (it then runs no replica), so that nothing
        here ever names an image by tag."""
        name, digest = (self.shadow.image_name, self.shadow.digest) if self.shadow else (self.image_name, self.digest)
        return f"  - name: {self.image_name}-shadow\n    newName: {name}\n    digest: {digest}\n"

    def _shadow_patches(self) -> str:
        """One shadow replica, and the HTTPRoute's RequestMirror filter that sends it a copy of every request."""
        if self.shadow is None:
            return ""
        return (
            f'  mlci.dev/shadow-version: "{self.shadow.version}"\n'
            "replicas:\n"
            f"  - name: {self.project}-shadow\n"
            "    count: 1\n"
            "patches:\n"
            "  - target: {kind: HTTPRoute, name: " + self.project + "}\n"
            "    patch: |-\n"
            "      - op: add\n"
            "        path: /spec/rules/0/filters\n"
            "        value:\n"
            "          - type: RequestMirror\n"
            "            requestMirror:\n"
            f"              backendRef: {{name: {self.project}-shadow, port: 80}}\n"
        )

    def files(self) -> dict[str, bytes]:
        """Every file the proposal owns, by path in the deployment repo."""
        app = f"apps/{self.project}"
        # Each environment its own base: promoting or rolling back production never changes a byte of staging.
        owned = {f"{app}/bases/{self.env}/{name}": data for name, data in self.base.items()}
        owned[f"{app}/overlays/{self.env}/kustomization.yaml"] = self.overlay().encode()
        owned[f"{app}/overlays/{self.env}/certificate.json"] = self.certificate_bytes
        if self.attestation is not None:
            owned[f"{app}/overlays/{self.env}/attestation.json"] = self.attestation
        if self.model_card is not None:
            owned[f"{app}/overlays/{self.env}/model-card.md"] = self.model_card
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
    env: str,
    image: str,
    certificate_path: Path,
    model: Path,
    deploy_dir: Path,
    report_path: Path | None,
    attestation_path: Path | None = None,
) -> DeployProposal:
    """Check everything that can be checked before touching any repository; the proposal, or why not. The
    attestation (default: attestation.json beside the certificate) is required; deploy_pr verifies it."""
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
    card_path = certificate_path.with_name("model-card.md")
    attestation_path = attestation_path or certificate_path.with_name("attestation.json")
    if not attestation_path.is_file():
        raise MlciError(
            f"no attestation: {attestation_path} is missing, so the image is unsigned "
            "(sign it with `mlci attest` after building it, or pass --attestation FILE)"
        )
    return DeployProposal(
        project,
        env,
        pinned["name"],
        pinned["digest"],
        certificate,
        certificate_bytes,
        report,
        base,
        attestation=attestation_path.read_bytes(),
        model_card=card_path.read_bytes() if card_path.is_file() else None,
    )
