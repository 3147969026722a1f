"""The Open Inference Protocol v2 (KServe, MLServer, Triton): infer requests, responses and model metadata."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.manifest import ServedModel
from .dataplane import (
    Batch,
    InputCheck,
    RequestError,
    dumps,
    json_array,
    kind_of,
    may_hold_booleans,
    numbers_after,
    parse_json,
    preview,
)

# Open Inference Protocol datatypes, and the column types each may feed.
V2_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
V2_DATATYPES = (*sorted(V2_NUMERIC), "BOOL", "BYTES")
# numpy dtypes and MLflow column types as v2 datatypes.
DTYPE_DATATYPE = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "bool": "BOOL"}
# The same keyed by numpy's dtype objects: an output's datatype in one lookup (`dtype.name` costs microseconds).
OUTPUT_DATATYPE = {np.dtype(name): datatype for name, datatype in DTYPE_DATATYPE.items()}
COLUMN_DATATYPE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL"}


class V2Parser(InputCheck):
    """Parses v2 infer requests for one model's input schema."""

    def parse(self, body: bytes) -> tuple[Batch, Any]:
        """Rows from a v2 inference request, and the request's id (echoed in the response)."""
        document = parse_json(body)
        if not isinstance(document, dict):
            raise RequestError("the body must be a JSON object with 'inputs'")
        unknown = [k for k in document if k not in ("id", "parameters", "inputs", "outputs")]
        if unknown:
            raise RequestError(f"unknown key {unknown[0]!r}; a v2 request has id, parameters, inputs and outputs")
        request_id = document.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise RequestError("'id' must be a string")
        inputs = document.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise RequestError("'inputs' must be a non-empty list of tensors")
        fast = self._fast(inputs, body)
        if fast is not None:
            return fast, request_id
        tensors = {}
        for i, tensor in enumerate(inputs):
            name, array = self._tensor(tensor, f"inputs[{i}]")
            if name in tensors:
                raise RequestError(f"input {name!r} is given twice")
            tensors[name] = array
        if "input" in tensors and "input" not in self.position:
            if len(tensors) > 1:
                raise RequestError("'input' carries every column; send it alone")
            return self._matrix(tensors["input"]), request_id
        return self._columns(tensors), request_id

    def _fast(self, inputs: list[Any], body: bytes) -> Batch | None:
        """The matrix of a numbers-only model's request, read by numpy in one go: one tensor 'input' of shape
        [rows, columns], or one tensor per column; None when anything needs the careful path (which also words
        every refusal)."""
        if not self._numbers_only:
            return None
        plain = numbers_after(body, b'"data"')  # one tensor's numbers follow: float64 at once
        if not plain and may_hold_booleans(body):
            return None
        if len(inputs) == 1 and "input" not in self.position:
            tensor = inputs[0]
            if type(tensor) is not dict or tensor.get("name") != "input" or len(tensor) != 4:
                return None
            matrix = self._numbers(tensor, self.width, plain)
            return None if matrix is None else Batch(matrix.astype(self.dtype, copy=False), None, matrix.shape[0])
        if len(inputs) != self.width:
            return None
        columns: list[np.ndarray] = []
        for tensor, name in zip(inputs, self.names, strict=True):  # in the signature's order, as clients send them
            if type(tensor) is not dict or tensor.get("name") != name or len(tensor) != 4:
                return None
            column = self._numbers(tensor, 1)
            if column is None or (columns and column.shape[0] != columns[0].shape[0]):
                return None
            columns.append(column)
        matrix = np.hstack(columns)
        return Batch(matrix.astype(self.dtype, copy=False), None, matrix.shape[0])

    def _numbers(self, tensor: dict[str, Any], width: int, plain: bool = False) -> np.ndarray | None:
        """A tensor's data as a float64 [rows, width] matrix of finite numbers, when it is one; else None."""
        shape, data = tensor.get("shape"), tensor.get("data")
        if tensor.get("datatype") not in V2_NUMERIC or type(shape) is not list or type(data) is not list:
            return None
        if not (len(shape) == 2 and shape[1] == width) and not (width == 1 and len(shape) == 1):
            return None
        rows = shape[0]
        if type(rows) is not int or not 1 <= rows <= self.max_rows:
            return None
        try:
            array = np.asarray(data, dtype=np.float64) if plain else np.array(data)
        except (ValueError, TypeError):
            return None
        if array.dtype.kind not in "fi" or array.size != rows * width or array.ndim > 2:
            return None
        if array.dtype.kind == "f" and not math.isfinite(array.sum()):  # NaN and infinities carry into the sum
            return None
        return array.reshape(rows, width).astype(np.float64, copy=False)

    def _tensor(self, tensor: Any, where: str) -> tuple[str, np.ndarray]:
        if not isinstance(tensor, dict):
            raise RequestError(f"{where} must be an object with name, shape, datatype and data")
        for key in ("name", "shape", "datatype", "data"):
            if key not in tensor:
                raise RequestError(f"{where} is missing '{key}'")
        name, shape, datatype, data = tensor["name"], tensor["shape"], tensor["datatype"], tensor["data"]
        if not isinstance(name, str):
            raise RequestError(f"{where}.name must be a string")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(type(d) is int and 0 <= d <= 2**31 for d in shape)
        ):
            raise RequestError(f"{where}.shape must be a list of 1 or 2 non-negative integers, got {preview(shape)}")
        if datatype not in V2_DATATYPES:
            raise RequestError(f"{where}.datatype {preview(datatype)} is not one of {', '.join(V2_DATATYPES)}")
        if not isinstance(data, list):
            raise RequestError(f"{where}.data must be a list, got {kind_of(data)}")
        self._check_count(shape[0], f"{where}.shape[0]")
        size = math.prod(shape)
        flat = _flatten(data, where)
        if len(flat) != size:
            raise RequestError(f"{where} has {len(flat)} values but its shape {shape} holds {size}")
        # null is a missing value: whether its column may miss one is the signature's to say, column by column.
        if datatype in V2_NUMERIC:
            for i, value in enumerate(flat):
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise RequestError(f"{where}.data[{i}]: expected a number ({datatype}), got {kind_of(value)}")
        elif datatype == "BOOL":
            if not all(v is None or isinstance(v, bool) for v in flat):
                raise RequestError(f"{where}.data: BOOL tensors hold true and false only")
        elif not all(v is None or isinstance(v, str) for v in flat):
            raise RequestError(f"{where}.data: BYTES tensors hold strings only")
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return name, array.reshape(shape)

    def _matrix(self, array: np.ndarray) -> Batch:
        if array.ndim != 2 or array.shape[1] != self.width:
            raise RequestError(f"input 'input' has shape {list(array.shape)}; the model takes [rows, {self.width}]")
        columns = {f.name: array[:, i].tolist() for i, f in enumerate(self.schema.features)}
        return self._checked(columns, array.shape[0], "input 'input'")

    def _columns(self, tensors: dict[str, np.ndarray]) -> Batch:
        unknown = [n for n in tensors if n not in self.position]
        if unknown:
            raise RequestError(
                f"unknown input {unknown[0]!r}; send 'input' of shape [rows, {self.width}] "
                f"or one input per column ({self._describe()})"
            )
        rows = None
        columns: dict[str, list[Any]] = {}
        for feature in self.schema.features:
            array = tensors.get(feature.name)
            if array is None:
                if feature.required:
                    raise RequestError(f"missing input {feature.name!r}")
                continue
            if array.ndim == 2 and array.shape[1] != 1:
                raise RequestError(
                    f"input {feature.name!r} has shape {list(array.shape)}; a column is [rows] or [rows, 1]"
                )
            if rows is not None and array.shape[0] != rows:
                raise RequestError(f"input {feature.name!r} has {array.shape[0]} rows, other inputs {rows}")
            rows = array.shape[0]
            columns[feature.name] = array.reshape(-1).tolist()
        assert rows is not None
        for feature in self.schema.features:
            columns.setdefault(feature.name, [None] * rows)
        return self._checked(columns, rows, "inputs")


