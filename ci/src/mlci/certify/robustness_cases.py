"""The catalogue of bad requests that the robustness gate sends: each must get a 4xx."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..model.schema import InputSchema


@dataclass(frozen=True)
class BadRequest:
    name: str
    method: str
    path: str
    body: bytes
    content_type: str = "application/json"
    declared_length: int | None = None  # a Content-Length larger than what is sent: the server must refuse early


def catalogue(schema: InputSchema, model_name: str, max_rows: int, max_body_bytes: int) -> list[BadRequest]:
    """At least 20 kinds of bad request for a model of this schema."""
    names = schema.names
    width = len(names)
    row: list[object] = [1.0] * width

    def split(columns: list[str], data: list[Any]) -> bytes:
        return json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()

    def wrong_at(value: object) -> list[list[object]]:
        return [[*row[:-1], value]]

    infer = f"/v2/models/{model_name}/infer"
    cases = [
        BadRequest("empty body", "POST", "/invocations", b""),
        BadRequest("invalid JSON", "POST", "/invocations", b'{"inputs": [[1,'),
        BadRequest("JSON that is not an object", "POST", "/invocations", b"[1, 2, 3]"),
        BadRequest("no known format key", "POST", "/invocations", b'{"rows": []}'),
        BadRequest(
            "two format keys", "POST", "/invocations", json.dumps({"inputs": [row], "instances": [row]}).encode()
        ),
        BadRequest("unknown column", "POST", "/invocations", split([*names[:-1], "no such column"], [row])),
        BadRequest("missing column", "POST", "/invocations", split(names[:-1], [row[:-1]])),
        BadRequest("duplicate column", "POST", "/invocations", split([names[0], *names[:-1]], [row])),
        BadRequest("row too short", "POST", "/invocations", split(names, [row[:-1]])),
        BadRequest("row too long", "POST", "/invocations", split(names, [[*row, 1.0]])),
        BadRequest("a flat row", "POST", "/invocations", json.dumps({"inputs": row}).encode()),
        BadRequest("string value", "POST", "/invocations", split(names, wrong_at("abc"))),
        BadRequest("boolean value", "POST", "/invocations", split(names, wrong_at(True))),
        BadRequest("null value", "POST", "/invocations", split(names, wrong_at(None))),
        BadRequest("nested value", "POST", "/invocations", split(names, wrong_at([1.0]))),
        BadRequest("NaN", "POST", "/invocations", split(names, wrong_at(1.0)).replace(b"1.0]]", b"NaN]]")),
        BadRequest("Infinity", "POST", "/invocations", split(names, wrong_at(1.0)).replace(b"1.0]]", b"Infinity]]")),
        BadRequest("no rows", "POST", "/invocations", split(names, [])),
        BadRequest("too many rows", "POST", "/invocations", json.dumps({"inputs": [row] * (max_rows + 1)}).encode()),
        BadRequest("oversized body", "POST", "/invocations", b"{", declared_length=max_body_bytes + 1),
        BadRequest("unsupported content type", "POST", "/invocations", b"<rows/>", "application/xml"),
        BadRequest("deeply nested JSON", "POST", "/invocations", b"[" * 100_000 + b"]" * 100_000),
        BadRequest("not UTF-8", "POST", "/invocations", b'{"inputs": "\xff\xfe"}'),
        BadRequest("GET on /invocations", "GET", "/invocations", b""),
        BadRequest("v2 without inputs", "POST", infer, b'{"id": "x"}'),
        BadRequest(
            "v2 unknown datatype",
            "POST",
            infer,
            json.dumps({"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP128", "data": row}]}).encode(),
        ),
        BadRequest(
            "v2 shape and data disagree",
            "POST",
            infer,
            json.dumps({"inputs": [{"name": "input", "shape": [2, width], "datatype": "FP64", "data": row}]}).encode(),
        ),
        BadRequest(
            "v2 unknown input",
            "POST",
            infer,
            json.dumps({"inputs": [{"name": "nobody", "shape": [1], "datatype": "FP64", "data": [1.0]}]}).encode(),
        ),
        BadRequest("v2 unknown model", "POST", "/v2/models/no-such-model/infer", b'{"inputs": []}'),
    ]
    return cases
