"""What a model takes: its features in order, their types, and how they reach the model.

An MLflow signature is either column-based (named, typed columns) or tensor-based (one array whose
last dimension is the features). Both become an `InputSchema`: a tuple of features and the numpy
dtype of the matrix that the model receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ModelError

# MLflow column types that a numeric matrix can carry, and the numpy dtype of each.
NUMERIC_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}
COLUMN_TYPES = (*NUMERIC_TYPES, "string")
INTEGER_TYPES = ("long", "integer")
# Tensor dtypes of an MLflow tensor spec, as the column type they stand for.
TENSOR_TYPES = {
    "float64": "double",
    "float32": "float",
    "float16": "float",
    "int64": "long",
    "int32": "integer",
    "int16": "integer",
    "int8": "integer",
    "uint8": "integer",
    "bool": "boolean",
}


@dataclass(frozen=True)
class Feature:
    """One input column: its name, MLflow type and whether a value is required."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class InputSchema:
    """The model's features in order and the dtype of the matrix it is fed."""

    features: tuple[Feature, ...]
    layout: Literal["columns", "tensor"]
    dtype: str

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def numeric(self) -> bool:
        """Whether every feature fits in one numeric matrix (what an ONNX model needs)."""
        return all(feature.type in NUMERIC_TYPES for feature in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "dtype": self.dtype,
            "features": [{"name": f.name, "type": f.type, "required": f.required} for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSchema:
        features = tuple(Feature(f["name"], f["type"], bool(f.get("required", True))) for f in data["features"])
        return cls(features, data["layout"], data["dtype"])


def _matrix_dtype(types: set[str]) -> str:
    if types <= {"boolean"}:
        return "bool"
    if types <= {"long", "integer", "boolean"}:
        return "int64"
    if types <= {"float", "integer", "boolean"}:
        return "float32"
    return "float64"


def from_signature(inputs: Any, feature_names: list[str] | None = None) -> InputSchema:
    """The schema of an MLflow signature's `inputs` (the JSON string stored in MLmodel, or its list).

    Tensor features are named by `feature_names` when given (saved at training time), else "0".."n-1".
    """
    specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    if not isinstance(specs, list) or not specs:
        raise ModelError("the model's signature has no inputs; log the model with a signature")
    if all(spec.get("type") == "tensor" for spec in specs):
        return _tensor_schema(specs, feature_names)
    features = []
    for spec in specs:
        kind, name = spec.get("type"), spec.get("name")
        if kind not in COLUMN_TYPES:
            raise ModelError(
                f"input {name!r} has type {kind!r}; mlci serves the column types {', '.join(COLUMN_TYPES)}"
            )
        if not isinstance(name, str):
            raise ModelError("the model's signature has unnamed columns; mlci needs every column named")
        features.append(Feature(name, kind, bool(spec.get("required", True))))
    return InputSchema(tuple(features), "columns", _matrix_dtype({f.type for f in features}))


def _tensor_schema(specs: list[dict[str, Any]], feature_names: list[str] | None) -> InputSchema:
    if len(specs) != 1:
        raise ModelError(f"the model takes {len(specs)} tensors; mlci serves models with one input tensor")
    tensor = specs[0].get("tensor-spec", {})
    dtype, shape = str(tensor.get("dtype")), tensor.get("shape")
    if dtype not in TENSOR_TYPES:
        raise ModelError(f"the input tensor has dtype {dtype!r}; mlci serves {', '.join(TENSOR_TYPES)}")
    if not isinstance(shape, list) or len(shape) != 2 or shape[1] is None or shape[1] < 1:
        raise ModelError(f"the input tensor has shape {shape}; mlci serves 2-D inputs of shape [-1, n_features]")
    width = int(shape[1])
    names = feature_names if feature_names and len(feature_names) == width else [str(i) for i in range(width)]
    kind = TENSOR_TYPES[dtype]
    return InputSchema(tuple(Feature(name, kind) for name in names), "tensor", np.dtype(dtype).name)
