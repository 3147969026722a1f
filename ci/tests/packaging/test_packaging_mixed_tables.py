"""Packaging a table's model, whatever the table holds: text categories, integers, missing values, a numeric target."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlci.package import package
from mlci.serving.runtime import load_runtime
from models import mixed_frame, save_mixed_model


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_mixed_table_model_exports_to_onnx_fed_column_by_column(tmp_path, task):
    source = save_mixed_model(tmp_path / "model", task)
    said: list[str] = []
    served = package(str(source), tmp_path / "serving", log=said.append)
    assert served.runtime == "onnx", said
    assert served.onnx["feed"] == "columns"
    types = {f.name: (f.type, f.required) for f in served.inputs.features}
    assert types == {
        "age": ("long", True),
        "income": ("double", False),
        "city": ("string", False),
        "plan": ("string", True),
        "visits": ("long", True),
    }
    assert served.baseline is not None and served.baseline.categories[2] and not served.baseline.categories[0]
    # The parity sample held every kind of value: nulls, the missing category, one never seen.
    assert served.parity["rows"] > 200 and served.parity["max_diff"] <= 1e-5
    if task == "regression":  # the bounds of its predicted-value histogram, in order
        assert served.output.kind == "values" and 5 <= len(served.output.edges) <= 9
        assert list(served.output.edges) == sorted(served.output.edges)
    else:
        assert served.output.kind == "probabilities" and served.output.edges == ()


def test_a_regression_histogram_takes_the_edges_its_training_saved(tmp_path):
    # Deciles of the training set's predictions, saved by the project's train stage in the model's metadata.
    source = save_mixed_model(tmp_path / "model", "regression", prediction_edges=[12.5, 3.0, 7.25, 7.25])
    served = package(str(source), tmp_path / "serving", log=lambda _: None)
    assert served.output.edges == (3.0, 7.25, 12.5)


def test_the_onnx_artifact_answers_what_the_model_answers_on_nulls_and_unseen_categories(tmp_path):
    import mlflow.pyfunc

    from mlci.serving.dataplane import Batch
    from mlci.serving.runtime import model_input

    source = save_mixed_model(tmp_path / "model")
    served = package(str(source), tmp_path / "serving", log=lambda _: None)
    columns = {
        "age": [40, 23, 71],
        "income": [None, 51_000.5, 12_000.0],
        "city": [None, "Marseille", "Paris"],
        "plan": ["pro", "basic", "pro"],
        "visits": [3, 0, 29],
    }
    batch = Batch(None, columns, 3)
    onnx = load_runtime(served, threads=1).predict(batch)
    reference = mlflow.pyfunc.load_model(str(source)).predict(model_input(served.inputs, batch))
    assert np.abs(np.asarray(onnx) - np.asarray(reference)).max() <= 1e-5


def test_integer_columns_keep_onnx_the_runtimes_see_the_same_whole_numbers(tmp_path):
    """All-numeric with integer columns: both runtimes are compared on the same (whole) values."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from skops.io import dumps, get_untrusted_types

    from mlci.drift import feature_baseline

    frame, score = mixed_frame()
    numbers = frame[["age", "visits"]].assign(ratio=frame["visits"] / frame["age"])
    labels = (score > score.median()).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("model", RandomForestClassifier(30, random_state=0))])
    model.fit(numbers, labels)
    mlflow.sklearn.save_model(
        model,
        str(tmp_path / "model"),
        signature=infer_signature(numbers, model.predict_proba(numbers.head(5))),
        input_example=numbers.head(5),
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=get_untrusted_types(data=dumps(model)),
        metadata={"mlci": {"baseline": feature_baseline(numbers, list(numbers.columns))}},
    )
    said: list[str] = []
    served = package(str(tmp_path / "model"), tmp_path / "serving", log=said.append)
    assert served.runtime == "onnx", said
    assert [f.type for f in served.inputs.features] == ["long", "long", "double"]


def test_an_export_onnxruntime_cannot_run_falls_back_to_the_pyfunc_saying_why(tmp_path, monkeypatch):
    from mlci.packaging import package as packaging

    def refuse(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Imputer(1)")

    monkeypatch.setattr(packaging, "_onnx_predict", refuse)
    said: list[str] = []
    served = package(str(save_mixed_model(tmp_path / "model")), tmp_path / "serving", log=said.append)
    assert served.runtime == "pyfunc"
    assert any("NOT_IMPLEMENTED" in line and "pyfunc" in line for line in said), said
    assert not (tmp_path / "serving" / "model.onnx").exists()
    assert json.loads((tmp_path / "serving" / "serving.json").read_text())["onnx"] == {}
