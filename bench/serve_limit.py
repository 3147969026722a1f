"""Bench: `mlci serve` against the limit of a Python server on the same ONNX file, on every route, one run.

The limit is bench/bare_asgi.py: uvicorn, httptools, uvloop, orjson and onnxruntime, no validation, metrics or
drift. Both serve the 100-tree forest of serve_vs_mlflow.py exported to ONNX, one worker each; wrk (1 thread, 8
connections) drives single rows and 100-row batches on /invocations (dataframe_split) and v2 infer (one 'input'
tensor), the two servers in turn, 3 rounds of 3 s each per load; the best round of each counts. Prints
requests/s of each and the ratio mlci / limit. Target (issue 2.4): 0.85x or better everywhere.
Needs wrk on the PATH.
"""

from __future__ import annotations

import contextlib
import json
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

TARGET = 0.85
SECONDS = 3
ROUNDS = 3  # per load and server, in turn; the best of each is kept


def bodies(frame) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """(route, body) per load: single rows and 100-row batches, on both protocols."""
    columns = list(frame.columns)
    found = {}
    for label, rows in (("1 row", frame.iloc[[7]]), ("100 rows", frame.iloc[:100])):
        data = rows.values.tolist()
        found[f"/invocations, {label}"] = (
            "/invocations",
            json.dumps({"dataframe_split": {"columns": columns, "data": data}}),
        )
        tensor = {"name": "input", "shape": [len(data), len(columns)], "datatype": "FP32", "data": data}
        found[f"v2 infer, {label}"] = ("/v2/models/{name}/infer", json.dumps({"inputs": [tensor]}))
    return found


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is not on the PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).data
    loads = bodies(frame)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        served = package(
            str(save_sklearn_forest(scratch / "model", trees=100)), scratch / "package", log=lambda _: None
        )
        if served.runtime != "onnx":
            print(f"bench: the forest was not exported to ONNX ({served.runtime})", file=sys.stderr)
            return 2
        bin_dir = Path(sys.executable).parent
        limit_port, mlci_port = free_port(), free_port()
        servers = {
            "bare ASGI (the limit)": ServerProcess(
                [sys.executable, str(ROOT / "bench" / "bare_asgi.py"), str(served.artifact_path),
                 served.onnx["input"], served.onnx["output"], served.onnx["dtype"], str(limit_port)],
                f"http://127.0.0.1:{limit_port}/invocations", scratch / "bare.log",
            ),
            "mlci serve": ServerProcess(
                [str(bin_dir / "mlci"), "serve", str(served.directory), "--port", str(mlci_port), "--log-level",
                 "warning"],
                f"http://127.0.0.1:{mlci_port}/readyz", scratch / "mlci.log",
            ),
        }  # fmt: skip
        with contextlib.ExitStack() as running:
            for server in servers.values():
                running.enter_context(server)
            bases = {name: server.ready_url.rsplit("/", 1)[0] for name, server in servers.items()}
            for load, (route, body) in loads.items():
                for base in bases.values():
                    drive(base + route.format(name=served.name), body, seconds=1)  # warm-up
                for _ in range(ROUNDS):  # the two in turn, so that a slow spell of the machine hits both
                    for name, base in bases.items():
                        measured = drive(base + route.format(name=served.name), body, seconds=SECONDS)
                        if measured.errors:
                            print(f"bench: {name} answered {measured.errors} errors on {load}", file=sys.stderr)
                            return 2
                        best = results.setdefault(name, {})
                        best[load] = max(best.get(load, 0.0), measured.requests_per_s)
    limit, ours = results["bare ASGI (the limit)"], results["mlci serve"]
    print(f"{'load':<26}{'limit req/s':>14}{'mlci req/s':>14}{'ratio':>8}")
    ratios = {}
    for load in loads:
        ratios[load] = ours[load] / limit[load]
        print(f"{load:<26}{limit[load]:>14.0f}{ours[load]:>14.0f}{ratios[load]:>7.2f}x")
    met = all(r >= TARGET for r in ratios.values())
    print(f"target (every load at {TARGET}x the limit or better): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
