"""Request bodies to model inputs: MLflow's /invocations formats and the Open Inference Protocol v2.

Every problem with a request becomes a `RequestError` whose message names it (the field, row and
column); the server answers it with a 4xx. The common case (a well-formed numeric body) is parsed
by numpy in one call; only a body that fails that fast path is walked value by value to explain it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .schema import INTEGER_TYPES, Feature, InputSchema

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# Open Inference Protocol datatypes, and the column types each may feed.
V2_NUMERIC = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
V2_DATATYPES = (*sorted(V2_NUMERIC), "BOOL", "BYTES")


class RequestError(Exception):
    """A request the server refuses: an HTTP status (4xx) and a message naming the problem."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Batch:
    """Validated rows: a matrix in the schema's dtype, or for non-numeric schemas a column mapping."""

    matrix: np.ndarray | None
    columns: dict[str, list[Any]] | None
    rows: int


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _preview(value: Any) -> str:
    text = json.dumps(value, allow_nan=True) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_value(feature: Feature, value: Any, where: str) -> Any:
    """The value as the feature's type, or a RequestError naming `where` (row and column) and why."""
    kind = feature.type
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if feature.required:
            word = "null" if value is None else "NaN"
            raise RequestError(f"{where}: {word} is not allowed; {feature.name!r} is a required {kind} column")
        return None
    if kind == "string":
        if not isinstance(value, str):
            raise RequestError(f"{where}: expected a string, got {_kind(value)} {_preview(value)}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise RequestError(f"{where}: expected a boolean, got {_kind(value)} {_preview(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{where}: expected a number ({kind}), got {_kind(value)} {_preview(value)}")
    if isinstance(value, float) and math.isinf(value):
        raise RequestError(f"{where}: {value} is not allowed; {feature.name!r} takes finite numbers")
    if kind in INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
        raise RequestError(f"{where}: expected an integer ({kind}), got {value!r}")
    return value


class RequestParser:
    """Parses request bodies for one model's input schema."""

    def __init__(self, schema: InputSchema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self.names = schema.names
        self.width = len(schema.features)
        self.position = {name: i for i, name in enumerate(self.names)}
        self.dtype = np.dtype(schema.dtype)
        self._identity = list(range(self.width))
        # A boolean or integer column, an optional column or a string column needs the careful path.
        self._numbers_only = schema.numeric and all(
            f.required and f.type not in ("boolean", *INTEGER_TYPES) for f in schema.features
        )

    # -- MLflow /invocations -------------------------------------------------------------------

    def invocations(self, body: bytes, content_type: str) -> Batch:
        """Rows from a POST /invocations body: JSON in one of MLflow's four formats, or CSV."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "text/csv":
            return self._csv(body)
        if media not in ("application/json", ""):
            raise RequestError(f"unsupported content type {media!r}; send application/json or text/csv", status=415)
        document = parse_json(body)
        if not isinstance(document, dict):
            raise RequestError(f"the body must be a JSON object with one of the keys {', '.join(MLFLOW_FORMATS)}")
        formats = [key for key in MLFLOW_FORMATS if key in document]
        unknown = [key for key in document if key not in MLFLOW_FORMATS and key != "params"]
        if unknown:
            raise RequestError(
                f"unknown key {unknown[0]!r} in the body; use one of {', '.join(MLFLOW_FORMATS)} (and 'params')"
            )
        if len(formats) != 1:
            found = "none" if not formats else ", ".join(formats)
            raise RequestError(f"the body needs exactly one of the keys {', '.join(MLFLOW_FORMATS)}; found {found}")
        if "params" in document and document["params"] is not None and not isinstance(document["params"], dict):
            raise RequestError("'params' must be an object")
        key = formats[0]
        value = document[key]
        tokens = b"true" in body or b"false" in body
        if key == "dataframe_split":
            return self._split(value, tokens)
        if key == "dataframe_records":
            return self._records(value, key, tokens)
        if isinstance(value, dict):
            return self._columnar(value, key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return self._records(value, key, tokens)
        return self._rows(value, key, self._identity, tokens)

    def _split(self, value: Any, tokens: bool) -> Batch:
        if not isinstance(value, dict):
            raise RequestError(f"'dataframe_split' must be an object with 'columns' and 'data', got {_kind(value)}")
        unknown = [k for k in value if k not in ("columns", "data", "index")]
        if unknown:
            raise RequestError(f"unknown key {unknown[0]!r} in 'dataframe_split'; it takes columns, data and index")
        if "data" not in value:
            raise RequestError("'dataframe_split' needs 'data': a list of rows")
        columns = value.get("columns")
        order = self._identity if columns is None else self._column_order(columns, "dataframe_split.columns")
        index = value.get("index")
        data = value["data"]
        if index is not None and (not isinstance(index, list) or (isinstance(data, list) and len(index) != len(data))):
            raise RequestError("'dataframe_split.index' must be a list with one entry per row of 'data'")
        return self._rows(data, "dataframe_split.data", order, tokens)

    def _column_order(self, columns: Any, field: str) -> list[int]:
        """For each position of the request's columns, the model's column index."""
        if columns == self.names:
            return self._identity
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise RequestError(f"'{field}' must be a list of column names")
        unknown = [c for c in columns if c not in self.position]
        if unknown:
            raise RequestError(f"unknown column {unknown[0]!r} in '{field}'; the model takes {self._describe()}")
        if len(set(columns)) != len(columns):
            duplicate = next(c for c in columns if columns.count(c) > 1)
            raise RequestError(f"column {duplicate!r} appears twice in '{field}'")
        missing = [f.name for f in self.schema.features if f.name not in columns and f.required]
        if missing:
            raise RequestError(f"missing column {missing[0]!r} in '{field}' ({len(missing)} missing in all)")
        return [self.position[c] for c in columns]

    def _describe(self) -> str:
        shown = ", ".join(repr(n) for n in self.names[:8])
        more = f", ... ({self.width} columns)" if self.width > 8 else ""
        return shown + more

    def _rows(self, data: Any, field: str, order: list[int], tokens: bool) -> Batch:
        """A list of rows (lists of values) whose positions map to the model's columns by `order`."""
        if not isinstance(data, list):
            raise RequestError(f"'{field}' must be a list of rows, got {_kind(data)}")
        self._check_count(len(data), field)
        if data and not isinstance(data[0], list):
            raise RequestError(
                f"'{field}' must be a list of rows (lists of {len(order)} values); wrap a single row in a list"
            )
        if self._numbers_only and not tokens:
            matrix = _fast_matrix(data, len(order))
            if matrix is not None:
                if order != self._identity:
                    full = np.empty((matrix.shape[0], self.width), dtype=np.float64)
                    full[:, order] = matrix
                    matrix = full
                return Batch(matrix.astype(self.dtype, copy=False), None, matrix.shape[0])
        columns: dict[str, list[Any]] = {name: [None] * len(data) for name in self.names}
        for i, row in enumerate(data):
            if not isinstance(row, list):
                raise RequestError(f"{field}[{i}] must be a list of {len(order)} values, got {_kind(row)}")
            if len(row) != len(order):
                raise RequestError(
                    f"{field}[{i}] has {len(row)} values; the model takes {len(order)} ({self._describe()})"
                )
            for position, value in zip(order, row, strict=True):
                feature = self.schema.features[position]
                columns[feature.name][i] = check_value(feature, value, f"{field}[{i}], column {feature.name!r}")
        return self._batch(columns, len(data))

    def _records(self, records: Any, field: str, tokens: bool) -> Batch:
        if not isinstance(records, list):
            raise RequestError(f"'{field}' must be a list of objects (one per row), got {_kind(records)}")
        self._check_count(len(records), field)
        if self._numbers_only and not tokens:
            names = self.names
            try:
                if all(type(r) is dict and len(r) == self.width for r in records):
                    matrix = _fast_matrix([[r[n] for n in names] for r in records], self.width)
                    if matrix is not None:
                        return Batch(matrix.astype(self.dtype, copy=False), None, matrix.shape[0])
            except KeyError:
                pass
        columns: dict[str, list[Any]] = {name: [None] * len(records) for name in self.names}
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(f"{field}[{i}] must be an object of column: value, got {_kind(record)}")
            unknown = [k for k in record if k not in self.position]
            if unknown:
                raise RequestError(
                    f"{field}[{i}] has unknown column {unknown[0]!r}; the model takes {self._describe()}"
                )
            for feature in self.schema.features:
                where = f"{field}[{i}], column {feature.name!r}"
                if feature.name not in record:
                    if feature.required:
                        raise RequestError(f"{where} is missing")
                    continue
                columns[feature.name][i] = check_value(feature, record[feature.name], where)
        return self._batch(columns, len(records))

    def _columnar(self, value: dict[str, Any], field: str) -> Batch:
        """{"column": [values, ...], ...}: MLflow's columnar form of 'inputs' and 'instances'."""
        unknown = [k for k in value if k not in self.position]
        if unknown:
            raise RequestError(f"unknown column {unknown[0]!r} in '{field}'; the model takes {self._describe()}")
        lengths = set()
        for feature in self.schema.features:
            if feature.name not in value:
                if feature.required:
                    raise RequestError(f"missing column {feature.name!r} in '{field}'")
                continue
            column = value[feature.name]
            if not isinstance(column, list):
                raise RequestError(f"'{field}.{feature.name}' must be a list of values, got {_kind(column)}")
            lengths.add(len(column))
        if len(lengths) > 1:
            raise RequestError(f"the columns of '{field}' have different lengths: {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        self._check_count(rows, field)
        columns: dict[str, list[Any]] = {}
        for feature in self.schema.features:
            given = value.get(feature.name, [None] * rows)
            columns[feature.name] = [
                check_value(feature, v, f"{field}.{feature.name}[{i}]") for i, v in enumerate(given)
            ]
        return self._batch(columns, rows)

    def _csv(self, body: bytes) -> Batch:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RequestError(f"the CSV body is not UTF-8: {error.reason} at byte {error.start}") from None
        try:
            table = list(csv.reader(io.StringIO(text)))
        except csv.Error as error:
            raise RequestError(f"invalid CSV: {error}") from None
        table = [row for row in table if row]
        if not table:
            raise RequestError("the CSV body is empty; send a header row and at least one data row")
        order = self._column_order(table[0], "CSV header")
        rows = []
        for row in table[1:]:
            rows.append(
                [_csv_value(cell, self.schema.features[p]) for p, cell in zip(order, row, strict=False)]
                + row[len(order) :]
            )
        return self._rows(rows, "CSV rows", order, tokens=True)

    def _check_count(self, rows: int, field: str) -> None:
        if rows == 0:
            raise RequestError(f"'{field}' has no rows")
        if rows > self.max_rows:
            raise RequestError(
                f"'{field}' has {rows} rows; this server takes at most {self.max_rows} per request", status=413
            )

    def _batch(self, columns: dict[str, list[Any]], rows: int) -> Batch:
        if not self.schema.numeric:
            return Batch(None, columns, rows)
        matrix = np.empty((rows, self.width), dtype=self.dtype if self.dtype.kind != "b" else np.bool_)
        for i, name in enumerate(self.names):
            values = columns[name]
            if self.dtype.kind in "iub" and any(v is None for v in values):
                raise RequestError(f"column {name!r} has a null, which an integer or boolean input cannot hold")
            try:
                matrix[:, i] = [np.nan if v is None else v for v in values]
            except OverflowError:
                raise RequestError(f"column {name!r} has a number out of range for {self.dtype.name}") from None
        return Batch(matrix, None, rows)

    # -- Open Inference Protocol v2 ------------------------------------------------------------

    def v2_infer(self, body: bytes) -> tuple[Batch, Any]:
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
        tensors = {}
        for i, tensor in enumerate(inputs):
            name, array = self._v2_tensor(tensor, f"inputs[{i}]")
            if name in tensors:
                raise RequestError(f"input {name!r} is given twice")
            tensors[name] = array
        if "input" in tensors and "input" not in self.position:
            if len(tensors) > 1:
                raise RequestError("'input' carries every column; send it alone")
            return self._v2_matrix(tensors["input"]), request_id
        return self._v2_columns(tensors), request_id

    def _v2_tensor(self, tensor: Any, where: str) -> tuple[str, np.ndarray]:
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
            raise RequestError(f"{where}.shape must be a list of 1 or 2 non-negative integers, got {_preview(shape)}")
        if datatype not in V2_DATATYPES:
            raise RequestError(f"{where}.datatype {_preview(datatype)} is not one of {', '.join(V2_DATATYPES)}")
        if not isinstance(data, list):
            raise RequestError(f"{where}.data must be a list, got {_kind(data)}")
        self._check_count(shape[0], f"{where}.shape[0]")
        size = math.prod(shape)
        flat = _flatten(data, where)
        if len(flat) != size:
            raise RequestError(f"{where} has {len(flat)} values but its shape {shape} holds {size}")
        if datatype in V2_NUMERIC:
            for i, value in enumerate(flat):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise RequestError(f"{where}.data[{i}]: expected a number ({datatype}), got {_kind(value)}")
        elif datatype == "BOOL":
            if not all(isinstance(v, bool) for v in flat):
                raise RequestError(f"{where}.data: BOOL tensors hold true and false only")
        elif not all(isinstance(v, str) for v in flat):
            raise RequestError(f"{where}.data: BYTES tensors hold strings only")
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return name, array.reshape(shape)

    def _v2_matrix(self, array: np.ndarray) -> Batch:
        if array.ndim != 2 or array.shape[1] != self.width:
            raise RequestError(f"input 'input' has shape {list(array.shape)}; the model takes [rows, {self.width}]")
        columns = {f.name: array[:, i].tolist() for i, f in enumerate(self.schema.features)}
        return self._checked(columns, array.shape[0], "input 'input'")

    def _v2_columns(self, tensors: dict[str, np.ndarray]) -> Batch:
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

    def _checked(self, columns: dict[str, list[Any]], rows: int, where: str) -> Batch:
        for feature in self.schema.features:
            values = columns[feature.name]
            columns[feature.name] = [
                check_value(feature, v, f"{where}, row {i}, column {feature.name!r}") for i, v in enumerate(values)
            ]
        return self._batch(columns, rows)


def parse_json(body: bytes) -> Any:
    """The JSON document of a body; NaN and Infinity are read (and refused later, by column)."""
    if not body.strip():
        raise RequestError("the body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        try:  # the standard library also reads NaN and Infinity, which orjson refuses
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(f"invalid JSON: {error}") from None


def _fast_matrix(data: list[Any], width: int) -> np.ndarray | None:
    """The rows as a float64 matrix when they are a clean rectangle of finite numbers; else None."""
    try:
        matrix = np.array(data)
    except (ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or matrix.dtype.kind not in "fi":
        return None
    if matrix.dtype.kind == "f" and not math.isfinite(matrix.sum()):  # NaN and infinities carry into the sum
        return None
    return matrix


def _flatten(data: list[Any], where: str, depth: int = 0) -> list[Any]:
    if depth > 2:
        raise RequestError(f"{where}.data is nested deeper than its shape")
    if data and all(isinstance(v, list) for v in data):
        return [v for item in data for v in _flatten(item, where, depth + 1)]
    if any(isinstance(v, (list, dict)) for v in data):
        raise RequestError(f"{where}.data mixes lists and values")
    return data


def _csv_value(cell: str, feature: Feature) -> Any:
    if cell == "":
        return None
    if feature.type == "string":
        return cell
    if feature.type == "boolean":
        return {"true": True, "false": False}.get(cell.lower(), cell)
    try:
        number = float(cell)
    except ValueError:
        return cell
    return int(number) if feature.type in INTEGER_TYPES and number.is_integer() else number
