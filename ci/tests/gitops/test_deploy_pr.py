"""`mlci deploy-pr` against a local bare repository as the deployment repo, and GitHub's pull request API
replayed from recorded responses: one branch and one PR per project and environment, races retried."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from github_replay import Reply, recorded, replay

from mlci.certify.certificate import SCHEMA_VERSION
from mlci.model.manifest import ServedModel
from mlci.trust import attestation, keys

IMAGE = "ghcr.io/my-org/{project}@sha256:{digest}"
TOKEN = "ghs_recordedDeployToken0123456789"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release key, which the deployment repos' trust.yaml lists."""
    key = tmp_path_factory.mktemp("keys") / "release.key"
    keys.generate(key)
    return key


def sign(project: Path, image: str, key: Path, name: str = "attestation.json") -> Path:
    """mlci attest's work: the attestation of `image` and the project's certificate, beside the certificate."""
    certificate_path = project / "reports" / "certification" / "certificate.json"
    certificate = json.loads(certificate_path.read_bytes())
    image_name, _, digest = image.partition("@")
    signer = keys.load_signer(key)
    envelope = attestation.attest(image_name, digest, certificate, certificate["model"]["sha256"], signer)
    path = certificate_path.with_name(name)
    path.write_bytes(attestation.encode(envelope))
    return path


@pytest.fixture
def deployments(tmp_path: Path, signing_key: Path) -> Path:
    """A bare deployment repo whose main branch holds another team's app, and a trust.yaml listing the release
    key."""
    bare = tmp_path / "deployments.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    (seed / "apps" / "other-team").mkdir(parents=True)
    (seed / "apps" / "other-team" / "README.md").write_text("someone else's app\n")
    trust(seed, signing_key)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", "origin", "main")
    return bare


def make_project(root: Path, served: ServedModel, name: str, verdict: str = "pass") -> Path:
    """A project folder as CI leaves it: the packaged model, its certificate and report, and deploy/."""
    import shutil

    root.mkdir(parents=True)
    shutil.copytree(served.directory, root / "models" / "serving")
    out = root / "reports" / "certification"
    out.mkdir(parents=True)
    certificate = {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "model": {"name": name, "version": served.version, "runtime": served.runtime, "sha256": served.sha256},
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
    }
    (out / "certificate.json").write_text(json.dumps(certificate, indent=2))
    (out / "report.md").write_text(f"## Certification of {name}: ✅ pass\n")
    (out / "model-card.md").write_text(f"# Model card: {name}\n")
    deploy = root / "deploy"
    deploy.mkdir()
    (deploy / "kustomization.yaml").write_text("resources:\n  - rollout.yaml\n")
    (deploy / "rollout.yaml").write_text(f"kind: Rollout\nspec:\n  image: ghcr.io/my-org/{name}\n")
    return root


def trust(seed: Path, signing_key: Path) -> None:
    public = signing_key.with_name(signing_key.name + ".pub").read_text()
    (seed / "trust.yaml").write_text(yaml.safe_dump({"keys": [{"name": "release-key", "public_key": public}]}))


KEY: list[Path] = []  # the session's release key, once the fixture made it


@pytest.fixture(autouse=True)
def _release_key(signing_key: Path) -> None:
    KEY[:] = [signing_key]


