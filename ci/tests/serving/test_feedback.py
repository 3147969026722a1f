"""Prediction ids and ground truth on real `mlci serve` processes: ids echoed and made, feedback matched whichever
of 2 workers made the prediction, unknown ids counted, live accuracy equal to the accuracy on the same rows,
regression error sums, and the offline `mlci feedback` figures equal to the online ones."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
from conftest import MLCI, Server, start_server

from mlci.package import package
from models import breast_cancer_frame, mixed_frame, save_mixed_model

CLASSES = ["malignant", "benign"]


def flushed(server: Server, rows: int, within: float = 60) -> None:
    """Wait until every worker has moved what it scored into the shared store: it does so once a second, in the
    same pass that counts the rows into the prediction metrics, which any worker's /metrics sums."""
    deadline = time.monotonic() + within
    counted = 0.0
    while time.monotonic() < deadline:
        metrics = server.metrics()
        counted = sum(
            v for k, v in metrics.items() if k.startswith(("mlci_predictions_total{", "mlci_prediction_value_count"))
        )
        if counted >= rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"the workers counted {counted} of the {rows} rows scored within {within} s")


def call(server: Server, path: str, document: Any, request_id: str | None = None) -> tuple[int, Any, str | None]:
    """POST JSON; the status, the decoded body and the X-Request-Id the response carried."""
    headers = {"Content-Type": "application/json"} | ({"X-Request-Id": request_id} if request_id else {})
    request = urllib.request.Request(server.url + path, json.dumps(document).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers.get("X-Request-Id")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("X-Request-Id")


def rows(frame, start: int, stop: int) -> dict[str, Any]:
    part = frame.iloc[start:stop]
    return {"dataframe_split": {"columns": list(part.columns), "data": part.to_numpy().tolist()}}


def test_a_clients_request_id_is_echoed_and_one_is_made_when_it_sends_none(server):
    frame = breast_cancer_frame()
    status, body, echoed = call(server, "/invocations", rows(frame, 0, 2), "order-7")
    assert status == 200 and echoed == "order-7" and len(body["predictions"]) == 2  # the MLflow body, unchanged
    made = {call(server, "/invocations", rows(frame, 0, 1))[2] for _ in range(3)}
    assert len(made) == 3 and all(re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", str(m)) for m in made)
    infer = {"inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP64", "data": frame.iloc[0].tolist()}]}
    _, answer, header = call(server, "/v2/models/tumor-classifier/infer", infer | {"id": "v2-req"})
    assert answer["id"] == "v2-req" and header == "v2-req"
    _, answer, header = call(server, "/v2/models/tumor-classifier/infer", infer)
    assert answer["id"] == header and header
    status, error, _ = call(server, "/invocations", rows(frame, 0, 1), "two words")
    assert status == 400 and "X-Request-Id" in error["message"]


def test_feedback_is_matched_across_two_workers_and_live_accuracy_is_the_accuracy_on_those_rows(
    forest_package, tmp_path
):
    from sklearn.datasets import load_breast_cancer

    frame = breast_cancer_frame()
    truth = [CLASSES[t] for t in load_breast_cancer().target]
    log = tmp_path / "predictions.jsonl"
    process = start_server(forest_package, tmp_path / "serve.log", "--workers", "2", "--prediction-log", str(log))
    try:
        server = Server(process)
        predicted: dict[str, str] = {}  # prediction id -> the class the server answered
        labels: dict[str, str] = {}  # prediction id -> the row's true class
        prefixes: set[str] = set()
        # A connection each: the kernel spreads them over the workers listening. The second may still be loading
        # its model when the first answers /readyz, so go on until both have answered (and 60 rows at least).
        for i in range(400):
            _, body, request_id = call(server, "/invocations", rows(frame, i, i + 1))
            predicted[f"{request_id}:0"] = CLASSES[int(np.argmax(body["predictions"][0]))]
            labels[f"{request_id}:0"] = truth[i]
            prefixes.add(str(request_id).split("-")[0])
            if len(prefixes) == 2 and i >= 59:
                break
        _, body, _ = call(server, "/invocations", rows(frame, 400, 500), "batch-1")
        for i, row in enumerate(body["predictions"]):
            predicted[f"batch-1:{i}"] = CLASSES[int(np.argmax(row))]
            labels[f"batch-1:{i}"] = truth[400 + i]
        assert len(prefixes) == 2, "both workers made predictions"
        expected_correct = sum(predicted[pid] == label for pid, label in labels.items())
        flushed(server, len(labels))
        items = [{"id": pid, "label": label} for pid, label in labels.items()]
        unknown = [{"id": "never-made:0", "label": "benign"}, {"id": "no id", "label": "benign"}]
        half = len(items) // 2
        first = call(server, "/feedback", {"feedback": items[:half] + unknown})
        second = call(server, "/feedback", {"feedback": items[half:]})
        assert first[0] == second[0] == 200, (first, second)
        assert first[1]["unmatched"] == 2 and second[1]["unmatched"] == 0
        metrics = server.metrics()
        correct = metrics['mlci_feedback_total{version="7",outcome="correct"}']
        wrong = metrics['mlci_feedback_total{version="7",outcome="wrong"}']
        assert (correct, wrong) == (expected_correct, len(labels) - expected_correct)
        assert metrics['mlci_feedback_total{version="7",outcome="unmatched"}'] == 2
        assert correct / (correct + wrong) == pytest.approx(expected_correct / len(labels))
        bad = call(server, "/feedback", {"feedback": [{"id": "batch-1:0"}]})
        assert bad[0] == 400 and "feedback[0]" in bad[1]["message"]
    finally:
        process.stop()
    # The same rows offline: the prediction log (both workers' lines) joined to the labels.
    labels_file = tmp_path / "labels.jsonl"
    labels_file.write_text("".join(json.dumps(item) + "\n" for item in items + unknown))
    offline = json.loads(_mlci("feedback", "--predictions", str(log), "--labels", str(labels_file), "--format", "json"))
    assert offline["7"] == {"correct": correct, "wrong": wrong}
    assert offline["(no prediction logged)"] == {"unmatched": 2}
    text = _mlci("feedback", "--predictions", str(log), "--labels", str(labels_file))
    assert f"version 7: {len(labels)} rows labelled, accuracy {expected_correct / len(labels):.4f}" in text


