"""Fixtures shared by the template's tests."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bakery import SHARED_VENVS  # noqa: E402

# One pre-commit hook cache for every baked project of the session: hook environments build once.
os.environ.setdefault("PRE_COMMIT_HOME", str(ROOT / "build" / "pre-commit-cache"))


# The longest scopes first (worker seconds in one run of the suite here, longest first): with
# --no-loadscope-reorder (make test), xdist's loadscope hands scopes out in collection order, so these start
# before the short ones, which then even out the workers' ends (its own order is by number of tests).
LONGEST_FIRST = (
    "tests/test_pipeline.py::TestSklearnProject",  # 308 s
    "tests/test_pipeline.py::TestPytorchProject",  # 176 s
    "tests/test_images.py",  # 154 s
    "tests/test_demo.py",  # 135 s
    "tests/test_canary.py",  # 88 s
    "tests/test_pipeline.py::TestPytorchRegression",  # 88 s
    "tests/test_pipeline.py::TestAMixedTable",  # 64 s
    "tests/test_pipeline.py::TestAMixedRegressionTable",  # 53 s
    "ci/tests/gitops/test_release.py",  # 51 s
    "tests/test_workflows.py",  # 39 s
    "tests/test_python_versions.py::TestPython312",  # 38 s
    "tests/test_python_versions.py::TestPython313",  # 34 s
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        for i, scope in enumerate(LONGEST_FIRST):
            if item.nodeid == scope or item.nodeid.startswith(scope + "::"):
                return i
        return len(LONGEST_FIRST)

    items.sort(key=rank)  # a stable sort: within a scope, and among the rest, the order stays


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: bakes a project and runs its pipeline for real")
    if not hasattr(config, "workerinput"):  # the controller: its xdist workers inherit the variable
        # Baked projects with the same locks share one compiled .venv (bakery.setup): the first runs `make setup`.
        # In the temporary folder, as pytest's own folders are: hard links need one file system.
        os.environ[SHARED_VENVS] = tempfile.mkdtemp(prefix="shared-venvs-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and SHARED_VENVS in os.environ:
        shutil.rmtree(os.environ.pop(SHARED_VENVS), ignore_errors=True)  # hard links: the projects keep theirs


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what tests measured with record_property (build times, image sizes): they are never asserted."""
    measured = [
        (report.nodeid.split("::")[-1], name, value)
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call"
        for name, value in report.user_properties
    ]
    if measured:
        terminalreporter.section("measured")
        for _, name, value in measured:
            terminalreporter.write_line(f"{name}: {value}")
