"""`mlci promote` and `mlci rollback`: production changes as pull requests on the deployment repo.

promote: a release tag's commit must have been certified and deployed to staging; its certificate, read from
the staging overlay's history, must still be the bytes that overlay pinned and record a pass. The production PR
then pins the very image digest that ran in staging.

The MLflow aliases follow what the deployment repo's default branch runs, not what a PR proposes:
`sync_aliases` points `champion` at production's version and `challenger` at staging's when it is another one.
The deployment repo runs it on every push to its default branch (`mlci sync-aliases`), and promote and rollback
run it first, so a rejected production PR leaves `champion` where it was.

rollback: the overlay's history on the default branch lists every version an environment ran; the PR pins the
previous one (or the one asked for), its base and image as they were, once its certificate verifies.

The shadow: promote keeps the version production ran before running beside it, on a mirror of its traffic
(the overlay pins its image as `<image>-shadow` and adds the HTTPRoute's RequestMirror filter). A rollback drops
it: production then runs that version itself.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MlciError
from ..git import Git
from .deploy_pr import Outcome, deploy_pr
from .github import forge_client
from .proposal import ENVIRONMENTS, DeployProposal, Shadow
from .repo_reader import Change, Deployed, DeploymentHistory, section

RELEASE_TAG = re.compile(r"v\d+\.\d+\.\d+")


def tagged_commit(tag: str, project: Path) -> str:
    """The commit a release tag points at, in the project's repository."""
    if not RELEASE_TAG.fullmatch(tag):
        raise MlciError(f"--tag {tag!r} is not a release tag vX.Y.Z")
    commit = Git(project).value("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    if not commit:
        raise MlciError(f"the tag {tag} does not exist in the repository at {project}")
    return commit


def certificate_table(certificate: dict[str, Any]) -> str:
    """The certificate's gates as a Markdown table, for a PR that moves an already certified model."""
    lines = [
        f"Certificate of commit `{section(certificate, 'git').get('commit')}`, created {certificate.get('created_at')}:"
        f" **{certificate.get('verdict')}**.\n",
        "| gate | status | reason |",
        "| --- | --- | --- |",
    ]
    gates = certificate.get("gates")
    for gate in gates if isinstance(gates, list) else []:
        if not isinstance(gate, dict):
            continue
        reason = str(gate.get("reason", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {gate.get('gate')} | {gate.get('status')} | {reason} |")
    run = section(certificate, "run").get("url")
    if run:
        lines.append(f"\nLogs of the certifying run: {run}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Staged:
    """A release tag's certified model as staging ran it, the deployment repo's commit that put it there, and
    every version staging ran, newest first."""

    release: Deployed
    change: Change
    ran: list[Deployed]


def staged_release(history: DeploymentHistory, app: str, tag: str, commit: str, repo: str) -> Staged:
    """The newest staging deployment of the certificate of `commit` (the tag's), refused unless it verifies and
    was made from a clean work tree: only a certified model that ran in staging goes on to production."""
    staging_path = f"apps/{app}/overlays/staging"
    changes = history.changes([staging_path]).get(staging_path, [])
    deployed = history.at((app, "staging", change.commit) for change in changes)
    ran = zip(deployed, changes, strict=True)
    matching = [(d, change) for d, change in ran if section(d.certificate, "git").get("commit") == commit]
    if not matching:
        raise MlciError(
            f"{tag} ({commit[:12]}) is not certified: no certificate of that commit was ever deployed to "
            f"staging for {app} in {repo}, and only a certified model that ran in staging can be promoted"
        )
    source, change = matching[0]
    source.refuse_unless_verified(f"refusing to promote {tag}")
    if section(source.certificate, "git").get("dirty"):
        raise MlciError(f"refusing to promote {tag}: its certificate was made from a work tree with changes")
    return Staged(source, change, deployed)


@dataclass(frozen=True)
class Promotion:
    """What promote did: the PR, the model moved, and the aliases set."""

    outcome: Outcome
    proposal: DeployProposal
    aliases: dict[str, str]  # what the aliases name after reconciling with what production runs now


def promote(
    tag: str,
    env: str,
    repo: str,
    forge: str,
    app: str,
    project: Path,
    tracking_uri: str | None,
    log: Callable[[str], None] = print,
) -> Promotion:
    """Refuse a tag whose commit has no verified certificate in staging's history; else propose it to `env`
    and move the registry aliases (tracking_uri None: no registry)."""
    if env not in ENVIRONMENTS or env == "staging":
        raise MlciError(f"--env {env!r}: promote moves a model from staging to production")
    commit = tagged_commit(tag, project)
    with tempfile.TemporaryDirectory(prefix="mlci-promote-") as scratch:
        history = DeploymentHistory.clone(repo, Path(scratch), forge_client(forge, repo)[1])
        staged = staged_release(history, app, tag, commit, repo)
        source, deployed = staged.release, staged.ran
        base = history.base_at(app, "staging", source.commit)  # what staging ran becomes production's base
        staging_now = deployed[0] if deployed else None
        # The challenger: what staging runs now, when it is another version and its certificate holds.
        challenger = None
        if staging_now is not None and staging_now.verified and staging_now.version != source.version:
            challenger = staging_now.version
        # The shadow: what production runs now, when it is another version whose certificate holds; it keeps
        # running on a mirror of production's traffic (deploy/deployment-shadow.yaml).
        running = history.current([(app, env)])[0]
        shadow = None
        if running.verified and running.image and running.digest and running.version not in (None, source.version):
            shadow = Shadow(running.image, running.digest, str(running.version))
        aliases: dict[str, str] = {}
        if tracking_uri:  # the registry must know both versions before anything is proposed
            registry_versions(tracking_uri, app, [v for v in (source.version, challenger) if v is not None])
            aliases = sync_aliases(history, tracking_uri, app)  # catch up with merges since the last run
    report = (
        ""
        if shadow is None
        else (
            f"Version {shadow.version}, which {env} runs now, stays as its shadow: it answers a mirror of {env}'s "
            f"requests and feedback, and `mlci rollback --env {env}` returns {env} to it in one PR.\n\n"
        )
    )
    headline = f"Promote {app} {tag} (version {source.version}) to {env}"
    proposed = moved(source, env, base, report, headline, "promote", shadow=shadow)
    outcome = deploy_pr(proposed, repo, forge, log=log)
    return Promotion(outcome, proposed, aliases)


def sync_aliases(history: DeploymentHistory, tracking_uri: str, app: str) -> dict[str, str]:
    """Point `champion` at the version the default branch's production overlay runs (when its certificate verifies)
    and `challenger` at staging's when it is another verified version, else drop it; what the aliases now name."""
    current = {d.env: d for d in history.current([p for p in history.overlays() if p[0] == app])}
    production, staging = current.get("production"), current.get("staging")
    if production is None or not production.verified or production.version is None:
        return {}  # production runs nothing certified: the aliases stay as they are
    challenger = None
    if staging is not None and staging.verified and staging.version not in (None, production.version):
        challenger = str(staging.version)
    registry_versions(tracking_uri, app, [v for v in (str(production.version), challenger) if v is not None])
    return move_aliases(tracking_uri, app, str(production.version), challenger)


def registry_versions(tracking_uri: str, name: str, versions: list[str]) -> None:
    """Refuse unless the MLflow registry at tracking_uri holds each version of the registered model `name`."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for version in versions:
        try:
            client.get_model_version(name, version)
        except MlflowException as error:
            raise MlciError(f"the MLflow registry at {tracking_uri} has no {name} version {version}: "
                            f"{error.message}") from None  # fmt: skip


def move_aliases(tracking_uri: str, name: str, champion: str, challenger: str | None) -> dict[str, str]:
    """Point `champion` at the promoted version and `challenger` at staging's other one (or drop it)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:  # registry_versions checked both versions before the PR opened
        client.set_registered_model_alias(name, "champion", champion)
        moved = {"champion": champion}
        if challenger is not None:
            client.set_registered_model_alias(name, "challenger", challenger)
            moved["challenger"] = challenger
        else:
            with contextlib.suppress(MlflowException):  # there was none
                client.delete_registered_model_alias(name, "challenger")
    except MlflowException as error:
        raise MlciError(f"the MLflow registry at {tracking_uri} refused: {error.message}") from None
    return moved


def rollback(
    env: str, to: str | None, repo: str, forge: str, app: str, log: Callable[[str], None] = print
) -> tuple[Outcome, DeployProposal, Deployed, Deployed]:
    """A PR that returns `env` to the previous version it ran (or `to`), once that version's certificate verifies;
    the outcome, the proposal, what runs now and what it returns to."""
    if env not in ENVIRONMENTS:
        raise MlciError(f"--env {env!r} is not one of {', '.join(ENVIRONMENTS)}")
    with tempfile.TemporaryDirectory(prefix="mlci-rollback-") as scratch:
        history = DeploymentHistory.clone(repo, Path(scratch), forge_client(forge, repo)[1])
        path = f"apps/{app}/overlays/{env}"
        changes = history.changes([path]).get(path, [])
        if not changes:
            raise MlciError(f"{app} has never been deployed to {env} in {repo}: there is nothing to roll back")
        # Overlays deleted or broken along the way name no version: they are no place to return to.
        deployed = [d for d in history.at((app, env, change.commit) for change in changes) if d.version is not None]
        if not deployed:
            raise MlciError(f"no overlay of {app} in {env} in {repo}'s history names a model version")
        current = deployed[0]
        if to:
            if to == current.version:
                raise MlciError(f"{app} already runs version {to} in {env}")
            candidates = [d for d in deployed if d.version == to]
        else:
            candidates = [d for d in deployed if d.version != current.version]
        if not candidates:
            seen = ", ".join(dict.fromkeys(str(d.version) for d in deployed))
            wanted = f"version {to}" if to else "a version before the current one"
            raise MlciError(f"{env} of {app} never ran {wanted}; its history holds: {seen}")
        target = candidates[0]
        target.refuse_unless_verified(f"refusing to roll back {app} in {env} to version {target.version}")
        base = history.base_at(app, env, target.commit)
    report = (
        f"{env} runs version {current.version} now; this returns it to version {target.version}, "
        f"as deployed by {target.commit[:12]} of the deployment repo.\n\n"
    )
    headline = f"Roll back {app} in {env} to version {target.version}"
    proposed = moved(target, env, base, report, headline, "rollback", kind="rollback")
    return deploy_pr(proposed, repo, forge, log=log), proposed, current, target


def moved(
    deployed: Deployed,
    env: str,
    base: dict[str, bytes],
    report: str,
    headline: str,
    command: str,
    kind: str = "deploy",
    shadow: Shadow | None = None,
) -> DeployProposal:
    """The proposal that puts what `deployed` ran (image, certificate, base) in `env`, with `shadow` beside it
    (none: no shadow runs); the PR body is `report` and the certificate's gates."""
    if deployed.image is None or deployed.digest is None or deployed.certificate is None:
        raise MlciError(f"{deployed.overlay} at {deployed.commit[:12]} pins nothing that could be deployed again")
    return DeployProposal(
        deployed.app,
        env,
        deployed.image,
        deployed.digest,
        deployed.certificate,
        deployed.certificate_bytes or b"",
        report + certificate_table(deployed.certificate),
        base,
        headline=headline,
        kind=kind,
        command=command,
        attestation=deployed.attestation_bytes,
        model_card=deployed.model_card_bytes,
        shadow=shadow,
    )
