"""Release tags, rollbacks and `mlci status` on a real history: a project repository with tags, a bare
deployment repo made from k8s/deployment-repo/, proposals written by mlci and merged by a reviewer, and an
MLflow registry (sqlite) whose aliases promote moves."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from gitops import commit_on_main, git, init_deployment_repo, merge

from mlci.certify.certificate import SCHEMA_VERSION
from mlci.gitops.deploy_pr import deploy_pr
from mlci.gitops.proposal import DeployProposal
from mlci.trust import attestation, keys

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
                {
                    "gate": "quality",
                    "status": "pass",
                    "measured": {"accuracy": 0.9 + int(version) / 100},
                    "threshold": {"accuracy": ">= 0.9"},
                },
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
    key: Path  # the release key, listed in the deployment repo's trust.yaml

    def attest(self, version: str, certified: bytes) -> bytes:
        document = json.loads(certified)
        signer = keys.load_signer(self.key)
        return attestation.encode(attestation.attest(IMAGE, digest(version), document, version * 64, signer))

    def ship(
        self, version: str, env: str, reviewer: str | None = "Ada Reviewer", base: str = "v1", **extra: object
    ) -> str:
        """Propose version (certified at the project commit of that name, `extra` in its certificate) to env, and
        merge it when reviewed."""
        certified = certificate(version, self.commits[version], **extra)
        proposed = DeployProposal(
            APP,
            env,
            IMAGE,
            digest(version),
            json.loads(certified),
            certified,
            "report",
            {"kustomization.yaml": b"resources: [rollout.yaml]\n", "rollout.yaml": f"# base {base}\n".encode()},
            attestation=self.attest(version, certified),
            model_card=f"# Model card of version {version}\n".encode(),
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
            env={**os.environ, **env},
        )

    def show(self, ref: str, path: str) -> str:
        return git(self.deployments, "show", f"{ref}:{path}")


@pytest.fixture(scope="session")
def release_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("keys") / "release.key"
    keys.generate(key)
    return key


@pytest.fixture
def world(tmp_path: Path, release_key: Path) -> World:
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
    trusted = {"release-key": release_key.with_name("release.key.pub").read_text()}
    return World(project, init_deployment_repo(tmp_path / "deployments.git", trusted), commits, release_key)


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
    assert overlay["images"][0] == {"name": IMAGE, "digest": digest("1")}
    # the very certificate bytes that staging pinned, and the base as it was then
    assert world.show(branch, f"{PRODUCTION}/certificate.json").encode() == certificate("1", world.commits["1"])
    assert world.show(branch, f"{PRODUCTION}/model-card.md") == "# Model card of version 1"  # and its card
    assert (
        overlay["commonAnnotations"]["mlci.dev/certificate-sha256"]
        == hashlib.sha256(certificate("1", world.commits["1"])).hexdigest()
    )
    # The aliases follow what production runs: nothing yet, as the PR is not merged.
    assert aliases(uri) == {}
    merge(world.deployments, branch, "Grace Approver")
    synced = world.mlci("sync-aliases", "--repo", str(world.deployments), "--tracking-uri", uri)
    assert synced.returncode == 0, synced.stderr
    # champion: the version production runs; challenger: staging's newer version
    assert aliases(uri) == {"champion": "1", "challenger": "2"}
    assert f"sync-aliases: {APP}: champion -> version 1, challenger -> version 2" in synced.stdout


def test_a_closed_production_pr_leaves_champion_where_it_was(world, tmp_path):
    world.ship("1", "staging")
    world.ship("1", "production")
    world.ship("2", "staging")
    uri = registry(tmp_path, 3)
    git(world.project, "tag", "v2.0.0", world.commits["2"])
    done = world.mlci("promote", "--tag", "v2.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--tracking-uri", uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert aliases(uri) == {"champion": "1", "challenger": "2"}  # reconciled with what production runs now
    git(world.deployments, "branch", "-D", f"deploy/{APP}/production")  # the reviewer closes the PR unmerged
    world.mlci("sync-aliases", "--repo", str(world.deployments), "--tracking-uri", uri).check_returncode()
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


def test_an_image_digest_edited_alone_is_refused_by_promote_and_reported_by_status(world):
    world.ship("1", "staging")
    staging = f"apps/{APP}/overlays/staging/kustomization.yaml"
    overlay = world.show("main", staging).replace(digest("1"), digest("9"))
    commit_on_main(world.deployments, {staging: (overlay + "\n").encode()}, "Swap the image")
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 2 and f"the image digest {digest('9')} does not match the attestation" in done.stderr
    shown = world.mlci("status", "--repo", str(world.deployments), "--format", "json")
    (row,) = json.loads(shown.stdout)["apps"][0]["environments"]
    assert row["attestation"].startswith("not verified: the image digest"), row["attestation"]


def test_a_certificate_rewritten_with_its_pin_is_refused_by_the_attestation(world):
    world.ship("1", "staging")
    folder = f"apps/{APP}/overlays/staging"
    original = certificate("1", world.commits["1"])
    forged = original.replace(b'"accuracy": 0.91', b'"accuracy": 0.99')
    pin = world.show("main", f"{folder}/kustomization.yaml").replace(
        hashlib.sha256(original).hexdigest(), hashlib.sha256(forged).hexdigest()
    )
    edits = {f"{folder}/certificate.json": forged, f"{folder}/kustomization.yaml": (pin + "\n").encode()}
    commit_on_main(world.deployments, edits, "Better numbers")
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 2 and "the certificate does not match the attestation's predicate" in done.stderr
    shown = json.loads(world.mlci("status", "--repo", str(world.deployments), "--format", "json").stdout)
    (row,) = shown["apps"][0]["environments"]
    assert row["certificate"] == "verified"  # the pin alone is fooled
    assert "does not match the attestation's predicate" in row["attestation"]


def test_status_says_who_signed_each_row_or_that_it_is_unsigned(world):
    world.ship("1", "staging")
    world.ship("2", "production")
    production = f"apps/{APP}/overlays/production/attestation.json"
    commit_on_main(world.deployments, {production: None}, "Drop the attestation")
    done = world.mlci("status", "--repo", str(world.deployments))
    assert done.returncode == 0, done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith(APP)}
    assert "verified (signed by release-key)" in rows["staging"] and "UNSIGNED" in rows["production"]
    assert f"{APP}/production: attestation unsigned" in done.stdout


def test_a_promotion_keeps_what_production_ran_as_its_shadow_and_a_rollback_returns_to_it(world):
    world.ship("1", "staging")
    world.ship("1", "production")
    world.ship("2", "staging")
    git(world.project, "tag", "v2.0.0", world.commits["2"])
    done = world.mlci("promote", "--tag", "v2.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 0, done.stderr
    branch = f"deploy/{APP}/production"
    overlay = yaml.safe_load(world.show(branch, f"{PRODUCTION}/kustomization.yaml"))
    # production's image, then the shadow's placeholder set to what production ran until now
    assert overlay["images"] == [
        {"name": IMAGE, "digest": digest("2")},
        {"name": f"{IMAGE}-shadow", "newName": IMAGE, "digest": digest("1")},
    ]
    assert overlay["commonAnnotations"]["mlci.dev/shadow-version"] == "1"
    assert overlay["replicas"] == [{"name": f"{APP}-shadow", "count": 1}]
    [patch] = overlay["patches"]
    assert patch["target"] == {"kind": "HTTPRoute", "name": APP} and "RequestMirror" in patch["patch"]
    merge(world.deployments, branch, "Grace Approver")
    shown = world.mlci("status", "--repo", str(world.deployments), "--format", "json")
    rows = {r["env"]: r for r in json.loads(shown.stdout)["apps"][0]["environments"]}
    assert rows["production"]["version"] == "2" and rows["production"]["shadow_version"] == "1"
    assert rows["staging"]["shadow_version"] is None and rows["production"]["live_quality"] is None
    # the rollback is one PR: production runs the shadow's version again, and no shadow is left beside it
    done = world.mlci("rollback", "--env", "production", "--repo", str(world.deployments), "--forge", "none")
    assert done.returncode == 0, done.stderr
    back = yaml.safe_load(world.show(f"rollback/{APP}/production", f"{PRODUCTION}/kustomization.yaml"))
    assert back["images"] == [
        {"name": IMAGE, "digest": digest("1")},
        {"name": f"{IMAGE}-shadow", "newName": IMAGE, "digest": digest("1")},  # pinned, and no replica
    ]
    assert "replicas" not in back and "patches" not in back
    assert "mlci.dev/shadow-version" not in back["commonAnnotations"]


def test_a_first_promotion_has_no_shadow_and_status_names_an_unreachable_prometheus(world):
    world.ship("1", "staging")
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 0, done.stderr
    overlay = yaml.safe_load(world.show(f"deploy/{APP}/production", f"{PRODUCTION}/kustomization.yaml"))
    assert overlay["images"][1]["digest"] == overlay["images"][0]["digest"] and "replicas" not in overlay
    refused = world.mlci("status", "--repo", str(world.deployments), "--prometheus", "http://127.0.0.1:9")
    assert refused.returncode != 0
    assert "Prometheus at http://127.0.0.1:9 did not answer its query API" in refused.stderr, refused.stderr


def test_promoting_and_rolling_back_production_never_changes_a_byte_of_staging(world):
    world.ship("1", "staging", base="v1")
    git(world.project, "tag", "v1.0.0", world.commits["1"])

    def staging() -> list[str]:  # git's tree hashes: every byte that staging's overlay renders from
        paths = (f"main:apps/{APP}/overlays/staging", f"main:apps/{APP}/bases/staging")
        return [git(world.deployments, "rev-parse", path) for path in paths]

    before = staging()
    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 0, done.stderr
    merge(world.deployments, f"deploy/{APP}/production", "Grace Approver")
    assert world.show("main", f"apps/{APP}/bases/production/rollout.yaml") == "# base v1"
    world.ship("2", "production", base="v2")
    assert world.show("main", f"apps/{APP}/bases/production/rollout.yaml") == "# base v2"
    done = world.mlci("rollback", "--env", "production", "--repo", str(world.deployments), "--forge", "none")
    assert done.returncode == 0, done.stderr
    merge(world.deployments, f"rollback/{APP}/production", "Grace Approver")
    assert world.show("main", f"apps/{APP}/bases/production/rollout.yaml") == "# base v1"
    assert staging() == before
    assert world.show("main", f"apps/{APP}/bases/staging/rollout.yaml") == "# base v1"


def test_rollback_pins_the_previous_version_its_image_and_its_base(world):
    world.ship("1", "production", base="v1")
    world.ship("2", "production", base="v2")
    done = world.mlci("rollback", "--env", "production", "--repo", str(world.deployments), "--forge", "none")
    assert done.returncode == 0, done.stderr
    assert "Roll back tumor-classifier in production to version 1 (from version 2)" in done.stdout
    branch = f"rollback/{APP}/production"
    overlay = yaml.safe_load(world.show(branch, f"{PRODUCTION}/kustomization.yaml"))
    assert overlay["images"][0]["digest"] == digest("1")
    assert world.show(branch, f"apps/{APP}/bases/production/rollout.yaml") == "# base v1"
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


def staged_world(world: World) -> None:
    """Production runs 1 (approved by Ada), staging 2, a proposal of 3 is open, and three apps are broken."""
    world.ship("1", "staging")
    world.ship("1", "production")
    world.ship("2", "staging")
    world.ship("3", "staging", reviewer=None)
    pinned = (
        "images:\n  - name: ghcr.io/my-org/x\n    digest: " + digest("9") + "\n"
        'commonAnnotations:\n  mlci.dev/model-version: "9"\n  mlci.dev/certificate-sha256: "' + "0" * 64 + '"\n'
    ).encode()
    commit_on_main(
        world.deployments,
        {
            "apps/no-certificate/overlays/staging/kustomization.yaml": pinned,
            "apps/garbled-certificate/overlays/staging/kustomization.yaml": pinned,
            "apps/garbled-certificate/overlays/staging/certificate.json": b'{"schema_version": 1, "verd',
            "apps/garbled-overlay/overlays/production/kustomization.yaml": b"images: [\n  - {name: x\n",
            "apps/garbled-overlay/overlays/production/certificate.json": b"{}",
        },
        "Hand-made overlays",
    )


def test_status_answers_for_every_app_and_reports_broken_certificates(world):
    staged_world(world)
    done = world.mlci("status", "--repo", str(world.deployments), "--format", "json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["summary"]["apps"] == 4 and status["summary"]["live"] == 1
    assert status["summary"]["not_verified"] == 3 and status["summary"]["open_proposals"] == 1
    apps = {entry["app"]: entry for entry in status["apps"]}
    rows = {row["env"]: row for row in apps[APP]["environments"]}
    production, staging = rows["production"], rows["staging"]
    assert production["version"] == "1" and production["certificate"] == "verified"
    assert production["image"] == f"{IMAGE}@{digest('1')}" and production["commit"] == world.commits["1"]
    assert production["last_change"]["approved_by"] == ["Ada Reviewer <ada.reviewer@example.com>"]
    assert production["data_version"] == "data1" and production["data_age_days"] > 0
    assert production["logs"] == f"https://github.com/my-org/{APP}/actions/runs/1"
    assert staging["version"] == "2" and staging["open_proposals"] == [f"deploy/{APP}/staging"]
    assert apps[APP]["champion"] == {"env": "production", "version": "1", "metrics": {"accuracy": 0.91}}
    assert apps[APP]["challenger"] == {"env": "staging", "version": "2", "metrics": {"accuracy": 0.92}}
    assert apps[APP]["challenger_evaluated"]["status"] == "pass"
    problems = {
        entry["app"]: entry["environments"][0]["certificate"] for entry in status["apps"] if entry["app"] != APP
    }
    assert problems["no-certificate"] == "not verified: certificate.json is missing"
    assert problems["garbled-certificate"].startswith("not verified: certificate.json is malformed JSON")
    assert "malformed kustomization.yaml" in problems["garbled-overlay"]

    table = world.mlci("status", "--repo", str(world.deployments))
    assert table.returncode == 0, table.stderr
    assert "1 of 4 apps live" in table.stdout and table.stdout.count("NOT VERIFIED") == 3
    assert "not verified: garbled-certificate/staging" in table.stdout
    markdown = world.mlci("status", "--repo", str(world.deployments), "--format", "markdown")
    assert "| app | env | version |" in markdown.stdout and "## Not verified" in markdown.stdout


def test_status_of_an_empty_deployment_repo_and_bad_options(world, tmp_path):
    done = world.mlci("status", "--repo", str(world.deployments))
    assert done.returncode == 0 and "0 of 0 apps live" in done.stdout
    bad = world.mlci("status", "--repo", str(world.deployments), "--format", "yaml")
    assert (
        bad.returncode == 2
        and "Invalid value for '--format': 'yaml' is not one of 'table', 'json', 'markdown'" in bad.stderr
    )
    nowhere = world.mlci("status", "--repo", str(tmp_path / "missing.git"))
    assert nowhere.returncode == 2 and "git clone failed for the deployment repo" in nowhere.stderr


def test_status_lists_open_pull_requests_from_github(world, tmp_path):
    from github_replay import Reply, recorded, replay

    world.ship("1", "production")
    server = tmp_path / "github"
    (server / "octocat").mkdir(parents=True)
    (server / "octocat" / "Hello-World.git").symlink_to(world.deployments)
    pulls = recorded("pulls", head={"ref": f"rollback/{APP}/production"})
    route = ("GET", "/repos/octocat/Hello-World/pulls?state=open&per_page=100")
    with replay({route: Reply(200, pulls)}) as (api, received):
        done = world.mlci(
            "status", "--repo", "octocat/Hello-World", "--forge", "github", "--format", "json",
            GITHUB_API_URL=api, GITHUB_SERVER_URL=server.as_uri(), GITHUB_TOKEN="ghs_recordedStatusToken",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [(r.method, r.path) for r in received] == [route]
    row = json.loads(done.stdout)["apps"][0]["environments"][0]
    assert row["open_proposals"] == [f"#1347 rollback/{APP}/production"]
    assert "ghs_recordedStatusToken" not in done.stdout + done.stderr


def pinned_overlay(app: str, env: str, cert: bytes, version: str = "1") -> bytes:
    """An overlay as deploy-pr writes it, pinning `cert` by sha256."""
    proposal = DeployProposal(app, env, f"ghcr.io/my-org/{app}", digest(version),
                              {"model": {"version": version}, "git": {"commit": "0" * 40}}, cert, "", {})  # fmt: skip
    return proposal.overlay().encode()


def test_status_survives_whatever_the_deployment_repo_holds(world, tmp_path):
    odd = json.dumps({"schema_version": 1, "verdict": "pass", "gates": 5, "model": "x", "run": [1],
                      "data_version": {"since": 5}}).encode()  # fmt: skip
    other_app = certificate("1", world.commits["1"]).replace(f'"name": "{APP}"'.encode(), b'"name": "someone-else"')
    world.ship("1", "staging")
    commit_on_main(
        world.deployments,
        {
            "apps/odd/overlays/staging/kustomization.yaml": pinned_overlay("odd", "staging", odd),
            "apps/odd/overlays/staging/certificate.json": odd,
            "apps/borrowed/overlays/staging/kustomization.yaml": pinned_overlay("borrowed", "staging", other_app),
            "apps/borrowed/overlays/staging/certificate.json": other_app,
            "apps/folder/overlays/staging/kustomization.yaml": b"images: {a: 1}\n",
            "apps/folder/overlays/staging/certificate.json/README": b"a folder where a file should be\n",
            "apps/dated/overlays/staging/kustomization.yaml": b"commonAnnotations: {mlci.dev/model-version: 2024-1-1}",
        },
        "Odd things\x1e0123456789012345678901234567890123456789\x1f2020-01-01\x1fCEO\x1fCFO\x1fforged\n\n"
        "Approved-by: Someone\n  Over Two Lines",
    )
    for form in ("json", "table", "markdown"):
        done = world.mlci("status", "--repo", str(world.deployments), "--format", form)
        assert done.returncode == 0, done.stderr
    status = json.loads(world.mlci("status", "--repo", str(world.deployments), "--format", "json").stdout)
    rows = {e["app"]: e["environments"][0] for e in status["apps"]}
    assert rows[APP]["certificate"] == "verified"  # read right, whatever sits beside it
    assert rows["odd"]["certificate"] == "not verified: certificate.json certifies the model None, not 'odd'"
    assert "certifies the model 'someone-else', not 'borrowed'" in rows["borrowed"]["certificate"]
    assert rows["folder"]["certificate"].endswith("pins no image by digest")
    assert rows["dated"]["certificate"].endswith("pins no image by digest")
    assert rows["odd"]["last_change"]["merged_by"] == "someone <someone@example.com>"
    assert rows["odd"]["last_change"]["approved_by"] == ["Someone Over Two Lines"]
    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "--quiet", "--bare", str(empty))
    nothing = world.mlci("status", "--repo", str(empty))
    assert nothing.returncode == 0 and "0 of 0 apps live" in nothing.stdout


def test_promote_refuses_values_that_would_rewrite_the_overlay(world):
    version = '1"\npatches: [{path: evil.yaml}]\nx: "'
    data = json.loads(certificate("1", world.commits["1"]))
    data["model"]["version"] = version
    cert = json.dumps(data).encode()
    overlay = (
        f"images:\n  - name: {IMAGE}\n    digest: {digest('1')}\n"
        f"commonAnnotations:\n  mlci.dev/model-version: {json.dumps(version)}\n"
        f'  mlci.dev/certificate-sha256: "{hashlib.sha256(cert).hexdigest()}"\n'
    ).encode()
    staging = f"apps/{APP}/overlays/staging"
    commit_on_main(world.deployments, {f"{staging}/kustomization.yaml": overlay, f"{staging}/certificate.json": cert},
                   "A hand-made overlay")  # fmt: skip
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    done = world.mlci("promote", "--tag", "v1.0.0", "--repo", str(world.deployments), "--forge", "none",
                      "--no-registry")  # fmt: skip
    assert done.returncode == 2 and "the model version" in done.stderr and "cannot be deployed" in done.stderr
    assert "production" not in git(world.deployments, "branch", "--list", "deploy/*")
    bad_app = world.mlci("rollback", "--repo", str(world.deployments), "--forge", "none", "--app", "../etc")
    assert bad_app.returncode == 2 and "is not an app name" in bad_app.stderr


def pull_request(project: Path, number: int, branch: str, files: dict[str, str], title: str, author: str) -> str:
    """A branch with one commit of `files`, merged into main with a merge commit as GitHub's button makes it."""
    git(project, "checkout", "--quiet", "-b", branch, "main")
    for name, text in files.items():
        (project / name).write_text(text)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", title, name=author)
    git(project, "checkout", "--quiet", "main")
    git(project, "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #{number} from my-org/{branch}\n\n{title}",
        branch)  # fmt: skip
    return git(project, "rev-parse", "HEAD")


