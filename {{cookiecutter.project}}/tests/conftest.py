"""Shared fixtures: a small slice of the project's own data set and its params.

A test marked `@pytest.mark.task("classification")` (or "regression") runs only when params.yaml's task is that one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.ingest import read_source
from {{ cookiecutter.package_name }}.params import Params, load_params

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(PROJECT_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def dataset(params: Params) -> pd.DataFrame:
    return read_source(params.ingest)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root holding only params.yaml, as the current directory."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "task(name): runs only when params.yaml's task is `name`")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    task = load_params(PROJECT_ROOT / "params.yaml").task
    for item in items:
        marker = item.get_closest_marker("task")
        if marker is not None and marker.args[0] != task:
            item.add_marker(pytest.mark.skip(reason=f"for a {marker.args[0]} (params.yaml's task is {task})"))
