"""`mlci deploy-pr`: propose a certified, attested model to the deployment repo as a pull request.

The attestation is verified against the deployment repo's trust.yaml before anything is pushed.
The proposal (`proposal.py`) is pushed on the branch `deploy/<project>/<env>` (`repo_writer.py`); with a forge,
its pull request is opened, or the open one updated.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MlciError
from ..trust import attestation, policy
from .github import GitHub, forge_client
from .proposal import DeployProposal
from .repo_writer import DeploymentRepo, Pushed, repo_url


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


def check_attestation(proposed: DeployProposal, trust_file: Path) -> attestation.Verified | None:
    """Verify the proposal's attestation against the deployment repo's trust.yaml: who signed it, or raise.

    `mlci deploy-pr` always brings one. A promotion or rollback carries what the overlay it copies held: once the
    repo has a trust.yaml, a proposal without an attestation is refused; a repo without one trusts no attestation.
    """
    if proposed.attestation is None:
        if trust_file.is_file():
            raise MlciError(
                f"refusing {proposed.title}: no attestation, the image {proposed.image_name}@{proposed.digest} "
                "is unsigned"
            )
        return None
    trusted = policy.load(trust_file)
    envelope = attestation.decode(proposed.attestation, "the attestation")
    try:
        return attestation.verify(envelope, trusted, proposed.digest, proposed.certificate_bytes)
    except attestation.AttestationError as refusal:
        raise MlciError(f"refusing {proposed.title}: {refusal}") from None


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
        verified = check_attestation(proposed, clone.path / policy.TRUST_FILE)
        if verified is not None:
            log(f"{proposed.command}: {proposed.image_name}@{proposed.digest}: {verified}")
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
