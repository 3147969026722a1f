"""The catalogue of bad requests that the robustness gate sends: each must get a 4xx."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..model.baseline import Baseline
from ..model.schema import INTEGER_TYPES, InputSchema

NUMBERS = ("double", "float", *INTEGER_TYPES)
# Stand for tokens that JSON has no value for, until the body is written.
RAW = {"mlci-raw-nan": b"NaN", "mlci-raw-infinity": b"Infinity"}


@dataclass(frozen=True)
class BadRequest:
    name: str
    method: str
    path: str
    body: bytes
    content_type: str = "application/json"
    declared_length: int | None = None  # a Content-Length larger than what is sent: the server must refuse early


def valid_row(schema: InputSchema, baseline: Baseline | None = None) -> list[Any]:
    """A row the model takes, of the signature's types: a middle bin edge or a known category where the baseline
    has one (so the serving gate scores typical values), else 1, 1.0, "a" or true."""
    row: list[Any] = []
    for i, feature in enumerate(schema.features):
        edges = baseline.edges[i] if baseline is not None and i < len(baseline.edges) else ()
        categories = baseline.categories[i] if baseline is not None and i < len(baseline.categories) else ()
        if feature.type == "string":
            row.append(categories[0] if categories else "a")
        elif feature.type == "boolean":
            row.append(True)
        elif feature.type in INTEGER_TYPES:
            row.append(int(round(edges[len(edges) // 2])) if edges else 1)
        else:
            row.append(float(edges[len(edges) // 2]) if edges else 1.0)
    return row


def catalogue(schema: InputSchema, model_name: str, max_rows: int, max_body_bytes: int) -> list[BadRequest]:
    """At least 20 kinds of bad request for a model of this schema, each wrong for the column it is put in."""
    names = schema.names
    width = len(names)
    row = valid_row(schema)

    def split(columns: list[str], data: list[Any]) -> bytes:
        body = json.dumps({"dataframe_split": {"columns": columns, "data": data}}).encode()
        for marker, token in RAW.items():
            body = body.replace(f'"{marker}"'.encode(), token)
        return body

    def wrong(name: str, value: object, where: list[int]) -> list[BadRequest]:
        """The valid row with `value` in the last of the columns `where` (no case when there is none)."""
        if not where:
            return []
        return [
            BadRequest(name, "POST", "/invocations", split(names, [[*row[: where[-1]], value, *row[where[-1] + 1 :]]]))
        ]

    def columns(*types: str, required: bool = False) -> list[int]:
        return [i for i, f in enumerate(schema.features) if f.type in types and (f.required or not required)]

    every = tuple({f.type for f in schema.features})

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
        BadRequest("row too long", "POST", "/invocations", split(names, [[*row, row[-1]]])),
        BadRequest("a flat row", "POST", "/invocations", json.dumps({"inputs": row}).encode()),
        *wrong("string value", "abc", columns(*NUMBERS, "boolean")),
        *wrong("boolean value", True, columns(*NUMBERS, "string")),
        *wrong("number in a text column", 7, columns("string", "boolean")),
        *wrong("null value", None, columns(*every, required=True)),
        *wrong("nested value", [1.0], columns(*every)),
        *wrong("NaN", "mlci-raw-nan", columns(*every, required=True)),
        *wrong("Infinity", "mlci-raw-infinity", columns(*every)),
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