def test_a_regressions_feedback_sums_its_errors_online_and_offline(tmp_path):
    served = package(str(save_mixed_model(tmp_path / "model", "regression")), tmp_path / "serving", version="4",
                     log=lambda _: None)  # fmt: skip
    log = tmp_path / "predictions.jsonl"
    process = start_server(served, tmp_path / "serve.log", "--prediction-log", str(log), "--prediction-log-sample", "1")
    frame, _ = mixed_frame(rows=50)
    document = {"dataframe_records": json.loads(frame.to_json(orient="records"))}
    try:
        server = Server(process)
        _, body, request_id = call(server, "/invocations", document, "reg-1")
        values = [float(v) for v in np.asarray(body["predictions"]).reshape(-1)]
        offsets = np.linspace(-2.0, 3.0, len(values))
        items = [
            {"id": f"reg-1:{i}", "value": float(v + d)} for i, (v, d) in enumerate(zip(values, offsets, strict=True))
        ]
        flushed(server, len(values))
        status, answer, _ = call(server, "/feedback", {"feedback": [*items, {"id": "reg-1:999", "value": 1.0}]})
        assert status == 200 and answer["matched"] == len(values) and answer["unmatched"] == 1
        metrics = server.metrics()
        assert metrics['mlci_feedback_total{version="4",outcome="matched"}'] == len(values)
        absolute = metrics['mlci_feedback_absolute_error_total{version="4"}']
        squared = metrics['mlci_feedback_squared_error_total{version="4"}']
        assert absolute == pytest.approx(np.abs(offsets).sum(), rel=1e-6)
        assert squared == pytest.approx((offsets**2).sum(), rel=1e-6)
        refused = call(server, "/feedback", {"feedback": [{"id": "reg-1:0", "value": "high"}]})
        assert refused[0] == 400 and "feedback[0].value must be a finite number" in refused[1]["message"]
    finally:
        process.stop()
    labels_file = tmp_path / "labels.csv"
    labels_file.write_text("id,value\n" + "".join(f"{item['id']},{item['value']!r}\n" for item in items))
    offline = json.loads(_mlci("feedback", "--predictions", str(log), "--labels", str(labels_file), "--format", "json"))
    assert offline["4"]["matched"] == len(values)
    assert offline["4"]["absolute_error"] == pytest.approx(absolute, rel=1e-6)
    assert offline["4"]["squared_error"] == pytest.approx(squared, rel=1e-6)


def test_a_malformed_prediction_log_is_named_with_its_line(tmp_path):
    log, labels = tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl"
    log.write_text('{"id": "a:0", "version": "1", "class": "benign"}\n{not json\n')
    labels.write_text('{"id": "a:0", "label": "benign"}\n')
    done = subprocess.run([MLCI, "feedback", "--predictions", str(log), "--labels", str(labels)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0 and f"{log}:2: not JSON" in done.stderr


def _mlci(*args: str) -> str:
    done = subprocess.run([MLCI, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
