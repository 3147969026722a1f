"""Live quality and the shadow on a real Prometheus: in each namespace a production `mlci serve` and the shadow
(the previous version) get the same requests under the same X-Request-Id, as the HTTPRoute's RequestMirror
gives them, then the same feedback. Prometheus scrapes them as the ServiceMonitors label them (job
`<app>-stable`; job `<app>-shadow` with role="shadow") and evaluates the generated PrometheusRule, time-scaled
(its 1 h windows to 1 min, its `for:` to nothing). Where production predicts every row benign, live quality
is low, it is worse than the shadow and its class shares part from the shadow's: those alerts fire there only,
`mlci status`'s live figures match the accuracy on the rows sent, and the retrain trigger fires on live quality."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from canary import save_candidate

from bakery import bake, run
from mlci.certify.process import ServerProcess, free_port
from mlci.gitops.live import live_quality, shown

pytestmark = pytest.mark.slow

APP = "tumor-classifier"
MLCI = str(Path(sys.executable).with_name("mlci"))
ROWS = 300  # above the alerts' 100 labelled rows, and past the candidate's 50 calls spared its fault
FIRES_IN_BAD_ONLY = {"ModelLiveQualityLow", "ModelWorseThanShadow", "ModelPredictionsPartFromShadow"}


def time_scaled(rule_file: Path) -> dict:
    """The PrometheusRule's groups with 1 h windows made 1 min and every `for:` dropped."""
    rule = yaml.safe_load(rule_file.read_text())
    for group in rule["spec"]["groups"]:
        group["interval"] = "1s"
        for each in group["rules"]:
            each["expr"] = each["expr"].replace("[1h]", "[1m]")
            each.pop("for", None)
    return {"groups": rule["spec"]["groups"]}


