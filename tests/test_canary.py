"""The canary analysis for real: a stable and several canary `mlci serve` processes on 127.0.0.1, a Prometheus
scraping them with the labels the cluster adds, load on all of them, then the queries and success conditions
read from the generated AnalysisTemplate itself. A healthy canary passes; one with injected errors, added
latency or shifted predictions fails on its metric."""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import shutil
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from bakery import bake, run
from mlci.process import ServerProcess, free_port, get

pytestmark = pytest.mark.slow

NAMESPACE = "tumor-classifier-staging"
MLCI = str(Path(sys.executable).with_name("mlci"))
CANARIES = ("healthy", "errors", "slow", "shifted")
LOAD_SECONDS = 25
FAILS_ON = {"healthy": set(), "errors": {"error-ratio"}, "slow": {"p99-latency"}, "shifted": {"prediction-drift"}}


def save_candidate(path: Path) -> Path:
    import mlflow.pyfunc
    from canary_candidates import Candidate
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from mlci.drift import feature_baseline

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    mean, scale = features.mean().to_numpy(), features.std().to_numpy()
    fitted = LogisticRegression(max_iter=1000).fit((features - mean) / scale, labels)
    model = Candidate(mean, scale, fitted.coef_[0], float(fitted.intercept_[0]))
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        code_paths=[str(Path(__file__).with_name("canary_candidates.py"))],
        signature=infer_signature(features.head(5), model.predict(None, features.head(5))),
        input_example=features.head(5),
        metadata={"mlci": {"name": "tumor-classifier", "classes": ["malignant", "benign"],
                           "baseline": feature_baseline(features.to_numpy(), list(features.columns))}},
    )  # fmt: skip
    return path


class Fleet:
    """The servers, Prometheus, and the AnalysisTemplate's metrics."""

    def __init__(self, folder: Path, template: dict) -> None:
        self.folder, self.template = folder, template
        self.servers: dict[str, tuple[ServerProcess, int]] = {}
        self.prometheus: ServerProcess | None = None
        self.prometheus_url = ""

    def query(self, promql: str) -> float:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=30) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        data = answer["data"]
        assert data["resultType"] == "scalar", data
        return float(data["result"][1])

    def measure(self, canary: str) -> dict[str, tuple[float, bool]]:
        """Each metric of the template for this canary against the stable: its value and its verdict."""
        args = {"namespace": NAMESPACE, "canary-hash": canary, "stable-hash": "stable"}
        results = {}
        for metric in self.template["spec"]["metrics"]:
            query = re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)],
                           metric["provider"]["prometheus"]["query"])  # fmt: skip
            value = self.query(query)
            results[metric["name"]] = (value, success(metric["successCondition"], value))
        return results


def success(condition: str, result: float) -> bool:
    """An AnalysisTemplate successCondition of the form `result <op> number`; NaN fails, as in Argo Rollouts
    when only a successCondition is given."""
    parsed = re.fullmatch(r"result\s*(<=|>=|<|>|==)\s*(-?[0-9.]+)", condition.strip())
    assert parsed, f"unsupported condition {condition!r}"
    if math.isnan(result):
        return False
    bound = float(parsed.group(2))
    return {"<=": result <= bound, ">=": result >= bound, "<": result < bound, ">": result > bound,
            "==": result == bound}[parsed.group(1)]  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
    folder = tmp_path_factory.mktemp("canary")
    project = bake(folder / "bake")
    rendered = (project / "deploy" / "analysistemplate.yaml").read_text()
    fleet = Fleet(folder, yaml.safe_load(rendered))
    model = save_candidate(folder / "model")
    packaged = folder / "packaged"
    run([MLCI, "package", str(model), "--out", str(packaged), "--runtime", "pyfunc"], folder).check()
    try:
        for name in ("stable", *CANARIES):
            port = free_port()
            server = ServerProcess(
                [MLCI, "serve", str(packaged), "--port", str(port)],
                f"http://127.0.0.1:{port}/readyz",
                folder / f"{name}.log",
                env={"CANARY_FAULT": "none" if name in ("stable", "healthy") else name},
            )
            fleet.servers[name] = (server.start(timeout=120), port)
        targets = [
            {"targets": [f"127.0.0.1:{port}"],
             "labels": {"namespace": NAMESPACE, "rollouts_pod_template_hash": name}}
            for name, (_, port) in fleet.servers.items()
        ]  # fmt: skip
        config = {"global": {"scrape_interval": "1s"},
                  "scrape_configs": [{"job_name": "tumor-classifier", "static_configs": targets}]}  # fmt: skip
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        fleet.prometheus_url = f"http://127.0.0.1:{port}"
        fleet.prometheus = ServerProcess(
            [prometheus, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            f"{fleet.prometheus_url}/-/ready",
            folder / "prometheus.log",
        ).start(timeout=60)  # fmt: skip
        drive_load(fleet, LOAD_SECONDS)
        time.sleep(3)  # a last scrape after the load
        yield fleet
    finally:
        for server, _ in fleet.servers.values():
            server.stop()
        if fleet.prometheus is not None:
            fleet.prometheus.stop()


def drive_load(fleet: Fleet, seconds: float) -> None:
    """About 15 single-row requests a second to every server, rows drawn from the training data."""
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    rows = [json.dumps({"dataframe_split": {"columns": list(features.columns), "data": [row]}}).encode()
            for row in features.to_numpy().tolist()]  # fmt: skip
    deadline = time.monotonic() + seconds

    def hammer(port: int) -> None:
        generator = random.Random(0)  # every server sees the same rows: class shares differ only by the model
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", generator.choice(rows),
                                             {"Content-Type": "application/json"})  # fmt: skip
            with contextlib.suppress(urllib.error.HTTPError):  # the faulty canary's 500s are what is measured
                urllib.request.urlopen(request, timeout=10).read()
            time.sleep(0.06)

    threads = [threading.Thread(target=hammer, args=(port,)) for _, port in fleet.servers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_prometheus_scraped_every_server(fleet):
    for name in ("stable", *CANARIES):
        up = fleet.query(f'scalar(up{{rollouts_pod_template_hash="{name}"}})')
        assert up == 1.0, name
        assert get(f"http://127.0.0.1:{fleet.servers[name][1]}/healthz")[0] == 200


@pytest.mark.parametrize("canary", CANARIES)
def test_the_analysis_fails_exactly_the_faulty_canarys_metric(fleet, canary, record_property):
    results = fleet.measure(canary)
    failed = {name for name, (_, passed) in results.items() if not passed}
    for name, (value, _) in results.items():
        record_property(f"canary {canary}: {name}", round(value, 4))
    assert failed == FAILS_ON[canary], results
