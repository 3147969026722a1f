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
