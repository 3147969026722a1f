"""Check every cookiecutter value before anything is generated.

A bad value exits 1 with one line naming the variable, the value and what is allowed; cookiecutter
then removes the half-made project directory.
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

VALUES: dict[str, str] = {
    "project_name": {{ cookiecutter.project_name | tojson }},
    "project": {{ cookiecutter.project | tojson }},
    "package_name": {{ cookiecutter.package_name | tojson }},
    "description": {{ cookiecutter.description | tojson }},
    "author_name": {{ cookiecutter.author_name | tojson }},
    "author_email": {{ cookiecutter.author_email | tojson }},
    "github_owner": {{ cookiecutter.github_owner | tojson }},
    "python_version": {{ cookiecutter.python_version | tojson }},
    "model_framework": {{ cookiecutter.model_framework | tojson }},
    "task": {{ cookiecutter.task | tojson }},
    "training_runner": {{ cookiecutter.training_runner | tojson }},
    "gpu_runner_labels": {{ cookiecutter.gpu_runner_labels | tojson }},
    "container_registry": {{ cookiecutter.container_registry | tojson }},
    "deployment_repo": {{ cookiecutter.deployment_repo | tojson }},
    "mlflow_tracking_uri": {{ cookiecutter.mlflow_tracking_uri | tojson }},
    "dvc_remote_url": {{ cookiecutter.dvc_remote_url | tojson }},
    "mlci_source": {{ cookiecutter.mlci_source | tojson }},
}

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
FRAMEWORKS = ("sklearn", "pytorch")
TASKS = ("classification", "regression")
RUNNERS = ("gpu", "cpu")
# Names the generated package must not take: they would shadow what the project imports.
DEPENDENCY_MODULES = {
    "dvc",
    "great_expectations",
    "mlci",
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pytest",
    "sklearn",
    "skops",
    "tests",
    "torch",
    "yaml",
}
SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
GITHUB_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
GITHUB_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
RUNNER_LABEL = re.compile(r"[A-Za-z0-9._-]+")
REGISTRY_HOST = re.compile(r"(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+)(:[0-9]{1,5})?")
IMAGE_PATH_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file", "databricks")
DVC_SCHEMES = ("s3", "gs", "azure", "ssh", "http", "https", "webdav", "webdavs", "hdfs", "oss", "gdrive")
# Characters that would break the TOML and YAML strings the value is written into.
UNSAFE_TEXT = re.compile(r'["\\\n\r\t]')

Check = Callable[[str], str | None]


def text(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if UNSAFE_TEXT.search(value):
        return "must not contain double quotes, backslashes, tabs or line breaks"
    return None


def slug(value: str) -> str | None:
    if not SLUG.fullmatch(value) or len(value) > 40:
        return "must be 1-40 lowercase letters, digits and single hyphens, starting with a letter (e.g. 'tumor-classifier')"
    return None


def package_name(value: str) -> str | None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", value) or keyword.iskeyword(value):
        return "must be a lowercase Python identifier (letters, digits, underscores; not a keyword)"
    if value in sys.stdlib_module_names:
        return f"shadows the standard-library module {value!r}; choose e.g. {value + '_model'!r}"
    if value in DEPENDENCY_MODULES:
        return f"shadows the dependency {value!r}; choose e.g. {value + '_model'!r}"
    return None


def one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else "must be one of " + ", ".join(allowed)

    return check


def email(value: str) -> str | None:
    return None if EMAIL.fullmatch(value) else "must be an email address like name@example.com"


def github_owner(value: str) -> str | None:
    if not GITHUB_LOGIN.fullmatch(value):
        return "must be a GitHub user or organisation: up to 39 letters, digits and single inner hyphens"
    return None


def runner_labels(value: str) -> str | None:
    labels = [label.strip() for label in value.split(",")]
    if not all(RUNNER_LABEL.fullmatch(label) for label in labels):
        return "must be comma-separated runner labels of letters, digits, '.', '_' and '-' (e.g. 'self-hosted,linux,x64,gpu')"
    if VALUES["training_runner"] == "gpu" and "self-hosted" not in labels:
        return "must include 'self-hosted' when training_runner is 'gpu'"
    return None


def container_registry(value: str) -> str | None:
    host, _, path = value.partition("/")
    if not REGISTRY_HOST.fullmatch(host) or not path or not all(IMAGE_PATH_PART.fullmatch(p) for p in path.split("/")):
        return (
            "must be a lowercase registry host and namespace, e.g. 'ghcr.io/my-org' or 'registry.example.com:5000/team'"
        )
    return None


def deployment_repo(value: str) -> str | None:
    owner, sep, name = value.partition("/")
    if not sep or not GITHUB_LOGIN.fullmatch(owner) or not GITHUB_REPO.fullmatch(name) or name in (".", ".."):
        return "must be a GitHub repository as owner/name, e.g. 'my-org/deployments'"
    return None


def tracking_uri(value: str) -> str | None:
    scheme = urlparse(value).scheme
    if scheme not in TRACKING_SCHEMES:
        return (
            "must be an MLflow tracking URI with a scheme among "
            + ", ".join(TRACKING_SCHEMES)
            + " (e.g. 'sqlite:///mlflow.db')"
        )
    if scheme == "sqlite" and not value.startswith("sqlite:///"):
        return "a sqlite URI needs three slashes: 'sqlite:///relative/path.db' or 'sqlite:////absolute/path.db'"
    return None


def dvc_remote(value: str) -> str | None:
    if not value.strip() or any(c.isspace() for c in value):
        return "must be a URL or a path without spaces"
    scheme = urlparse(value).scheme
    if "://" in value and scheme not in DVC_SCHEMES:
        return "must be a path or a URL with a scheme among " + ", ".join(DVC_SCHEMES)
    return None


def requirement(value: str) -> str | None:
    """mlci's source: a URL, a version of mlci, or a path that exists (hooks run in the generated project)."""
    if not value.strip() or any(c.isspace() for c in value):
        return "must be one pip requirement without spaces: a path, a git+https URL or a name==version"
    if "://" in value or re.fullmatch(r"mlci(===?|~=|>=|<=|!=|<|>)[0-9][0-9A-Za-z.*+!-]*", value):
        return None
    if not Path(value).expanduser().exists():
        return (
            "must be a URL (git+https://...#subdirectory=ci), a version (mlci==X.Y.Z) or an existing path "
            f"(a relative path is relative to the generated project, {Path.cwd()})"
        )
    return None


