"""Bench: `mlci serve` against the peer model servers, each on the same model and its own protocol, in one run.

The model is serve_limit.py's: the 100-tree forest of ci/tests/models.py, packaged by mlci (ONNX). Each server
gets one worker process, intra-op threads 1 where it can be told (onnxruntime sessions: intra- and inter-op 1;
OMP_NUM_THREADS=1 in every peer's environment), and per-request log lines off where it can be told (mlci runs at
--log-level warning):

- mlci serve: `mlci serve PACKAGE --log-level warning` (one worker), measured on both of its protocols:
  /invocations (dataframe_split) and v2 infer (one 'input' tensor).
- MLServer + mlserver-sklearn, on the sklearn Pipeline (loaded by mlflow.sklearn, dumped by joblib):
  bench/peers/mlserver_sklearn/, `mlserver start`, v2 infer asking for predict_proba (parameters.extra.predict_fn);
  settings: debug false (no access log), parallel_workers 0 (inference in the server's own process: twice the
  throughput of the default parallel_workers 1, an inference process beside it, here), gRPC and metrics servers on
  as by default; PYTHONWARNINGS=ignore, since scikit-learn warns on every request that the matrix has no feature
  names.
- MLServer + a custom runtime (bench/peers/mlserver_onnx/onnx_runtime.py, an mlserver.MLModel on onnxruntime) on
  mlci's ONNX file: the same settings, v2 infer.
- KServe: bench/peers/kserve_onnx.py, a kserve.Model on onnxruntime on mlci's ONNX file; `--workers 1
  --enable_grpc false --enable_latency_logging false`, its uvicorn.access and kserve.trace loggers (a line per
  request each) at WARNING; v1 protocol (`:predict` with `instances`), KServe's default, which answered 1.5x
  (1 row) and 2.4x (100 rows) what its v2 infer did here.
- BentoML: bench/peers/bentoml_onnx.py, a @bentoml.service (workers=1, access log off) whose async `predict` API
  takes `rows` (a JSON matrix, as a numpy array) and scores them on mlci's ONNX file; POST /predict {"rows": ...}.
  (An async API: a sync one, run in BentoML's thread pool, answered 0.7x of it.)
- mlflow models serve --env-manager local -w 1 on the MLflow model (pyfunc, the sklearn Pipeline's
  predict_proba), /invocations with dataframe_split; UVICORN_ACCESS_LOG=false.

The ONNX-file peers are given exactly mlci's file, input and output names and dtype (`served.onnx`).
MLServer, KServe and BentoML do not install together nor with mlci: each has its own virtual environment under
build/peers/NAME, made on first use from the hash-pinned bench/peers/NAME.txt (`uv pip compile --generate-hashes`
of NAME.in) and reused while that file's hash matches; mlflow is mlci's own .venv's.

wrk (1 thread, 8 connections, serve_vs_mlflow.drive) drives single rows and 100-row batches, 1 s of warm-up and
SECONDS measured each. Prints requests/s of every server, protocol and load, and mlci / the best peer on each of
mlci's protocols. Target (issue text): mlci at 3x the best of them or better on single rows and 1.5x on 100-row
batches, peers given the ONNX file included; met when both of mlci's protocols meet it. Exit 0 met, 1 missed,
2 when something could not be set up (wrk, a venv, a server, an error answer). Needs wrk on the PATH.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci" / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from serve_vs_mlflow import drive  # noqa: E402

from mlci.certify.process import ServerProcess, free_port  # noqa: E402
from mlci.errors import MlciError  # noqa: E402
from mlci.package import package  # noqa: E402
from models import save_sklearn_forest  # noqa: E402

PEERS = ROOT / "bench" / "peers"
VENVS = ROOT / "build" / "peers"
BIN = Path(sys.executable).parent
SECONDS = 8
TARGETS = {"1 row": 3.0, "100 rows": 1.5}
V2_TYPES = {"float32": "FP32", "float64": "FP64"}
PEER_ENV = {"OMP_NUM_THREADS": "1"}

Rows = list[list[float]]


@dataclass(frozen=True)
class Protocol:
    name: str
    path: str  # after http://host:port
    body: Callable[[Rows], dict]


@dataclass(frozen=True)
class Contender:
    name: str
    model: str  # what it scores: "ONNX" (mlci's file) or "sklearn" (the Pipeline)
    server: ServerProcess
    protocols: list[Protocol]


def venv(name: str) -> Path:
    """The bin folder of build/peers/NAME, synced from bench/peers/NAME.txt unless its marker holds that hash."""
    requirements = PEERS / f"{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    home = VENVS / name
    marker = home / ".requirements-sha256"
    if marker.exists() and marker.read_text() == digest:
        return home / "bin"
    started = time.monotonic()
    uv, python = str(BIN / "uv"), str(home / "bin" / "python")
    subprocess.run([uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(home)], check=True)
    subprocess.run(
        [uv, "pip", "sync", "--quiet", "--require-hashes", "--python", python, str(requirements)], check=True
    )
    marker.write_text(digest)
    seconds = time.monotonic() - started
    print(f"bench: set up {home.relative_to(ROOT)} from {requirements.relative_to(ROOT)} in {seconds:.1f} s")
    return home / "bin"


def pinned(name: str, package_name: str) -> str:
    """The version of `package_name` that bench/peers/NAME.txt pins."""
    found = re.search(rf"^{re.escape(package_name)}==(\S+)", (PEERS / f"{name}.txt").read_text(), flags=re.M)
    if found is None:
        raise MlciError(f"bench/peers/{name}.txt pins no {package_name}")
    return found.group(1)


def protocols(columns: list[str], dtype: str) -> dict[str, Protocol]:
    """Each server's own way of asking for the rows' scores."""

    def v2(rows: Rows) -> dict:
        tensor = {"name": "input", "shape": [len(rows), len(columns)], "datatype": V2_TYPES[dtype], "data": rows}
        return {"inputs": [tensor]}

    def dataframe_split(rows: Rows) -> dict:
        return {"dataframe_split": {"columns": columns, "data": rows}}

    return {
        "invocations": Protocol("/invocations", "/invocations", dataframe_split),
        "v2": Protocol("v2 infer", "/v2/models/{name}/infer", v2),
        "kserve v1": Protocol("v1 :predict", "/v1/models/{name}:predict", lambda rows: {"instances": rows}),
        "bentoml": Protocol("/predict rows", "/predict", lambda rows: {"rows": rows}),
    }


def local(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


def mlci_serve(served, scratch: Path, kinds: dict[str, Protocol]) -> Contender:  # noqa: ANN001
    port = free_port()
    command = [str(BIN / "mlci"), "serve", str(served.directory), "--port", str(port), "--log-level", "warning"]
    server = ServerProcess(command, local(port, "/readyz"), scratch / "mlci.log")
    return Contender("mlci serve", "ONNX", server, [kinds["invocations"], kinds["v2"]])


def mlserver_folder(template: str, scratch: Path, name: str, parameters: dict) -> Path:
    """A copy of bench/peers/TEMPLATE (settings.json, model-settings.json, any runtime) whose model-settings name
    the model `name` and carry `parameters` (the file's uri, extra)."""
    folder = scratch / template
    shutil.copytree(PEERS / template, folder, ignore=shutil.ignore_patterns("__pycache__"))
    settings_path = folder / "model-settings.json"
    settings = json.loads(settings_path.read_text())
    settings["name"] = name
    settings["parameters"] = {**settings["parameters"], **parameters}
    settings_path.write_text(json.dumps(settings, indent=2))
    return folder


def mlserver_process(folder: Path, name: str, env: dict[str, str] | None = None) -> ServerProcess:
    """`mlserver start .` in `folder`, its HTTP, gRPC and metrics servers on free ports."""
    port = free_port()
    ports = {"MLSERVER_HTTP_PORT": port, "MLSERVER_GRPC_PORT": free_port(), "MLSERVER_METRICS_PORT": free_port()}
    return ServerProcess(
        [str(venv("mlserver") / "mlserver"), "start", "."],
        local(port, f"/v2/models/{name}/ready"),
        folder / "server.log",
        env={**PEER_ENV, **{key: str(value) for key, value in ports.items()}, **(env or {})},
        cwd=folder,
    )


def mlserver_sklearn(model: Path, scratch: Path, name: str, kinds: dict[str, Protocol]) -> Contender:
    """mlserver-sklearn on the Pipeline, dumped by joblib from the MLflow model (the same scikit-learn loads it)."""
    import joblib
    import mlflow.sklearn
    import sklearn

    if pinned("mlserver", "scikit-learn") != sklearn.__version__:
        raise MlciError(f"bench/peers/mlserver.txt pins another scikit-learn than .venv's {sklearn.__version__}")
    joblib.dump(mlflow.sklearn.load_model(str(model)), scratch / "pipeline.joblib")
    folder = mlserver_folder("mlserver_sklearn", scratch, name, {"uri": str(scratch / "pipeline.joblib")})
    server = mlserver_process(folder, name, env={"PYTHONWARNINGS": "ignore"})  # a feature-names warning a request
    return Contender(f"MLServer {pinned('mlserver', 'mlserver')} + mlserver-sklearn", "sklearn", server, [kinds["v2"]])


def mlserver_onnx(served, scratch: Path, kinds: dict[str, Protocol]) -> Contender:  # noqa: ANN001
    extra = {"input": served.onnx["input"], "output": served.onnx["output"], "dtype": served.onnx["dtype"]}
    parameters = {"uri": str(served.artifact_path), "extra": extra}
    folder = mlserver_folder("mlserver_onnx", scratch, served.name, parameters)
    server = mlserver_process(folder, served.name)
    return Contender(f"MLServer {pinned('mlserver', 'mlserver')} + ONNX runtime", "ONNX", server, [kinds["v2"]])


def kserve(served, scratch: Path, kinds: dict[str, Protocol]) -> Contender:  # noqa: ANN001
    port = free_port()
    model = ["--model_name", served.name, "--model_path", str(served.artifact_path)]
    model += ["--input_name", served.onnx["input"], "--output_name", served.onnx["output"]]
    model += ["--dtype", served.onnx["dtype"]]
    options = ["--http_port", str(port), "--workers", "1", "--enable_grpc", "false"]
    options += ["--enable_latency_logging", "false"]
    command = [str(venv("kserve") / "python"), str(PEERS / "kserve_onnx.py"), *model, *options]
    server = ServerProcess(command, local(port, f"/v1/models/{served.name}"), scratch / "kserve.log", env=PEER_ENV)
    return Contender(f"KServe {pinned('kserve', 'kserve')}", "ONNX", server, [kinds["kserve v1"]])


def bentoml(served, scratch: Path, kinds: dict[str, Protocol]) -> Contender:  # noqa: ANN001
    port = free_port()
    command = [str(venv("bentoml") / "bentoml"), "serve", "bentoml_onnx:OnnxForest"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {
        **PEER_ENV,
        "BENTOML_HOME": str(scratch / "bentoml"),  # not ~/bentoml
        "BENTOML_DO_NOT_TRACK": "True",
        "PEER_ONNX_PATH": str(served.artifact_path),
        "PEER_ONNX_INPUT": served.onnx["input"],
        "PEER_ONNX_OUTPUT": served.onnx["output"],
        "PEER_ONNX_DTYPE": served.onnx["dtype"],
    }
    server = ServerProcess(command, local(port, "/readyz"), scratch / "bentoml.log", env=env, cwd=PEERS)
    return Contender(f"BentoML {pinned('bentoml', 'bentoml')}", "ONNX", server, [kinds["bentoml"]])


def mlflow_serve(model: Path, scratch: Path, kinds: dict[str, Protocol]) -> Contender:
    port = free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local", "-w", "1"]
    command += ["--host", "127.0.0.1", "-p", str(port)]
    env = {**PEER_ENV, "UVICORN_ACCESS_LOG": "false", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # execs uvicorn
    server = ServerProcess(command, local(port, "/ping"), scratch / "mlflow.log", env=env)
    name = f"mlflow models serve {importlib.metadata.version('mlflow')}"
    return Contender(name, "sklearn", server, [kinds["invocations"]])


def contenders(served, model: Path, scratch: Path, columns: list[str]) -> list[Contender]:  # noqa: ANN001
    """Every server, set up (venvs synced, model files laid out) but not started; mlci first."""
    kinds = protocols(columns, served.onnx["dtype"])
    return [
        mlci_serve(served, scratch, kinds),
        mlserver_sklearn(model, scratch, served.name, kinds),
        mlserver_onnx(served, scratch, kinds),
        kserve(served, scratch, kinds),
        bentoml(served, scratch, kinds),
        mlflow_serve(model, scratch, kinds),
    ]


def measure(contender: Contender, name: str, loads: dict[str, Rows]) -> dict[tuple[str, str], float]:
    """(protocol, load) -> requests/s, the server started for them and stopped after."""
    found = {}
    with contender.server as server:
        where = urlsplit(server.ready_url)
        for protocol in contender.protocols:
            url = f"{where.scheme}://{where.netloc}{protocol.path.format(name=name)}"
            for load, rows in loads.items():
                body = json.dumps(protocol.body(rows))
                drive(url, body, seconds=1)  # warm-up
                measured = drive(url, body, seconds=SECONDS)
                if measured.errors:
                    raise MlciError(f"{contender.name} answered {measured.errors} errors on {protocol.name}, {load}")
                found[protocol.name, load] = measured.requests_per_s
    return found


def report(results: dict[str, dict[tuple[str, str], float]], models: dict[str, str], loads: list[str]) -> bool:
    """Print the table and the ratios; whether the target is met."""
    print(f"{'server':<34}{'model':<9}{'protocol':<15}" + "".join(f"{load + ' req/s':>16}" for load in loads))
    for name, figures in results.items():
        for protocol in dict.fromkeys(p for p, _ in figures):
            cells = "".join(f"{figures[protocol, load]:>16.0f}" for load in loads)
            print(f"{name:<34}{models[name]:<9}{protocol:<15}{cells}")
    peers = {name: figures for name, figures in results.items() if name != "mlci serve"}
    best = {}
    for load in loads:
        best[load] = max(
            ((figures[key], name, key[0]) for name, figures in peers.items() for key in figures if key[1] == load)
        )
        print(f"best peer, {load}: {best[load][1]} ({best[load][2]}), {best[load][0]:.0f} req/s")
    met = True
    for (protocol, load), ours in results["mlci serve"].items():
        ratio = ours / best[load][0]
        met = met and ratio >= TARGETS[load]
        print(f"mlci / best peer, {protocol}, {load}: {ratio:.2f}x (target {TARGETS[load]}x)")
    wanted = " and ".join(f"{ratio}x on {load}" for load, ratio in TARGETS.items())
    print(f"target (mlci / best peer at least {wanted}, on both of mlci's protocols): {'met' if met else 'MISSED'}")
    return met


def main() -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk is not on the PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).data
    loads = {"1 row": frame.iloc[[7]].values.tolist(), "100 rows": frame.iloc[:100].values.tolist()}
    results, models = {}, {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        model = save_sklearn_forest(scratch / "model", trees=100)
        served = package(str(model), scratch / "package", log=lambda _: None)
        if served.runtime != "onnx":
            print(f"bench: the forest was not exported to ONNX ({served.runtime})", file=sys.stderr)
            return 2
        try:
            for contender in contenders(served, model, scratch, list(frame.columns)):
                results[contender.name] = measure(contender, served.name, loads)
                models[contender.name] = contender.model
        except (MlciError, subprocess.CalledProcessError) as error:
            print(f"bench: {error}", file=sys.stderr)
            return 2
    return 0 if report(results, models, list(loads)) else 1


if __name__ == "__main__":
    sys.exit(main())
