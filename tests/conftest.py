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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: bakes a project and runs its pipeline for real")
    # Python writes the bytecode of what it imports (the shared .venvs compile none at set-up: bakery.setup).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if not hasattr(config, "workerinput"):  # the controller: its xdist workers inherit the variable
        # Baked projects with the same locks share one .venv (bakery.setup): the first runs `make setup`.
        # In the temporary folder, as pytest's own folders are: hard links need one file system.
        os.environ[SHARED_VENVS] = tempfile.mkdtemp(prefix="shared-venvs-")


# What the costliest work units of `make test` (xdist's loadscope: a class, else a module) took on the 2-core
# machine, in seconds of one worker (their --durations summed). Scheduling only: the costliest go first, so that
# the run does not end with one worker on a long unit and the other idle (the longest-processing-time rule).
# A unit not listed goes after these, in xdist's own order.
COSTLIEST_UNITS = {
    "tests/test_pipeline.py::TestSklearnProject": 300,
    "tests/test_images.py": 200,
    "tests/test_pipeline.py::TestPytorchProject": 195,
    "tests/test_canary.py": 130,
    "tests/test_pipeline.py::TestPytorchRegression": 90,
    "ci/tests/gitops/test_release.py": 70,
    "tests/test_pipeline.py::TestAMixedTable": 65,
    "tests/test_pipeline.py::TestAMixedRegressionTable": 55,
    "tests/test_shadow.py": 45,
    "tests/test_python_versions.py::TestPython312": 40,
    "tests/test_python_versions.py::TestPython313": 40,
    "ci/tests/packaging/test_packaging_mixed_tables.py": 37,
    "tests/test_workflows.py": 33,
    "ci/tests/certify/test_certify_faults.py": 32,
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """loadscope, its costliest units first (COSTLIEST_UNITS); other modes as xdist has them."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CostliestFirst(LoadScopeScheduling):  # type: ignore[misc]
        def _assign_work_unit(self, node: object) -> None:
            costliest = max(self.workqueue, key=lambda scope: COSTLIEST_UNITS.get(scope, 0))
            self.workqueue.move_to_end(costliest, last=False)
            super()._assign_work_unit(node)

    return CostliestFirst(config, log)


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
