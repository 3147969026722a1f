"""A canary analysis on this machine: a stable and canary `mlci serve` processes on 127.0.0.1, a Prometheus
scraping them with the labels the cluster adds (namespace, rollouts_pod_template_hash), load on all of them,
then the queries and success conditions read from the project's own AnalysisTemplate."""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlci.certify.process import ServerProcess, free_port


@dataclass(frozen=True)
class Server:
    """One `mlci serve` of the fleet: its pod-template hash, the packaged model, and its environment."""

    name: str
    package: Path
    env: dict[str, str]


class Fleet:
    """The servers, Prometheus, and the AnalysisTemplate's metrics."""

    def __init__(self, folder: Path, template: dict, namespace: str) -> None:
        self.folder, self.template, self.namespace = folder, template, namespace
        self.servers: dict[str, tuple[ServerProcess, int]] = {}
        self.prometheus: ServerProcess | None = None
        self.prometheus_url = ""

    def query(self, promql: str) -> float:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=30) as response:
            answer = json.load(response)
        if answer.get("status") != "success" or answer["data"]["resultType"] != "scalar":
            raise RuntimeError(f"Prometheus answered {answer} to {promql}")
        return float(answer["data"]["result"][1])

    def measure(self, canary: str, stable: str = "stable") -> dict[str, tuple[float, bool]]:
        """Each metric of the template for this canary against the stable: its value and whether it lets the
        rollout go on (an inconclusive measurement does, where the metric's inconclusiveLimit allows it)."""
        args = {"namespace": self.namespace, "canary-hash": canary, "stable-hash": stable}
        results = {}
        for metric in self.template["spec"]["metrics"]:
            query = re.sub(r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)],
                           metric["provider"]["prometheus"]["query"])  # fmt: skip
            value = self.query(query)
            outcome = verdict(metric, value)
            results[metric["name"]] = (
                value,
                outcome if outcome is not None else metric.get("inconclusiveLimit", 0) > 0,
            )
        return results


def verdict(metric: dict, result: float) -> bool | None:
    """A measurement as Argo Rollouts judges it: with only a successCondition, it passes or fails; with a
    failureCondition too, a value that meets neither (NaN: nothing to measure) is inconclusive (None)."""
    if "failureCondition" not in metric:
        return success(metric["successCondition"], result)
    if success(metric["failureCondition"], result):
        return False
    return True if success(metric["successCondition"], result) else None


def success(condition: str, result: float) -> bool:
    """An AnalysisTemplate successCondition of the form `result <op> number`; NaN fails, as in Argo Rollouts
    when only a successCondition is given."""
    parsed = re.fullmatch(r"result\s*(<=|>=|<|>|==)\s*(-?[0-9.]+)", condition.strip())
    if parsed is None:
        raise ValueError(f"unsupported successCondition {condition!r}")
    if math.isnan(result):
        return False
    bound = float(parsed.group(2))
    return {"<=": result <= bound, ">=": result >= bound, "<": result < bound, ">": result > bound,
            "==": result == bound}[parsed.group(1)]  # fmt: skip


@contextlib.contextmanager
def fleet(
    folder: Path,
    analysis_template: Path,
    namespace: str,
    servers: list[Server],
    mlci: str,
    load_seconds: float,
    rows: Any = None,
) -> Iterator[Fleet]:
    """Start every server and a Prometheus scraping them each second, load them for `load_seconds`, then yield
    the fleet for measuring; everything stops afterwards."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise RuntimeError("prometheus is missing: Debian's prometheus package provides it")
    folder.mkdir(parents=True, exist_ok=True)
    running = Fleet(folder, yaml.safe_load(analysis_template.read_text()), namespace)
    try:
        for server in servers:
            port = free_port()
            process = ServerProcess(
                [mlci, "serve", str(server.package), "--port", str(port)],
                f"http://127.0.0.1:{port}/readyz",
                folder / f"{server.name}.log",
                env=server.env,
            )
            running.servers[server.name] = (process.start(timeout=120), port)
        targets = [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": namespace, "rollouts_pod_template_hash": name}}
            for name, (_, port) in running.servers.items()
        ]
        config = {"global": {"scrape_interval": "1s"},
                  "scrape_configs": [{"job_name": "canary", "static_configs": targets}]}  # fmt: skip
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        running.prometheus_url = f"http://127.0.0.1:{port}"
        running.prometheus = ServerProcess(
            [prometheus, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            f"{running.prometheus_url}/-/ready",
            folder / "prometheus.log",
        ).start(timeout=60)  # fmt: skip
        drive_load(running, load_seconds, rows)
        time.sleep(3)  # a last scrape after the load
        yield running
    finally:
        for process, _ in running.servers.values():
            process.stop()
        if running.prometheus is not None:
            running.prometheus.stop()


def drive_load(fleet: Fleet, seconds: float, features: Any = None) -> None:
    """About 15 single-row requests a second to every server, rows drawn from `features` (a DataFrame; by default
    the breast-cancer data's)."""
    if features is None:
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
            with contextlib.suppress(urllib.error.HTTPError):  # a faulty canary's 500s are what is measured
                urllib.request.urlopen(request, timeout=10).read()
            time.sleep(0.06)

    threads = [threading.Thread(target=hammer, args=(port,)) for _, port in fleet.servers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def save_candidate(path: Path, classes: tuple[object, ...] = ("malignant", "benign")) -> Path:
    """A logistic model of the breast-cancer data as an MLflow pyfunc that misbehaves when CANARY_FAULT says so
    (canary_candidates.py ships with it); `classes` name its two classes, as the stable's do."""
    import logging
    import warnings

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
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")  # its advice on type hints and pickling
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        code_paths=[str(Path(__file__).with_name("canary_candidates.py"))],
        signature=infer_signature(features.head(5), model.predict(None, features.head(5))),
        input_example=features.head(5),
        metadata={"mlci": {"name": "tumor-classifier", "classes": list(classes),
                           "baseline": feature_baseline(features.to_numpy(), list(features.columns))}},
    )  # fmt: skip
    return path


def save_regression_candidate(path: Path) -> Path:
    """A linear model of the diabetes data (disease progression, a number) as an MLflow pyfunc that misbehaves when
    CANARY_FAULT says so; its training predictions' deciles bound the server's predicted-value histogram."""
    import logging
    import warnings

    import mlflow.pyfunc
    import numpy as np
    from canary_candidates import RegressionCandidate
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    from mlci.drift import feature_baseline

    features, target = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    fitted = LinearRegression().fit(features, target)
    model = RegressionCandidate(fitted.coef_, float(fitted.intercept_))
    predictions = model.predict(None, features)
    edges = sorted({float(e) for e in np.quantile(predictions, np.linspace(0.1, 0.9, 9))})
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        code_paths=[str(Path(__file__).with_name("canary_candidates.py"))],
        signature=infer_signature(features.head(5), predictions[:5]),
        input_example=features.head(5),
        metadata={"mlci": {"name": "diabetes-progression", "task": "regression", "prediction_edges": edges,
                           "baseline": feature_baseline(features.to_numpy(), list(features.columns))}},
    )  # fmt: skip
    return path