def metadata(model: ServedModel) -> dict[str, Any]:
    """GET /v2/models/<name>: the model's name, version, platform and tensors."""
    inputs = model.inputs
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": f"mlci-{model.runtime}",
        "inputs": [
            {
                "name": "input",
                "datatype": DTYPE_DATATYPE.get(inputs.dtype, "BYTES"),
                "shape": [-1, len(inputs.features)],
            }
        ]
        if inputs.layout == "tensor"
        else [
            {"name": f.name, "datatype": COLUMN_DATATYPE.get(f.type, "BYTES"), "shape": [-1]} for f in inputs.features
        ],
        "outputs": [{"name": model.output.name, "datatype": "FP32", "shape": [-1, -1]}],
    }


def response(model: ServedModel, output: np.ndarray, request_id: str | None) -> bytes:
    """An infer response: one output tensor, and the request's id when it had one."""
    document: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": [
            {
                "name": model.output.name,
                "shape": list(output.shape),
                "datatype": OUTPUT_DATATYPE.get(output.dtype, "BYTES"),
                "data": json_array(output.reshape(-1)),
            }
        ],
    }
    if request_id is not None:
        document["id"] = request_id
    return dumps(document)


def _flatten(data: list[Any], where: str, depth: int = 0) -> list[Any]:
    if depth > 2:
        raise RequestError(f"{where}.data is nested deeper than its shape")
    if data and all(isinstance(v, list) for v in data):
        return [v for item in data for v in _flatten(item, where, depth + 1)]
    if any(isinstance(v, (list, dict)) for v in data):
        raise RequestError(f"{where}.data mixes lists and values")
    return data
