"""The layout of mlci: subsystems with a stated purpose, an import contract that lint-imports enforces (and that
breaks when a serving module imports gitops), a serving runtime whose requirements follow from that contract, and
the public API that generated projects import."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp
import pytest

import mlci

CI = Path(__file__).resolve().parents[1]
PACKAGE = Path(mlci.__file__).parent
TEMPLATE_PROJECT = CI.parent / "{{cookiecutter.project}}"
SUBSYSTEMS = ("model", "serving", "packaging", "certify", "gitops", "trust")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def pyproject() -> dict:
    return tomllib.loads((CI / "pyproject.toml").read_text())


def test_each_subsystem_says_in_a_line_what_it_is_and_the_top_holds_at_most_eight_modules():
    for name in SUBSYSTEMS:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and doc.splitlines()[0].strip(), f"mlci.{name} has no docstring"
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    assert {"cli.py", "errors.py", "__main__.py"} <= set(top)


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(CI / "pyproject.toml")],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_import_contract_holds():
    done = lint_imports(CI)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_serving_module_that_imports_gitops_breaks_the_contract(tmp_path):
    copy = tmp_path / "src" / "mlci"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "serving" / "openapi.py").open("a") as module:
        module.write("\nfrom ..gitops import status  # noqa: E402,F401\n")
    done = lint_imports(tmp_path, pythonpath=tmp_path / "src")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "serving imports only model: it is what the serving image runs BROKEN" in done.stdout
    assert "mlci.serving.openapi -> mlci.gitops.status" in done.stdout


def _distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_serving_runtime_needs_only_the_base_dependencies():
    """What mlci.serving imports, with everything it imports in turn, is the serving image's runtime: every
    third-party package in it is one of the base dependencies (no extra), but for the MLflow pyfunc runtime's own,
    which the contract names and a pyfunc serving image installs from the project's training lock."""
    graph = grimp.build_graph("mlci", include_external_packages=True, cache_dir=None)
    upstream = graph.find_upstream_modules("mlci.serving", as_package=True)
    internal = {m for m in upstream if m.startswith("mlci")}
    assert internal <= {"mlci", "mlci.errors", "mlci.files"} | {m for m in internal if m.startswith("mlci.model")}
    external = {m for m in upstream if not m.startswith("mlci") and m not in sys.stdlib_module_names}
    contract = next(c for c in pyproject()["tool"]["importlinter"]["contracts"] if "training stack" in c["name"])
    pyfunc_only = {rule.split(" -> ")[1] for rule in contract["ignore_imports"]}
    assert pyfunc_only <= external  # the exemptions are still needed
    installed = packages_distributions()
    needed = {_distribution(installed[m][0]) for m in external - pyfunc_only}
    declared = {_distribution(re.split(r"[<>=;\[ ]", d, maxsplit=1)[0]) for d in pyproject()["project"]["dependencies"]}
    assert needed <= declared, f"the serving runtime imports {sorted(needed - declared)}, not base dependencies"


def public_api() -> list[str]:
    """The names ci/README.md lists as mlci's public API: `module.name` in its Public API section."""
    readme = (CI / "README.md").read_text()
    section = readme.split("## Public API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- `(mlci(?:\.\w+)+)`", section, flags=re.MULTILINE)


def test_the_public_api_resolves_to_the_implementation():
    from mlci.drift import feature_baseline
    from mlci.errors import MlciError, ModelError
    from mlci.model.baseline import feature_baseline as implementation
    from mlci.package import package
    from mlci.packaging.package import package as packaging

    assert feature_baseline is implementation and package is packaging and issubclass(ModelError, MlciError)
    names = public_api()
    assert names, "ci/README.md lists no public API"
    for dotted in names:
        module, _, name = dotted.rpartition(".")
        assert hasattr(__import__(module, fromlist=[name]), name), dotted


def test_generated_code_imports_only_the_public_api():
    """Every `from mlci... import ...` in the template's project (its files are Jinja, so read as text)."""
    listed = set(public_api())
    imported = set()
    for path in TEMPLATE_PROJECT.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*import mlci", text, flags=re.MULTILINE), f"{path}: import mlci"
        for module, names in re.findall(r"^\s*from (mlci[\w.]*) import ([\w ,]+)$", text, flags=re.MULTILINE):
            imported |= {f"{module}.{name.split(' as ')[0].strip()}" for name in names.split(",")}
    assert imported, "the generated project imports nothing of mlci: the scan is looking in the wrong place"
    assert imported <= listed, f"generated code imports {sorted(imported - listed)}, which the public API lacks"


@pytest.mark.parametrize(
    ("choice", "domain"),
    [
        ("Runtime", "mlci.packaging.package:RUNTIMES"),
        ("Forge", "mlci.gitops.github:FORGES"),
        ("Environment", "mlci.gitops.proposal:ENVIRONMENTS"),
        ("Format", "mlci.gitops.status:FORMATS"),
    ],
)
def test_cli_choices_are_the_ones_the_commands_take(choice, domain):
    from mlci import cli

    module, _, name = domain.partition(":")
    values = getattr(__import__(module, fromlist=[name]), name)
    assert [member.value for member in getattr(cli, choice)] == list(values)
