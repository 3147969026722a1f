"""Check every cookiecutter value before anything is generated, and settle where mlci comes from.

A bad value exits 1 with one line naming the variable, the value and what is allowed; cookiecutter
then removes the project directory, still empty. When every value holds, what post_gen_project.py is to do
for mlci (copy what into vendor/, name which requirement) is left in .mlci-source.json for it, which it removes.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
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

# Where the template being rendered is. cookiecutter says _repo_dir: the template's folder as it was given (relative
# to a directory it does not tell, when given so), or its clone of a git URL. cruft says _template: an absolute path,
# or the URL it cloned; and _commit, the commit it renders (for `cruft update`, into a temporary folder).
TEMPLATE = {{ cookiecutter.get("_template", "") | tojson }}
REPO_DIR = {{ cookiecutter.get("_repo_dir", "") | tojson }}
COMMIT = {{ cookiecutter.get("_commit", "") | tojson }}
MLCI_PLAN = Path(".mlci-source.json")

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
FRAMEWORKS = ("sklearn", "pytorch")
TASKS = ("classification", "regression")
RUNNERS = ("gpu", "cpu")
# Names the generated package must not take besides the standard library's and those of the locked dependencies
# (LOCKED_MODULES, at the end of this file): what the project installs or holds beside them.
PROJECT_MODULES = {"mlci": "the mlci toolkit's package", "tests": "the project's folder"}
# sys.stdlib_module_names leaves out CPython's test package, which every interpreter imports all the same.
STDLIB_TESTS = {"test"}
# A name, not a sentence: the slug `project` is made from it. (cookiecutter.json cuts that slug at 60 characters:
# cookiecutter makes the project's folder before this hook runs, and a name longer than the file system takes
# would fail there, in a traceback.)
PROJECT_NAME_MAX = 80
SLUG_MAX = 40
SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
GITHUB_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
GITHUB_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
RUNNER_LABEL = re.compile(r"[A-Za-z0-9._-]+")
REGISTRY_HOST = re.compile(r"(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+)(:[0-9]{1,5})?")
IMAGE_PATH_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MLCI_VERSION = re.compile(r"mlci(===?|~=|>=|<=|!=|<|>)[0-9][0-9A-Za-z.*+!-]*")
SCP_LIKE_URL = re.compile(r"([\w.-]+@[\w.-]+):(.+)")
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


def project_name(value: str) -> str | None:
    if len(value) > PROJECT_NAME_MAX:
        return f"must be at most {PROJECT_NAME_MAX} characters, not {len(value)} (the slug `project` is made from it)"
    return text(value)


def suggest_slug(value: str) -> str:
    """`value` as a slug: accents dropped, any other character a hyphen, cut at a hyphen to fit."""
    ascii_value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    suggestion = "-".join(re.findall(r"[a-z0-9]+", ascii_value.lower())).lstrip("-0123456789")
    if len(suggestion) > SLUG_MAX:
        cut = suggestion[: SLUG_MAX + 1]
        suggestion = cut.rsplit("-", 1)[0] if "-" in cut else cut[:SLUG_MAX]
    return suggestion


def slug(value: str) -> str | None:
    if SLUG.fullmatch(value) and len(value) <= SLUG_MAX:
        return None
    rule = f"must be 1-{SLUG_MAX} lowercase letters, digits and single hyphens, starting with a letter"
    suggestion = suggest_slug(value)
    return f"{rule}: pass e.g. project={suggestion}" if suggestion else f"{rule} (e.g. 'tumor-classifier')"


def package_name(value: str) -> str | None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", value) or keyword.iskeyword(value):
        return "must be a lowercase Python identifier (letters, digits, underscores; not a keyword)"
    instead = f"; choose e.g. {value + '_model'!r}"
    if value in sys.stdlib_module_names or value in STDLIB_TESTS:
        return f"shadows the standard-library module {value!r}" + instead
    if value in PROJECT_MODULES:
        return f"shadows {PROJECT_MODULES[value]} {value!r}" + instead
    if value in LOCKED_MODULES:
        return f"shadows the module {value!r} of the locked dependency {LOCKED_MODULES[value]}" + instead
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


@dataclass(frozen=True)
class Origin:
    """The template being rendered: its folder here, or for one baked from a git URL, that URL at the commit baked."""

    folder: Path | None
    pinned: str | None = None  # git+<URL>@<commit>, as pip reads it
    unknown: str = ""  # why the folder is not known, for a local template


@dataclass(frozen=True)
class MlciPlan:
    """What post_gen_project.py does for mlci: copy `vendor` into vendor/ ('template': the template's own ci/,
    which the template renders into vendor/mlci; a path; None: nothing), then name `requirement` in
    requirements/mlci.txt."""

    requirement: str
    vendor: str | None = None


def git(folder: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def pip_git_url(url: str) -> str:
    """pip's spelling of a git remote: git+<URL>, an scp-like user@host:path as ssh."""
    scp_like = SCP_LIKE_URL.fullmatch(url)
    if scp_like and "://" not in url:
        return f"git+ssh://{scp_like[1]}/{scp_like[2]}"
    return url if url.startswith("git+") else f"git+{url}"


