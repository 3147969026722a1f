"""Bench: `mlci serve --workers 2` against one worker, single-row requests, 5 runs.

Both servers serve the 100-tree forest of serve_vs_mlflow.py exported to ONNX, and stay up through the bench;
in each run wrk (1 thread, 8 connections, 5 s after a 1 s warm-up) drives one, then the other. The workers
listen on one port each through SO_REUSEPORT, so the kernel spreads the 8 connections over them. Prints each
run's requests/s and the ratio. Target (issue 2.4): 2 workers at 1.5x one worker or better in every run.
wrk runs on the same machine and takes its share of the cores: on a 2-core machine that share bounds the
ratio. Needs wrk on the PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci" / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from serve_vs_mlflow import drive  # noqa: E402

from mlci.certify.process import ServerProcess, free_port  # noqa: E402
from mlci.package import package  # noqa: E402
from models import save_sklearn_forest  # noqa: E402

TARGET = 1.5
RUNS = 5
SECONDS = 5


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is not on the PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).data
    body = json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.iloc[[7]].values.tolist()}})
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as scratch_name, contextlib.ExitStack() as running:
        scratch = Path(scratch_name)
        served = package(
            str(save_sklearn_forest(scratch / "model", trees=100)), scratch / "package", log=lambda _: None
        )
        urls = {}
        for workers in (1, 2):
            port = free_port()
            command = [str(Path(sys.executable).parent / "mlci"), "serve", str(served.directory), "--port", str(port),
                       "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
            server = ServerProcess(command, f"http://127.0.0.1:{port}/readyz", scratch / f"{workers}.log")
            running.enter_context(server.start(timeout=120))
            urls[workers] = f"http://127.0.0.1:{port}/invocations"
        ratios = []
        print(f"{'run':<5}{'1 worker req/s':>16}{'2 workers req/s':>17}{'ratio':>8}")
        for run in range(1, RUNS + 1):
            rates = {}
            for workers, url in urls.items():
                drive(url, body, seconds=1)
                rates[workers] = drive(url, body, seconds=SECONDS).requests_per_s
            ratios.append(rates[2] / rates[1])
            print(f"{run:<5}{rates[1]:>16.0f}{rates[2]:>17.0f}{ratios[-1]:>7.2f}x")
    met = all(r >= TARGET for r in ratios)
    print(f"target (2 workers at {TARGET}x one worker in every run): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
