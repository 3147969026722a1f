"""A project made with cruft takes the template's later changes: `cruft update` merges them into the project's own
edits, the vendored mlci included, and the post-generation hook does under it what it does at the first bake."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bakery import Timed, commit_all, run, template_repo

TEMPLATE_README_LINE = "A paragraph the template added after the project was made."
PROJECT_README_LINE = "A paragraph the project's own people wrote."
MLCI_CHANGE = "TEMPLATE_UPDATE = 2  # a change to mlci's code, made in the template\n"
SIBLING_MLCI = "SIBLING_CHECKOUT = 1  # this mlci is a checkout beside the template\n"
MLCI_INIT = Path("src", "mlci", "__init__.py")


def cruft(*args: str, cwd: Path) -> Timed:
    return run([sys.executable, "-m", "cruft", *args], cwd)


def changed_paths(project: Path) -> set[str]:
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], project).check().stdout
    return {line[3:] for line in status.splitlines()}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize("mlci_source", [None, "../mlci"], ids=["default", "relative-path"])
def test_an_update_merges_the_template_into_a_project_with_its_own_edits(tmp_path, mlci_source):
    template = template_repo(tmp_path / "template")
    if mlci_source:  # an mlci checkout beside the template; relative paths are read from the template's folder
        shutil.copytree(template / "ci", tmp_path / "mlci")
        append(tmp_path / "mlci" / MLCI_INIT, SIBLING_MLCI)
    context = json.dumps({"mlci_source": mlci_source} if mlci_source else {})
    out = tmp_path / "out"
    cruft(
        "create", str(template), "--output-dir", str(out), "--no-input", "--extra-context", context, cwd=tmp_path
    ).check()
    project = out / "tumor-classifier"
    assert json.loads((project / ".cruft.json").read_text())["template"] == str(template)
    commit_all(project, "Start from the template")
    readme = project / "README.md"
    title, rest = readme.read_text().split("\n", 1)
    readme.write_text(f"{title}\n\n{PROJECT_README_LINE}\n{rest}")
    commit_all(project, "Our own words")

    append(template / "{{cookiecutter.project}}" / "README.md", f"\n{TEMPLATE_README_LINE}\n")
    append(template / "ci" / MLCI_INIT, MLCI_CHANGE)
    commit_all(template, "The template moves on")
    assert cruft("check", "--project-dir", str(project), cwd=tmp_path).returncode == 1

    updated = cruft("update", "--project-dir", str(project), "--skip-apply-ask", cwd=tmp_path).check()
    assert "Good work" in updated.stdout, updated.stdout + updated.stderr

    text = readme.read_text()
    assert PROJECT_README_LINE in text and TEMPLATE_README_LINE in text
    vendored = (project / "vendor" / "mlci" / MLCI_INIT).read_text()
    # The template's own ci/ follows the template; a checkout elsewhere stays what the first bake copied.
    assert (MLCI_CHANGE in vendored) == (mlci_source is None)
    assert (SIBLING_MLCI in vendored) == (mlci_source is not None)
    # Nothing else moved: the hook chose the same framework files, wrote the same requirements, left no plan file.
    expected = {".cruft.json", "README.md"} | ({f"vendor/mlci/{MLCI_INIT}"} if mlci_source is None else set())
    assert changed_paths(project) == expected
    assert run(["git", "rev-list", "--count", "HEAD"], project).check().stdout.strip() == "2"

    commit_all(project, "Take the template's changes")
    assert cruft("check", "--project-dir", str(project), cwd=tmp_path).returncode == 0
