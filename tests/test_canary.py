"""The canary analysis for real (scripts/canary.py): a stable and several canary `mlci serve` processes on
127.0.0.1, a Prometheus scraping them with the labels the cluster adds, load on all of them, then the queries
and success conditions read from the generated AnalysisTemplate itself. A healthy canary passes; one with
injected errors, added latency or shifted predictions fails on its metric."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest
from canary import Server, fleet, save_candidate, save_regression_candidate, success, verdict

from bakery import bake, run
from mlci.certify.process import get

pytestmark = pytest.mark.slow

NAMESPACE = "tumor-classifier-staging"
MLCI = str(Path(sys.executable).with_name("mlci"))
CANARIES = ("healthy", "errors", "slow", "shifted")
LOAD_SECONDS = 25
# Every server gets the true labels of the rows it answered (POST /feedback): live quality is measured, and the
# canary that calls every row benign fails it as well as prediction drift.
FAILS_ON = {"healthy": set(), "errors": {"error-ratio"}, "slow": {"p99-latency"},
            "shifted": {"prediction-drift", "live-quality"}}  # fmt: skip


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
    folder = tmp_path_factory.mktemp("canary")
    project = bake(folder / "bake")
    model = save_candidate(folder / "model")
    packaged = folder / "packaged"
    run([MLCI, "package", str(model), "--out", str(packaged), "--runtime", "pyfunc"], folder).check()
    servers = [
        Server(name, packaged, {"CANARY_FAULT": "none" if name in ("stable", "healthy") else name})
        for name in ("stable", *CANARIES)
    ]
    template = project / "deploy" / "analysistemplate.yaml"
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    labels = [str(data.target_names[t]) for t in data.target]
    with fleet(folder / "fleet", template, NAMESPACE, servers, MLCI, LOAD_SECONDS, labels=labels) as started:
        yield started


def test_prometheus_scraped_every_server(running):
    for name in ("stable", *CANARIES):
        up = running.query(f'scalar(up{{rollouts_pod_template_hash="{name}"}})')
        assert up == 1.0, name
        assert get(f"http://127.0.0.1:{running.servers[name][1]}/healthz")[0] == 200


@pytest.mark.parametrize("canary", CANARIES)
def test_the_analysis_fails_exactly_the_faulty_canarys_metric(running, canary, record_property):
    results = running.measure(canary)
    failed = {name for name, (_, passed) in results.items() if not passed}
    for name, (value, _) in results.items():
        record_property(f"canary {canary}: {name}", round(value, 4))
    assert failed == FAILS_ON[canary], results
    assert not math.isnan(results["live-quality"][0])  # labelled rows enough (50 in 10 minutes): measured


REGRESSION_CANARIES = ("healthy", "shifted")


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory):
    """The same, for a regression: the canary compared with the stable on the histogram of predicted values."""
    from sklearn.datasets import load_diabetes

    folder = tmp_path_factory.mktemp("regression-canary")
    project = bake(folder / "bake", task="regression", project_name="Diabetes Progression")
    packaged = folder / "packaged"
    model = save_regression_candidate(folder / "model")
    run([MLCI, "package", str(model), "--out", str(packaged), "--runtime", "pyfunc"], folder).check()
    servers = [
        Server(name, packaged, {"CANARY_FAULT": "shifted" if name == "shifted" else "none"})
        for name in ("stable", *REGRESSION_CANARIES)
    ]
    rows = load_diabetes(as_frame=True, scaled=False).data
    template = project / "deploy" / "analysistemplate.yaml"
    with fleet(folder / "fleet", template, "diabetes-progression-staging", servers, MLCI, LOAD_SECONDS, rows) as up:
        yield up


@pytest.mark.parametrize("canary", REGRESSION_CANARIES)
def test_a_regression_canary_fails_on_prediction_drift_only_when_its_predictions_shift(
    regression, canary, record_property
):
    results = regression.measure(canary)
    for name, (value, _) in results.items():
        record_property(f"regression canary {canary}: {name}", round(value, 4))
    failed = {name for name, (_, passed) in results.items() if not passed}
    assert failed == ({"prediction-drift"} if canary == "shifted" else set()), results


def test_success_conditions_read_as_argo_rollouts_reads_them():
    assert success("result <= 0.01", 0.0) and not success("result <= 0.01", 0.02)
    assert not success("result <= 0.01", float("nan"))
    live = {"successCondition": "result >= -0.02", "failureCondition": "result < -0.02", "inconclusiveLimit": 4}
    assert verdict(live, 0.0) is True and verdict(live, -0.05) is False
    assert verdict(live, float("nan")) is None  # no labels: inconclusive, not failed
    assert verdict({"successCondition": "result <= 0.01"}, float("nan")) is False
    with pytest.raises(ValueError, match="unsupported successCondition"):
        success("result[0] <= 1", 0.0)
