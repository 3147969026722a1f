"""The data plane under the wire protocols: a request's values checked against the model's signature.

Each protocol module (`invocations`, `v2`) reads its own body format; its values become a `Batch` here.
Every problem with a request becomes a `RequestError` whose message names it (the field, row and
column); the server answers it with a 4xx. The common case (a well-formed numeric body) is parsed
by numpy in one call; only a body that fails that fast path is walked value by value to explain it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..model.schema import INTEGER_TYPES, Feature, InputSchema


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


def kind_of(value: Any) -> str:
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


def preview(value: Any) -> str:
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
            raise RequestError(f"{where}: expected a string, got {kind_of(value)} {preview(value)}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise RequestError(f"{where}: expected a boolean, got {kind_of(value)} {preview(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{where}: expected a number ({kind}), got {kind_of(value)} {preview(value)}")
    if isinstance(value, float) and math.isinf(value):
        raise RequestError(f"{where}: {value} is not allowed; {feature.name!r} takes finite numbers")
    if kind in INTEGER_TYPES and isinstance(value, float) and not value.is_integer():
        raise RequestError(f"{where}: expected an integer ({kind}), got {value!r}")
    return value


class InputCheck:
    """One model's input schema and the checks every protocol's parser shares."""

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

    def _describe(self) -> str:
        shown = ", ".join(repr(n) for n in self.names[:8])
        more = f", ... ({self.width} columns)" if self.width > 8 else ""
        return shown + more

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

    def _checked(self, columns: dict[str, list[Any]], rows: int, where: str) -> Batch:
        for feature in self.schema.features:
            values = columns[feature.name]
            columns[feature.name] = [
                check_value(feature, v, f"{where}, row {i}, column {feature.name!r}") for i, v in enumerate(values)
            ]
        return self._batch(columns, rows)


def parse_json(body: bytes) -> Any:
    """The JSON document of a body; NaN and Infinity are read (and refused later, by column)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if not body.strip():
            raise RequestError("the body is empty; send a JSON document") from None
        try:  # the standard library also reads NaN and Infinity, which orjson refuses
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(f"invalid JSON: {error}") from None


def may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON body may hold `true` or `false`, which numpy would read as 1 and 0 among numbers. (A column
    name that spells one only sends its rows the careful way.) Searched from the end: CPython's reverse search
    reads a number-only body twice as fast as its forward one."""
    return body.rfind(b"true") >= 0 or body.rfind(b"false") >= 0


def numbers_after(body: bytes, key: bytes) -> bool:
    """Whether all of the body after the first `key` (a JSON key, quotes included) is numbers and punctuation: no
    `t` or `f` (true, false) and no `"` (a string). Then the key's values may be read as float64 at once, no type
    of numpy's to infer and no boolean to look for (null, NaN and infinities still fail the finiteness check).
    Four single-byte searches from near the start: a few microseconds where `may_hold_booleans` and numpy's type
    inference cost tens on a 100-row body (bench/serve_limit.py)."""
    start = body.find(key)
    if start < 0:
        return False
    start += len(key)
    return body.find(b"t", start) < 0 and body.find(b"f", start) < 0 and body.find(b'"', start) < 0


def fast_matrix(data: list[Any], width: int, plain: bool = False) -> np.ndarray | None:
    """The rows as a float64 matrix when they are a clean rectangle of finite numbers; else None. `plain`: the
    body holds no text or boolean among them (`numbers_after`), so numpy need not infer their type."""
    try:
        matrix = np.asarray(data, dtype=np.float64) if plain else np.array(data)
    except (ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or matrix.dtype.kind not in "fi":
        return None
    if matrix.dtype.kind == "f" and not math.isfinite(matrix.sum()):  # NaN and infinities carry into the sum
        return None
    return matrix


def dumps(value: Any) -> bytes:
    """A response body: JSON, numpy arrays included."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def json_array(array: np.ndarray) -> Any:
    """An output array as `dumps` serialises it fastest: numeric arrays as they are, others as lists."""
    return np.ascontiguousarray(array) if array.dtype.kind in "fiub" else array.tolist()
