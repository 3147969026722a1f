"""A bad cookiecutter value stops generation with one line naming it, and leaves nothing behind; mlci comes from
where the template was baked from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bakery import TEMPLATE, run, template_repo
from locked_modules import locks_digest, make_block, read_pins, recorded_block, recorded_digest

BAD_VALUES = [
    ("project_name", "a" * 300, "must be at most 80 characters, not 300"),
    ("project", "Bad_Slug", "digits and single hyphens, starting with a letter: pass e.g. project=bad-slug"),
    ("project", "-leading-hyphen", "lowercase letters"),
    ("project", "tumör-klassifikator", "pass e.g. project=tumor-klassifikator"),
    ("package_name", "2fast", "lowercase Python identifier"),
    ("package_name", "class", "not a keyword"),
    ("package_name", "json", "shadows the standard-library module 'json'"),
    ("package_name", "test", "shadows the standard-library module 'test'"),
    ("package_name", "mlflow", "shadows the module 'mlflow' of the locked dependency mlflow"),
    ("package_name", "scipy", "shadows the module 'scipy' of the locked dependency scipy"),
    ("package_name", "onnx", "shadows the module 'onnx' of the locked dependency onnx"),
    ("package_name", "uvicorn", "shadows the module 'uvicorn' of the locked dependency uvicorn"),
    ("package_name", "yaml", "shadows the module 'yaml' of the locked dependency pyyaml"),
    ("package_name", "torch", "shadows the module 'torch' of the locked dependency torch"),
    ("package_name", "mlci", "shadows the mlci toolkit's package 'mlci'"),
    ("package_name", "tests", "shadows the project's folder 'tests'"),
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
    ("mlci_source", "../no/such/ci", f"existing path (a relative path is read from the template's folder, {TEMPLATE})"),
    ("mlci_source", "/no/such/ci", "must be 'template', a URL (git+https://...#subdirectory=ci), a version"),
    ("mlci_source", "mlci[package]==0.1.0", "existing path"),
]
BAD_CHOICES = [
    ("python_version", "3.10"),
    ("model_framework", "xgboost"),
    ("training_runner", "tpu"),
    ("task", "ranking"),
]


def bake_cli(tmp_path: Path, *assignments: str, template: str = str(TEMPLATE), cwd: Path | None = None):
    """cookiecutter's command line, as a user runs it; its cache of cloned templates and replays in tmp_path."""
    out, config = tmp_path / "out", tmp_path / "cookiecutter.yaml"
    tmp_path.mkdir(exist_ok=True)
    config.write_text(f"cookiecutters_dir: {tmp_path / 'clones'}\nreplay_dir: {tmp_path / 'replay'}\n")
    result = run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(config), "-o", str(out), template]
        + list(assignments),
        cwd or tmp_path,
    )
    return result, out


def mlci_requirement(project: Path, name: str = "mlci.txt") -> str:
    lines = (project / "requirements" / name).read_text().splitlines()
    return [line for line in lines if line.startswith("mlci")][0]


@pytest.mark.parametrize(("variable", "value", "reason"), BAD_VALUES, ids=[f"{v}={x[:30]!r}" for v, x, _ in BAD_VALUES])
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


def test_an_accented_name_is_refused_with_a_slug_that_passes(tmp_path):
    result, out = bake_cli(tmp_path, "project_name=Tumör Klassifikator")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: project='tumör-klassifikator' must be 1-40 lowercase letters, digits and single hyphens, "
        "starting with a letter: pass e.g. project=tumor-klassifikator"
    ]
    assert not out.exists() or not any(out.iterdir())
    result, out = bake_cli(tmp_path, "project_name=Tumör Klassifikator", "project=tumor-klassifikator")
    assert result.returncode == 0, result.stderr
    assert (out / "tumor-klassifikator" / "src" / "tumor_klassifikator" / "__init__.py").is_file()


def test_the_defaults_pass_and_vendor_the_templates_own_mlci(tmp_path):
    result, out = bake_cli(tmp_path)
    assert result.returncode == 0, result.stderr
    project = out / "tumor-classifier"
    assert (project / "dvc.yaml").is_file()
    assert "make setup" in result.stdout
    assert mlci_requirement(project) == "mlci[package] @ ./vendor/mlci"
    assert mlci_requirement(project, "serving.in") == "mlci @ ./vendor/mlci"
    init = Path("src", "mlci", "__init__.py")
    assert (project / "vendor" / "mlci" / init).read_text() == (TEMPLATE / "ci" / init).read_text()
    assert not (project / "vendor" / "mlci" / "tests").exists()
    assert not (project / ".mlci-source.json").exists()


def test_a_template_given_by_a_relative_path_vendors_mlci_but_takes_no_relative_mlci_source(tmp_path):
    result, out = bake_cli(tmp_path, template=".", cwd=TEMPLATE)
    assert result.returncode == 0, result.stderr
    assert (out / "tumor-classifier" / "vendor" / "mlci" / "pyproject.toml").is_file()
    result, _ = bake_cli(tmp_path / "again", "mlci_source=../mlci", template=".", cwd=TEMPLATE)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: mlci_source='../mlci' is a relative path"), result.stderr
    assert "cookiecutter was given it as '.'" in errors[0]


def test_a_git_url_pins_mlci_at_the_commit_baked(tmp_path):
    repo = template_repo(tmp_path / "template")
    commit = run(["git", "rev-parse", "HEAD"], repo).check().stdout.strip()
    result, out = bake_cli(tmp_path, template=f"git+file://{repo}")
    assert result.returncode == 0, result.stderr
    project = out / "tumor-classifier"
    pinned = f"git+file://{repo}@{commit}#subdirectory=ci"
    assert mlci_requirement(project) == f"mlci[package] @ {pinned}"
    assert mlci_requirement(project, "serving.in") == f"mlci @ {pinned}"
    assert not (project / "vendor" / "mlci").exists()
    installer = [str(Path(sys.executable).parent / "uv"), "pip", "install", "--dry-run", "--no-deps"]
    resolved = run([*installer, "--python", sys.executable, "-r", "requirements/mlci.txt"], project).check()
    assert f"+ mlci @ {pinned}" in resolved.stdout + resolved.stderr

    result, _ = bake_cli(tmp_path / "again", "mlci_source=../mlci", template=f"git+file://{repo}")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: mlci_source='../mlci' is a relative path, which is read from the template's folder, "
        "and this template is a git URL: give an absolute path"
    ]


def test_the_module_table_was_made_from_the_current_locks():
    assert recorded_digest() == locks_digest(read_pins()), (
        "the generated project's locks changed since hooks/pre_gen_project.py's LOCKED_MODULES was written: "
        "run `python scripts/locked_modules.py`"
    )


@pytest.mark.slow
def test_the_module_table_is_what_the_locks_install():
    made, _ = make_block()
    assert made == recorded_block(), "run `python scripts/locked_modules.py`"
