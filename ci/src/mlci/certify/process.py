"""A server run as a child process, for benchmarks, tests and the serving gates: start, wait, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from ..errors import MlciError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers too, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def send(base: str, method: str, path: str, body: bytes, content_type: str, declared_length: int | None = None) -> int:
    """The status a server at `base` (http://host:port) answers a raw request with, whatever the request holds
    (a Content-Length that lies, say); 0 when the connection fails."""
    import http.client

    host, port = base.removeprefix("http://").split(":")
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.putrequest(method, path)
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body) if declared_length is None else declared_length))
        connection.endheaders(body)
        status = connection.getresponse().status
        connection.close()
        return status
    except OSError:
        return 0


class ServerProcess:
    """`command` in its own process group, logging to `log`; `start` returns once `ready_url` answers 200."""

    def __init__(
        self, command: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.command = command
        self.cwd = cwd
        self.ready_url = ready_url
        self.log_path = log
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MlciError(
                    f"{self.command[0]} exited with {self.process.returncode} before it was ready:\n"
                    f"{self.log()[-3000:]}"
                )
            try:
                if get(self.ready_url, timeout=2.0)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise MlciError(
            f"{self.command[0]} was not ready at {self.ready_url} after {timeout:.0f} s:\n{self.log()[-3000:]}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the process group, wait, SIGKILL what is left; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
