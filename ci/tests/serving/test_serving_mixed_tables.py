"""`mlci serve` on a mixed table's model: text and missing values in every wire format, refusals that name the
column, and drift gauges for text features too."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import mixed_frame

COLUMNS = ["age", "income", "city", "plan", "visits"]  # the mixed_server fixture's model (conftest.py)
ROWS = [[40, None, None, "pro", 3], [23, 51000.5, "Marseille", "basic", 0], [71, 12000.0, "Paris", "pro", 29]]


def expected(source, rows: list[list[object]]) -> np.ndarray:
    """What the trained pipeline itself answers, missing text fed as the empty string (as in training)."""
    import mlflow.sklearn
    import pandas as pd

    frame = pd.DataFrame(rows, columns=COLUMNS).fillna({"city": "", "plan": ""})
    return mlflow.sklearn.load_model(str(source)).predict_proba(frame)


def test_every_format_takes_text_and_missing_values_and_answers_what_the_model_answers(mixed_server):
    server, source = mixed_server
    want = expected(source, ROWS)
    records = [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]
    for body in ({"dataframe_split": {"columns": COLUMNS, "data": ROWS}}, {"dataframe_records": records}):
        status, answer = server.post("/invocations", body)
        assert status == 200, answer
        assert np.abs(np.asarray(answer["predictions"]) - want).max() <= 1e-5
    csv = "age,income,city,plan,visits\n40,,,pro,3\n23,51000.5,Marseille,basic,0\n71,12000,Paris,pro,29\n"
    status, body, _ = server.request("POST", "/invocations", csv.encode(), "text/csv")
    assert status == 200 and np.abs(np.asarray(json.loads(body)["predictions"]) - want).max() <= 1e-5
    tensors = [
        {"name": "age", "shape": [3], "datatype": "INT64", "data": [r[0] for r in ROWS]},
        {"name": "income", "shape": [3], "datatype": "FP64", "data": [r[1] for r in ROWS]},
        {"name": "city", "shape": [3], "datatype": "BYTES", "data": [r[2] for r in ROWS]},
        {"name": "plan", "shape": [3], "datatype": "BYTES", "data": [r[3] for r in ROWS]},
        {"name": "visits", "shape": [3], "datatype": "INT64", "data": [r[4] for r in ROWS]},
    ]
    status, answer = server.post("/v2/models/mixed/infer", {"inputs": tensors})
    assert status == 200, answer
    assert np.abs(np.asarray(answer["outputs"][0]["data"]).reshape(3, -1) - want).max() <= 1e-5


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"age": 40, "income": 1.0, "city": 3, "plan": "pro", "visits": 3}, "column 'city': expected a string"),
        ({"age": 40, "income": 1.0, "city": "Nice", "plan": None, "visits": 3}, "'plan' is a required string column"),
        ({"age": 40.5, "income": 1.0, "city": "Nice", "plan": "pro", "visits": 3}, "expected an integer (long)"),
        (
            {"age": 40, "income": "rich", "city": "Nice", "plan": "pro", "visits": 3},
            "column 'income': expected a number",
        ),
    ],
)
def test_a_wrong_value_gets_a_400_naming_its_column(mixed_server, record, named):
    server, _ = mixed_server
    status, answer = server.post("/invocations", {"dataframe_records": [record]})
    assert status == 400 and named in answer["message"], answer


def test_text_features_have_drift_gauges_of_their_category_shares(mixed_server):
    server, _ = mixed_server
    frame, _ = mixed_frame(rows=120, seed=1)
    rows = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    status, _ = server.post("/invocations", {"dataframe_split": {"columns": COLUMNS, "data": rows}})
    assert status == 200
    steady = server.metrics()
    assert steady["mlci_drift_window_rows"] == 100
    assert steady['mlci_feature_psi{feature="city"}'] < 0.25  # the same mix of cities as in training
    shifted = [[40, 1000.0, "Toulouse", "pro", 3]] * 100  # a city never seen, on every row
    assert server.post("/invocations", {"dataframe_split": {"columns": COLUMNS, "data": shifted}})[0] == 200
    assert server.metrics()['mlci_feature_psi{feature="city"}'] > 1.0


def test_a_regression_counts_its_predicted_values_in_a_histogram(tmp_path):
    from conftest import Server, start_server

    from mlci.package import package
    from models import save_mixed_model

    served = package(str(save_mixed_model(tmp_path / "model", "regression")), tmp_path / "serving", log=print)
    process = start_server(served, tmp_path / "serve.log")
    try:
        server = Server(process)
        status, answer = server.post("/invocations", {"dataframe_split": {"columns": COLUMNS, "data": ROWS}})
        assert status == 200 and len(answer["predictions"]) == 3
        series = server.metrics()
        assert series["mlci_prediction_value_count"] == 3
        assert series['mlci_prediction_value_bucket{le="+Inf"}'] == 3
        assert series["mlci_prediction_value_sum"] == pytest.approx(sum(np.ravel(answer["predictions"])))
        assert not any(name.startswith("mlci_predictions_total{") for name in series)  # no classes to count
    finally:
        process.stop()