@cache
def template_origin() -> Origin:
    """Where the template being rendered is (see TEMPLATE, REPO_DIR and COMMIT)."""
    if COMMIT:  # cruft: a local template by its absolute path, else the URL it cloned
        if not Path(TEMPLATE).is_absolute():
            return Origin(None, f"{pip_git_url(TEMPLATE)}@{COMMIT}")
        if Path(TEMPLATE).is_dir():
            return Origin(Path(TEMPLATE))
        return Origin(None, unknown=f"cruft's template {TEMPLATE!r} is not on this machine")
    repo_dir = Path(REPO_DIR)
    if repo_dir == Path(TEMPLATE) or Path(TEMPLATE) in repo_dir.parents:  # a local template, used where it is
        if repo_dir.is_absolute():
            return Origin(repo_dir)
        return Origin(None, unknown=f"cookiecutter was given it as {REPO_DIR!r}, relative to a folder it does not tell")
    # cookiecutter's clone of a git URL, at what it checked out (an unzipped archive has no commit: a folder)
    url, commit = git(repo_dir, "remote", "get-url", "origin"), git(repo_dir, "rev-parse", "HEAD")
    return Origin(None, f"{pip_git_url(url)}@{commit}") if url and commit else Origin(repo_dir)


def names_template_ci(value: str, path: Path, origin: Origin) -> bool:
    """'template', 'ci' (relative paths are read from the template) or the template's ci/ by its absolute path."""
    if value == "template" or (not path.is_absolute() and os.path.normpath(path) == "ci"):
        return True
    return origin.folder is not None and path.is_absolute() and path.resolve() == (origin.folder / "ci").resolve()


def mlci_plan(value: str) -> MlciPlan | str:
    """Where mlci comes from, or why `value` cannot say. 'template' is this template's ci/: copied into vendor/
    from a local template, pinned at the commit baked from a git URL. A relative path is read from the template's
    folder: the same at the first bake and at each `cruft update`, which renders into a temporary folder."""
    if not value.strip() or any(c.isspace() for c in value):
        return "must be 'template' or one pip requirement without spaces: a path, a git+https URL or mlci==X.Y.Z"
    if "://" in value:
        return MlciPlan(f"mlci[package] @ {value}")
    if MLCI_VERSION.fullmatch(value):
        return MlciPlan("mlci[package]" + value.removeprefix("mlci"))
    origin, path = template_origin(), Path(value).expanduser()
    if names_template_ci(value, path, origin):
        if origin.pinned:
            return MlciPlan(f"mlci[package] @ {origin.pinned}#subdirectory=ci")
        return MlciPlan("mlci[package] @ ./vendor/mlci", vendor="template")
    relative = not path.is_absolute()
    if relative and origin.folder is None:
        why = "this template is a git URL" if origin.pinned else f"the template's folder is not known: {origin.unknown}"
        return f"is a relative path, which is read from the template's folder, and {why}: give an absolute path"
    if relative:
        path = origin.folder / path
    if not path.exists():
        where = f" (a relative path is read from the template's folder, {origin.folder})" if relative else ""
        return (
            "must be 'template', a URL (git+https://...#subdirectory=ci), a version (mlci==X.Y.Z) or an existing path"
            + where
        )
    copied = f"./vendor/{path.name}" if path.is_file() else "./vendor/mlci"
    return MlciPlan(f"mlci[package] @ {copied}", vendor=str(path.resolve()))


def mlci_source(value: str) -> str | None:
    plan = mlci_plan(value)
    return plan if isinstance(plan, str) else None


