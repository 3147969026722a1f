"""Release tags, rollbacks and `mlci status` on a real history: a project repository with tags, a bare
deployment repo made from k8s/deployment-repo/, proposals written by mlci and merged by a reviewer, and an
MLflow registry (sqlite) whose aliases promote moves."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from gitops import commit_on_main, git, init_deployment_repo, merge

from mlci.certificate import SCHEMA_VERSION
from mlci.deploy_pr import DeployProposal, deploy_pr

APP = "tumor-classifier"
IMAGE = f"ghcr.io/my-org/{APP}"
PRODUCTION = f"apps/{APP}/overlays/production"


def certificate(version: str, commit: str, verdict: str = "pass", **extra: object) -> bytes:
    return json.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "verdict": verdict,
            "created_at": "2026-11-01T10:00:00+00:00",
            "gates": [
                {"gate": "quality", "status": "pass", "measured": {"accuracy": 0.9 + int(version) / 100}},
                {"gate": "champion", "status": "pass", "reason": "not worse than the champion"},
            ],
            "model": {"name": APP, "version": version, "sha256": version * 64, "trained_at": "2026-11-01T09:00:00Z"},
            "data_version": {"id": f"data{version}", "since": "2026-10-01T00:00:00+00:00"},
            "git": {"commit": commit, "dirty": False},
            "run": {"url": f"https://github.com/my-org/{APP}/actions/runs/{version}"},
            **extra,
        },
        indent=2,
    ).encode()


def digest(version: str) -> str:
    return "sha256:" + hashlib.sha256(version.encode()).hexdigest()


@dataclass
class World:
    """A project repository (commits and tags) and the deployment repo it proposes to."""

    project: Path
    deployments: Path
    commits: dict[str, str]

    def ship(self, version: str, env: str, reviewer: str | None = "Ada Reviewer", base: str = "v1") -> str:
        """Propose version (certified at the project commit of that name) to env, and merge it when reviewed."""
        proposed = DeployProposal(
            APP,
            env,
            IMAGE,
            digest(version),
            json.loads(certificate(version, self.commits[version])),
            certificate(version, self.commits[version]),
            "report",
            {"kustomization.yaml": b"resources: [rollout.yaml]\n", "rollout.yaml": f"# base {base}\n".encode()},
        )
        deploy_pr(proposed, str(self.deployments), "none", log=lambda _: None)
        return merge(self.deployments, proposed.branch, reviewer) if reviewer else ""

    def mlci(self, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlci", *args],
            cwd=cwd or self.project,
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, **env},
        )

    def show(self, ref: str, path: str) -> str:
        return git(self.deployments, "show", f"{ref}:{path}")


@pytest.fixture
def world(tmp_path: Path) -> World:
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "--quiet", "--initial-branch=main")
    (project / "pyproject.toml").write_text(f'[project]\nname = "{APP}"\nversion = "0"\n')
    commits = {}
    for version in ("1", "2", "3"):
        (project / "model.txt").write_text(f"version {version}\n")
        git(project, "add", "--all")
        git(project, "commit", "--quiet", "-m", f"Train version {version}")
        commits[version] = git(project, "rev-parse", "HEAD")
    return World(project, init_deployment_repo(tmp_path / "deployments.git"), commits)


def registry(tmp_path: Path, versions: int) -> str:
    """A sqlite MLflow registry holding versions 1..n of the app."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(APP)
    for _ in range(versions):
        client.create_model_version(APP, source=str(tmp_path), run_id=None)
    return uri


def aliases(uri: str) -> dict[str, str]:
    from mlflow import MlflowClient

    found = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(APP).aliases
    return {alias: str(version) for alias, version in found.items()}


def test_a_release_tag_promotes_what_staging_ran_and_moves_the_aliases(world, tmp_path):
    world.ship("1", "staging")
    world.ship("2", "staging")
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    uri = registry(tmp_path, 3)

    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--tracking-uri", uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Promote tumor-classifier v1.0.0 (version 1) to production" in done.stdout
    branch = f"deploy/{APP}/production"
    overlay = yaml.safe_load(world.show(branch, f"{PRODUCTION}/kustomization.yaml"))
    assert overlay["images"] == [{"name": IMAGE, "digest": digest("1")}]
    # the very certificate bytes that staging pinned, and the base as it was then
    assert world.show(branch, f"{PRODUCTION}/certificate.json").encode() == certificate("1", world.commits["1"])
    assert overlay["commonAnnotations"]["mlci.dev/certificate-sha256"] == hashlib.sha256(
        certificate("1", world.commits["1"])
    ).hexdigest()
    # champion: the promoted version; challenger: staging's newer version
    assert aliases(uri) == {"champion": "1", "challenger": "2"}