def deploy(
    project: Path, repo: str, digest: str, *extra: str, env: dict[str, str] | None = None, wait=True, signed=True
):
    name = json.loads((project / "reports/certification/certificate.json").read_text())["model"]["name"]
    image = IMAGE.format(project=name, digest=digest * 64)
    passed = json.loads((project / "reports/certification/certificate.json").read_text())["verdict"] == "pass"
    if signed and passed:  # one attestation per image: runs at once must not share a file
        extra = ("--attestation", str(sign(project, image, KEY[0], f"attestation-{digest}.json")), *extra)
    command = [
        sys.executable, "-m", "mlci", "deploy-pr", "--env", "staging",
        "--image", image,
        "--certificate", "reports/certification/certificate.json", "--repo", repo, *extra,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return process
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def read_branch(bare: Path, branch: str, path: str) -> str:
    return git(bare, "show", f"{branch}:{path}")


def test_the_first_run_creates_the_branch_and_the_second_updates_it(forest_package, deployments, tmp_path):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    first = deploy(project, str(deployments), "a", "--forge", "none")
    assert first.returncode == 0, first.stderr
    branch = "deploy/tumor-classifier/staging"
    overlay = yaml.safe_load(
        read_branch(deployments, branch, "apps/tumor-classifier/overlays/staging/kustomization.yaml")
    )
    image, pinned = "ghcr.io/my-org/tumor-classifier", "sha256:" + "a" * 64
    # the image, and the shadow's placeholder pinned to it too: staging runs no shadow
    assert overlay["images"] == [
        {"name": image, "digest": pinned},
        {"name": f"{image}-shadow", "newName": image, "digest": pinned},
    ]
    assert "replicas" not in overlay and "patches" not in overlay
    assert overlay["resources"] == ["../../bases/staging"]
    assert overlay["commonAnnotations"]["mlci.dev/model-version"] == forest_package.version
    stored = read_branch(deployments, branch, "apps/tumor-classifier/overlays/staging/certificate.json")
    assert json.loads(stored)["model"]["sha256"] == forest_package.sha256
    attested = read_branch(deployments, branch, "apps/tumor-classifier/overlays/staging/attestation.json")
    assert json.loads(attested) == json.loads((project / "reports/certification/attestation-a.json").read_bytes())
    assert "verified (signed by release-key)" in first.stderr
    card = read_branch(deployments, branch, "apps/tumor-classifier/overlays/staging/model-card.md")
    assert card.strip() == (project / "reports/certification/model-card.md").read_text().strip()
    assert "rollout.yaml" in git(deployments, "ls-tree", "--name-only", f"{branch}:apps/tumor-classifier/bases/staging")
    # the branch starts from main and touches only apps/tumor-classifier/
    changed = git(deployments, "diff", "--name-only", "main", branch).splitlines()
    assert changed and all(path.startswith("apps/tumor-classifier/") for path in changed)

    second = deploy(project, str(deployments), "b", "--forge", "none")
    assert second.returncode == 0, second.stderr
    assert "sha256:" + "b" * 64 in read_branch(
        deployments, branch, "apps/tumor-classifier/overlays/staging/kustomization.yaml"
    )
    assert git(deployments, "rev-list", "--count", f"main..{branch}") == "2"
    again = deploy(project, str(deployments), "b", "--forge", "none")
    assert again.returncode == 0 and "already up to date" in again.stderr
    assert git(deployments, "rev-list", "--count", f"main..{branch}") == "2"


def test_two_projects_deploying_at_once_never_conflict(forest_package, deployments, tmp_path):
    projects = [make_project(tmp_path / n, forest_package, n) for n in ("churn-model", "fraud-model")]
    running = [deploy(p, str(deployments), "c", "--forge", "none", wait=False) for p in projects]
    for process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    for name in ("churn-model", "fraud-model"):
        changed = git(deployments, "diff", "--name-only", "main", f"deploy/{name}/staging").splitlines()
        assert changed and all(path.startswith(f"apps/{name}/") for path in changed)


def test_two_runs_of_one_project_at_once_lose_nothing(forest_package, deployments, tmp_path):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    running = [deploy(project, str(deployments), d, "--forge", "none", wait=False) for d in ("d", "e", "f")]
    for process in running:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    branch = "deploy/tumor-classifier/staging"
    assert git(deployments, "rev-list", "--count", f"main..{branch}") == "3"  # every proposal is a commit
    last = git(deployments, "log", "-1", "--format=%B", branch)
    overlay = read_branch(deployments, branch, "apps/tumor-classifier/overlays/staging/kustomization.yaml")
    digest = next(line.split("sha256:")[1] for line in last.splitlines() if line.startswith("Image "))
    assert f"digest: sha256:{digest}" in overlay  # the branch holds the last proposal


@pytest.mark.parametrize("fault", ["tampered", "failed", "not-by-digest", "no-deploy-dir"])
def test_a_refused_proposal_changes_nothing(forest_package, deployments, tmp_path, fault):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier", "fail" if fault == "failed" else "pass")
    extra: list[str] = ["--forge", "none"]
    if fault == "tampered":
        artifact = project / "models" / "serving" / forest_package.artifact
        artifact.write_bytes(artifact.read_bytes() + b"\0")
    if fault == "no-deploy-dir":
        extra += ["--deploy-dir", "nowhere"]
    if fault == "not-by-digest":
        done = subprocess.run(
            [sys.executable, "-m", "mlci", "deploy-pr", "--env", "staging", "--image", "ghcr.io/x/y:latest",
             "--repo", str(deployments), "--forge", "none"],
            cwd=project, capture_output=True, text=True,
        )  # fmt: skip
    else:
        done = deploy(project, str(deployments), "a", *extra)
    assert done.returncode == 2
    reason = {"tampered": "hashes to", "failed": "not 'pass'", "not-by-digest": "not pinned by digest",
              "no-deploy-dir": "is missing"}[fault]  # fmt: skip
    assert reason in done.stderr
    assert git(deployments, "branch", "--list", "--format=%(refname:short)") == "main"


FIND = (
    "GET",
    "/repos/octocat/Hello-World/pulls?state=open&head=octocat:deploy/tumor-classifier/staging&per_page=100",
)


@pytest.fixture
def github_server(tmp_path: Path, signing_key: Path) -> Path:
    """A local folder standing in for the GitHub server's git side: octocat/Hello-World.git, holding trust.yaml."""
    server = tmp_path / "github"
    bare = server / "octocat" / "Hello-World.git"
    bare.parent.mkdir(parents=True)
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = tmp_path / "github-seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    trust(seed, signing_key)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "trust")
    git(seed, "push", "--quiet", "origin", "main")
    return server


def forge_env(api: str, server: Path) -> dict[str, str]:
    return {"GITHUB_API_URL": api, "GITHUB_SERVER_URL": server.as_uri(), "GITHUB_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}


def test_the_pull_request_is_opened_then_updated_never_duplicated(forest_package, tmp_path, github_server):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    create = ("POST", "/repos/octocat/Hello-World/pulls")
    update = ("PATCH", "/repos/octocat/Hello-World/pulls/1347")

    with replay({FIND: Reply(200, []), create: Reply(201, recorded("pull"))}) as (api, received):
        opened = deploy(project, "octocat/Hello-World", "a", "--forge", "github", env=forge_env(api, github_server))
    assert opened.returncode == 0, opened.stderr
    assert "opened pull request #1347" in opened.stdout
    assert [(r.method, r.path) for r in received] == [FIND, create]
    sent = received[1].body
    assert sent["head"] == "deploy/tumor-classifier/staging" and sent["base"] == "main"
    assert "## Certification of tumor-classifier" in sent["body"] and "sha256:" + "a" * 64 in sent["body"]

    with replay({FIND: Reply(200, recorded("pulls")), update: Reply(200, recorded("pull"))}) as (api, received):
        updated = deploy(project, "octocat/Hello-World", "b", "--forge", "github", env=forge_env(api, github_server))
    assert updated.returncode == 0, updated.stderr
    assert "updated pull request #1347" in updated.stdout
    assert [r.method for r in received] == ["GET", "PATCH"] and "sha256:" + "b" * 64 in received[1].body["body"]
    bare = github_server / "octocat" / "Hello-World.git"
    assert git(bare, "rev-list", "--count", "main..deploy/tumor-classifier/staging") == "2"
    for done in (opened, updated):
        assert TOKEN not in done.stdout + done.stderr


def test_a_forge_refusal_is_reported_without_the_token(forest_package, tmp_path, github_server):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    with replay({FIND: Reply(403, recorded("forbidden"))}) as (api, _):
        done = deploy(project, "octocat/Hello-World", "a", "--forge", "github", env=forge_env(api, github_server))
    assert done.returncode == 2 and "403 Resource not accessible by integration" in done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_an_unsigned_image_is_refused(forest_package, deployments, tmp_path):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    refused = deploy(project, str(deployments), "a", "--forge", "none", signed=False)
    assert refused.returncode == 2 and "no attestation" in refused.stderr and "unsigned" in refused.stderr
    assert "deploy/tumor-classifier/staging" not in git(deployments, "branch", "--list")


def test_an_attestation_by_a_key_trust_yaml_does_not_list_is_refused(forest_package, deployments, tmp_path):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    stranger = tmp_path / "stranger.key"
    keys.generate(stranger)
    sign(project, IMAGE.format(project="tumor-classifier", digest="a" * 64), stranger)
    refused = deploy(project, str(deployments), "a", "--forge", "none", signed=False)
    assert refused.returncode == 2 and "the signer is not trusted" in refused.stderr, refused.stderr
    assert "deploy/tumor-classifier/staging" not in git(deployments, "branch", "--list")


def test_an_attestation_of_another_image_is_refused(forest_package, deployments, tmp_path):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    sign(project, IMAGE.format(project="tumor-classifier", digest="e" * 64), KEY[0])
    refused = deploy(project, str(deployments), "a", "--forge", "none", signed=False)
    assert refused.returncode == 2 and "does not match the attestation" in refused.stderr, refused.stderr


def test_a_certificate_rewritten_after_signing_is_refused(forest_package, deployments, tmp_path):
    project = make_project(tmp_path / "p", forest_package, "tumor-classifier")
    sign(project, IMAGE.format(project="tumor-classifier", digest="a" * 64), KEY[0])
    path = project / "reports" / "certification" / "certificate.json"
    rewritten = json.loads(path.read_text())
    rewritten["git"]["commit"] = "f" * 40
    path.write_text(json.dumps(rewritten, indent=2))
    refused = deploy(project, str(deployments), "a", "--forge", "none", signed=False)
    assert refused.returncode == 2 and "does not match the attestation's predicate" in refused.stderr, refused.stderr
