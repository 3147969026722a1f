"""`mlci pr-comment` against recorded GitHub responses: one comment per pull request, edited in place."""

from __future__ import annotations

import subprocess
import sys

import pytest
from github_replay import Reply, recorded, replay

from mlci.gitops.github import MAX_BODY
from mlci.gitops.pr_comment import comment_body, marker

REPO = "octocat/Hello-World"
TOKEN = "ghs_recordedTestToken0123456789"
LIST = ("GET", f"/repos/{REPO}/issues/1347/comments?per_page=100")
CREATE = ("POST", f"/repos/{REPO}/issues/1347/comments")


def run_cli(api: str, tmp_path, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    report = tmp_path / "report.md"
    report.write_text("## Certification of tumor-classifier version 3: ✅ pass\n")
    env = {"GITHUB_API_URL": api, "GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": token, "PATH": ""}
    return subprocess.run(
        [sys.executable, "-m", "mlci", "pr-comment", "--pr", "1347", "--report", str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_first_report_creates_the_comment(tmp_path):
    routes = {LIST: Reply(200, recorded("issue_comments")), CREATE: Reply(201, recorded("issue_comment", id=7))}
    with replay(routes) as (api, received):
        done = run_cli(api, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created comment 7" in done.stdout
    assert [(r.method, r.path) for r in received] == [LIST, CREATE]
    assert received[1].body["body"].startswith(marker("certification") + "\n## Certification")
    assert received[1].headers["authorization"] == f"Bearer {TOKEN}"
    assert received[1].headers["x-github-api-version"] == "2022-11-28"
    assert TOKEN not in done.stdout + done.stderr


def test_a_later_report_edits_the_same_comment_found_on_a_later_page(tmp_path):
    ours = recorded("issue_comment", id=42, body=marker("certification") + "\nold report")
    page_2 = ("GET", f"/repos/{REPO}/issues/1347/comments?per_page=100&page=2")
    routes = {
        LIST: Reply(200, recorded("issue_comments"), {"Link": f'<{{api}}{page_2[1]}>; rel="next"'}),
        page_2: Reply(200, [ours]),
        ("PATCH", f"/repos/{REPO}/issues/comments/42"): Reply(200, ours),
    }
    with replay(routes) as (api, received):
        done = run_cli(api, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "updated comment 42" in done.stdout
    assert [r.method for r in received] == ["GET", "GET", "PATCH"]
    assert "## Certification" in received[-1].body["body"]


def test_another_topic_gets_its_own_comment(tmp_path):
    theirs = recorded("issue_comment", id=42, body=marker("certification") + "\nold report")
    routes = {LIST: Reply(200, [theirs]), CREATE: Reply(201, recorded("issue_comment", id=8))}
    with replay(routes) as (api, received):
        done = run_cli(api, tmp_path, "--topic", "latency")
    assert done.returncode == 0, done.stderr
    assert received[-1].method == "POST" and marker("latency") in received[-1].body["body"]


def test_a_refusal_names_the_status_and_message_and_never_the_token(tmp_path):
    routes = {LIST: Reply(200, []), CREATE: Reply(403, recorded("forbidden"))}
    with replay(routes) as (api, _):
        done = run_cli(api, tmp_path)
    assert done.returncode == 2
    assert "403 Resource not accessible by integration" in done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_no_token_and_bad_inputs_are_refused_before_any_call(tmp_path):
    with replay({}) as (api, received):
        no_token = run_cli(api, tmp_path, token="")
        bad_topic = run_cli(api, tmp_path, "--topic", "x -->")
    assert no_token.returncode == 2 and "GITHUB_TOKEN is not set" in no_token.stderr
    assert bad_topic.returncode == 2 and "--topic" in bad_topic.stderr
    assert received == []


def test_a_report_too_long_for_a_comment_is_cut_with_a_note():
    body = comment_body("x" * (MAX_BODY * 2), "certification")
    assert len(body) == MAX_BODY and "was cut" in body


@pytest.mark.parametrize("pr", ["0", "-3"])
def test_a_pull_request_number_must_be_positive(tmp_path, pr):
    with replay({}) as (api, received):
        report = tmp_path / "r.md"
        report.write_text("r")
        done = subprocess.run(
            [sys.executable, "-m", "mlci", "pr-comment", "--pr", pr, "--report", str(report)],
            env={"GITHUB_API_URL": api, "GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": TOKEN},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2 and "not a pull request number" in done.stderr
    assert received == []
