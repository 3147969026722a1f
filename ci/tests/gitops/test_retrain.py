"""Retraining's two ends: `mlci retrain-trigger` against a real Prometheus whose drift alert fires (GitHub's
dispatch API replayed), and `mlci retrain-pr` pushing a retrained dvc.lock to a local bare repository."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import local_prometheus
import pytest
import yaml
from github_replay import Reply, recorded, replay

from mlci.certify.process import free_port

TOKEN = "ghs_recordedRetrainToken0123456789"
DISPATCH = ("POST", "/repos/my-org/tumor-classifier/dispatches")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()


def mlci(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlci", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})  # fmt: skip


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory):
    """A Prometheus whose ModelInputDrift fires at once in namespace tumor-classifier-production (and whose
    ModelHighLatency fires too, to be ignored), evaluated every second."""
    folder = tmp_path_factory.mktemp("prometheus")
    rules = {"groups": [{"name": "model", "rules": [
        {"alert": "ModelInputDrift", "for": "0s",
         "expr": 'label_replace(vector(0.4), "namespace", "tumor-classifier-production", "", "")'},
        {"alert": "ModelHighLatency", "for": "0s",
         "expr": 'label_replace(vector(1), "namespace", "tumor-classifier-production", "", "")'},
    ]}]}  # fmt: skip
    (folder / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"evaluation_interval": "1s", "scrape_interval": "1s"},
        "rule_files": [str(folder / "rules.yml")],
    }
    url, server = local_prometheus.start(folder, config)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as response:
                alerts = json.load(response)["data"]["alerts"]
            if any(a["labels"]["alertname"] == "ModelInputDrift" and a["state"] == "firing" for a in alerts):
                break
            time.sleep(0.5)
        else:
            pytest.fail("ModelInputDrift never fired")
        yield url
    finally:
        server.stop()


def trigger(tmp_path: Path, url: str, api: str, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return mlci(tmp_path, "retrain-trigger", "--prometheus", url, "--namespace", "tumor-classifier-production",
                "--repo", "my-org/tumor-classifier", *extra, **{"GITHUB_API_URL": api, "GITHUB_TOKEN": TOKEN,
                                                                **env})  # fmt: skip


def first_slot_after_firing(url: str, every: int) -> float:
    """The start of the first run slot (every `every` s from the epoch) by which Prometheus saw the drift alert
    firing: its activeAt, plus the rule's hold (0 s), plus the group's interval (1 s)."""
    with urllib.request.urlopen(f"{url}/api/v1/rules?type=alert", timeout=5) as response:
        groups = json.load(response)["data"]["groups"]
    rule = next(r for g in groups for r in g["rules"] if r["name"] == "ModelInputDrift")
    active = datetime.fromisoformat(rule["alerts"][0]["activeAt"].replace("Z", "+00:00")).timestamp()
    return math.ceil((active + 0 + 1) / every) * every


def at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def test_a_new_drift_alert_dispatches_the_retraining_workflow_once(prometheus, tmp_path):
    slot = first_slot_after_firing(prometheus, 60)
    with replay({DISPATCH: Reply(204, None)}) as (api, received):
        early = trigger(tmp_path, prometheus, api, "--every", "60", "--at", at(slot - 30))  # the slot before
        first = trigger(tmp_path, prometheus, api, "--every", "60", "--at", at(slot + 25))  # started 25 s late
        later = trigger(tmp_path, prometheus, api, "--every", "60", "--at", at(slot + 61))  # the next run
    assert early.returncode == 0 and "0 new" in early.stdout and "the next run's to dispatch" in early.stderr
    assert first.returncode == 0, first.stderr
    assert "1 new ModelInputDrift alert(s)" in first.stdout
    assert [(r.method, r.path) for r in received] == [DISPATCH]
    sent = received[0].body
    assert sent["event_type"] == "model-drift"
    assert sent["client_payload"]["labels"]["namespace"] == "tumor-classifier-production"
    assert sent["client_payload"]["reason"] == "ModelInputDrift in tumor-classifier-production"
    assert received[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert later.returncode == 0 and "0 new" in later.stdout and "dispatched before" in later.stderr
    assert TOKEN not in first.stdout + first.stderr + later.stdout + later.stderr


def test_the_token_can_come_from_a_mounted_file(prometheus, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    slot = first_slot_after_firing(prometheus, 60)
    with replay({DISPATCH: Reply(204, None)}) as (api, received):
        done = trigger(tmp_path, prometheus, api, "--every", "60", "--at", at(slot), GITHUB_TOKEN="",
                       GITHUB_TOKEN_FILE=str(tmp_path / "token"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert received[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_other_namespaces_and_dry_runs_dispatch_nothing(prometheus, tmp_path):
    slot = first_slot_after_firing(prometheus, 60)
    with replay({}) as (api, received):
        other = mlci(tmp_path, "retrain-trigger", "--prometheus", prometheus, "--namespace", "someone-else",
                     "--repo", "my-org/tumor-classifier", "--every", "60", "--at", at(slot),
                     GITHUB_API_URL=api, GITHUB_TOKEN=TOKEN)  # fmt: skip
        dry = trigger(tmp_path, prometheus, api, "--dry-run", "--every", "60", "--at", at(slot))
    assert other.returncode == 0 and "0 new" in other.stdout
    assert dry.returncode == 0 and "would dispatch model-drift" in dry.stderr
    assert received == []


def test_an_unreachable_prometheus_and_a_bad_time_are_named(tmp_path):
    done = trigger(tmp_path, f"http://127.0.0.1:{free_port()}", "http://127.0.0.1:9")
    assert done.returncode == 2 and "did not answer its rules API" in done.stderr
    bad = trigger(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", "--at", "yesterday")
    assert bad.returncode == 2 and "--at 'yesterday' is not an ISO 8601 time" in bad.stderr


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A project checkout whose origin is a local bare repository, dvc.lock committed."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    project = tmp_path / "project"
    git(tmp_path, "clone", "--quiet", str(origin), str(project))
    (project / "dvc.lock").write_text("schema: '2.0'\nstages: {ingest: {outs: [{path: data/raw, md5: aaa}]}}\n")
    (project / "src.py").write_text("print(1)\n")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", "start")
    git(project, "push", "--quiet", "origin", "main")
    return project, origin


def test_retrain_pr_pushes_the_new_lock_and_nothing_else(checkout):
    project, origin = checkout
    unchanged = mlci(project, "retrain-pr", "--repo", str(origin), "--forge", "none")
    assert unchanged.returncode == 0 and "unchanged" in unchanged.stdout
    assert git(origin, "branch", "--list", "retrain/*") == ""
    (project / "dvc.lock").write_text("schema: '2.0'\nstages: {ingest: {outs: [{path: data/raw, md5: bbb}]}}\n")
    (project / "src.py").write_text("print(2)\n")  # not retraining's to propose
    done = mlci(project, "retrain-pr", "--repo", str(origin), "--forge", "none", "--reason", "model-drift")
    assert done.returncode == 0, done.stderr
    branch = git(origin, "branch", "--list", "retrain/*", "--format=%(refname:short)")
    assert branch.startswith("retrain/")
    assert git(origin, "diff", "--name-only", "main", branch) == "dvc.lock"
    assert git(origin, "log", "-1", "--format=%s", branch) == "Retrain: model-drift"


def test_retrain_pr_opens_a_pull_request_on_github(checkout, tmp_path):
    project, origin = checkout
    server = tmp_path / "github" / "my-org"
    server.mkdir(parents=True)
    (server / "tumor-classifier.git").symlink_to(origin)
    (project / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (project / "report.md").write_text("## Certification: pass\n")
    create = ("POST", "/repos/my-org/tumor-classifier/pulls")
    with replay({create: Reply(201, recorded("pull"))}) as (api, received):
        done = mlci(project, "retrain-pr", "--repo", "my-org/tumor-classifier", "--report", "report.md",
                    "--reason", "scheduled retraining", GITHUB_API_URL=api, GITHUB_TOKEN=TOKEN,
                    GITHUB_SERVER_URL=server.parent.as_uri(), GITHUB_REF_NAME="main")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "opened pull request #1347" in done.stdout
    sent = received[0].body
    assert sent["base"] == "main" and sent["head"].startswith("retrain/")
    assert sent["title"] == "Retrain: scheduled retraining" and "## Certification: pass" in sent["body"]
    assert TOKEN not in done.stdout + done.stderr
