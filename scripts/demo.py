"""The main job: bake a project with the template's defaults and run its whole loop locally.

Everything lands in build/demo/ (git-ignored); every step prints its time.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bakery import TEMPLATE, Timed, bake, commit_all, project_env, run

DEMO = TEMPLATE / "build" / "demo"


def step(title: str, action: Callable[[], object]) -> object:
    print(f"==> {title} ...", flush=True)
    started = time.perf_counter()
    try:
        outcome = action()
    except RuntimeError as err:
        print(f"FAILED: {title}\n{err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"    done in {time.perf_counter() - started:.1f} s", flush=True)
    return outcome


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    project: Path = step("bake a project with the default values", lambda: bake(DEMO))
    env = project_env(project)

    def sh(*args: str) -> Timed:
        return run(list(args), project, env=env).check()

    step("make setup (.venv from the hash-pinned locks)", lambda: sh("make", "setup"))
    step("git commit of the baked files", lambda: commit_all(project, "Start from the template"))
    step("dvc repro (ingest, validate, featurize, train, evaluate, package)", lambda: sh("dvc", "repro"))
    noop: Timed = step("dvc repro again (nothing to do)", lambda: sh("dvc", "repro"))
    step("dvc push to the local remote", lambda: sh("dvc", "push", "--run-cache"))
    step("dvc plots show", lambda: sh("dvc", "plots", "show", "-o", "dvc_plots"))
    served: dict[str, object] = step("mlci serve: score the held-out set over HTTP", lambda: serve_once(project))
    step("git commit of dvc.lock", lambda: commit_all(project, "Reproduce the pipeline"))
    certified: Timed = step("make certify (every gate)", lambda: sh("make", "certify"))

    verdict = [line for line in certified.stdout.splitlines() if line.startswith("certify: ")][-1]
    metrics = json.loads((project / "metrics.json").read_text())
    info = json.loads((project / "models" / "model_info.json").read_text())
    print(
        f"""
Project:     {project}
Metrics:     {project / "metrics.json"}  ({", ".join(f"{k}={v:.4f}" for k, v in metrics.items())})
Plots:       {project / "dvc_plots" / "index.html"}  (data in {project / "plots"})
Validation:  {project / "reports" / "validation.json"}
Model:       {project / "models" / "model"}  registered as {info["registered_model"]} version {info["version"]}
MLflow runs: {project / "mlflow.db"}  (run {info["run_id"]})
MLflow UI:   cd {project} && make mlflow-ui   # then open http://127.0.0.1:5000
Serving:     {project / "models" / "serving"}  ({served["runtime"]}), accuracy over HTTP {served["accuracy"]:.4f}
Serve it:    cd {project} && make serve        # then POST to http://127.0.0.1:8080/invocations
Certificate: {project / "reports" / "certification" / "certificate.json"}  ({verdict})
Report:      {project / "reports" / "certification" / "report.md"}
No-op repro: {noop.seconds:.2f} s"""
    )


def serve_once(project: Path) -> dict[str, object]:
    """Start `mlci serve` on the packaged model, score the held-out set, read /metrics, stop it."""
    import urllib.request

    import pandas as pd

    from mlci.process import ServerProcess, free_port

    test = pd.read_parquet(project / "data" / "prepared" / "test.parquet")
    target = json.loads((project / "models" / "model_info.json").read_text())
    features = test.drop(columns=["target"])
    port = free_port()
    command = [str(project / ".venv" / "bin" / "mlci"), "serve", "models/serving", "--port", str(port)]
    body = json.dumps({"dataframe_split": {"columns": list(features.columns), "data": features.to_numpy().tolist()}})
    with ServerProcess(command, f"http://127.0.0.1:{port}/readyz", project / "serve.log", cwd=project) as server:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            proba = json.loads(response.read())["predictions"]
    if server.process is None or server.process.returncode != 0:
        raise RuntimeError(f"mlci serve did not stop cleanly:\n{server.log()[-2000:]}")
    classes = target["classes"]
    predicted = [classes[max(range(len(row)), key=row.__getitem__)] for row in proba]
    accuracy = sum(p == t for p, t in zip(predicted, test["target"], strict=True)) / len(test)
    runtime = json.loads((project / "models" / "serving" / "serving.json").read_text())["runtime"]
    return {"runtime": runtime, "accuracy": accuracy}


if __name__ == "__main__":
    main()
