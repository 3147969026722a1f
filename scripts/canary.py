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
from dataclasses import dataclass, field
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

    def measure_metric(self, metric: dict, canary: str, stable: str = "stable", scale: float = 1.0) -> float:
        """One measurement of one metric of the template, its range windows scaled by `scale`."""
        args = {"namespace": self.namespace, "canary-hash": canary, "stable-hash": stable}
        query = re.sub(
            r"\{\{args\.([a-z-]+)\}\}", lambda m: args[m.group(1)], metric["provider"]["prometheus"]["query"]
        )
        return self.query(scaled_windows(query, scale))

    def measure(self, canary: str, stable: str = "stable") -> dict[str, tuple[float, bool]]:
        """Each metric of the template once, for this canary against the stable: its value and whether it lets the
        rollout go on (an inconclusive measurement does, where the metric's inconclusiveLimit allows it)."""
        results = {}
        for metric in self.template["spec"]["metrics"]:
            value = self.measure_metric(metric, canary, stable)
            outcome = verdict(metric, value)
            results[metric["name"]] = (
                value,
                outcome if outcome is not None else metric.get("inconclusiveLimit", 0) > 0,
            )
        return results

    def analyse(
        self,
        canaries: list[str],
        schedule: Schedule,
        rate: float = 15.0,
        rows: Any = None,
        labels: list | None = None,
        rates: dict[str, float] | None = None,
    ) -> dict[str, Analysis]:
        """Every canary's analysis run as Argo Rollouts runs it, on the schedule (time-scaled): load on every server
        from the start, the first measurement of every metric after the Rollout's pause, then one every `interval`
        up to `count`; a metric fails the run once its failed measurements exceed `failureLimit`, and is
        inconclusive past `inconclusiveLimit`. A canary's load stops when its run ends; the stable's, at the last.
        With `labels`, every answered row's true label goes back as `POST /feedback` while the load goes on.
        `rate`: requests a second to each server, or `rates[name]` to that one."""
        load = Load(self, rate, rows, labels, rates)
        runs = {name: Analysis(name) for name in canaries}
        metrics = self.template["spec"]["metrics"]
        due = sorted({schedule.pause + k * schedule.seconds(m.get("interval", "0s"))
                      for m in metrics for k in range(int(m.get("count", 1)))})  # fmt: skip
        load.start()
        began = time.monotonic()
        try:
            for at in due:
                time.sleep(max(0.0, began + at - time.monotonic()))
                for run in runs.values():
                    if run.phase != "Running":
                        continue
                    for metric in metrics:
                        number = len(run.values.get(metric["name"], [])) + 1
                        planned = schedule.pause + (number - 1) * schedule.seconds(metric.get("interval", "0s"))
                        if number <= int(metric.get("count", 1)) and planned <= at:
                            value = self.measure_metric(metric, run.canary, scale=schedule.scale)
                            run.record(metric, value, round(time.monotonic() - began, 1))
                    run.requests.append(load.sent[run.canary])
                    run.settle(metrics)
                    if run.phase != "Running":
                        load.stop(run.canary)
            for run in runs.values():
                if run.phase == "Running":
                    run.phase = "Successful"
        finally:
            load.stop_all()
        return runs


@dataclass(frozen=True)
class Schedule:
    """The Rollout's pause before its first analysis step and the factor that scales every duration: the pause,
    each metric's interval and each query's range windows (`[1m]` at 0.25 is `[15s]`)."""

    pause: float
    scale: float

    @classmethod
    def of(cls, rollout: Path, scale: float = 1.0) -> Schedule:
        """The pause before the first analysis step of the Rollout's canary steps, scaled."""
        steps = yaml.safe_load(rollout.read_text())["spec"]["strategy"]["canary"]["steps"]
        pause = 0.0
        for step in steps:
            if "analysis" in step:
                return cls(pause * scale, scale)
            if "pause" in step:
                pause += duration(step["pause"].get("duration", "0s"))
        raise ValueError(f"{rollout} has no analysis step")

    def seconds(self, text: str) -> float:
        return duration(text) * self.scale


