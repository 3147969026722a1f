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
    "tests/test_images.py": 180,
    "tests/test_pipeline.py::TestPytorchProject": 140,
    "tests/test_canary.py": 120,
    "tests/test_pipeline.py::TestPytorchRegression": 80,
    "ci/tests/gitops/test_release.py": 55,
    "tests/test_pipeline.py::TestAMixedTable": 55,
    "tests/test_pipeline.py::TestAMixedRegressionTable": 50,
    "ci/tests/certify/test_certify_faults.py": 35,
    "tests/test_python_versions.py::TestPython312": 32,
    "tests/test_shadow.py": 30,
    "tests/test_workflows.py": 30,
    "tests/test_python_versions.py::TestPython313": 26,
    "ci/tests/packaging/test_packaging_mixed_tables.py": 25,
}
# Units that mostly wait (on Prometheus' rule evaluations, on a server's injected pauses): 65 s of a worker's
# time for 30 s of CPU. With --waiting-worker the last worker runs these and nothing else, beside the others,
# whose CPU-bound units would otherwise stand idle behind them. Not the canary analysis: its healthy canary's p99
# against the stable's (1.5 times, plus 10 ms) broke with two CPU-bound workers beside it, as it does not with one.
WAITING_UNITS = {"tests/test_shadow.py", "ci/tests/certify/test_certify_faults.py"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--waiting-worker", action="store_true",
        help="with xdist's loadscope: the last worker runs the units that mostly wait (WAITING_UNITS), only those",
    )  # fmt: skip


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """loadscope, its costliest units first (COSTLIEST_UNITS), and with --waiting-worker its last worker kept for
    the units that mostly wait; other modes as xdist has them."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CostliestFirst(LoadScopeScheduling):  # type: ignore[misc]
        def _waits(self, node: object) -> bool:
            """Whether `node` is the worker kept for the waiting units: the last of those the run began with."""
            last = f"gw{self.numnodes - 1}"
            return bool(config.getoption("waiting_worker")) and self.numnodes > 1 and node.gateway.id == last

        def _units_for(self, node: object) -> list[str]:
            """The units `node` may take: the waiting worker only waiting units; another worker any other unit,
            and the waiting ones too once nothing else is left."""
            if self._waits(node):
                return [scope for scope in self.workqueue if scope in WAITING_UNITS]
            others = [scope for scope in self.workqueue if scope not in WAITING_UNITS]
            return others or list(self.workqueue)

        def _assign_work_unit(self, node: object) -> None:
            units = self._units_for(node)
            if not units:
                return
            costliest = max(units, key=lambda scope: COSTLIEST_UNITS.get(scope, 0))
            self.workqueue.move_to_end(costliest, last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node: object) -> None:
            if not node.shutting_down and self.workqueue and not self._units_for(node):
                node.shutdown()  # the waiting worker, with no waiting unit left: it finishes what it holds
                return
            super()._reschedule(node)

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