CHECKS: dict[str, Check] = {
    "project_name": project_name,
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
    "mlci_source": mlci_source,
}


# Defaults derived from another variable: when the source is bad, only the source is reported.
DERIVED_FROM = {
    "project": "project_name",
    "package_name": "project",
    "container_registry": "github_owner",
    "deployment_repo": "github_owner",
    "dvc_remote_url": "project",
}


def _normal(value: str) -> str:
    return value.lower().replace(" ", "-").replace("_", "-")


def _derived(value: str, source: str) -> bool:
    """Whether `value` is what the template made of `source`: it contains it, or was cut from it (`project`)."""
    value, source = _normal(value), _normal(source)
    return source in value or (bool(value) and source.startswith(value))


def problems(values: dict[str, str]) -> list[str]:
    """One line per bad value: the variable, the value and what is allowed."""
    lines, bad = [], set()
    for name, check in CHECKS.items():
        source = DERIVED_FROM.get(name)
        if source in bad and _derived(values[name], values[source]):
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
    if lines:
        return 1
    MLCI_PLAN.write_text(json.dumps(asdict(mlci_plan(VALUES["mlci_source"]))) + "\n")
    return 0


# --- begin: written by scripts/locked_modules.py from the generated project's locks; do not edit ---
LOCKS_DIGEST = "36c8bc6e70291c590fad2490326ba470bc1ea7b78c1f2e88f81a6e123da65b34"
LOCKED_MODULES: dict[str, str] = {
    "_cffi_backend": "cffi",
    "_distutils_hack": "setuptools",
    "_pytest": "pytest",
    "_yaml": "pyyaml",
    "aiohappyeyeballs": "aiohappyeyeballs",
    "aiohttp": "aiohttp",
    "aiohttp_retry": "aiohttp-retry",
    "aiosignal": "aiosignal",
    "alembic": "alembic",
    "altair": "altair",
    "amqp": "amqp",
    "annotated_doc": "annotated-doc",
    "annotated_types": "annotated-types",
    "antlr4": "antlr4-python3-runtime",
    "anyio": "anyio",
    "appdirs": "appdirs",
    "asyncssh": "asyncssh",
    "attr": "attrs",
    "attrs": "attrs",
    "billiard": "billiard",
    "blinker": "blinker",
    "cachetools": "cachetools",
    "celery": "celery",
    "certifi": "certifi",
    "cffi": "cffi",
    "cfgv": "cfgv",
    "charset_normalizer": "charset-normalizer",
    "click": "click",
    "click_didyoumean": "click-didyoumean",
    "click_plugins": "click-plugins",
    "click_repl": "click-repl",
    "cloudpickle": "cloudpickle",
    "colorama": "colorama",
    "configobj": "configobj",
    "contourpy": "contourpy",
    "cryptography": "cryptography",
    "cycler": "cycler",
    "databricks": "databricks-sdk",
    "dateutil": "python-dateutil",
    "dictdiffer": "dictdiffer",
    "diskcache": "diskcache",
    "distlib": "distlib",
    "distro": "distro",
    "docker": "docker",
    "dotenv": "python-dotenv",
    "dpath": "dpath",
    "dulwich": "dulwich",
    "dvc": "dvc",
    "dvc_data": "dvc-data",
    "dvc_http": "dvc-http",
    "dvc_objects": "dvc-objects",
    "dvc_render": "dvc-render",
    "dvc_studio_client": "dvc-studio-client",
    "dvc_task": "dvc-task",
    "entrypoints": "entrypoints",
    "fastapi": "fastapi",
    "filelock": "filelock",
    "flask": "flask",
    "flask_cors": "flask-cors",
    "flatbuffers": "flatbuffers",
    "flatten_dict": "flatten-dict",
    "flufl": "flufl-lock",
    "frozenlist": "frozenlist",
    "fsspec": "fsspec",
    "functorch": "torch",
    "funcy": "funcy",
    "git": "gitpython",
    "gitdb": "gitdb",
    "google": "google-auth, protobuf",
    "grandalf": "grandalf",
    "graphene": "graphene",
    "graphql": "graphql-core",
    "graphql_relay": "graphql-relay",
    "great_expectations": "great-expectations",
    "gto": "gto",
    "gunicorn": "gunicorn",
    "h11": "h11",
    "httptools": "httptools",
    "huey": "huey",
    "hydra": "hydra-core",
    "identify": "identify",
    "idna": "idna",
    "importlib_metadata": "importlib-metadata",
    "in_toto_attestation": "in-toto-attestation",
    "iniconfig": "iniconfig",
    "isympy": "sympy",
    "iterative_telemetry": "iterative-telemetry",
    "itsdangerous": "itsdangerous",
    "jinja2": "jinja2",
    "joblib": "joblib",
    "jsonschema": "jsonschema",
    "jsonschema_specifications": "jsonschema-specifications",
    "kiwisolver": "kiwisolver",
    "kombu": "kombu",
    "mako": "mako",
    "markdown_it": "markdown-it-py",
    "markupsafe": "markupsafe",
    "marshmallow": "marshmallow",
    "matplotlib": "matplotlib",
    "mdurl": "mdurl",
    "mistune": "mistune",
    "ml_dtypes": "ml-dtypes",
    "mlflow": "mlflow, mlflow-skinny, mlflow-tracing",
    "mpl_toolkits": "matplotlib",
    "mpmath": "mpmath",
    "multidict": "multidict",
    "narwhals": "narwhals",
    "networkx": "networkx",
    "nodeenv": "nodeenv",
    "numpy": "numpy",
    "omegaconf": "omegaconf",
    "onnx": "onnx",
    "onnx_ir": "onnx-ir",
    "onnxruntime": "onnxruntime",
    "onnxscript": "onnxscript",
    "opentelemetry": "opentelemetry-api, opentelemetry-proto, opentelemetry-sdk, opentelemetry-semantic-conventions",
    "orjson": "orjson",
    "packaging": "packaging",
    "pandas": "pandas",
    "pathspec": "pathspec",
    "platformdirs": "platformdirs",
    "pluggy": "pluggy",
    "pre_commit": "pre-commit",
    "pre_commit_uv": "pre-commit-uv",
    "prettytable": "prettytable",
    "prometheus_client": "prometheus-client",
    "prompt_toolkit": "prompt-toolkit",
    "propcache": "propcache",
    "psutil": "psutil",
    "public": "atpublic",
    "py": "pytest",
    "pyarrow": "pyarrow",
    "pyasn1": "pyasn1",
    "pyasn1_modules": "pyasn1-modules",
    "pycparser": "pycparser",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic-core",
    "pydantic_settings": "pydantic-settings",
    "pydevd_plugins": "omegaconf",
    "pydot": "pydot",
    "pygit2": "pygit2",
    "pygments": "pygments",
    "pygtrie": "pygtrie",
    "pylab": "matplotlib",
    "pyparsing": "pyparsing",
    "pytest": "pytest",
    "python_discovery": "python-discovery",
    "referencing": "referencing",
    "requests": "requests",
    "rich": "rich",
    "rpds": "rpds-py",
    "ruamel": "ruamel-yaml",
    "ruff": "ruff",
    "scipy": "scipy",
    "scmrepo": "scmrepo",
    "securesystemslib": "securesystemslib",
    "semver": "semver",
    "setuptools": "setuptools",
    "shellingham": "shellingham",
    "shortuuid": "shortuuid",
    "shtab": "shtab",
    "six": "six",
    "skl2onnx": "skl2onnx",
    "sklearn": "scikit-learn",
    "skops": "skops",
    "smmap": "smmap",
    "sqlalchemy": "sqlalchemy",
    "sqlparse": "sqlparse",
    "sqltrie": "sqltrie",
    "starlette": "starlette",
    "sympy": "sympy",
    "tabulate": "tabulate",
    "threadpoolctl": "threadpoolctl",
    "tomlkit": "tomlkit",
    "torch": "torch",
    "torchgen": "torch",
    "tqdm": "tqdm",
    "typer": "typer",
    "typing_extensions": "typing-extensions",
    "typing_inspection": "typing-inspection",
    "tzlocal": "tzlocal",
    "urllib3": "urllib3",
    "uv": "uv",
    "uvicorn": "uvicorn",
    "uvloop": "uvloop",
    "validate": "configobj",
    "vine": "vine",
    "virtualenv": "virtualenv",
    "voluptuous": "voluptuous",
    "wcwidth": "wcwidth",
    "werkzeug": "werkzeug",
    "yaml": "pyyaml",
    "yarl": "yarl",
    "zc": "zc-lockfile",
    "zipp": "zipp",
}
# --- end: written by scripts/locked_modules.py ---


if __name__ == "__main__":
    sys.exit(main())