def duration(text: str | int) -> float:
    """An Argo Rollouts or Prometheus duration (`30s`, `1m`, `2h`; a bare number is seconds) in seconds."""
    parsed = re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", str(text).strip())
    if parsed is None:
        raise ValueError(f"unsupported duration {text!r}")
    return float(parsed.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[parsed.group(2)]


def scaled_windows(query: str, scale: float) -> str:
    """The query with every range window (`[1m]`, `[10m]`) multiplied by `scale`, in whole seconds."""
    if scale == 1.0:
        return query
    return re.sub(r"\[([0-9.]+(?:ms|s|m|h))\]", lambda m: f"[{max(1, round(duration(m.group(1)) * scale))}s]", query)


@dataclass
class Analysis:
    """One canary's analysis run: every measurement (when, metric, value, verdict) and how the run ended."""

    canary: str
    phase: str = "Running"  # then Successful, Failed or Inconclusive, as an AnalysisRun's phase
    measurements: list[tuple[float, str, float, bool | None]] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    requests: list[int] = field(default_factory=list)  # the canary's requests sent by each measurement
    ended_at: int = 0  # the measurement number (of any metric) at which the run ended

    def record(self, metric: dict, value: float, at: float) -> None:
        self.values.setdefault(metric["name"], []).append(value)
        self.measurements.append((at, metric["name"], value, verdict(metric, value)))

    def settle(self, metrics: list[dict]) -> None:
        for metric in metrics:
            outcomes = [v for _, name, _, v in self.measurements if name == metric["name"]]
            if outcomes.count(False) > int(metric.get("failureLimit", 0)):
                self.failed.add(metric["name"])
            elif outcomes.count(None) > int(metric.get("inconclusiveLimit", 0)):
                self.phase = "Inconclusive"
        if self.failed:
            self.phase = "Failed"
        if self.phase != "Running":
            self.ended_at = max(len(v) for v in self.values.values())

    def first_failure(self) -> int:
        """The number of the measurement (1 = the first) at which a metric first failed; 0 when none did."""
        counts: dict[str, int] = {}
        for _, name, _, outcome in self.measurements:
            counts[name] = counts.get(name, 0) + 1
            if outcome is False:
                return counts[name]
        return 0

    def summary(self) -> dict[str, tuple[float, bool]]:
        """Each metric's last value and whether it let the rollout go on."""
        return {name: (values[-1], name not in self.failed) for name, values in self.values.items()}


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
) -> Iterator[Fleet]:
    """Start every server and a Prometheus scraping them each second; yield the fleet once Prometheus has scraped
    every server (so every counter's first sample is before any request), for `Fleet.analyse`; everything stops
    afterwards."""
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
        wait_scraped(running.prometheus_url, "count(up == 1)", len(running.servers))
        yield running
    finally:
        for process, _ in running.servers.values():
            process.stop()
        if running.prometheus is not None:
            running.prometheus.stop()