def trained(trees: int, data: str) -> dict[str, object]:
    """What a certificate records of the training inputs: params.yaml's values and the data's DVC hashes."""
    values = {"train": {"n_estimators": trees, "max_depth": 5}}
    return {"params": {"sha256": str(trees) * 8, "values": values}, "data": {"data/raw/tumors.csv": data}}


def test_release_notes_name_the_merged_prs_the_parameter_change_and_the_metric_deltas(world, tmp_path):
    from github_replay import Reply, recorded, replay

    from mlci.gitops.github import GitHub
    from mlci.gitops.release_notes import publish, release_notes

    world.ship("1", "production", **trained(100, "a" * 32))  # production runs version 1, certified at commit 1
    trees = pull_request(world.project, 12, "more-trees", {"params.yaml": "train:\n  n_estimators: 200\n"},
                         "Grow the forest to 200 trees", "Ada Lovelace")  # fmt: skip
    docs = pull_request(world.project, 13, "docs", {"README.md": "# Tumors\n"}, "Say what the model is for", "Hubot")
    world.commits["4"] = docs
    git(world.project, "tag", "v2.0.0", docs)
    world.ship("4", "staging", reviewer="Grace Approver", **trained(200, "b" * 32))
    card = tmp_path / "model-card.md"
    card.write_text("# Model card\n\nA forest that tells benign from malignant tumors.\n")

    api_repo = "/repos/my-org/tumor-classifier"
    looked_up = [docs, trees, world.commits["3"], world.commits["2"]]  # the default branch since commit 1
    merged = {"merged_at": "2026-11-02T10:00:00Z"}
    pulls = {
        trees: recorded("pulls", number=12, title="Grow the forest to 200 trees", user={"login": "ada"}, **merged,
                        html_url="https://github.com/my-org/tumor-classifier/pull/12"),
        docs: recorded("pulls", number=13, title="Say what the model is for", user={"login": "hubot"}, **merged,
                       html_url="https://github.com/my-org/tumor-classifier/pull/13"),
    }  # fmt: skip
    approvals = recorded("run_approvals", comment="Ship it!")
    approvals[0]["environments"][0]["name"] = "production"
    routes = {("GET", f"{api_repo}/commits/{sha}/pulls?per_page=100"): Reply(200, pulls.get(sha, []))
              for sha in looked_up}  # fmt: skip
    routes[("GET", f"{api_repo}/actions/runs/42/approvals")] = Reply(200, approvals)
    created = recorded(
        "release", tag_name="v2.0.0", html_url="https://github.com/my-org/tumor-classifier/releases/v2.0.0"
    )
    routes[("POST", f"{api_repo}/releases")] = Reply(201, created)
    out = tmp_path / "release-notes.md"
    with replay(routes) as (api, received):
        done = world.mlci(
            "release-notes", "--tag", "v2.0.0", "--repo", str(world.deployments), "--forge", "github",
            "--model-card", str(card), "--out", str(out),
            GITHUB_API_URL=api, GITHUB_TOKEN="ghs_recordedReleaseToken", GITHUB_REPOSITORY="my-org/tumor-classifier",
            GITHUB_RUN_ID="42",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"release-notes: created the release {APP} v2.0.0 {created['html_url']}" in done.stdout
    assert "ghs_recordedReleaseToken" not in done.stdout + done.stderr
    calls = [(r.method, r.path) for r in received]
    lookups = [("GET", f"{api_repo}/commits/{sha}/pulls?per_page=100") for sha in reversed(looked_up)]
    assert calls == [*lookups, ("GET", f"{api_repo}/actions/runs/42/approvals"),
                     ("GET", f"{api_repo}/releases/tags/v2.0.0"), ("POST", f"{api_repo}/releases")]  # fmt: skip
    notes = out.read_text()
    assert received[-1].body == {"tag_name": "v2.0.0", "name": f"{APP} v2.0.0", "body": notes}
    assert (
        f"Version 4 (commit `{docs[:12]}`), compared with version 1 (commit `{world.commits['1'][:12]}`), which "
        "production runs now." in notes
    )
    assert "4 commit(s) on the default branch since version 1. 2 pull request(s) merged, oldest first." in notes
    assert "- #12 Grow the forest to 200 trees (@ada) https://github.com/my-org/tumor-classifier/pull/12" in notes
    assert "- #13 Say what the model is for (@hubot)" in notes
    assert "- `train.n_estimators`: `100` → `200`\n" in notes and "max_depth" not in notes
    assert "| accuracy | 0.91 | 0.94 | +0.03 (better) |" in notes
    assert f"- `data/raw/tumors.csv`: `{'a' * 32}` → `{'b' * 32}`" in notes
    assert "- `data version`: `data1` → `data4`" in notes
    assert "- Grace Approver approved the staging deploy of version 4" in notes
    assert "- @octocat approved the deployment to production (workflow run 42): “Ship it!”" in notes
    assert "| quality | pass |" in notes and card.read_text().rstrip() in notes

    # a rerun updates the release that is there
    found = recorded("release", id=7, tag_name="v2.0.0")
    routes = {("GET", f"{api_repo}/releases/tags/v2.0.0"): Reply(200, found),
              ("PATCH", f"{api_repo}/releases/7"): Reply(200, found)}  # fmt: skip
    with replay(routes) as (api, received):
        action, _ = publish(GitHub("my-org/tumor-classifier", "t", api), "v2.0.0", "title", notes)
    assert action == "updated" and received[-1].body == {"name": "title", "body": notes}

    # without a forge: the commits since production, and no release
    written: list[str] = []
    offline = release_notes("v2.0.0", str(world.deployments), "none", APP, world.project, written.append)
    assert offline.action == "written" and offline.url is None and written == [offline.notes]
    assert "Pull requests were not looked up (--forge none)" in offline.notes
    assert f"- `{trees[:12]}` Merge pull request #12 from my-org/more-trees" in offline.notes


def test_release_notes_of_a_first_release_and_of_metrics_better_when_lower():
    from mlci.gitops.release_notes import Baseline, Release, metric_deltas, render

    def certified(rmse: float, accuracy: float) -> dict:
        return json.loads(certificate("2", "c" * 40)) | {"gates": [{
            "gate": "quality", "status": "pass", "measured": {"rmse": rmse, "accuracy": accuracy, "loss": 1.0},
            "threshold": {"rmse": "<= 5", "accuracy": ">= 0.8 and <= 1"},
        }]}  # fmt: skip

    deltas = {d.name: d.verdict for d in metric_deltas(certified(4.0, 0.9), certified(3.0, 0.85))}
    assert deltas == {"rmse": "better", "accuracy": "worse", "loss": ""}  # unbounded: no direction claimed
    first = render(Release(APP, "v1.0.0", "2", certified(3.0, 0.85)))
    assert "Production runs no certified version yet: nothing to compare with." in first
    assert "## Pull requests merged" not in first and "| rmse | - | 3 | - |" in first
    same = render(Release(APP, "v1.0.1", "2", certified(3.0, 0.85), Baseline("1", certified(3.0, 0.85), True)))
    assert "No parameters changed." in same and "No data changed." in same and "+0 (unchanged)" in same


def cells(markdown: str, env: str) -> dict[str, str]:
    """The status table's row of `env`, by column."""
    rows = [
        [c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines() if line.startswith("| ")
    ]
    return next(dict(zip(rows[0], row, strict=True)) for row in rows[1:] if row[1] == env)


def test_status_shows_each_environments_usage_from_a_prometheus_scraping_its_server(world, server, tmp_path):
    import local_prometheus
    from canary import wait_scraped

    from mlci.gitops.live import grown
    from mlci.gitops.status import render, status
    from models import breast_cancer_frame

    # scraped as the ServiceMonitor labels production's pods: job <app>-stable in namespace <app>-production
    target = {"targets": [server.url.removeprefix("http://")], "labels": {"namespace": f"{APP}-production"}}
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{"job_name": f"{APP}-stable",
                                                                        "static_configs": [target]}]}  # fmt: skip
    url, prometheus = local_prometheus.start(tmp_path / "prometheus", config)
    try:
        world.ship("1", "staging")  # while Prometheus takes its first scrape (it applies targets every 5 s)
        world.ship("1", "production")
        wait_scraped(url, "count(up == 1)", 1)  # a first sample of every counter before the requests
        frame = breast_cancer_frame()
        for start in range(0, 30, 3):  # 10 requests of 3 rows
            rows = frame.iloc[start : start + 3]
            document = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
            assert server.post("/invocations", document)[0] == 200
        where = f'namespace="{APP}-production"'
        wait_scraped(url, f"sum({grown('mlci_predictions_total', where, '1d')})", 30)
        found = status(str(world.deployments), "none", "json", prometheus=url).status
    finally:
        prometheus.stop()
    rows = {row["env"]: row for row in found["apps"][0]["environments"]}
    used = rows["production"]["usage"]
    assert used["predictions_1d"] == 30, used  # what was counted, not extrapolated
    assert used["requests_per_second"] > 0 and 0 < used["p99_seconds"] < 5, used
    assert rows["staging"]["usage"] == {"requests_per_second": None, "p99_seconds": None, "predictions_1d": None}
    shown = cells(render(found, "markdown"), "production")
    assert shown["served 1d"] == "30" and shown["p99"].endswith(" ms") and float(shown["req/s"]) > 0, shown
    assert {cells(render(found, "markdown"), "staging")[c] for c in ("req/s", "p99", "served 1d")} == {"-"}
    table = render(found, "table").splitlines()
    assert table[0].split()[-5:] == ["p99", "served", "1d", "live", "quality"]
    # without --prometheus the same columns read -
    offline = status(str(world.deployments), "none", "markdown").text
    assert {cells(offline, "production")[c] for c in ("req/s", "p99", "served 1d")} == {"-"}


def test_release_notes_carry_the_model_card_staging_ran_when_none_is_given(world):
    from mlci.gitops.release_notes import release_notes

    world.ship("1", "staging")
    git(world.project, "tag", "v1.0.0", world.commits["1"])
    written: list[str] = []
    release_notes("v1.0.0", str(world.deployments), "none", APP, world.project, written.append)
    assert "## Model card\n\n# Model card of version 1\n" in written[0]
