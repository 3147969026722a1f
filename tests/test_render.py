"""Every option combination renders into a project that parses and holds no leftover Jinja."""

from __future__ import annotations

import ast
import itertools
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from bakery import bake, run

PYTHON_VERSIONS = ["3.11", "3.12", "3.13"]
FRAMEWORKS = ["sklearn", "pytorch"]
RUNNERS = ["gpu", "cpu"]
TASKS = ["classification", "regression"]
# Every framework x runner x task combination, each with one of the Python versions in turn (all three appear).
COMBINATIONS = [
    (PYTHON_VERSIONS[i % len(PYTHON_VERSIONS)], *combination)
    for i, combination in enumerate(itertools.product(FRAMEWORKS, RUNNERS, TASKS))
]
# Jinja left behind; GitHub's own `${{ ... }}` expressions are not Jinja.
# Jinja left unrendered. Meant to stay: GitHub expressions (${{ }}), docker's Go templates (--format
# '{{json ...}}') and Argo Rollouts' analysis arguments ({{args.name}}).
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{(?!json |args\.)|\{%|\{#")


def files_of(project: Path) -> list[Path]:
    """The files the template rendered (vendor/ is copied verbatim from mlci_source)."""
    return [p for p in project.rglob("*") if p.is_file() and not {".git", "vendor"} & set(p.relative_to(project).parts)]


@pytest.fixture(scope="module", params=COMBINATIONS, ids="-".join)
def baked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    python_version, framework, runner, task = request.param
    context = {"python_version": python_version, "model_framework": framework, "training_runner": runner, "task": task}
    return context, bake(tmp_path_factory.mktemp("bake"), **context)


def test_no_jinja_is_left(baked):
    _, project = baked
    leftovers = [
        f"{path.relative_to(project)}:{number}: {line.strip()}"
        for path in files_of(project)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if LEFTOVER_JINJA.search(line)
    ]
    assert leftovers == []
    assert not [p for p in project.rglob("*") if "{{" in p.name or "{%" in p.name]


def test_every_file_parses(baked):
    _, project = baked
    checked = 0
    for path in files_of(project):
        text = path.read_text()
        if path.suffix == ".py":
            ast.parse(text, filename=str(path))
        elif path.suffix in (".yaml", ".yml"):
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        else:
            continue
        checked += 1
    assert checked >= 15


def test_only_the_chosen_framework_is_kept(baked):
    context, project = baked
    framework = context["model_framework"]
    names = {p.name for p in files_of(project)}
    assert not [n for n in names if any(f".{fw}." in n for fw in FRAMEWORKS)], "unresolved variant files"
    model = (project / "src" / "tumor_classifier" / "model.py").read_text()
    assert f'FRAMEWORK = "{framework}"' in model
    assert ("torch.txt" in names) == (framework == "pytorch")
    assert ("torch" in (project / "requirements" / "main.in").read_text()) == (framework == "pytorch")
    source = yaml.safe_load((project / "params.yaml").read_text())["ingest"]["source"]
    if context["task"] == "classification":
        assert source == {"sklearn": "sklearn:breast_cancer", "pytorch": "sklearn:digits"}[framework]
    else:
        assert source == "sklearn:diabetes"


def test_the_chosen_task_sets_params_plots_thresholds_and_the_canarys_drift_metric(baked):
    context, project = baked
    regression = context["task"] == "regression"
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["task"] == context["task"]
    assert ("range" in params["validate"]["target"]) == regression
    assert ("min_class_fraction" in params["validate"]["target"]) != regression
    plots = {next(iter(p)) for p in yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["evaluate"]["plots"]}
    assert plots == (
        {"plots/predicted.csv", "plots/residuals.csv"} if regression else {"plots/roc.csv", "plots/confusion.csv"}
    )
    gates = yaml.safe_load((project / "certification.yaml").read_text())["gates"]
    assert set(gates["quality"]["thresholds"]) == (
        {"r2", "rmse"} if regression else {"accuracy", "roc_auc", "log_loss"}
    )
    assert set(gates["champion"]["greater_is_better"]) == set(gates["champion"]["tolerance"])
    template = yaml.safe_load((project / "deploy" / "analysistemplate.yaml").read_text())
    (drift,) = [m for m in template["spec"]["metrics"] if m["name"] == "prediction-drift"]
    query = drift["provider"]["prometheus"]["query"]
    assert ("mlci_prediction_value_bucket" in query) == regression and ("mlci_predictions_total" in query) != regression


def test_the_chosen_python_version_is_used(baked):
    context, project = baked
    version = context["python_version"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert f"PYTHON ?= python{version}" in (project / "Makefile").read_text()


def test_a_relative_dvc_remote_is_resolved_from_the_project_root(tmp_path):
    project = bake(tmp_path, dvc_remote_url="../shared-storage")
    assert "url = ../../shared-storage\n" in (project / ".dvc" / "config").read_text()


@pytest.mark.parametrize("url", ["s3://bucket/dvc", "/srv/dvc-storage"])
def test_a_url_or_absolute_dvc_remote_is_kept(tmp_path, url):
    project = bake(tmp_path, dvc_remote_url=url)
    assert f"url = {url}\n" in (project / ".dvc" / "config").read_text()


def test_derived_names_follow_the_project_name(tmp_path):
    project = bake(tmp_path, project_name="Churn Model")
    assert project.name == "churn-model"
    assert (project / "src" / "churn_model" / "train.py").is_file()
    assert 'REGISTERED_MODEL = "churn-model"' in (project / "src" / "churn_model" / "tracking.py").read_text()


def test_the_locks_are_hash_pinned_and_name_no_index(baked):
    _, project = baked
    for lock in (project / "requirements").glob("*.txt"):
        text = lock.read_text()
        if lock.name == "torch.txt":
            assert text.strip() == "torch==2.13.0"
            continue
        if lock.name == "mlci.txt":  # one requirement: the local mlci_source, vendored into the project
            assert [line for line in text.splitlines() if not line.startswith("#")] == ["mlci[package] @ ./vendor/mlci"]
            assert (project / "vendor" / "mlci" / "pyproject.toml").is_file()
            assert not (project / "vendor" / "mlci" / "tests").exists()
            continue
        pins = re.findall(r"^[A-Za-z0-9_.-]+==\S+", text, flags=re.M)
        assert pins and text.count("--hash=sha256:") >= len(pins)
        assert "index-url" not in text and "://" not in text


def test_the_generated_code_is_lint_clean_for_its_python_version(baked):
    _, project = baked
    ruff = [sys.executable, "-m", "ruff"]
    for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        result = run([*ruff, *args], project)
        assert result.returncode == 0, result.stdout + result.stderr
