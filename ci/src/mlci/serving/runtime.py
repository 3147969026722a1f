"""Runtimes that score a validated batch: onnxruntime for exported models, MLflow pyfunc otherwise."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..model.baseline import MISSING_TEXT
from ..model.manifest import ServedModel
from .dataplane import Batch


class Runtime(Protocol):
    def predict(self, batch: Batch) -> np.ndarray:
        """The model's output for the batch: one row per input row."""
        ...


class OnnxRuntime:
    """An onnxruntime session on the CPU, with `threads` intra-op threads."""

    def __init__(self, model: ServedModel, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model.artifact_path), options, providers=["CPUExecutionProvider"])
        self.outputs = [model.onnx["output"]]
        self.dtype = np.dtype(model.onnx["dtype"])
        # One matrix input, or (for a signature with text) one input per column, text ones as strings.
        self.input = model.onnx.get("input", "")
        self.text = tuple(f.type == "string" for f in model.inputs.features)
        self.names = model.inputs.names
        # A regression answers one number per row: an (N, 1) output is served as N numbers, as its pyfunc answers.
        self.flat = model.output.kind == "values"

    def predict(self, batch: Batch) -> np.ndarray:
        answer = self._run(batch)
        return answer.reshape(-1) if self.flat and answer.ndim == 2 and answer.shape[1] == 1 else answer

    def _run(self, batch: Batch) -> np.ndarray:
        if self.input:
            assert batch.matrix is not None
            matrix = batch.matrix if batch.matrix.dtype == self.dtype else batch.matrix.astype(self.dtype)
            return np.asarray(self.session.run(self.outputs, {self.input: matrix})[0])
        feed = {}
        if batch.columns is None:  # numbers only, in one matrix: a column each for a model fed by name
            assert batch.matrix is not None
            matrix = batch.matrix.astype(self.dtype, copy=False)
            return np.asarray(
                self.session.run(self.outputs, {n: matrix[:, i : i + 1] for i, n in enumerate(self.names)})[0]
            )
        for name, text in zip(self.names, self.text, strict=True):
            values = batch.columns[name]
            if text:
                column = np.array([MISSING_TEXT if v is None else v for v in values], dtype=object)
            else:
                column = np.array([np.nan if v is None else v for v in values], dtype=self.dtype)
            feed[name] = column.reshape(-1, 1)
        return np.asarray(self.session.run(self.outputs, feed)[0])


class PyfuncRuntime:
    """The MLflow pyfunc of the model (needs mlflow and the model's own libraries)."""

    def __init__(self, model: ServedModel, threads: int) -> None:
        import mlflow.pyfunc

        _limit_threads(threads)
        self.model = mlflow.pyfunc.load_model(str(model.artifact_path))
        self.schema = model.inputs

    def predict(self, batch: Batch) -> np.ndarray:
        return np.asarray(self.model.predict(model_input(self.schema, batch)))


def model_input(schema: Any, batch: Batch) -> Any:
    """The batch as an MLflow pyfunc takes it: a DataFrame for column signatures, an array for tensors."""
    import pandas as pd

    if schema.layout == "tensor":
        assert batch.matrix is not None
        return batch.matrix
    if batch.matrix is not None:
        frame = pd.DataFrame(batch.matrix, columns=schema.names)
    else:
        assert batch.columns is not None
        frame = pd.DataFrame(batch.columns, columns=schema.names)
    from ..model.schema import NUMERIC_TYPES

    dtypes: dict[str, str] = {}
    for f in schema.features:
        if f.type == "string":  # a missing text value is the empty string, in training and here
            frame[f.name] = frame[f.name].astype(object).where(frame[f.name].notna(), MISSING_TEXT)
        elif f.type in NUMERIC_TYPES:
            holes = f.type != "boolean" and not f.required and bool(frame[f.name].isna().any())
            dtypes[f.name] = "float64" if holes else NUMERIC_TYPES[f.type]  # NaN needs a float column
    return frame.astype(dtypes) if dtypes else frame


def _limit_threads(threads: int) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def load_runtime(model: ServedModel, threads: int) -> Runtime:
    if model.runtime == "onnx":
        return OnnxRuntime(model, threads)
    return PyfuncRuntime(model, threads)
