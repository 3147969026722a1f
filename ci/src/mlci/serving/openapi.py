"""The OpenAPI description of a model server, derived from the model's input schema."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..model.manifest import ServedModel
from .v2 import V2_DATATYPES

JSON_TYPES = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _plain(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}  # type: ignore[assignment]
    return body


def _mlflow_body(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An /invocations body that carries its rows in one of MLflow's formats, `key`, and maybe params."""
    return {
        "type": "object",
        "required": [key],
        "additionalProperties": False,
        "properties": {key: schema, "params": {"type": "object"}},
    }


def describe(model: ServedModel) -> dict[str, Any]:
    """An OpenAPI 3.0 document for every endpoint of the server of `model`."""
    features = model.inputs.features
    kinds = [{"type": JSON_TYPES[kind]} for kind in dict.fromkeys(f.type for f in features)]
    value: dict[str, Any] = kinds[0] if len(kinds) == 1 else {"oneOf": kinds}
    names = [f.name for f in features]
    row = {"type": "array", "items": value, "minItems": len(names), "maxItems": len(names)}
    record = {
        "type": "object",
        "properties": {f.name: {"type": JSON_TYPES[f.type]} for f in features},
        "required": [f.name for f in features if f.required],
        "additionalProperties": False,
    }
    split = {
        "type": "object",
        "required": ["columns", "data"],
        "additionalProperties": False,
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "enum": names}},
            "data": {"type": "array", "items": row, "minItems": 1},
            "index": {"type": "array"},
        },
    }
    rows = {"type": "array", "items": row, "minItems": 1}
    records = {"type": "array", "items": record, "minItems": 1}
    formats = {"dataframe_split": split, "dataframe_records": records, "instances": rows, "inputs": rows}
    invocation = {"oneOf": [_mlflow_body(key, schema) for key, schema in formats.items()]}
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": ["input", *names]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 2},
            "datatype": {"type": "string", "enum": list(V2_DATATYPES)},
            "data": {"type": "array", "items": value},
            "parameters": {"type": "object"},
        },
    }
    infer = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": tensor},
            "outputs": {"type": "array"},
        },
    }
    bad = {
        "400": _error("the request is malformed or does not fit the model's signature"),
        "413": _error("the body or the batch is larger than the server takes"),
        "503": _error("the model is not loaded yet"),
    }
    name_parameter = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model.name]},
    }
    health = {"get": {"responses": {"200": _plain("yes"), "503": _plain("not yet")}}}
    request_id = {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "description": "The request's id; its rows' prediction ids are `<id>:<row index>`. Made when absent.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"},
    }
    echoed = {"X-Request-Id": {"description": "The request's id", "schema": {"type": "string"}}}
    label = (
        {"label": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}
        if model.output.kind == "probabilities"
        else {"value": {"type": "number"}}
    )
    feedback = {
        "type": "object",
        "required": ["feedback"],
        "additionalProperties": False,
        "properties": {
            "feedback": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", *label],
                    "additionalProperties": False,
                    "properties": {"id": {"type": "string"}, **label},
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"{model.name} (mlci serve)", "version": f"{model.version} / mlci {__version__}"},
        "paths": {
            "/invocations": {
                "post": {
                    "summary": "Score rows (MLflow scoring protocol)",
                    "parameters": [request_id],
                    # text/csv is accepted too (a header row, then rows); JSON is what this schema can describe.
                    "requestBody": {"required": True, "content": {"application/json": {"schema": invocation}}},
                    "responses": {
                        "200": _plain(
                            "predictions", {"type": "object", "properties": {"predictions": {"type": "array"}}}
                        )
                        | {"headers": echoed},
                        **bad,
                        "415": _error("the content type is neither JSON nor CSV"),
                    },
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "summary": "Score rows (Open Inference Protocol v2)",
                    "parameters": [name_parameter, request_id],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": infer}}},
                    "responses": {
                        "200": _plain("outputs", {"type": "object"}) | {"headers": echoed},
                        **bad,
                        "404": _error("no such model"),
                    },
                }
            },
            "/v2/models/{name}": {
                "get": {
                    "parameters": [name_parameter],
                    "responses": {"200": _plain("model metadata", {"type": "object"}), "404": _error("no such model")},
                }
            },
            "/v2/models/{name}/ready": {
                "get": {
                    "parameters": [name_parameter],
                    "responses": {"200": _plain("ready"), "503": _plain("not yet"), "404": _error("no such model")},
                }
            },
            "/feedback": {
                "post": {
                    "summary": "Ground truth for earlier predictions, by prediction id (unknown ids: unmatched)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": feedback}}},
                    "responses": {
                        "200": _plain("what the feedback counted", {"type": "object"}),
                        **bad,
                        "404": _error("this server keeps no predictions (--feedback-capacity 0)"),
                    },
                }
            },
            "/v2": {"get": {"responses": {"200": _plain("server metadata", {"type": "object"})}}},
            "/v2/health/live": health,
            "/v2/health/ready": health,
            "/healthz": health,
            "/readyz": health,
            "/ping": health,
            "/version": {"get": {"responses": {"200": _plain("mlci version")}}},
            "/metrics": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "Prometheus metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    }
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error_code": {"type": "string"},
                        "message": {"type": "string"},
                        "error": {"type": "string"},
                    },
                }
            }
        },
    }