def post(url: str, document: dict, request_id: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"X-Request-Id": request_id} if request_id else {})
    request = urllib.request.Request(url, json.dumps(document).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
    from sklearn.datasets import load_breast_cancer

    folder = tmp_path_factory.mktemp("shadow")
    project = bake(folder / "bake")
    packaged = folder / "packaged"
    run([MLCI, "package", str(save_candidate(folder / "model")), "--out", str(packaged), "--runtime", "pyfunc"],
        folder).check()  # fmt: skip
    # production in `bad` predicts every row benign (after its first 50 calls); everything else is healthy
    roles = {("bad", "stable"): "shifted", ("bad", "shadow"): "none", ("good", "stable"): "none",
             ("good", "shadow"): "none"}  # fmt: skip
    namespaces = {"bad": f"{APP}-production", "good": f"{APP}-staging"}
    servers, processes = {}, []
    try:
        for (where, role), fault in roles.items():
            port = free_port()
            process = ServerProcess(
                [MLCI, "serve", str(packaged), "--port", str(port)],
                f"http://127.0.0.1:{port}/readyz",
                folder / f"{where}-{role}.log",
                env={"CANARY_FAULT": fault},
            ).start(timeout=120)
            processes.append(process)
            servers[where, role] = port
        jobs = []
        for role in ("stable", "shadow"):
            targets = [
                {"targets": [f"127.0.0.1:{servers[where, role]}"],
                 "labels": {"namespace": namespaces[where]} | ({"role": "shadow"} if role == "shadow" else {})}
                for where in namespaces
            ]  # fmt: skip
            jobs.append({"job_name": f"{APP}-{role}", "static_configs": targets})
        (folder / "rules.yaml").write_text(yaml.safe_dump(time_scaled(project / "deploy" / "prometheusrule.yaml")))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["rules.yaml"],
                  "scrape_configs": jobs}  # fmt: skip
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        prometheus = f"http://127.0.0.1:{port}"
        processes.append(
            ServerProcess(
                [shutil.which("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                f"{prometheus}/-/ready",
                folder / "prometheus.log",
            ).start(timeout=60)
        )  # fmt: skip
        data = load_breast_cancer(as_frame=True)
        features, labels = data.frame.drop(columns="target"), [data.target_names[t] for t in data.target]
        sent = {where: {"stable": [], "shadow": []} for where in namespaces}
        for i in range(ROWS):
            row = {"dataframe_split": {"columns": list(features.columns), "data": [features.iloc[i].tolist()]}}
            for where in namespaces:
                for role in ("stable", "shadow"):  # the mirror: the same request, under the same id, to both
                    answer = post(f"http://127.0.0.1:{servers[where, role]}/invocations", row, f"row-{i}")
                    sent[where][role].append(answer["predictions"][0])
        time.sleep(1.5)  # each worker moves what it scored into the shared store once a second
        feedback = {"feedback": [{"id": f"row-{i}:0", "label": labels[i]} for i in range(ROWS)]}
        for port in servers.values():
            post(f"http://127.0.0.1:{port}/feedback", feedback)
        yield {"prometheus": prometheus, "namespaces": namespaces, "sent": sent, "labels": labels[:ROWS],
               "classes": list(data.target_names)}  # fmt: skip
    finally:
        for process in processes:
            process.stop()


def firing(prometheus: str) -> set[tuple[str, str]]:
    with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=30) as response:
        alerts = json.load(response)["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("namespace", "")) for a in alerts if a["state"] == "firing"}


def accuracy(predictions: list, labels: list[str], classes: list[str]) -> float:
    """The accuracy of the served probabilities (one column per class, in the model's class order) on labels."""
    predicted = [classes[max(range(len(p)), key=p.__getitem__)] for p in predictions]
    return sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels)


def test_live_quality_and_the_shadow_alerts_fire_where_production_degraded_only(world):
    bad, good = world["namespaces"]["bad"], world["namespaces"]["good"]
    deadline, seen = time.monotonic() + 90, set()
    while time.monotonic() < deadline:
        seen = firing(world["prometheus"])
        if {(name, bad) for name in FIRES_IN_BAD_ONLY} <= seen:
            break
        time.sleep(1)
    assert {(name, bad) for name in FIRES_IN_BAD_ONLY} <= seen, seen
    assert not {name for name, namespace in seen if namespace == good}, seen


def test_status_live_figures_are_the_accuracy_on_the_rows_sent(world):
    # the scrapes after the feedback, then the figures: each one the accuracy on the very rows sent
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = live_quality(world["prometheus"], APP, "production", window="5m")
        if {"serving", "shadow"} <= set(live) and min(live[r]["labelled"] for r in ("serving", "shadow")) >= ROWS:
            break
        time.sleep(1)
    for role in ("serving", "shadow"):
        expected = accuracy(world["sent"]["bad"]["stable" if role == "serving" else "shadow"], world["labels"],
                            world["classes"])  # fmt: skip
        assert live[role]["accuracy"] == pytest.approx(expected, abs=0.02), (role, live)
        # increase() extrapolates to the window's start from the first scrape: a few rows more than were sent
        assert live[role]["labelled"] == pytest.approx(ROWS, rel=0.15), (role, live)
    assert live["shadow"]["accuracy"] - live["serving"]["accuracy"] > 0.2
    assert re.fullmatch(r"accuracy 0\.\d{3} \(\d+ rows\); shadow accuracy 0\.\d{3} \(\d+ rows\)", shown(live))


def test_the_retrain_trigger_fires_on_the_live_quality_alert(world):
    """The trigger's run whose slot (every second here, --every 1) follows the alert's firing dispatches it, in
    its namespace only."""
    bad, good = world["namespaces"]["bad"], world["namespaces"]["good"]
    deadline, active = time.monotonic() + 90, None
    while active is None and time.monotonic() < deadline:
        with urllib.request.urlopen(f"{world['prometheus']}/api/v1/alerts", timeout=30) as response:
            alerts = json.load(response)["data"]["alerts"]
        wanted = {"alertname": "ModelLiveQualityLow", "namespace": bad, "severity": "warning"}
        active = next((a["activeAt"] for a in alerts if a["state"] == "firing" and a["labels"] == wanted), None)
        time.sleep(0.5)
    assert active is not None
    # Prometheus sees it firing one evaluation (1 s) after activeAt; the run of the next whole second takes it
    since = datetime.fromisoformat(active.replace("Z", "+00:00")).timestamp()
    at = datetime.fromtimestamp(math.ceil(since + 1), UTC).isoformat()
    for namespace, dispatched in ((bad, 1), (good, 0)):
        args = ["--prometheus", world["prometheus"], "--namespace", namespace, "--repo", "my-org/tumor-classifier"]
        done = run([MLCI, "retrain-trigger", *args, "--every", "1", "--at", at, "--dry-run"], Path.cwd())
        said = done.stdout + done.stderr
        assert done.returncode == 0, said
        assert f"retrain-trigger: {dispatched} new ModelLiveQualityLow alert(s) in {namespace}" in said, said
        assert said.count("would dispatch model-drift to my-org/tumor-classifier") == dispatched, said
