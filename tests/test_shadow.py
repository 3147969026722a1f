"""Live quality and the shadow on a real Prometheus: in each namespace a production `mlci serve` and the shadow
(the previous version) get the same requests under the same X-Request-Id, as the HTTPRoute's RequestMirror
gives them, then the same feedback. Prometheus scrapes them as the ServiceMonitors label them (job
`<app>-stable`; job `<app>-shadow` with role="shadow") and evaluates the generated PrometheusRule, time-scaled
(its 1 h windows to 5 min, its `for:` to nothing). Where production predicts every row benign, live quality
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
from canary import Server, mirrored, save_candidate, wait_scraped

from bakery import bake, run
from mlci.gitops.live import live_quality, shown

pytestmark = pytest.mark.slow

APP = "tumor-classifier"
MLCI = str(Path(sys.executable).with_name("mlci"))
ROWS = 300  # above the alerts' 100 labelled rows, and past the candidate's 50 calls spared its fault
FIRES_IN_BAD_ONLY = {"ModelLiveQualityLow", "ModelWorseThanShadow", "ModelPredictionsPartFromShadow"}


def time_scaled(rule_file: Path) -> dict:
    """The PrometheusRule's groups with 1 h windows made 5 min (longer than the scoring takes) and every `for:`
    dropped."""
    rule = yaml.safe_load(rule_file.read_text())
    for group in rule["spec"]["groups"]:
        group["interval"] = "1s"
        for each in group["rules"]:
            each["expr"] = each["expr"].replace("[1h]", "[5m]")
            each.pop("for", None)
    return {"groups": rule["spec"]["groups"]}


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
    healthy, degraded = Server("healthy", packaged, {}), Server("shifted", packaged, {"CANARY_FAULT": "shifted"})
    # production in `bad` predicts every row benign (after its first 50 calls); everything else is healthy
    namespaces = {"bad": f"{APP}-production", "good": f"{APP}-staging"}
    pairs = {namespaces["bad"]: (degraded, healthy), namespaces["good"]: (healthy, healthy)}
    rules = time_scaled(project / "deploy" / "prometheusrule.yaml")
    data = load_breast_cancer(as_frame=True)
    features, labels = data.frame.drop(columns="target").head(ROWS), [data.target_names[t] for t in data.target]
    with mirrored(folder / "run", APP, pairs, MLCI, rules) as running:
        sent = {where: running.score(namespace, features) for where, namespace in namespaces.items()}
        for namespace in namespaces.values():
            running.feedback(namespace, labels[:ROWS])
        # The rules are judged on what all four servers counted in the end: with `for:` dropped, a rule evaluated
        # between two servers' scrapes, one with more rows than the other, could fire for as long as that lasts.
        settled(running.prometheus_url, 4 * ROWS)
        yield {"prometheus": running.prometheus_url, "namespaces": namespaces, "sent": sent, "labels": labels[:ROWS],
               "classes": list(data.target_names)}  # fmt: skip


def settled(prometheus: str, rows: int) -> float:
    """Wait until Prometheus has scraped every row scored and labelled, then until its rules were evaluated on
    those scrapes; the time they had all been scraped by."""
    wait_scraped(prometheus, "sum(mlci_predictions_total)", rows)
    wait_scraped(prometheus, 'sum(mlci_feedback_total{outcome=~"correct|wrong"})', rows)
    scraped = time.time()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=30) as response:
            groups = json.load(response)["data"]["groups"]
        evaluated = [datetime.fromisoformat(g["lastEvaluation"]).timestamp() for g in groups]
        if evaluated and min(evaluated) > scraped:
            return scraped
        time.sleep(0.5)
    raise RuntimeError("Prometheus evaluated no rule after the last scrape within 60 s")


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
    while time.monotonic() < deadline and not {(name, bad) for name in FIRES_IN_BAD_ONLY} <= seen:
        seen |= firing(world["prometheus"])
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
        assert live[role]["labelled"] == ROWS, (role, live)  # what was counted, not extrapolated
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