def test_a_tag_on_an_uncertified_commit_is_refused(world, tmp_path):
    world.ship("1", "staging")
    world.ship("2", "staging", reviewer=None)  # proposed, never merged: staging never ran it
    git(world.project, "tag", "v2.0.0", world.commits["2"])
    git(world.project, "tag", "v3.0.0", world.commits["3"])
    for tag, commit in (("v2.0.0", world.commits["2"]), ("v3.0.0", world.commits["3"])):
        done = world.mlci("promote", "--tag", tag, "--repo", str(world.deployments), "--forge", "none",
                          "--no-registry")  # fmt: skip
        assert done.returncode == 2
        assert f"{tag} ({commit[:12]}) is not certified" in done.stderr
    assert "production" not in git(world.deployments, "branch", "--list", "deploy/*")
    missing = world.mlci("promote", "--tag", "v9.9.9", "--repo", str(world.deployments), "--no-registry")
    assert missing.returncode == 2 and "the tag v9.9.9 does not exist" in missing.stderr
    bad = world.mlci("promote", "--tag", "latest", "--repo", str(world.deployments), "--no-registry")
    assert bad.returncode == 2 and "is not a release tag vX.Y.Z" in bad.stderr


def test_a_tag_whose_staging_certificate_was_edited_is_refused(world):
    world.ship("1", "staging")
    staging = f"apps/{APP}/overlays/staging/certificate.json"
    edited = certificate("1", world.commits["1"]).replace(b'"accuracy": 0.91', b'"accuracy": 0.99')
    commit_on_main(world.deployments, {staging: edited}, "Polish the numbers")
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 2
    assert "refusing to promote v1.0.0" in done.stderr and "changed after it was deployed" in done.stderr


def test_rollback_pins_the_previous_version_its_image_and_its_base(world):
    world.ship("1", "production", base="v1")
    world.ship("2", "production", base="v2")
    done = world.mlci("rollback", "--env", "production", "--repo", str(world.deployments), "--forge", "none")
    assert done.returncode == 0, done.stderr
    assert "Roll back tumor-classifier in production to version 1 (from version 2)" in done.stdout
    branch = f"rollback/{APP}/production"
    overlay = yaml.safe_load(world.show(branch, f"{PRODUCTION}/kustomization.yaml"))
    assert overlay["images"][0]["digest"] == digest("1")
    assert world.show(branch, f"apps/{APP}/base/rollout.yaml") == "# base v1"
    assert world.show(branch, f"{PRODUCTION}/certificate.json").encode() == certificate("1", world.commits["1"])
    changed = git(world.deployments, "diff", "--name-only", "main", branch).splitlines()
    assert changed and all(path.startswith(f"apps/{APP}/") for path in changed)
    # one PR is the rollback: merged, production runs version 1 again
    merge(world.deployments, branch, "Grace Oncall")
    assert digest("1") in world.show("main", f"{PRODUCTION}/kustomization.yaml")


def test_rollback_to_a_named_version_and_to_one_never_deployed(world):
    for version in ("1", "2", "3"):
        world.ship(version, "production")
    to_one = world.mlci("rollback", "--to", "1", "--repo", str(world.deployments), "--forge", "none")
    assert to_one.returncode == 0, to_one.stderr
    assert digest("1") in world.show(f"rollback/{APP}/production", f"{PRODUCTION}/kustomization.yaml")
    never = world.mlci("rollback", "--to", "7", "--repo", str(world.deployments), "--forge", "none")
    assert never.returncode == 2 and "never ran version 7; its history holds: 3, 2, 1" in never.stderr
    same = world.mlci("rollback", "--to", "3", "--repo", str(world.deployments), "--forge", "none")
    assert same.returncode == 2 and "already runs version 3" in same.stderr


def test_rollback_to_a_tampered_certificate_is_refused(world):
    world.ship("1", "production")
    # a hand edit while version 1 ran: the certificate no longer is the one its overlay pinned
    tampered = certificate("1", world.commits["1"], verdict="pass").replace(b'"status": "pass"', b'"status": "PASS"')
    commit_on_main(world.deployments, {f"{PRODUCTION}/certificate.json": tampered}, "Touch up the certificate")
    world.ship("2", "production")
    done = world.mlci("rollback", "--repo", str(world.deployments), "--forge", "none")
    assert done.returncode == 2
    assert "refusing to roll back tumor-classifier in production to version 1" in done.stderr
    assert "changed after it was deployed" in done.stderr
    assert "rollback/" not in git(world.deployments, "branch", "--list", "rollback/*")


def test_rollback_of_an_app_never_deployed_says_so(world):
    done = world.mlci("rollback", "--repo", str(world.deployments), "--forge", "none", "--app", "nobody")
    assert done.returncode == 2 and "nobody has never been deployed to production" in done.stderr
