"""Fixtures: a real model saved by MLflow, packaged by mlci, and a real server process on loopback."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlci.certify.process import ServerProcess, free_port
from mlci.model.manifest import ServedModel
from mlci.package import package
from models import save_mixed_model, save_sklearn_forest

MLCI = str(Path(sys.executable).parent / "mlci")
# The template's scripts (a local deployment repo, a reviewer's merge) serve the gitops tests too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


@pytest.fixture(scope="session")
def forest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sklearn_forest(tmp_path_factory.mktemp("forest") / "model", trees=20)


@pytest.fixture(scope="session")
def forest_package(forest_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    return package(str(forest_dir), tmp_path_factory.mktemp("packaged") / "forest", version="7", log=lambda _: None)


def start_server(served: ServedModel, log: Path, *options: str) -> ServerProcess:
    port = free_port()
    command = [MLCI, "serve", str(served.directory), "--port", str(port), *options]
    return ServerProcess(command, f"http://127.0.0.1:{port}/readyz", log).start(timeout=60)


@pytest.fixture(scope="session")
def server(forest_package: ServedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process = start_server(
        forest_package,
        tmp_path_factory.mktemp("server") / "serve.log",
        "--drift-window",
        "200",
        "--max-rows",
        "500",
        "--max-body-bytes",
        "200000",
    )
    try:
        yield Server(process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def mixed_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServedModel, Path]:
    """A mixed table's model (text, integers, missing values) packaged, and the MLflow model it came from."""
    folder = tmp_path_factory.mktemp("mixed")
    source = save_mixed_model(folder / "model")
    return package(str(source), folder / "serving", version="3", log=lambda _: None), source


@pytest.fixture(scope="session")
def mixed_server(mixed_package: tuple[ServedModel, Path]) -> Iterator[tuple[Server, Path]]:
    """`mlci serve` on a mixed table's model (text, integers, missing values), and the MLflow model it came from."""
    served, source = mixed_package
    process = start_server(served, served.directory.parent / "serve.log", "--drift-window", "100")
    try:
        yield Server(process), source
    finally:
        process.stop()


class Server:
    """A running `mlci serve` and the requests a test makes to it."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.url = process.ready_url.rsplit("/", 1)[0]

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Content-Type": content_type} if body is not None else {}
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def post(self, path: str, document: Any) -> tuple[int, Any]:
        status, body, _ = self.request("POST", path, json.dumps(document).encode())
        return status, json.loads(body)

    def get(self, path: str) -> tuple[int, bytes]:
        status, body, _ = self.request("GET", path)
        return status, body

    def metrics(self) -> Series:
        """The /metrics exposition as {series with labels: value}."""
        status, body = self.get("/metrics")
        assert status == 200
        series = Series()
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                series[name] = float(value)
        return series


LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')


def canonical(series: str) -> str:
    """A series name with its labels in sorted order: the exposition format gives their order no meaning."""
    name, _, labels = series.partition("{")
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(LABEL.findall(labels))) + "}"


class Series(dict[str, float]):
    """Series by name and labels, found whatever order a key gives the labels in."""

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(canonical(key), value)

    def __getitem__(self, key: str) -> float:
        return super().__getitem__(canonical(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(canonical(key))

    def get(self, key: str, default: float | None = None) -> float | None:  # type: ignore[override]
        return super().get(canonical(key), default)