class Load:
    """Single-row requests to every server of the fleet at `rate` a second each (`rates` for some), on a kept-alive
    connection, rows drawn from `features` (a DataFrame; by default the breast-cancer data's) in the same order for
    every server, so that class shares differ only by the model. With `labels` (one per row), each server also gets
    the true labels of the rows it answered, by their X-Request-Id, as `POST /feedback` about every second: ground
    truth that arrives while the analysis runs, as a client that learns outcomes sends it."""

    # A worker moves what it scored into its shared store once a second: feedback waits that long and a margin.
    FEEDBACK_DELAY = 2.0

    def __init__(
        self,
        fleet: Fleet,
        rate: float,
        features: Any = None,
        labels: list | None = None,
        rates: dict[str, float] | None = None,
    ) -> None:
        if features is None:
            from sklearn.datasets import load_breast_cancer

            features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
        self.rows = [json.dumps({"dataframe_split": {"columns": list(features.columns), "data": [row]}}).encode()
                     for row in features.to_numpy().tolist()]  # fmt: skip
        self.fleet, self.labels = fleet, labels
        self.rates = {name: (rates or {}).get(name, rate) for name in fleet.servers}
        self.stopped = {name: threading.Event() for name in fleet.servers}
        self.threads = [threading.Thread(target=self._hammer, args=(name,), daemon=True) for name in fleet.servers]
        self.sent: dict[str, int] = dict.fromkeys(fleet.servers, 0)
        self.errors: list[str] = []

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, name: str) -> None:
        self.stopped[name].set()

    def stop_all(self) -> None:
        for event in self.stopped.values():
            event.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise RuntimeError("the load failed: " + "; ".join(self.errors))

    def _hammer(self, name: str) -> None:
        import http.client

        port = self.fleet.servers[name][1]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        generator = random.Random(0)
        pending: list[tuple[float, str, int]] = []  # answered, not yet labelled: (when, request id, row)
        next_at = last_feedback = time.monotonic()
        try:
            while not self.stopped[name].is_set():
                index = generator.randrange(len(self.rows))
                request_id = f"load-{self.sent[name]}"
                connection.request("POST", "/invocations", self.rows[index],
                                   {"Content-Type": "application/json", "X-Request-Id": request_id})  # fmt: skip
                answer = connection.getresponse()
                answer.read()
                self.sent[name] += 1
                now = time.monotonic()
                if answer.status == 200 and self.labels is not None:  # a faulty canary's 500s are what is measured
                    pending.append((now, request_id, index))
                if pending and now - last_feedback >= 1.0:
                    ripe = [p for p in pending if now - p[0] >= self.FEEDBACK_DELAY]
                    if ripe:
                        self._feedback(connection, ripe)
                        pending = pending[len(ripe) :]
                    last_feedback = now
                next_at = max(next_at + 1.0 / self.rates[name], now)  # a slow server's lag is not made up in a burst
                time.sleep(max(0.0, next_at - time.monotonic()))
        except Exception as error:  # noqa: BLE001 (reported by stop_all, in the caller's thread)
            self.errors.append(f"{name}: {error!r}")
        finally:
            connection.close()

    def _feedback(self, connection: Any, rows: list[tuple[float, str, int]]) -> None:
        assert self.labels is not None
        document = {
            "feedback": [{"id": f"{request_id}:0", "label": self.labels[index]} for _, request_id, index in rows]
        }
        connection.request("POST", "/feedback", json.dumps(document).encode(), {"Content-Type": "application/json"})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"/feedback answered {answer.status}: {body[:200]!r}")


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


