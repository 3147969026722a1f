"""A Prometheus on 127.0.0.1 for the gitops tests: Debian's package, a configuration given as data, a fresh TSDB."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlci.certify.process import ServerProcess, free_port


def start(folder: Path, config: dict[str, Any]) -> tuple[str, ServerProcess]:
    """Prometheus running `config` (prometheus.yml's content) from `folder`, once ready: its URL and process."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ServerProcess(
        [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        f"{url}/-/ready",
        folder / "prometheus.log",
    ).start(timeout=60)  # fmt: skip
    return url, process