CHECKS: dict[str, Check] = {
    "project_name": text,
    "project": slug,
    "package_name": package_name,
    "description": text,
    "author_name": text,
    "author_email": email,
    "github_owner": github_owner,
    "python_version": one_of(*PYTHON_VERSIONS),
    "model_framework": one_of(*FRAMEWORKS),
    "task": one_of(*TASKS),
    "training_runner": one_of(*RUNNERS),
    "gpu_runner_labels": runner_labels,
    "container_registry": container_registry,
    "deployment_repo": deployment_repo,
    "mlflow_tracking_uri": tracking_uri,
    "dvc_remote_url": dvc_remote,
    "mlci_source": requirement,
}


# Defaults derived from another variable: when the source is bad, only the source is reported.
DERIVED_FROM = {
    "project": "project_name",
    "package_name": "project",
    "container_registry": "github_owner",
    "deployment_repo": "github_owner",
    "mlci_source": "github_owner",
    "dvc_remote_url": "project",
}


def _normal(value: str) -> str:
    return value.lower().replace(" ", "-").replace("_", "-")


def problems(values: dict[str, str]) -> list[str]:
    """One line per bad value: the variable, the value and what is allowed."""
    lines, bad = [], set()
    for name, check in CHECKS.items():
        source = DERIVED_FROM.get(name)
        if source in bad and _normal(values[source]) in _normal(values[name]):
            bad.add(name)
            continue
        reason = check(values[name])
        if reason:
            bad.add(name)
            lines.append(f"error: {name}={values[name]!r} {reason}")
    return lines


def main() -> int:
    lines = problems(VALUES)
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