class Mirrored:
    """Production and its shadow in each namespace, as the HTTPRoute's RequestMirror runs them: every request and
    every feedback reaches both under the same X-Request-Id. Prometheus scrapes them with the labels the
    ServiceMonitors give (job `<app>-stable`; job `<app>-shadow` and role="shadow")."""

    def __init__(self) -> None:
        self.ports: dict[tuple[str, str], int] = {}
        self.scored: dict[tuple[str, str], int] = {}  # rows scored by each server
        self.prometheus_url = ""

    def _post(self, namespace: str, role: str, path: str, document: dict, request_id: str | None) -> dict:
        headers = {"Content-Type": "application/json"} | ({"X-Request-Id": request_id} if request_id else {})
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[namespace, role]}{path}",
                                         json.dumps(document).encode(), headers, method="POST")  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def score(self, namespace: str, features: Any) -> dict[str, list]:
        """Each row of `features` (a DataFrame) in a request of its own, id `row-<i>`, to production and to the
        shadow; what each answered, row by row. Once done, both have moved their predictions into their stores."""
        answered: dict[str, list] = {"stable": [], "shadow": []}
        rows = features.to_numpy().tolist()
        columns = list(features.columns)

        def send(role: str) -> None:  # production and the shadow side by side, as the mirror sends them
            for i, row in enumerate(rows):
                document = {"dataframe_split": {"columns": columns, "data": [row]}}
                answered[role].append(
                    self._post(namespace, role, "/invocations", document, f"row-{i}")["predictions"][0]
                )

        threads = [threading.Thread(target=send, args=(role,)) for role in answered]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(len(a) != len(rows) for a in answered.values()):
            raise RuntimeError(f"not every row was answered in {namespace}")
        for role in answered:
            self.scored[namespace, role] = self.scored.get((namespace, role), 0) + len(rows)
            self._flushed(namespace, role)
        return answered

    def _flushed(self, namespace: str, role: str, within: float = 60) -> None:
        """Wait until the server has moved every row it scored into its store, as the prediction counts of its
        /metrics show (a worker does both in one pass, once a second): feedback sent before that is unmatched."""
        deadline = time.monotonic() + within
        counted = 0.0
        while time.monotonic() < deadline:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports[namespace, role]}/metrics", timeout=30
            ) as answer:
                lines = answer.read().decode().splitlines()
            counted = sum(float(line.rsplit(" ", 1)[1]) for line in lines
                          if line.startswith(("mlci_predictions_total{", "mlci_prediction_value_count")))  # fmt: skip
            if counted >= self.scored[namespace, role]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{role} in {namespace} counted {counted} of {self.scored[namespace, role]} rows")

    def feedback(self, namespace: str, labels: list, regression: bool = False) -> dict[str, dict]:
        """The true label of each row scored (a class; for a regression, its number) to both; what each counted."""
        key = "value" if regression else "label"
        document = {"feedback": [{"id": f"row-{i}:0", key: label} for i, label in enumerate(labels)]}
        return {role: self._post(namespace, role, "/feedback", document, None) for role in ("stable", "shadow")}


@contextlib.contextmanager
def mirrored(
    folder: Path, app: str, pairs: dict[str, tuple[Server, Server]], mlci: str, rules: dict | None = None
) -> Iterator[Mirrored]:
    """For each namespace, production's server and the shadow's (`pairs`: namespace -> (production, shadow));
    a Prometheus scraping them every second, evaluating `rules` (a rule file's content) when given."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise RuntimeError("prometheus is missing: Debian's prometheus package provides it")
    folder.mkdir(parents=True, exist_ok=True)
    running, processes = Mirrored(), []
    try:
        for namespace, servers in pairs.items():
            for role, server in zip(("stable", "shadow"), servers, strict=True):
                port = free_port()
                processes.append(ServerProcess(
                    [mlci, "serve", str(server.package), "--port", str(port)], f"http://127.0.0.1:{port}/readyz",
                    folder / f"{namespace}-{role}.log", env=server.env,
                ).start(timeout=120))  # fmt: skip
                running.ports[namespace, role] = port
        jobs = [
            {"job_name": f"{app}-{role}",
             "static_configs": [{"targets": [f"127.0.0.1:{running.ports[namespace, role]}"],
                                 "labels": {"namespace": namespace} | ({"role": "shadow"} if role == "shadow" else {})}
                                for namespace in pairs]}
            for role in ("stable", "shadow")
        ]  # fmt: skip
        config: dict[str, Any] = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                  "scrape_configs": jobs}  # fmt: skip
        if rules is not None:
            (folder / "rules.yaml").write_text(yaml.safe_dump(rules))
            config["rule_files"] = ["rules.yaml"]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        running.prometheus_url = f"http://127.0.0.1:{port}"
        processes.append(ServerProcess(
            [prometheus, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            f"{running.prometheus_url}/-/ready",
            folder / "prometheus.log",
        ).start(timeout=60))  # fmt: skip
        # every counter's first sample before any request: increase() counts from there
        wait_scraped(running.prometheus_url, "count(up == 1)", len(running.ports))
        time.sleep(1)
        yield running
    finally:
        for process in processes:
            process.stop()


def wait_scraped(prometheus_url: str, expr: str, at_least: float, within: float = 60) -> None:
    """Wait until the instant query `expr` (one series) reaches `at_least`: the scrapes caught up."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as response:
            result = json.load(response)["data"]["result"]
        if result and float(result[0]["value"][1]) >= at_least:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not see {expr} reach {at_least} within {within} s")
