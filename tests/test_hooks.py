"""A bad cookiecutter value stops generation with one line naming it, and leaves nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bakery import TEMPLATE, run

BAD_VALUES = [
    ("project", "Bad_Slug", "lowercase letters, digits and single hyphens"),
    ("project", "-leading-hyphen", "lowercase letters"),
    ("package_name", "2fast", "lowercase Python identifier"),
    ("package_name", "class", "not a keyword"),
    ("package_name", "json", "shadows the standard-library module 'json'"),
    ("package_name", "mlflow", "shadows the dependency 'mlflow'"),
    ("description", 'say "hi"', "double quotes"),
    ("author_name", "   ", "must not be empty"),
    ("author_email", "nobody.example.com", "email address"),
    ("github_owner", "-org-", "GitHub user or organisation"),
    ("gpu_runner_labels", "linux,gpu", "must include 'self-hosted'"),
    ("gpu_runner_labels", "self-hosted, g p u", "comma-separated runner labels"),
    ("container_registry", "ghcr.io/My-Org", "lowercase registry host and namespace"),
    ("container_registry", "ghcr.io", "lowercase registry host and namespace"),
    ("deployment_repo", "deployments", "owner/name"),
    ("deployment_repo", "my-org/deploy/extra", "owner/name"),
    ("mlflow_tracking_uri", "mlflow.db", "MLflow tracking URI"),
    ("mlflow_tracking_uri", "sqlite://mlflow.db", "three slashes"),
    ("dvc_remote_url", "ftp://host/dvc", "scheme among"),
    ("mlci_source", "mlci @ ./ci", "without spaces"),
    ("mlci_source", "../no/such/ci", "existing path"),
    ("mlci_source", "mlci[package]==0.1.0", "existing path"),
]
BAD_CHOICES = [
    ("python_version", "3.10"),
    ("model_framework", "xgboost"),
    ("training_runner", "tpu"),
    ("task", "ranking"),
]


def bake_cli(tmp_path: Path, *assignments: str):
    out = tmp_path / "out"
    result = run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(out), str(TEMPLATE), *assignments], tmp_path
    )
    return result, out


@pytest.mark.parametrize(("variable", "value", "reason"), BAD_VALUES, ids=[f"{v}={x!r}" for v, x, _ in BAD_VALUES])
def test_a_bad_value_is_named_and_nothing_is_left(tmp_path, variable, value, reason):
    result, out = bake_cli(tmp_path, f"{variable}={value}")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {variable}={value!r} ") and reason in errors[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("variable", "value"), BAD_CHOICES, ids=[f"{v}={x}" for v, x in BAD_CHOICES])
def test_a_value_outside_the_choices_is_refused(tmp_path, variable, value):
    result, out = bake_cli(tmp_path, f"{variable}={value}")
    assert result.returncode != 0
    assert variable in result.stderr and value in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_every_bad_value_is_reported_at_once(tmp_path):
    result, _ = bake_cli(tmp_path, "author_email=nobody", "github_owner=-x-")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [e.split("=")[0] for e in errors] == ["error: author_email", "error: github_owner"]


def test_the_defaults_pass(tmp_path):
    result, out = bake_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "tumor-classifier" / "dvc.yaml").is_file()
    assert "make setup" in result.stdout
