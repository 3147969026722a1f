"""MLflow's scoring protocol: POST /invocations in dataframe_split, dataframe_records, instances, inputs or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

from ..model.schema import INTEGER_TYPES, Feature
from .dataplane import (
    Batch,
    InputCheck,
    RequestError,
    check_value,
    dumps,
    fast_matrix,
    json_array,
    kind_of,
    may_hold_booleans,
    numbers_after,
    parse_json,
)

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# The JSON key right before each format's rows of values.
ROWS_KEY = {"dataframe_split": b'"data"', "instances": b'"instances"', "inputs": b'"inputs"'}


class InvocationsParser(InputCheck):
    """Parses /invocations bodies for one model's input schema."""

    def __init__(self, schema: Any, max_rows: int) -> None:
        super().__init__(schema, max_rows)
        # Each column's name as a JSON string: counted in a records body to find a key given twice in a row.
        self._key_tokens = [dumps(name) for name in self.names]

    def parse(self, body: bytes, content_type: str) -> Batch:
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
        # Numbers only after the rows' key: float64 at once. Else a true or false among them takes the careful way.
        plain = self._numbers_only and key != "dataframe_records" and numbers_after(body, ROWS_KEY[key])
        tokens = not plain and may_hold_booleans(body)
        if key == "dataframe_split":
            return self._split(value, tokens, plain)
        if key == "dataframe_records":
            return self._records(value, key, tokens, body)
        if isinstance(value, dict):
            return self._columnar(value, key)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return self._records(value, key, tokens, body)
        return self._rows(value, key, self._identity, tokens, plain)

    def _split(self, value: Any, tokens: bool, plain: bool = False) -> Batch:
        if not isinstance(value, dict):
            raise RequestError(f"'dataframe_split' must be an object with 'columns' and 'data', got {kind_of(value)}")
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
        return self._rows(data, "dataframe_split.data", order, tokens, plain)

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

    def _rows(self, data: Any, field: str, order: list[int], tokens: bool, plain: bool = False) -> Batch:
        """A list of rows (lists of values) whose positions map to the model's columns by `order`."""
        if not isinstance(data, list):
            raise RequestError(f"'{field}' must be a list of rows, got {kind_of(data)}")
        self._check_count(len(data), field)
        if data and not isinstance(data[0], list):
            raise RequestError(
                f"'{field}' must be a list of rows (lists of {len(order)} values); wrap a single row in a list"
            )
        if self._numbers_only and not tokens:
            matrix = fast_matrix(data, len(order), plain)
            if matrix is not None:
                if order != self._identity:
                    full = np.empty((matrix.shape[0], self.width), dtype=np.float64)
                    full[:, order] = matrix
                    matrix = full
                return Batch(matrix.astype(self.dtype, copy=False), None, matrix.shape[0])
        columns: dict[str, list[Any]] = {name: [None] * len(data) for name in self.names}
        for i, row in enumerate(data):
            if not isinstance(row, list):
                raise RequestError(f"{field}[{i}] must be a list of {len(order)} values, got {kind_of(row)}")
            if len(row) != len(order):
                raise RequestError(
                    f"{field}[{i}] has {len(row)} values; the model takes {len(order)} ({self._describe()})"
                )
            for position, value in zip(order, row, strict=True):
                feature = self.schema.features[position]
                columns[feature.name][i] = check_value(feature, value, f"{field}[{i}], column {feature.name!r}")
        return self._batch(columns, len(data))

    def _repeated_key(self, body: bytes, rows: int, field: str) -> None:
        """A record that gives a column twice: JSON parsers keep the last value silently, so refuse it, naming the
        column. Cheap first: each column's name appears at most once per row in the body, or a closer look."""
        if all(body.count(token) <= rows for token in self._key_tokens):
            return
        repeated: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in items]
            if len(set(keys)) != len(keys) and not repeated:
                repeated.append(next(k for k in keys if keys.count(k) > 1))
            return dict(items)

        json.loads(body, object_pairs_hook=pairs)  # orjson has read it already: it is valid JSON
        if repeated:  # else a value spelled a column's name
            raise RequestError(f"a row of '{field}' gives the key {repeated[0]!r} twice; each column once per row")

    def _records(self, records: Any, field: str, tokens: bool, body: bytes) -> Batch:
        if not isinstance(records, list):
            raise RequestError(f"'{field}' must be a list of objects (one per row), got {kind_of(records)}")
        self._check_count(len(records), field)
        self._repeated_key(body, len(records), field)
        if self._numbers_only and not tokens:
            names = self.names
            try:
                if all(type(r) is dict and len(r) == self.width for r in records):
                    matrix = fast_matrix([[r[n] for n in names] for r in records], self.width)
                    if matrix is not None:
                        return Batch(matrix.astype(self.dtype, copy=False), None, matrix.shape[0])
            except KeyError:
                pass
        columns: dict[str, list[Any]] = {name: [None] * len(records) for name in self.names}
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(f"{field}[{i}] must be an object of column: value, got {kind_of(record)}")
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
                raise RequestError(f"'{field}.{feature.name}' must be a list of values, got {kind_of(column)}")
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
                [csv_value(cell, self.schema.features[p]) for p, cell in zip(order, row, strict=False)]
                + row[len(order) :]
            )
        return self._rows(rows, "CSV rows", order, tokens=True)


def response(output: np.ndarray) -> bytes:
    """The body MLflow's clients read: {"predictions": ...}."""
    return dumps({"predictions": json_array(output)})


def csv_value(cell: str, feature: Feature) -> Any:
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
