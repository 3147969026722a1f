"""Bench: `mlci serve` against `mlflow models serve`, the same model, the same load, one run.

Trains a 100-tree random forest on breast cancer, serves it with `mlflow models serve
--env-manager local` and with `mlci serve` (one worker each, validation and metrics on), drives
both with wrk (8 connections, single-row requests, then 100-row batches) and prints requests/s,
p50 and p99 of both, and the ratios. Target: at least 50x the throughput of MLflow on single rows,
with a p99 of at most 5 ms. Needs wrk (Debian package `wrk`) on the PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci" / "tests"))

from mlci.certify.process import ServerProcess, free_port  # noqa: E402
from mlci.package import package  # noqa: E402
from models import save_sklearn_forest  # noqa: E402

CONNECTIONS = 8
SECONDS = 10
THROUGHPUT_TARGET = 50.0
P99_TARGET_MS = 5.0


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def percentiles(out: str) -> dict[int, float]:
    """wrk's latency distribution block (`--latency`), percent -> ms; the thread-stats line above it, whose last
    column is a share like `74.50%`, is not part of it."""
    block = re.search(r"Latency Distribution\n((?:[ \t]+\d+%[ \t]+\S+\n)+)", out)
    if block is None:
        raise ValueError("wrk printed no latency distribution (run it with --latency)")
    return {int(p): _ms(v) for p, v in re.findall(r"^[ \t]+(\d+)%[ \t]+(\S+)$", block.group(1), flags=re.M)}


def drive(url: str, body: str, seconds: int = SECONDS) -> Load:
    """wrk with one thread and CONNECTIONS connections POSTing `body` for `seconds`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n')
        script.write('wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    latency = percentiles(out)
    return Load(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=latency[50],
        p99_ms=latency[99],
        errors=(int(errors.group(1)) if errors else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    )


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is not on the PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).data
    columns = list(features.columns)
    single = json.dumps({"dataframe_split": {"columns": columns, "data": features.iloc[[7]].values.tolist()}})
    batch = json.dumps({"dataframe_split": {"columns": columns, "data": features.iloc[:100].values.tolist()}})
    results: dict[str, dict[str, Load]] = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        model = save_sklearn_forest(scratch / "model", trees=100)
        served = package(str(model), scratch / "package")
        bin_dir = Path(sys.executable).parent
        mlflow_port, mlci_port = free_port(), free_port()
        servers = {
            "mlflow models serve": ServerProcess(
                [
                    str(bin_dir / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(model),
                    "--env-manager",
                    "local",
                    "--host",
                    "127.0.0.1",
                    "-p",
                    str(mlflow_port),
                ],
                f"http://127.0.0.1:{mlflow_port}/ping",
                scratch / "mlflow.log",
                env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},  # it execs `uvicorn`
            ),
            "mlci serve": ServerProcess(
                [
                    str(bin_dir / "mlci"),
                    "serve",
                    str(served.directory),
                    "--port",
                    str(mlci_port),
                    "--log-level",
                    "warning",
                ],
                f"http://127.0.0.1:{mlci_port}/readyz",
                scratch / "mlci.log",
            ),
        }
        for name, server in servers.items():
            with server:
                url = server.ready_url.rsplit("/", 1)[0] + "/invocations"
                drive(url, single, seconds=2)  # warm-up
                results[name] = {"single row": drive(url, single), "100-row batch": drive(url, batch)}
    print(f"{'server':<22}{'load':<16}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, loads in results.items():
        for load_name, load in loads.items():
            print(
                f"{name:<22}{load_name:<16}{load.requests_per_s:>12.0f}{load.p50_ms:>10.2f}"
                f"{load.p99_ms:>10.2f}{load.errors:>8}"
            )
    peer, ours = results["mlflow models serve"], results["mlci serve"]
    for load_name in ours:
        ratio = ours[load_name].requests_per_s / peer[load_name].requests_per_s
        print(f"throughput ratio, {load_name}: {ratio:.1f}x")
    ratio = ours["single row"].requests_per_s / peer["single row"].requests_per_s
    p99 = ours["single row"].p99_ms
    met = ratio >= THROUGHPUT_TARGET and p99 <= P99_TARGET_MS and not any(load.errors for load in ours.values())
    print(
        f"target (single row: >= {THROUGHPUT_TARGET:.0f}x, p99 <= {P99_TARGET_MS:.0f} ms, no errors): "
        f"{'met' if met else 'MISSED'} ({ratio:.1f}x, p99 {p99:.2f} ms)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
